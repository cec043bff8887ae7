"""Quality metrics of retrieval under a matching function (spec-graph-walk §7)."""

from __future__ import annotations

import numpy as np

__all__ = ["coverage", "recall_vs_exact", "recall_at", "recall_delta"]


def _as_id_matrix(ids, name):
    arr = np.asarray(ids)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 2-D integer array (n_queries, M), got "
                         f"shape {arr.shape} and dtype {arr.dtype}")
    return arr


def coverage(ids, exact_ids, *, per_query=False):
    """coverage@M: ``|R_u ∩ B_u| / |B_u|`` averaged over queries.

    ``ids`` are the retrieved top-M and ``exact_ids`` the brute-force top-M under the **same**
    scorer (both ``(n_queries, M)``; ``-1`` entries are padding and never match). ``M`` is the
    width of ``exact_ids``; only the first ``M`` columns of ``ids`` count.

    Parameters
    ----------
    ids : int array of shape (n_queries, >= M)
        Retrieved items, best first.
    exact_ids : int array of shape (n_queries, M)
        Exact top-M items under the same scorer (e.g. ``method="exact"``).
    per_query : bool, default=False
        Return the per-query values (NaN for a query whose ``exact_ids`` row is all padding)
        instead of their mean.

    Returns
    -------
    float or ndarray of shape (n_queries,)

    Examples
    --------
    >>> from ordhash.walk import coverage
    >>> coverage([[1, 2, 3]], [[3, 2, 9]])
    0.6666666666666666
    """
    R = _as_id_matrix(ids, "ids")
    E = _as_id_matrix(exact_ids, "exact_ids")
    if R.shape[0] != E.shape[0]:
        raise ValueError(f"ids has {R.shape[0]} queries but exact_ids has {E.shape[0]}")
    m = E.shape[1]
    if R.shape[1] < m:
        raise ValueError(f"ids has {R.shape[1]} columns, fewer than the {m} of exact_ids")
    out = np.empty(R.shape[0], dtype=np.float64)
    for i in range(R.shape[0]):
        truth = E[i][E[i] >= 0]
        got = R[i, :m]
        out[i] = np.isin(truth, got[got >= 0]).sum() / truth.size if truth.size else np.nan
    return out if per_query else float(np.nanmean(out)) if out.size else float("nan")


recall_vs_exact = coverage


def recall_at(ids, relevant, M=None, *, per_query=False):
    """Behavioural recall@M: ``|P_u ∩ G_u| / |G_u|`` averaged over queries with ``G_u != ∅``.

    Parameters
    ----------
    ids : int array of shape (n_queries, >= M)
        Ranked retrieved items.
    relevant : sequence of int arrays
        Held-out (ground-truth) items per query.
    M : int, optional
        Cut-off (default: all columns).

    Examples
    --------
    >>> from ordhash.walk import recall_at
    >>> recall_at([[5, 1, 7]], [[7, 8]], M=3)
    0.5
    """
    R = _as_id_matrix(ids, "ids")
    if len(relevant) != R.shape[0]:
        raise ValueError(f"relevant has {len(relevant)} entries for {R.shape[0]} queries")
    M = R.shape[1] if M is None else int(M)
    if not 1 <= M <= R.shape[1]:
        raise ValueError(f"M must lie in [1, {R.shape[1]}], got {M}")
    out = np.full(R.shape[0], np.nan)
    for i, g in enumerate(relevant):
        g = np.unique(np.asarray(g, dtype=np.int64))
        if g.size:
            out[i] = np.isin(g, R[i, :M]).sum() / g.size
    if per_query:
        return out
    return float(np.nanmean(out)) if np.isfinite(out).any() else float("nan")


def recall_delta(recall_all, recall_retrieval):
    """Relative recall lost to the index: ``(recall_all - recall_retrieval) / recall_all``.

    Parameters
    ----------
    recall_all : float
        Recall of exact (brute-force) retrieval under the model.
    recall_retrieval : float
        Recall of the same model behind the index.

    Returns
    -------
    float
        NaN when ``recall_all <= 0``.

    Examples
    --------
    >>> from ordhash.walk import recall_delta
    >>> round(recall_delta(0.40, 0.38), 6)
    0.05
    """
    recall_all = float(recall_all)
    if recall_all <= 0:
        return float("nan")
    return (recall_all - float(recall_retrieval)) / recall_all
