"""Client side of the sharded search: exact merges of per-shard results.

Each shard answers with its own rows sorted by (distance, id). Because every global top-k
neighbour is in the top-k of the shard that holds it, sorting the union of the per-shard
answers by (distance, id) and keeping the first ``k`` gives exactly the answer of one index
over all the codes -- ties included, since ids are unique across shards.
"""

from __future__ import annotations

import numpy as np

from ..index import PAD_DISTANCE, PAD_ID, RangeSearchResult, SearchResult

__all__ = ["merge_knn", "merge_range"]


def merge_knn(n_queries, k, ids_parts, score_parts, *, descending=False, pad=PAD_DISTANCE,
              dtype=np.int32):
    """Merge per-shard k-NN rows into the global top ``k`` sorted by (score, id).

    Parameters
    ----------
    n_queries, k : int
    ids_parts, score_parts : lists of ndarray of shape (n_queries, k_s)
        Per-shard ids and scores (no padding inside).
    descending : bool
        Sort by decreasing score (inner product) instead of increasing distance.
    pad : scalar
        Score of a padded slot (with id :data:`PAD_ID`).
    dtype : numpy dtype
        Dtype of the returned scores.
    """
    out_ids = np.full((n_queries, k), PAD_ID, dtype=np.int64)
    out_scores = np.full((n_queries, k), pad, dtype=dtype)
    widths = [p.shape[1] for p in ids_parts]
    if n_queries == 0 or sum(widths) == 0:
        return SearchResult(ids=out_ids, distances=out_scores)
    ids = np.concatenate(ids_parts, axis=1)
    scores = np.concatenate(score_parts, axis=1)
    key = -scores if descending else scores
    kk = min(k, ids.shape[1])
    order = np.lexsort((ids, key), axis=1)[:, :kk]
    out_ids[:, :kk] = np.take_along_axis(ids, order, axis=1)
    out_scores[:, :kk] = np.take_along_axis(scores, order, axis=1)
    return SearchResult(ids=out_ids, distances=out_scores)


def merge_range(n_queries, parts):
    """Concatenate per-shard CSR results and sort each query's matches by (distance, id).

    Parameters
    ----------
    n_queries : int
    parts : list of (lims, ids, distances)
    """
    counts = np.zeros(n_queries, dtype=np.int64)
    q_parts, id_parts, d_parts = [], [], []
    for lims, ids, dist in parts:
        c = np.diff(lims)
        counts += c
        q_parts.append(np.repeat(np.arange(n_queries, dtype=np.int64), c))
        id_parts.append(ids)
        d_parts.append(dist)
    lims = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(counts, out=lims[1:])
    if not parts or lims[-1] == 0:
        return RangeSearchResult(lims=lims, ids=np.empty(0, np.int64),
                                 distances=np.empty(0, np.int32))
    q = np.concatenate(q_parts)
    ids = np.concatenate(id_parts)
    dist = np.concatenate(d_parts)
    order = np.lexsort((ids, dist, q))
    return RangeSearchResult(lims=lims, ids=ids[order],
                             distances=np.ascontiguousarray(dist[order], dtype=np.int32))
