"""Exact nearest neighbours and relevance matrices (public through :mod:`ordhash.metrics`)."""

from __future__ import annotations

import math

import faiss
import numpy as np

from ._validation import check_int, check_option, check_real, check_vectors

__all__ = [
    "exact_knn",
    "relevance_topk",
    "relevance_top_fraction",
    "relevance_from_ids",
    "relevance_labels",
]

_METRICS = ("l2", "ip")
_BLOCK_ELEMS = 1 << 22


def exact_knn(base, queries, k, *, metric="l2"):
    """Exact k nearest neighbours by brute force (faiss ``IndexFlatL2`` / ``IndexFlatIP``).

    Results are ordered best first; equal scores are ordered by smaller database id, and at the
    k-th position the smallest ids of the boundary tie group are kept. This is enforced, not
    assumed: faiss is asked for more than ``k`` results until the k-th score is strictly better
    than the last one returned, then the candidates are sorted by ``(score, id)``.

    Parameters
    ----------
    base : array-like of shape (n_base, d)
        Database vectors (converted to float32, must be finite).
    queries : array-like of shape (n_queries, d)
    k : int
        Number of neighbours, ``1 <= k <= n_base``.
    metric : {"l2", "ip"}, default="l2"
        ``"l2"``: Euclidean distance (the square root of faiss' squared L2, clipped at 0), smaller
        is better. ``"ip"``: inner product, larger is better.

    Returns
    -------
    distances : ndarray of float32, shape (n_queries, k)
        Euclidean distances (``"l2"``) or inner products (``"ip"``) of the neighbours.
    ids : ndarray of int64, shape (n_queries, k)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import exact_knn
    >>> base = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])
    >>> dist, ids = exact_knn(base, np.array([[0.0, 0.0]]), 3)
    >>> ids                                       # ids 2 and 3 tie at distance 1
    array([[0, 2, 3]])
    >>> dist
    array([[0., 1., 1.]], dtype=float32)
    """
    check_option(metric, "metric", _METRICS)
    base = check_vectors(base, "base")
    queries = check_vectors(queries, "queries", n_features=base.shape[1])
    nb = base.shape[0]
    k = check_int(k, "k", min_value=1, max_value=nb)
    index = faiss.IndexFlatL2(base.shape[1]) if metric == "l2" else faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    nq = queries.shape[0]
    out_d = np.empty((nq, k), dtype=np.float32)
    out_i = np.empty((nq, k), dtype=np.int64)
    pending = np.arange(nq)
    depth = min(nb, k + max(1, k // 4))
    while pending.size:
        # Bound the (n_pending, depth) result arrays.
        step = max(1, _BLOCK_ELEMS // depth)
        unresolved = []
        for start in range(0, pending.size, step):
            rows = pending[start:start + step]
            dist, ids = index.search(queries[rows], depth)
            if metric == "l2":
                dist = np.sqrt(np.maximum(dist, 0.0))
                key = dist
            else:
                key = -dist
            order = np.lexsort((ids, key), axis=-1)
            key = np.take_along_axis(key, order, axis=1)
            dist = np.take_along_axis(dist, order, axis=1)
            ids = np.take_along_axis(ids, order, axis=1)
            # Complete when every item tied with the k-th one is among the candidates.
            done = np.full(rows.size, True) if depth == nb else key[:, -1] > key[:, k - 1]
            out_d[rows[done]] = dist[done, :k]
            out_i[rows[done]] = ids[done, :k]
            unresolved.append(rows[~done])
        pending = np.concatenate(unresolved)
        depth = min(nb, 2 * depth)
    return out_d, out_i


def relevance_from_ids(ids, n_base):
    """Boolean relevance matrix with ``out[i, j] = True`` iff ``j`` appears in ``ids[i]``.

    Parameters
    ----------
    ids : array-like of int, shape (n_queries, m)
        Database ids per query; ``-1`` entries are padding and ignored.
    n_base : int
        Number of database items (columns of the result).

    Returns
    -------
    ndarray of bool, shape (n_queries, n_base)

    Examples
    --------
    >>> from ordhash.metrics import relevance_from_ids
    >>> relevance_from_ids([[2, 0], [1, -1]], 3).astype(int)
    array([[1, 0, 1],
           [0, 1, 0]])
    """
    n_base = check_int(n_base, "n_base", min_value=1)
    arr = np.asarray(ids)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"ids must be 2-D (n_queries, m), got shape {arr.shape}")
    if arr.size and (arr.min() < -1 or arr.max() >= n_base):
        raise ValueError(f"ids must lie in [0, n_base) = [0, {n_base}) or be -1 (padding)")
    out = np.zeros((arr.shape[0], n_base), dtype=bool)
    rows = np.broadcast_to(np.arange(arr.shape[0])[:, None], arr.shape)
    valid = arr >= 0
    out[rows[valid], arr[valid]] = True
    return out


def relevance_topk(base, queries, k):
    """Relevance = the ``k`` exact Euclidean nearest database points of each query.

    Uses :func:`exact_knn` with ``metric="l2"``, so ties at the k-th distance go to smaller ids
    and every row has exactly ``k`` True entries.

    Parameters
    ----------
    base : array-like of shape (n_base, d)
    queries : array-like of shape (n_queries, d)
    k : int
        ``1 <= k <= n_base``.

    Returns
    -------
    ndarray of bool, shape (n_queries, n_base)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import relevance_topk
    >>> relevance_topk(np.array([[0.0], [5.0], [1.0]]), np.array([[0.2]]), 2)
    array([[ True, False,  True]])
    """
    base = check_vectors(base, "base")
    _, ids = exact_knn(base, queries, k)
    return relevance_from_ids(ids, base.shape[0])


def relevance_top_fraction(base, queries, fraction=0.02):
    """Relevance = the ``K = max(1, floor(fraction * n_base))`` exact Euclidean nearest points.

    With ``fraction=0.02`` this is the OCH demo / HABIR "top 2%" ground truth (MATLAB
    ``1:0.02*N`` truncates to ``floor``). Ties as in :func:`relevance_topk`.

    Parameters
    ----------
    base : array-like of shape (n_base, d)
    queries : array-like of shape (n_queries, d)
    fraction : float, default=0.02
        In ``(0, 1]``.

    Returns
    -------
    ndarray of bool, shape (n_queries, n_base)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import relevance_top_fraction
    >>> base = np.arange(100, dtype=np.float32)[:, None]
    >>> np.flatnonzero(relevance_top_fraction(base, [[10.2]], 0.03))   # K = 3
    array([ 9, 10, 11])
    """
    fraction = check_real(fraction, "fraction", min_value=0.0, max_value=1.0)
    if fraction <= 0.0:
        raise ValueError(f"fraction must be > 0, got {fraction}")
    base = check_vectors(base, "base")
    k = max(1, math.floor(fraction * base.shape[0]))
    return relevance_topk(base, queries, k)


def _check_labels(labels, name):
    arr = np.asarray(labels)
    if arr.dtype == object or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be an array of numbers or strings, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (class labels) or 2-D (multi-hot), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if arr.ndim == 2:
        if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
            raise TypeError(f"{name} (multi-hot) must be boolean or 0/1, got dtype {arr.dtype}")
        if arr.dtype != bool and ((arr != 0) & (arr != 1)).any():
            raise ValueError(f"{name} (multi-hot) must contain only 0/1")
    return arr


def relevance_labels(query_labels, base_labels):
    """Relevance from labels: same class (1-D labels) or at least one shared label (2-D multi-hot).

    Parameters
    ----------
    query_labels : array-like, shape (n_queries,) or (n_queries, n_labels)
    base_labels : array-like, shape (n_base,) or (n_base, n_labels)
        Same dimensionality as ``query_labels``. 1-D: class labels compared with ``==``.
        2-D: multi-hot 0/1 (or boolean) rows; ``out[i, j] = any(q[i] & b[j])``.

    Returns
    -------
    ndarray of bool, shape (n_queries, n_base)

    Examples
    --------
    >>> from ordhash.metrics import relevance_labels
    >>> relevance_labels([0, 2], [2, 0, 0]).astype(int)
    array([[0, 1, 1],
           [1, 0, 0]])
    >>> relevance_labels([[1, 0, 1]], [[0, 0, 1], [0, 1, 0]]).astype(int)
    array([[1, 0]])
    """
    q = _check_labels(query_labels, "query_labels")
    b = _check_labels(base_labels, "base_labels")
    if q.ndim != b.ndim:
        raise ValueError(
            f"query_labels is {q.ndim}-D but base_labels is {b.ndim}-D; both must be 1-D class "
            "labels or both 2-D multi-hot"
        )
    if q.ndim == 1:
        return q[:, None] == b[None, :]
    if q.shape[1] != b.shape[1]:
        raise ValueError(
            f"query_labels has {q.shape[1]} labels per row but base_labels has {b.shape[1]}"
        )
    qf = q.astype(np.float32)
    bf_t = np.ascontiguousarray(b.astype(np.float32).T)
    out = np.empty((q.shape[0], b.shape[0]), dtype=bool)
    step = max(1, _BLOCK_ELEMS // b.shape[0])
    for start in range(0, q.shape[0], step):
        out[start:start + step] = (qf[start:start + step] @ bf_t) > 0.5
    return out
