"""Hypothesis properties of ordhash.metrics."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ordhash.metrics import (
    area_rp_hamming,
    coverage_at_m,
    exact_knn,
    knn_recall,
    knn_recall_ids,
    map_hamming_ranking,
    precision_at_k,
    precision_within_radius,
    radius_stats,
    recall_at_k,
    relevance_topk,
)

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def ranking_problem(draw, max_q=4, max_b=12, max_d=6):
    nq = draw(st.integers(1, max_q))
    nb = draw(st.integers(1, max_b))
    d = draw(arrays(np.int32, (nq, nb), elements=st.integers(0, max_d)))
    rel = draw(arrays(np.bool_, (nq, nb))).copy()
    # every query gets at least one relevant item (AP and recall are undefined otherwise)
    forced = draw(arrays(np.int64, nq, elements=st.integers(0, nb - 1)))
    rel[np.arange(nq), forced] = True
    return d, rel


def _in_unit(x):
    x = np.atleast_1d(x)
    return bool(np.all((x >= -1e-12) & (x <= 1 + 1e-12)))


@SETTINGS
@given(ranking_problem(), st.sampled_from(["expected", "index"]), st.data())
def test_metrics_lie_in_unit_interval(problem, ties, data):
    d, rel = problem
    nb = d.shape[1]
    k = data.draw(st.integers(1, nb))
    assert _in_unit(map_hamming_ranking(d, rel, ties=ties, per_query=True))
    assert _in_unit(map_hamming_ranking(d, rel, ties=ties, at=k, per_query=True))
    assert _in_unit(precision_at_k(d, rel, k, ties=ties, per_query=True))
    assert _in_unit(recall_at_k(d, rel, k, ties=ties, per_query=True))
    assert _in_unit(precision_within_radius(d, rel, data.draw(st.integers(0, 7)), per_query=True))
    assert _in_unit(area_rp_hamming(d, rel))


@SETTINGS
@given(ranking_problem(), st.data())
def test_perfect_ranking_scores_one(problem, data):
    """All relevant items strictly closer than all irrelevant ones: AP = 1, P@k = 1 for k <= R."""
    d, rel = problem
    d = np.where(rel, d % 3, 3 + d % 4).astype(np.int32)
    for ties in ("expected", "index"):
        np.testing.assert_allclose(map_hamming_ranking(d, rel, ties=ties, per_query=True), 1.0)
        k = data.draw(st.integers(1, d.shape[1]))
        np.testing.assert_allclose(
            map_hamming_ranking(d, rel, ties=ties, at=k, per_query=True), 1.0)
        min_r = int(rel.sum(axis=1).min())
        np.testing.assert_allclose(precision_at_k(d, rel, min(k, min_r), ties=ties), 1.0)
        np.testing.assert_allclose(recall_at_k(d, rel, d.shape[1], ties=ties), 1.0)


@SETTINGS
@given(ranking_problem(), st.randoms(use_true_random=False), st.data())
def test_expected_invariant_to_tie_group_relabelling(problem, rnd, data):
    """Expected metrics depend only on the groups: reorder columns and relabel distance values by
    any strictly increasing map, and nothing changes."""
    d, rel = problem
    nb = d.shape[1]
    perm = list(range(nb))
    rnd.shuffle(perm)
    values = np.unique(d)
    gaps = np.array(data.draw(st.lists(st.integers(1, 5), min_size=len(values),
                                       max_size=len(values))))
    new_values = np.cumsum(gaps)
    d2 = new_values[np.searchsorted(values, d)][:, perm].astype(np.int32)
    rel2 = rel[:, perm]
    k = data.draw(st.integers(1, nb))
    np.testing.assert_allclose(map_hamming_ranking(d, rel, per_query=True),
                               map_hamming_ranking(d2, rel2, per_query=True), rtol=1e-12)
    np.testing.assert_allclose(map_hamming_ranking(d, rel, at=k, per_query=True),
                               map_hamming_ranking(d2, rel2, at=k, per_query=True), rtol=1e-12)
    np.testing.assert_allclose(precision_at_k(d, rel, k), precision_at_k(d2, rel2, k), rtol=1e-12)
    np.testing.assert_allclose(recall_at_k(d, rel, k), recall_at_k(d2, rel2, k), rtol=1e-12)


@SETTINGS
@given(ranking_problem())
def test_index_ties_follow_column_order_when_distances_are_distinct(problem):
    """With all distances distinct there are no ties: both rules give the same numbers."""
    _, rel = problem
    nq, nb = rel.shape
    rng = np.random.default_rng(nb)
    d = np.stack([rng.permutation(nb) for _ in range(nq)]).astype(np.int32)
    np.testing.assert_allclose(map_hamming_ranking(d, rel, per_query=True),
                               map_hamming_ranking(d, rel, ties="index", per_query=True),
                               rtol=1e-12)


@SETTINGS
@given(ranking_problem())
def test_radius_monotone_properties(problem):
    """Growing the inclusive radius never lowers recall or raises the empty-ball fraction, and a
    radius covering everything gives recall 1, no empty ball and precision = mean(R / n_base)."""
    d, rel = problem
    prev = None
    for radius in range(0, int(d.max()) + 2):
        s = radius_stats(d, rel, radius)
        if prev is not None:
            assert s.recall >= prev.recall - 1e-12
            assert s.empty_fraction <= prev.empty_fraction + 1e-12
        prev = s
    assert prev.recall == 1.0 and prev.empty_fraction == 0.0
    assert math.isclose(prev.precision, (rel.sum(axis=1) / rel.shape[1]).mean())


def _area_rp_reference(d, rel):
    """Literal transcription of recall_precision.m + area_RP.m."""
    d_max = int(d.max())
    total_good = rel.sum()
    rec, prec = [], []
    for t in range(d_max):
        j = d <= t
        good, ret = rel[j].sum(), j.sum()
        prec.append(good / ret if ret else float("nan"))
        rec.append(good / total_good)
    if not rec:
        return 0.0
    if rec[0] != 0:
        rec, prec = [0.0] + rec, [prec[0]] + prec
    xs, ys = [], []
    for x, y in sorted(zip(rec, prec), key=lambda p: p[0]):   # stable: first occurrence wins
        if not xs or x != xs[-1]:
            xs.append(x)
            ys.append(y)
    for i in range(len(xs) - 2, -1, -1):
        if math.isnan(ys[i]):
            ys[i] = ys[i + 1]
    return sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))


@SETTINGS
@given(ranking_problem(max_d=8))
def test_area_rp_matches_literal_reimplementation(problem):
    d, rel = problem
    assert math.isclose(area_rp_hamming(d, rel), _area_rp_reference(d, rel), abs_tol=1e-12)


@st.composite
def integer_points(draw):
    n = draw(st.integers(2, 25))
    nq = draw(st.integers(1, 25))
    dim = draw(st.integers(1, 4))
    el = st.integers(-3, 3).map(float)
    base = draw(arrays(np.float32, (n, dim), elements=el))
    queries = draw(arrays(np.float32, (nq, dim), elements=el))
    k = draw(st.integers(1, n))
    return base, queries, k


@SETTINGS
@given(integer_points())
def test_exact_knn_matches_numpy_brute_force(problem):
    """Integer coordinates make distances exact and ties frequent: ids must match a
    (distance, id) lexicographic brute force exactly."""
    base, queries, k = problem
    sq = ((queries[:, None, :].astype(np.int64) - base[None].astype(np.int64)) ** 2).sum(-1)
    ip = queries.astype(np.int64) @ base.T.astype(np.int64)
    ids_ref = np.argsort(sq, axis=1, kind="stable")[:, :k]
    ids_ip = np.argsort(-ip, axis=1, kind="stable")[:, :k]
    dist, ids = exact_knn(base, queries, k)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_allclose(dist, np.sqrt(np.take_along_axis(sq, ids_ref, 1)), rtol=1e-6)
    sims, ids2 = exact_knn(base, queries, k, metric="ip")
    np.testing.assert_array_equal(ids2, ids_ip)
    np.testing.assert_allclose(sims, np.take_along_axis(ip, ids_ip, 1))
    rel = relevance_topk(base, queries, k)
    np.testing.assert_array_equal(rel.sum(axis=1), k)


@SETTINGS
@given(integer_points(), st.randoms(use_true_random=False))
def test_knn_recall_is_one_on_exact_results(problem, rnd):
    """Exact results, and any other choice from the boundary tie group, have recall 1."""
    base, queries, k = problem
    dist, ids = exact_knn(base, queries, k)
    assert knn_recall(dist, dist, k) == 1.0
    assert knn_recall_ids(ids, ids, k) == 1.0
    assert coverage_at_m(ids, ids, k) == 1.0
    # swap in a different member of the tie group at the k-th distance (if there is one)
    full_d, _ = exact_knn(base, queries, base.shape[0])
    alt = dist.copy()
    for i in range(len(queries)):
        tied = np.flatnonzero(full_d[i] == dist[i, k - 1])
        alt[i, k - 1] = full_d[i, tied[rnd.randrange(len(tied))]]
    assert knn_recall(alt, dist, k) == 1.0


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 8), st.data())
def test_id_overlap_matches_python_sets(nq, k, data):
    ids = st.integers(-1, 12)
    ret = data.draw(arrays(np.int64, (nq, k + 2), elements=ids))
    true = data.draw(arrays(np.int64, (nq, k), elements=st.integers(0, 12)))
    expected = [len(({int(x) for x in r[:k]} - {-1}) & {int(x) for x in t[:k]}) / k
                for r, t in zip(ret, true)]
    np.testing.assert_allclose(knn_recall_ids(ret, true, k, per_query=True), expected)
    np.testing.assert_allclose(coverage_at_m(ret, true, k, per_query=True), expected)
