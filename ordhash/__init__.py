"""ordhash: approximate nearest-neighbour search with learned binary codes.

The public names are re-exported here and imported lazily (PEP 562), so ``import ordhash``
stays cheap and a submodule (and its Numba kernels, scikit-learn or faiss) is loaded only when
one of its names is first used.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    # learners
    "BaseHasher": "ordhash.learners",
    "LSH": "ordhash.learners",
    "PCAH": "ordhash.learners",
    "ITQ": "ordhash.learners",
    "SH": "ordhash.learners",
    "AGH": "ordhash.learners",
    "SpH": "ordhash.learners",
    "OEH": "ordhash.learners",
    "OCH": "ordhash.learners",
    # codes
    "pack_bits": "ordhash.codes",
    "unpack_bits": "ordhash.codes",
    "pack_signs": "ordhash.codes",
    "unpack_signs": "ordhash.codes",
    "hamming_distances": "ordhash.codes",
    # indexes
    "HammingIndex": "ordhash.index",
    "MultiIndexHashing": "ordhash.index",
    # graph walk
    "ProximityGraph": "ordhash.walk",
    "GraphWalkIndex": "ordhash.walk",
    "NeuralMatcher": "ordhash.walk",
    # persistence
    "save": "ordhash.persist",
    "load": "ordhash.persist",
}
_SUBMODULES = ("codes", "datasets", "learners", "metrics", "persist", "benchmark", "index", "walk", "distributed")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return import_module(f"ordhash.{name}")
    raise AttributeError(f"module 'ordhash' has no attribute {name!r}")


def __dir__():
    return __all__
