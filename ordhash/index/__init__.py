"""Exact Hamming indexes over packed binary codes.

- :class:`HammingIndex`: full scan (numba, or faiss ``IndexBinaryFlat``).
- :class:`MultiIndexHashing`: exact sub-linear search (Norouzi, Punjani & Fleet).

Both return :class:`SearchResult` (k-NN) and :class:`RangeSearchResult` (inclusive radius,
CSR), sorted by (distance, id) and padded with :data:`PAD_DISTANCE` / :data:`PAD_ID`.

On float vectors: :class:`HashingSearcher` (Hamming candidates re-ranked exactly) and
:class:`HashingKNeighborsTransformer` (a scikit-learn k-NN graph). :func:`to_faiss` /
:func:`from_faiss` convert to and from faiss binary indexes.
"""

from ._common import PAD_DISTANCE, PAD_ID, RangeSearchResult, SearchResult
from .flat import HammingIndex
from .mih import MultiIndexHashing

# The float-vector layer pulls in scikit-learn (and faiss for interop); load it on first use so
# that ``import ordhash.index`` costs only numpy and numba.
_LAZY = {
    "HashingSearcher": "searcher",
    "FloatSearchResult": "searcher",
    "HashingKNeighborsTransformer": "neighbors",
    "to_faiss": "interop",
    "from_faiss": "interop",
}

__all__ = [
    "HammingIndex",
    "MultiIndexHashing",
    "SearchResult",
    "RangeSearchResult",
    "PAD_DISTANCE",
    "PAD_ID",
    "HashingSearcher",
    "FloatSearchResult",
    "HashingKNeighborsTransformer",
    "to_faiss",
    "from_faiss",
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
