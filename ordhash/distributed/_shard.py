"""Worker side of the sharded index: one :class:`Shard` per block and the tasks run on it.

Every function here is a module-level function so that dask ships it by reference (the
worker imports this module once; the numba kernels behind :class:`~ordhash.index.HammingIndex`
and the learners are module-level dispatchers, so each worker process compiles or loads them
from the on-disk cache once, whatever the number of tasks).

Shards are **immutable** once built: :func:`shard_without` returns a new shard instead of
editing one in place. A shard future therefore always equals the result of its task graph,
so dask may recompute a shard lost with its worker and obtain exactly the same shard.
"""

from __future__ import annotations

import time

import numpy as np

from .._validation import check_vectors
from ..index import HammingIndex

__all__ = [
    "Shard",
    "build_shard",
    "shard_summary",
    "shard_ids",
    "count_common",
    "shard_without",
    "shard_knn",
    "shard_range",
    "shard_rerank",
    "encode_block",
]

# Re-ranking gathers (queries x candidates x features) float64 values; cap one slab at this.
_RERANK_SLAB = 1 << 22


class Shard:
    """The codes of one block in a :class:`~ordhash.index.HammingIndex`, optionally with the
    original vectors, stored in the index's (increasing id) order."""

    def __init__(self, index, vectors=None):
        self.index = index
        self.vectors = vectors

    @property
    def ntotal(self):
        return self.index.ntotal

    def __len__(self):
        return self.index.ntotal

    def __sizeof__(self):
        # lets dask's memory accounting see the arrays
        extra = 0 if self.vectors is None else self.vectors.nbytes
        return object.__sizeof__(self) + self.index.nbytes + extra


def encode_block(block, learner):
    """Packed codes of one row block (``learner.transform``; empty blocks allowed)."""
    if block.shape[0] == 0:
        return np.empty((0, (learner.n_bits + 7) // 8), dtype=np.uint8)
    return learner.transform(block)


def _block_ids(n, ids, offset):
    if ids is None:
        return np.arange(offset, offset + n, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"ids block has shape {ids.shape}, but its codes block has {n} rows")
    return ids


def build_shard(codes, ids, offset, n_bits, n_jobs, vectors=None):
    """A :class:`Shard` of ``codes`` under ``ids`` (or ``offset + arange`` when ``ids`` is None).

    ``vectors`` (same rows as ``codes``) are validated to finite float32 and re-ordered with
    the ids, so row ``i`` of ``shard.vectors`` belongs to ``shard.index.ids[i]``.
    """
    codes = np.asarray(codes)
    n = codes.shape[0] if codes.ndim == 2 else -1
    ids = _block_ids(n, ids, offset)
    index = HammingIndex(n_bits, n_jobs=n_jobs)
    index.add(codes, ids=ids)
    if vectors is None:
        return Shard(index)
    vectors = check_vectors(vectors, "X", allow_empty=True)
    if vectors.shape[0] != n:
        raise ValueError(f"vectors block has {vectors.shape[0]} rows, but its codes block has {n}")
    if n > 1 and (np.diff(ids) <= 0).any():
        vectors = vectors[np.argsort(ids, kind="stable")]
    return Shard(index, np.ascontiguousarray(vectors))


def shard_summary(shard):
    """``(n, smallest id, largest id)``; ids are ``-1`` for an empty shard."""
    ids = shard.index.ids
    if ids.shape[0] == 0:
        return 0, -1, -1
    return int(ids.shape[0]), int(ids[0]), int(ids[-1])


def shard_ids(shard):
    """A copy of the shard's ids (increasing)."""
    return np.array(shard.index.ids)


def count_common(ids, shard):
    """``(count, example)`` of ``ids`` (sorted, unique) also stored in ``shard``."""
    common = np.intersect1d(ids, shard.index.ids, assume_unique=True)
    return int(common.shape[0]), (int(common[0]) if common.shape[0] else -1)


def shard_without(shard, ids):
    """A new shard without ``ids`` (unknown ids ignored); the same shard if none is stored."""
    stored = shard.index.ids
    keep = ~np.isin(stored, ids)
    if keep.all():
        return shard
    index = HammingIndex(shard.index.n_bits, n_jobs=shard.index.n_jobs)
    index.add(shard.index.reconstruct(stored[keep]), ids=stored[keep])
    vectors = None if shard.vectors is None else np.ascontiguousarray(shard.vectors[keep])
    return Shard(index, vectors)


def shard_knn(shard, queries, k):
    """Per-shard k-NN: ``(ntotal, ids, distances, seconds)``, trimmed to ``min(k, ntotal)``."""
    t0 = time.perf_counter()
    kk = min(k, shard.ntotal)
    if kk == 0:
        nq = queries.shape[0]
        return 0, np.empty((nq, 0), np.int64), np.empty((nq, 0), np.int32), 0.0
    res = shard.index.search(queries, kk)
    return shard.ntotal, res.ids, res.distances, time.perf_counter() - t0


def shard_range(shard, queries, radius):
    """Per-shard radius search: ``(ntotal, lims, ids, distances, seconds)``."""
    t0 = time.perf_counter()
    res = shard.index.range_search(queries, radius)
    return shard.ntotal, res.lims, res.ids, res.distances, time.perf_counter() - t0


def exact_scores(vectors, queries, rows, metric):
    """Exact float64 scores of ``vectors[rows[i, j]]`` against ``queries[i]``.

    ``"l2"``: squared Euclidean distance ``sum((x - q) ** 2)``; ``"ip"``: inner product
    ``sum(x * q)``; both accumulated in float64 from the float32 inputs.
    """
    nq, c = rows.shape
    d = vectors.shape[1]
    out = np.empty((nq, c), dtype=np.float64)
    step = max(1, _RERANK_SLAB // max(1, c * d))
    for q0 in range(0, nq, step):
        q1 = min(nq, q0 + step)
        cand = vectors[rows[q0:q1]].astype(np.float64)
        q = queries[q0:q1].astype(np.float64)
        if metric == "l2":
            cand -= q[:, None, :]
            np.einsum("ijk,ijk->ij", cand, cand, out=out[q0:q1])
        else:
            np.einsum("ijk,ik->ij", cand, q, out=out[q0:q1])
    return out


def order_by_score(ids, scores, metric, k):
    """Columns of each row sorted by (distance, id) -- (-score, id) for ``"ip"`` -- first ``k``."""
    key = scores if metric == "l2" else -scores
    order = np.lexsort((ids, key), axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def shard_rerank(shard, qcodes, qvectors, k, candidates, metric):
    """Hamming top-``candidates`` of the shard, re-ranked by exact ``metric``; top ``k`` kept.

    Returns ``(ntotal, ids, scores, seconds)`` with ``min(k, candidates, ntotal)`` columns.
    """
    t0 = time.perf_counter()
    n = shard.ntotal
    c = min(candidates, n)
    if c == 0:
        nq = qcodes.shape[0]
        return 0, np.empty((nq, 0), np.int64), np.empty((nq, 0), np.float64), 0.0
    hits = shard.index.search(qcodes, c)
    rows = np.searchsorted(shard.index.ids, hits.ids)
    scores = exact_scores(shard.vectors, qvectors, rows, metric)
    ids, scores = order_by_score(hits.ids, scores, metric, min(k, c))
    return n, ids, scores, time.perf_counter() - t0
