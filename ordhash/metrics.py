"""Evaluation metrics for Hamming ranking, hash lookup and approximate nearest-neighbour search.

The definitions follow the evaluation protocol (``protocol-and-anchors.md`` §1.2–§1.5, §2):

* Hamming ranking (:func:`map_hamming_ranking`, :func:`precision_at_k`, :func:`recall_at_k`) takes
  integer distances ``(n_queries, n_base)`` and a boolean relevance matrix of the same shape.
  Hamming distances take few values, so the order inside a group of equal distances matters; the
  tie rule is explicit: ``ties="expected"`` (default) gives the expectation under a uniformly
  random order inside every equal-distance group, in closed form; ``ties="index"`` orders ties by
  database index (a stable sort, as MATLAB ``sort`` does).
* Hash lookup (:func:`precision_within_radius`, :func:`radius_stats`) uses the inclusive ball
  ``d <= radius``.
* :func:`area_rp_hamming` is the number the Lyn-L OEH/OCH demos print as "mAP" (area under a pooled,
  radius-swept precision-recall curve). It is not mAP and is never reported under that name.
* Ground truth (:func:`exact_knn`, ``relevance_*``) and ANN metrics (:func:`knn_recall`,
  :func:`knn_recall_ids`, :func:`coverage_at_m`) are re-exported from private modules.

Queries without any relevant item have an undefined average precision and recall: they are left
out of those means (their per-query value is NaN with ``per_query=True``; :func:`evaluate_codes`
reports how many there were).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _ranking as _rk
from ._ann_metrics import coverage_at_m, knn_recall, knn_recall_ids
from ._groundtruth import (
    exact_knn,
    relevance_from_ids,
    relevance_labels,
    relevance_top_fraction,
    relevance_topk,
)
from ._validation import check_codes, check_int, check_option
from .codes import hamming_distances

__all__ = [
    "exact_knn",
    "relevance_topk",
    "relevance_top_fraction",
    "relevance_from_ids",
    "relevance_labels",
    "map_hamming_ranking",
    "precision_at_k",
    "recall_at_k",
    "precision_within_radius",
    "RadiusStats",
    "radius_stats",
    "pr_curve_hamming",
    "area_rp_hamming",
    "evaluate_codes",
    "knn_recall",
    "knn_recall_ids",
    "coverage_at_m",
]

_TIES = ("expected", "index")
_NORMS = ("relevant", "retrieved")


def _prepare(distances, relevant):
    d, n_bins = _rk.check_distances(distances)
    rel = _rk.check_relevant(relevant, d.shape)
    return d, rel, n_bins


def _mean_defined(values, what):
    """Mean over the non-NaN entries along axis 0; ValueError if there are none."""
    defined = ~np.isnan(values)
    if not defined.any():
        raise ValueError(f"{what} is undefined for every query: no query has a relevant item")
    return np.nanmean(values, axis=0)


def map_hamming_ranking(distances, relevant, *, ties="expected", at=None, norm="relevant",
                        per_query=False):
    """Mean average precision of the Hamming ranking (full mAP or mAP@K).

    For one query, rank the database by Hamming distance. With ``R`` relevant items and
    ``rel_p``, ``Prec@p`` the relevance and precision at rank ``p``,
    ``AP@K = (1 / Z) * sum_{p <= K} rel_p * Prec@p``, where ``K = n_base`` when ``at`` is None.
    mAP is the mean of AP over the queries that have at least one relevant item.

    Parameters
    ----------
    distances : array-like of int, shape (n_queries, n_base)
        Hamming distances (non-negative integers, at most 65,536).
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
        ``relevant[i, j]`` is True when database item ``j`` is a true neighbour of query ``i``.
    ties : {"expected", "index"}, default="expected"
        ``"expected"``: the expected AP under a uniformly random order inside each group of equal
        distance. With, for each group ``g`` in increasing distance, ``n_g`` items and ``r_g``
        relevant ones, and ``N_b``, ``R_b`` the items and relevant items at smaller distances,
        ``E[sum] = sum_g sum_{t=1..m_g} (r_g/n_g) (R_b + 1 + (t-1)(r_g-1)/(n_g-1)) / (N_b + t)``
        (the fraction is 0 when ``n_g = 1``), with ``m_g = n_g`` for full mAP and
        ``m_g = clip(K - N_b, 0, n_g)`` for mAP@K, so a group cut by position K contributes its
        first ``K - N_b`` slots. It is evaluated in closed form with harmonic numbers
        (``sum_t 1/(N+t) = H_{N+m} - H_N``, ``sum_t (t-1)/(N+t) = m - (N+1)(H_{N+m} - H_N)``),
        O(n_bins) per query after a distance histogram.
        ``"index"``: ties ordered by database index (stable sort), as MATLAB ``sort``.
    at : int or None, default=None
        The cut-off ``K`` (``1 <= at <= n_base``) for mAP@K; None for the full ranking.
    norm : {"relevant", "retrieved"}, default="relevant"
        The normaliser ``Z``: ``"relevant"`` uses ``min(R, K)`` (``R`` for the full ranking);
        ``"retrieved"`` uses the number of relevant items within the top ``K`` (AP is 0 when there
        are none), the DeepHash-pytorch ``CalcTopMap`` convention. ``"retrieved"`` is only valid
        with ``ties="index"``. (``CalcTopMap`` also averages a 0 for queries with ``R = 0``; use
        ``np.nan_to_num(per_query_values).mean()`` to reproduce that. Its ``np.argsort`` is not
        stable, so its tie order is implementation-defined.)
    per_query : bool, default=False
        Return the per-query AP array instead of the mean.

    Returns
    -------
    float or ndarray of shape (n_queries,)
        The mean over queries with ``R >= 1``, or per-query AP with NaN where ``R = 0``.

    Raises
    ------
    ValueError
        On bad shapes, values or options, ``norm="retrieved"`` with ``ties="expected"``, or when no
        query has a relevant item (unless ``per_query=True``).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import map_hamming_ranking
    >>> d = np.array([[0, 1, 1, 2]])
    >>> rel = np.array([[True, False, True, False]])
    >>> round(map_hamming_ranking(d, rel, ties="index"), 4)     # (1/1 + 2/3) / 2
    0.8333
    >>> round(map_hamming_ranking(d, rel), 4)                   # mean of 1 and 0.8333
    0.9167
    >>> round(map_hamming_ranking(d, rel, ties="index", at=2), 4)  # (1/1) / min(2, 2)
    0.5
    """
    d, rel, n_bins = _prepare(distances, relevant)
    check_option(ties, "ties", _TIES)
    check_option(norm, "norm", _NORMS)
    if norm == "retrieved" and ties != "index":
        raise ValueError('norm="retrieved" is only valid with ties="index"')
    if at is not None:
        at = check_int(at, "at", min_value=1, max_value=d.shape[1])
    aps, _, _ = _rk.ranking_stats(d, rel, n_bins, ties=ties, ats=(at,), norm=norm)
    ap = aps[:, 0]
    if per_query:
        return ap
    return float(_mean_defined(ap, "average precision"))


def _at_k(distances, relevant, k, ties, per_query, recall):
    d, rel, n_bins = _prepare(distances, relevant)
    check_option(ties, "ties", _TIES)
    ks, scalar = _rk.check_ks(k, d.shape[1])
    _, hits, n_rel = _rk.ranking_stats(d, rel, n_bins, ties=ties, ks=ks)
    if recall:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = hits / n_rel[:, None]
        values[n_rel == 0] = np.nan
    else:
        values = hits / ks[None, :]
    if per_query:
        return values[:, 0] if scalar else values
    means = _mean_defined(values, "recall") if recall else values.mean(axis=0)
    return float(means[0]) if scalar else means


def precision_at_k(distances, relevant, k, *, ties="expected", per_query=False):
    """Precision of the top ``k`` of the Hamming ranking, averaged over all queries.

    ``P@k = (#relevant among the first k) / k``. Under ``ties="expected"``, when position ``k``
    falls inside group ``g`` (``n_g`` items, ``r_g`` relevant, ``N_b``/``R_b`` items/relevant items
    at smaller distances) the count is its expectation ``R_b + r_g (k - N_b) / n_g``. Under
    ``ties="index"`` ties are ordered by database index. Queries with no relevant item score 0 and
    are included in the mean.

    Parameters
    ----------
    distances : array-like of int, shape (n_queries, n_base)
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
    k : int or sequence of int
        Cut-off(s), ``1 <= k <= n_base``.
    ties : {"expected", "index"}, default="expected"
    per_query : bool, default=False
        Return per-query values, shape ``(n_queries,)`` or ``(n_queries, len(k))``.

    Returns
    -------
    float or ndarray
        A float for a scalar ``k``, an array of shape ``(len(k),)`` for a sequence.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import precision_at_k
    >>> d = np.array([[0, 1, 1, 2]])
    >>> rel = np.array([[True, False, True, False]])
    >>> precision_at_k(d, rel, 2)                 # (1 + 1 * (2 - 1) / 2) / 2
    0.75
    >>> precision_at_k(d, rel, [1, 2, 3], ties="index")
    array([1.        , 0.5       , 0.66666667])
    """
    return _at_k(distances, relevant, k, ties, per_query, recall=False)


def recall_at_k(distances, relevant, k, *, ties="expected", per_query=False):
    """Recall of the top ``k`` of the Hamming ranking, averaged over queries with relevant items.

    ``R@k = (#relevant among the first k) / R`` with the count of :func:`precision_at_k` (its
    expectation at a partial tie group under ``ties="expected"``). Queries with ``R = 0`` are
    undefined: NaN per query and left out of the mean.

    Parameters
    ----------
    distances : array-like of int, shape (n_queries, n_base)
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
    k : int or sequence of int
        Cut-off(s), ``1 <= k <= n_base``.
    ties : {"expected", "index"}, default="expected"
    per_query : bool, default=False

    Returns
    -------
    float or ndarray
        A float for a scalar ``k``, an array of shape ``(len(k),)`` for a sequence.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import recall_at_k
    >>> d = np.array([[0, 1, 1, 2]])
    >>> rel = np.array([[True, False, True, False]])
    >>> recall_at_k(d, rel, 2)                    # 1.5 expected hits out of R = 2
    0.75
    """
    return _at_k(distances, relevant, k, ties, per_query, recall=True)


def _radius(radius):
    return check_int(radius, "radius", min_value=0)


def precision_within_radius(distances, relevant, radius=2, *, pooled=False, per_query=False):
    """Precision of hash lookup in the inclusive Hamming ball ``{v : d(q, v) <= radius}``.

    Per query, ``P = |ball ∩ relevant| / |ball|``, and 0 when the ball is empty; the result is
    the mean over all queries. ``pooled=True`` instead returns
    ``sum_q |ball ∩ relevant| / sum_q |ball|`` (0 if every ball is empty), the quantity the Lyn-L
    demo code implies (never the headline number).

    Parameters
    ----------
    distances : array-like of int, shape (n_queries, n_base)
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
    radius : int, default=2
        Inclusive radius, ``>= 0``. (faiss ``range_search`` is exclusive: call it with radius + 1.)
    pooled : bool, default=False
    per_query : bool, default=False
        Return the per-query precisions (not combinable with ``pooled=True``).

    Returns
    -------
    float or ndarray of shape (n_queries,)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import precision_within_radius
    >>> d = np.array([[0, 1, 3], [4, 5, 6]])
    >>> rel = np.array([[True, False, True], [True, True, True]])
    >>> precision_within_radius(d, rel, 2)        # (1/2 + 0 [empty ball]) / 2
    0.25
    >>> precision_within_radius(d, rel, 2, pooled=True)
    0.5
    """
    d, rel, _ = _prepare(distances, relevant)
    radius = _radius(radius)
    if pooled and per_query:
        raise ValueError("pooled=True and per_query=True cannot be combined")
    retrieved, good = _rk.radius_counts(d, rel, radius)
    if pooled:
        total = retrieved.sum()
        return float(good.sum() / total) if total else 0.0
    prec = good / np.maximum(retrieved, 1)
    return prec if per_query else float(prec.mean())


@dataclass(frozen=True)
class RadiusStats:
    """Hash-lookup statistics in the inclusive Hamming ball of a radius (:func:`radius_stats`).

    Attributes
    ----------
    radius : int
    precision : float
        Mean over all queries of ``|ball ∩ rel| / |ball|``, an empty ball scoring 0.
    recall : float
        Mean over queries with ``R >= 1`` of ``|ball ∩ rel| / R``.
    empty_fraction : float
        Fraction of queries whose ball is empty.
    pooled_precision : float
        ``sum |ball ∩ rel| / sum |ball|`` over all queries (0 if all balls are empty).
    n_queries : int
    n_queries_without_relevant : int
        Queries left out of ``recall``.

    Examples
    --------
    >>> from ordhash.metrics import RadiusStats
    >>> s = RadiusStats(radius=2, precision=0.5, recall=0.25, empty_fraction=0.0,
    ...                 pooled_precision=0.5, n_queries=4, n_queries_without_relevant=0)
    >>> s.recall
    0.25
    """

    radius: int
    precision: float
    recall: float
    empty_fraction: float
    pooled_precision: float
    n_queries: int
    n_queries_without_relevant: int


def _radius_stats_from_counts(radius, retrieved, good, n_rel):
    has_rel = n_rel > 0
    if not has_rel.any():
        raise ValueError("recall within radius is undefined: no query has a relevant item")
    total = retrieved.sum()
    return RadiusStats(
        radius=radius,
        precision=float((good / np.maximum(retrieved, 1)).mean()),
        recall=float((good[has_rel] / n_rel[has_rel]).mean()),
        empty_fraction=float((retrieved == 0).mean()),
        pooled_precision=float(good.sum() / total) if total else 0.0,
        n_queries=int(len(n_rel)),
        n_queries_without_relevant=int((~has_rel).sum()),
    )


def radius_stats(distances, relevant, radius=2):
    """Precision, recall and empty-ball fraction of hash lookup within an inclusive radius.

    See :class:`RadiusStats` for the exact definitions (protocol §1.3).

    Parameters
    ----------
    distances : array-like of int, shape (n_queries, n_base)
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
    radius : int, default=2

    Returns
    -------
    RadiusStats

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import radius_stats
    >>> s = radius_stats(np.array([[0, 1, 3], [4, 5, 6]]),
    ...                  np.array([[1, 0, 1], [1, 1, 1]]), radius=2)
    >>> s.precision, s.recall, s.empty_fraction   # recall: (1/2 + 0/3) / 2
    (0.25, 0.25, 0.5)
    """
    d, rel, _ = _prepare(distances, relevant)
    radius = _radius(radius)
    retrieved, good = _rk.radius_counts(d, rel, radius)
    return _radius_stats_from_counts(radius, retrieved, good, rel.sum(axis=1))


def _pooled_curve(distances, relevant):
    d, rel, n_bins = _prepare(distances, relevant)
    total, good = _rk.pooled_histograms(d, rel, n_bins)
    n_good = good.sum()
    if n_good == 0:
        raise ValueError("relevant has no True entry, so recall is undefined")
    return np.cumsum(total), np.cumsum(good), int(n_good)


def pr_curve_hamming(distances, relevant):
    """Precision-recall curve of hash lookup, sweeping the inclusive radius, pooled over queries.

    For ``t = 0 .. max(distances)``: ``precision_t = good_t / retrieved_t`` and
    ``recall_t = good_t / sum(relevant)``, where ``retrieved_t`` and ``good_t`` count all pairs and
    relevant pairs with ``d <= t``. Radii with nothing retrieved (undefined precision) are omitted.

    Parameters
    ----------
    distances : array-like of int, shape (n_queries, n_base)
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
        Must contain at least one relevant pair.

    Returns
    -------
    precision : ndarray of float64
    recall : ndarray of float64
    radii : ndarray of int64
        The radius of each point, increasing.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import pr_curve_hamming
    >>> p, r, t = pr_curve_hamming(np.array([[1, 2, 2]]), np.array([[True, False, True]]))
    >>> t, p, r                                   # t = 0 retrieves nothing and is omitted
    (array([1, 2]), array([1.        , 0.66666667]), array([0.5, 1. ]))
    """
    retrieved, good, n_good = _pooled_curve(distances, relevant)
    keep = retrieved > 0
    radii = np.flatnonzero(keep).astype(np.int64)
    return good[keep] / retrieved[keep], good[keep] / n_good, radii


def area_rp_hamming(distances, relevant):
    """Area under the radius-swept precision-recall curve, the Lyn-L demos' "mAP" (not mAP).

    Reproduces ``recall_precision.m`` + ``area_RP.m`` (``spec-ordinal-hashing.md`` §9.2),
    pooled over all pairs:

    1. ``Dmax = max(distances)``; for ``t = 0 .. Dmax - 1`` (the largest radius is excluded)
       ``prec_t = good_t / ret_t`` (NaN when ``ret_t = 0``), ``rec_t = good_t / sum(relevant)``,
       with ``ret_t``, ``good_t`` the pairs and relevant pairs with ``d <= t``;
    2. if ``rec_0 != 0``, prepend the point ``(0, prec_0)``;
    3. keep one point per distinct recall, ascending, keeping the first occurrence
       (current MATLAB ``unique``);
    4. from the second-to-last point down to the first, replace a NaN precision by the next one;
    5. trapezoidal area ``sum_i (x_{i+1} - x_i)(y_i + y_{i+1}) / 2``.

    The result is 0.0 when ``Dmax = 0`` or only one distinct recall value remains.

    Parameters
    ----------
    distances : array-like of int, shape (n_queries, n_base)
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
        Must contain at least one relevant pair.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import area_rp_hamming
    >>> # t = 0: prec 1, rec 1/2; t = 1: prec 2/3, rec 1; t = 2 (= Dmax) excluded.
    >>> # Points (0, 1), (1/2, 1), (1, 2/3): area = 1/2 + (1/2)(1 + 2/3)/2
    >>> round(area_rp_hamming(np.array([[0, 1, 1, 2]]), np.array([[1, 0, 1, 0]])), 4)
    0.9167
    """
    retrieved, good, n_good = _pooled_curve(distances, relevant)
    d_max = len(retrieved) - 1
    if d_max == 0:
        return 0.0
    ret, gd = retrieved[:d_max], good[:d_max]
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(ret > 0, gd / np.maximum(ret, 1), np.nan)
    rec = gd / n_good
    if rec[0] != 0:
        rec = np.concatenate(([0.0], rec))
        prec = np.concatenate(([prec[0]], prec))
    xs, first = np.unique(rec, return_index=True)
    ys = prec[first]
    for i in range(len(xs) - 2, -1, -1):
        if np.isnan(ys[i]):
            ys[i] = ys[i + 1]
    return float(np.sum(np.diff(xs) * (ys[:-1] + ys[1:]) / 2.0))


def evaluate_codes(query_codes, base_codes, relevant, *, radius=2, ks=(100,), ties="expected",
                   map_at=None, chunk=1024):
    """Headline hashing metrics of packed codes, computing Hamming distances in query chunks.

    Distances come from :func:`ordhash.codes.hamming_distances` for ``chunk`` queries at a time, so
    only ``chunk x n_base`` distances are held in memory. Each metric is exactly the one of the
    corresponding function (:func:`map_hamming_ranking`, :func:`precision_at_k`,
    :func:`recall_at_k`, :func:`radius_stats`) applied to the full distance matrix.

    Parameters
    ----------
    query_codes : ndarray of uint8, shape (n_queries, code_size)
    base_codes : ndarray of uint8, shape (n_base, code_size)
    relevant : array-like of bool or 0/1, shape (n_queries, n_base)
    radius : int, default=2
        Inclusive Hamming radius for hash lookup.
    ks : int or sequence of int, default=(100,)
        Cut-offs for precision@k and recall@k, each in ``[1, n_base]``.
    ties : {"expected", "index"}, default="expected"
    map_at : int or None, default=None
        If given, mAP@map_at (normaliser ``min(R, K)``) is reported as well.
    chunk : int, default=1024
        Queries per distance block.

    Returns
    -------
    dict
        ``"map"`` (full ranking), ``"map@K"`` (if ``map_at``), ``"precision@k"`` and
        ``"recall@k"`` for each ``k``, ``"precision_within_radius"``, ``"recall_within_radius"``,
        ``"empty_ball_fraction"``, ``"pooled_precision_within_radius"``, ``"radius"``, ``"ties"``,
        ``"n_queries"``, ``"n_queries_without_relevant"``. mAP and recalls average over the queries
        with at least one relevant item; precisions over all queries.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.metrics import evaluate_codes
    >>> base = np.array([[0b0000], [0b0001], [0b0111], [0b1111]], np.uint8)
    >>> query = np.array([[0b0000]], np.uint8)            # distances 0, 1, 3, 4
    >>> res = evaluate_codes(query, base, [[1, 0, 1, 0]], ks=(2,))
    >>> round(res["map"], 4), res["precision@2"], res["precision_within_radius"]
    (0.8333, 0.5, 0.5)
    """
    q = check_codes(query_codes, "query_codes")
    b = check_codes(base_codes, "base_codes", code_size=q.shape[1])
    nq, nb = q.shape[0], b.shape[0]
    rel = _rk.check_relevant(relevant, (nq, nb))
    radius = _radius(radius)
    check_option(ties, "ties", _TIES)
    ks_arr, _ = _rk.check_ks(ks, nb, name="ks")
    if map_at is not None:
        map_at = check_int(map_at, "map_at", min_value=1, max_value=nb)
    chunk = check_int(chunk, "chunk", min_value=1)
    n_bins = 8 * q.shape[1] + 1
    ats = (None,) if map_at is None else (None, map_at)
    aps, hits, n_rel = [], [], []
    retrieved, good = [], []
    for start in range(0, nq, chunk):
        sl = slice(start, min(start + chunk, nq))
        dist = hamming_distances(q[sl], b)
        a, h, r = _rk.ranking_stats(dist, rel[sl], n_bins, ties=ties, ats=ats, ks=ks_arr)
        ret, gd = _rk.radius_counts(dist, rel[sl], radius)
        aps.append(a), hits.append(h), n_rel.append(r), retrieved.append(ret), good.append(gd)
    aps, hits, n_rel = np.concatenate(aps), np.concatenate(hits), np.concatenate(n_rel)
    stats = _radius_stats_from_counts(radius, np.concatenate(retrieved), np.concatenate(good),
                                      n_rel)
    has_rel = n_rel > 0
    maps = _mean_defined(aps, "average precision")
    out = {"map": float(maps[0])}
    if map_at is not None:
        out[f"map@{map_at}"] = float(maps[1])
    for j, k in enumerate(ks_arr):
        out[f"precision@{k}"] = float(hits[:, j].mean() / k)
        out[f"recall@{k}"] = float((hits[has_rel, j] / n_rel[has_rel]).mean())
    out.update(
        precision_within_radius=stats.precision,
        recall_within_radius=stats.recall,
        empty_ball_fraction=stats.empty_fraction,
        pooled_precision_within_radius=stats.pooled_precision,
        radius=radius,
        ties=ties,
        n_queries=int(nq),
        n_queries_without_relevant=int((~has_rel).sum()),
    )
    return out
