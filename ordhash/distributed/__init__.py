"""Scale-out on Dask: blockwise encoding and sharded, exact Hamming search.

- :func:`fit_sample` fits a learner on a random sample of a dask array;
- :func:`encode` encodes a dask array blockwise (the learner shipped once per worker);
- :class:`ShardedHammingIndex` keeps one :class:`~ordhash.index.HammingIndex` per block on
  the workers and merges per-shard answers exactly (same result as one index);
- :class:`ShardedHashingSearcher` adds exact L2 / inner-product re-ranking on the shards.

Searches go through one long-lived shard server (a dask Actor) per worker, called directly
by the client, and fall back to one dask task per shard when that fails (``fast_path``).

Needs the ``dask`` extra: ``pip install "ordhash[dask]"`` (``dask[array]`` and
``distributed``). See ``docs/distributed.md``.
"""

try:
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "ordhash.distributed needs dask[array] and distributed; install them with "
        "pip install 'ordhash[dask]'"
    ) from exc

from .encode import encode, fit_sample
from .index import ShardedHammingIndex, ShardUnavailableError
from .searcher import ShardedHashingSearcher

__all__ = [
    "fit_sample",
    "encode",
    "ShardedHammingIndex",
    "ShardedHashingSearcher",
    "ShardUnavailableError",
]
