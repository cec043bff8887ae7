"""Recall metrics of approximate nearest-neighbour results (public via :mod:`ordhash.metrics`)."""

from __future__ import annotations

import numpy as np

from ._validation import check_int, check_real

__all__ = ["knn_recall", "knn_recall_ids", "coverage_at_m"]


def _check_float_2d(arr, name):
    if arr is None or isinstance(arr, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D float array, got {type(arr).__name__}")
    a = np.asarray(arr)
    numeric = np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    if a.dtype == bool or not numeric:
        raise TypeError(f"{name} must be a real array, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_queries, k), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    a = a.astype(np.float64, copy=False)
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN")
    return a


def _check_ids_2d(arr, name):
    if arr is None or isinstance(arr, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D integer array, got {type(arr).__name__}")
    a = np.asarray(arr)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of ids, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_queries, k), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if a.size and a.min() < -1:
        raise ValueError(f"{name} must hold ids >= 0, or -1 for padding; found {a.min()}")
    return a.astype(np.int64, copy=False)


def _check_pair(a, name_a, b, name_b, k, name_k):
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}; they must agree"
        )
    k = check_int(k, name_k, min_value=1)
    for arr, name in ((a, name_a), (b, name_b)):
        if arr.shape[1] < k:
            raise ValueError(f"{name} has {arr.shape[1]} columns, fewer than {name_k}={k}")
    return k


def knn_recall(returned_distances, true_distances, k, *, eps=1e-3, per_query=False):
    """ann-benchmarks recall@k with its distance tie tolerance.

    For each query, ``recall = |{j < k : returned_distances[j] <= true_distances[k-1] + eps}| / k``,
    averaged over queries (``ann_benchmarks/plotting/metrics.py``: ``knn_threshold`` and
    ``get_recall_values``). Any returned item tied with the true k-th neighbour counts. Padding
    (``+inf`` distance) is a miss.

    Parameters
    ----------
    returned_distances : array-like of float, shape (n_queries, >= k)
        The *true* distances of the returned items, in returned order; ``+inf`` for padding.
    true_distances : array-like of float, shape (n_queries, >= k)
        Exact neighbour distances sorted ascending; the first ``k`` must be finite. For
        similarities (inner product), pass negated values.
    k : int
        ``>= 1``.
    eps : float, default=1e-3
        Tolerance added to the true k-th distance (``>= 0``).
    per_query : bool, default=False

    Returns
    -------
    float or ndarray of shape (n_queries,)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import knn_recall
    >>> true = np.array([[1.0, 2.0, 2.0, 3.0]])
    >>> knn_recall([[2.0, 1.0, np.inf]], true, 2)      # both within 2.0 + 1e-3
    1.0
    >>> knn_recall([[1.0, 3.0]], true, 2)
    0.5
    """
    ret = _check_float_2d(returned_distances, "returned_distances")
    true = _check_float_2d(true_distances, "true_distances")
    k = _check_pair(ret, "returned_distances", true, "true_distances", k, "k")
    eps = check_real(eps, "eps", min_value=0.0)
    if not np.isfinite(true[:, :k]).all():
        raise ValueError("true_distances must be finite in its first k columns")
    threshold = true[:, k - 1] + eps
    recall = (ret[:, :k] <= threshold[:, None]).sum(axis=1) / k
    return recall if per_query else float(recall.mean())


def _set_overlap(a, b):
    """Per-row ``|set(a[i]) ∩ set(b[i])|`` ignoring ``-1``, for non-negative int64 ids."""
    nq = a.shape[0]
    va, vb = a >= 0, b >= 0
    ra = np.broadcast_to(np.arange(nq, dtype=np.int64)[:, None], a.shape)[va]
    rb = np.broadcast_to(np.arange(nq, dtype=np.int64)[:, None], b.shape)[vb]
    ia, ib = a[va], b[vb]
    top = max(int(ia.max(initial=0)), int(ib.max(initial=0))) + 1
    if nq * top >= 2 ** 62:                      # compress huge ids before row-offsetting
        _, inv = np.unique(np.concatenate([ia, ib]), return_inverse=True)
        ia, ib = inv[: ia.size], inv[ia.size:]
        top = int(inv.max(initial=0)) + 1
    keys_a = np.unique(ra * top + ia)
    keys_b = np.unique(rb * top + ib)
    common = np.intersect1d(keys_a, keys_b, assume_unique=True)
    return np.bincount(common // top, minlength=nq)


def knn_recall_ids(returned_ids, true_ids, k, *, per_query=False):
    """Plain id-overlap recall@k: ``|set(returned[:k]) ∩ set(true[:k])| / k``, mean over queries.

    No tie tolerance (see :func:`knn_recall` for that); ``-1`` padding is ignored and repeated
    returned ids count once.

    Parameters
    ----------
    returned_ids : array-like of int, shape (n_queries, >= k)
    true_ids : array-like of int, shape (n_queries, >= k)
    k : int
    per_query : bool, default=False

    Returns
    -------
    float or ndarray of shape (n_queries,)

    Examples
    --------
    >>> from ordhash.metrics import knn_recall_ids
    >>> knn_recall_ids([[3, 1, -1], [5, 5, 6]], [[1, 2, 3], [5, 6, 7]], 2)   # (1/2 + 1/2) / 2
    0.5
    """
    ret = _check_ids_2d(returned_ids, "returned_ids")
    true = _check_ids_2d(true_ids, "true_ids")
    k = _check_pair(ret, "returned_ids", true, "true_ids", k, "k")
    recall = _set_overlap(ret[:, :k], true[:, :k]) / k
    return recall if per_query else float(recall.mean())


def coverage_at_m(returned_ids, exact_ids, m, *, per_query=False):
    """Coverage@M of a retrieval: ``|set(returned[:m]) ∩ set(exact[:m])| / m``, mean over queries.

    The graph-walk headline metric (protocol §3): the share of the exact top-M (under the same
    scoring function) that the walk returned in its top M. ``-1`` padding is ignored (a padded slot
    is a miss); repeated ids count once.

    Parameters
    ----------
    returned_ids : array-like of int, shape (n_queries, >= m)
    exact_ids : array-like of int, shape (n_queries, >= m)
    m : int
    per_query : bool, default=False

    Returns
    -------
    float or ndarray of shape (n_queries,)

    Examples
    --------
    >>> from ordhash.metrics import coverage_at_m
    >>> coverage_at_m([[4, 2, 9, -1]], [[2, 4, 7, 8]], 4)
    0.5
    """
    ret = _check_ids_2d(returned_ids, "returned_ids")
    exact = _check_ids_2d(exact_ids, "exact_ids")
    m = _check_pair(ret, "returned_ids", exact, "exact_ids", m, "m")
    cov = _set_overlap(ret[:, :m], exact[:, :m]) / m
    return cov if per_query else float(cov.mean())
