"""Shared test configuration.

BLAS runs single-threaded in the tests: on a 2-core machine, multi-threaded OpenBLAS inside
small matrix products oversubscribes the cores that Numba's parallel kernels also use, and
makes small fits an order of magnitude slower without changing any result.
"""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    with threadpool_limits(limits=1, user_api="blas"):
        yield
