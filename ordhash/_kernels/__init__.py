"""Numba kernels: module-level functions that take arrays and return arrays.

Nothing in this package knows about estimator or index classes; those live one level up and
own parameters, state, validation and persistence. Every kernel is compiled with
``cache=True`` so the first-call JIT cost is paid once per machine, not once per process.
"""
