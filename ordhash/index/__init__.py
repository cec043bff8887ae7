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
from .searcher import FloatSearchResult, HashingSearcher
from .neighbors import HashingKNeighborsTransformer
from .interop import from_faiss, to_faiss

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
