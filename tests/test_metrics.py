"""Tests of ordhash.metrics: hand-worked cases, exhaustive tie-order references, validation."""

import doctest
import itertools
import math

import numpy as np
import pytest

import ordhash._ann_metrics
import ordhash._groundtruth
import ordhash.metrics
from ordhash.codes import hamming_distances, pack_bits
from ordhash.metrics import (
    RadiusStats,
    area_rp_hamming,
    coverage_at_m,
    evaluate_codes,
    exact_knn,
    knn_recall,
    knn_recall_ids,
    map_hamming_ranking,
    pr_curve_hamming,
    precision_at_k,
    precision_within_radius,
    radius_stats,
    recall_at_k,
    relevance_from_ids,
    relevance_labels,
    relevance_top_fraction,
    relevance_topk,
)


# ----------------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------------
def _ap_of_order(rel_sorted, at, norm):
    """AP@at of one fixed ranking (list of 0/1), straight from the definition."""
    top = rel_sorted[:at]
    hits, total = 0, 0.0
    for p, r in enumerate(top, start=1):
        if r:
            hits += 1
            total += hits / p
    if norm == "retrieved":
        return total / hits if hits else 0.0
    return total / min(sum(rel_sorted), at)


def _tie_orderings(d_row):
    """Every ranking obtainable by permuting items inside equal-distance groups."""
    groups = [list(np.flatnonzero(d_row == v)) for v in np.unique(d_row)]
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield [j for perm in perms for j in perm]


def _brute_expected(d_row, rel_row, at, what):
    """Average of AP@at / hits@at over ALL orders inside tie groups (exhaustive)."""
    vals = []
    for order in _tie_orderings(d_row):
        ranked = [int(rel_row[j]) for j in order]
        vals.append(_ap_of_order(ranked, at, "relevant") if what == "ap" else sum(ranked[:at]))
    return float(np.mean(vals))


def _index_order(d_row):
    return sorted(range(len(d_row)), key=lambda j: (d_row[j], j))


# ----------------------------------------------------------------------------------------------
# hand-worked cases
# ----------------------------------------------------------------------------------------------
D1 = np.array([[0, 1, 1, 2]])
R1 = np.array([[True, False, True, False]])


def test_map_hand_full():
    # index: ranking 0,1,2,3 -> relevant at ranks 1 and 3: (1/1 + 2/3) / 2 = 5/6
    assert map_hamming_ranking(D1, R1, ties="index") == pytest.approx(5 / 6)
    # expected: the d=1 group {1, 2} has two orders; [1, 2] -> AP 5/6, [2, 1] -> AP (1 + 2/2)/2 = 1
    assert map_hamming_ranking(D1, R1) == pytest.approx((5 / 6 + 1) / 2)


def test_map_hand_at_k_partial_group():
    d = np.array([[0, 1, 1, 1]])
    rel = np.array([[False, True, True, False]])
    # index, K=2: ranking 0,1 -> one hit at rank 2: sum = 1/2; normaliser min(R=2, K=2) = 2
    assert map_hamming_ranking(d, rel, ties="index", at=2) == pytest.approx(0.25)
    # norm="retrieved": normaliser = 1 relevant in the top 2
    assert map_hamming_ranking(d, rel, ties="index", at=2, norm="retrieved") == pytest.approx(0.5)
    # expected, K=2: rank 2 is the first slot of the 3-item group holding 2 relevant:
    # P(relevant) = 2/3, Prec@2 = 1/2 -> sum 1/3, divided by 2 -> 1/6
    assert map_hamming_ranking(d, rel, at=2) == pytest.approx(1 / 6)


def test_map_ignores_queries_without_relevant():
    d = np.array([[0, 1, 2], [0, 1, 2]])
    rel = np.array([[False, True, False], [False, False, False]])
    # query 0: single hit at rank 2 -> AP 1/2; query 1 has R = 0 and is left out
    assert map_hamming_ranking(d, rel, ties="index") == pytest.approx(0.5)
    per_q = map_hamming_ranking(d, rel, ties="index", per_query=True)
    assert per_q[0] == pytest.approx(0.5) and np.isnan(per_q[1])
    with pytest.raises(ValueError, match="no query has a relevant item"):
        map_hamming_ranking(d, np.zeros_like(rel))


def test_map_retrieved_norm_zero_hits_scores_zero():
    d = np.array([[0, 1, 2, 3]])
    rel = np.array([[False, False, False, True]])
    assert map_hamming_ranking(d, rel, ties="index", at=2, norm="retrieved") == 0.0


def test_precision_recall_at_k_hand():
    # expected P@2: group d=1 (2 items, 1 relevant) is cut after 1 slot: 1 + 1 * 1/2 = 1.5 hits
    assert precision_at_k(D1, R1, 2) == pytest.approx(0.75)
    assert recall_at_k(D1, R1, 2) == pytest.approx(0.75)
    # index: hits at k = 1, 2, 3, 4 are 1, 1, 2, 2
    np.testing.assert_allclose(precision_at_k(D1, R1, [1, 2, 3, 4], ties="index"),
                               [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall_at_k(D1, R1, (1, 2, 3), ties="index"), [0.5, 0.5, 1.0])
    assert isinstance(precision_at_k(D1, R1, 3), float)
    assert precision_at_k(D1, R1, [3], per_query=True).shape == (1, 1)


def test_precision_at_k_counts_r0_queries_recall_skips_them():
    d = np.array([[0, 1], [0, 1]])
    rel = np.array([[True, False], [False, False]])
    assert precision_at_k(d, rel, 1) == pytest.approx(0.5)   # (1 + 0) / 2
    assert recall_at_k(d, rel, 1) == pytest.approx(1.0)      # only query 0 is defined
    assert np.isnan(recall_at_k(d, rel, 1, per_query=True)[1])


def test_precision_within_radius_hand():
    d = np.array([[0, 1, 3, 2], [4, 5, 6, 7], [2, 2, 9, 9]])
    rel = np.array([[1, 0, 1, 1], [1, 1, 1, 0], [0, 1, 1, 0]], dtype=bool)
    # q0: ball {0, 1, 3} (radius inclusive), 2 relevant -> 2/3; q1: empty -> 0; q2: {0, 1} -> 1/2
    assert precision_within_radius(d, rel, 2) == pytest.approx((2 / 3 + 0 + 0.5) / 3)
    np.testing.assert_allclose(precision_within_radius(d, rel, 2, per_query=True), [2 / 3, 0, 0.5])
    # pooled: (2 + 0 + 1) / (3 + 0 + 2)
    assert precision_within_radius(d, rel, 2, pooled=True) == pytest.approx(3 / 5)
    # radius 0: q0 ball {0} relevant -> 1, others empty
    assert precision_within_radius(d, rel, 0) == pytest.approx(1 / 3)
    s = radius_stats(d, rel, radius=2)
    assert isinstance(s, RadiusStats)
    # recall: q0 2/3 relevant found; q1 0/3; q2 1/2
    assert s.recall == pytest.approx((2 / 3 + 0 + 0.5) / 3)
    assert s.empty_fraction == pytest.approx(1 / 3)
    assert s.pooled_precision == pytest.approx(3 / 5)
    assert (s.n_queries, s.n_queries_without_relevant, s.radius) == (3, 0, 2)


def test_pooled_radius_all_empty_is_zero():
    d = np.array([[5, 6]])
    assert precision_within_radius(d, [[1, 0]], 2, pooled=True) == 0.0


def test_pr_curve_hand():
    d = np.array([[0, 2, 2, 3], [3, 3, 2, 2]])
    rel = np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=bool)
    # pooled histogram: d=0: 1 item (0 rel); d=1: none; d=2: 4 items (1 rel); d=3: 3 items (2 rel)
    p, r, t = pr_curve_hamming(d, rel)
    np.testing.assert_array_equal(t, [0, 1, 2, 3])
    np.testing.assert_allclose(p, [0 / 1, 0 / 1, 1 / 5, 3 / 8])
    np.testing.assert_allclose(r, [0, 0, 1 / 3, 1])
    p, r, t = pr_curve_hamming(d + 1, rel)           # radius 0 now retrieves nothing: omitted
    np.testing.assert_array_equal(t, [1, 2, 3, 4])


def test_area_rp_hand_prepend():
    # t=0: prec 1, rec 1/2; t=1: prec 2/3, rec 1; t=2 (= Dmax) excluded. rec_0 != 0 ->
    # points (0, 1), (1/2, 1), (1, 2/3): area = 1/2 + (1/2)(1 + 2/3)/2 = 11/12
    assert area_rp_hamming(D1, R1) == pytest.approx(11 / 12)


def test_area_rp_hand_first_occurrence_and_backfill():
    d = np.array([[1, 1, 2, 3]])
    rel = np.array([[0, 0, 1, 0]])
    # t=0: ret 0 -> (rec 0, prec NaN); t=1: (0, 0); t=2: (1, 1/3); t=3 excluded.
    # unique keeps the FIRST rec=0 point (NaN), back-filled with 1/3 -> area = 1 * (1/3 + 1/3)/2.
    # (Keeping the last occurrence would give prec 0 there and area 1/6.)
    assert area_rp_hamming(d, rel) == pytest.approx(1 / 3)


def test_area_rp_degenerate():
    assert area_rp_hamming(np.zeros((2, 3), dtype=np.int32), np.ones((2, 3), bool)) == 0.0
    # all recall values 0 up to Dmax - 1 -> a single distinct recall, area 0
    assert area_rp_hamming(np.array([[0, 5]]), np.array([[0, 1]])) == 0.0
    with pytest.raises(ValueError, match="recall is undefined"):
        area_rp_hamming(np.array([[0, 5]]), np.array([[0, 0]]))


def test_exact_knn_hand_ties_and_ip():
    base = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [-1.0, 0.0], [0.0, 0.0]])
    q = np.array([[0.0, 0.0]])
    dist, ids = exact_knn(base, q, 3)
    # distances 1, 1, 5, 1, 0 -> id 4, then the three-way tie at 1 resolved by id: 0, 1
    np.testing.assert_array_equal(ids, [[4, 0, 1]])
    np.testing.assert_allclose(dist, [[0, 1, 1]])
    assert dist.dtype == np.float32 and ids.dtype == np.int64
    s, ids = exact_knn(base, np.array([[1.0, 1.0]]), 3, metric="ip")
    # inner products 1, 1, 7, -1, 0 -> 7 (id 2), then the tie 1 by id: 0, 1
    np.testing.assert_array_equal(ids, [[2, 0, 1]])
    np.testing.assert_allclose(s, [[7, 1, 1]])


def test_exact_knn_large_tie_group_resolved():
    # 50 duplicates of one point: the tie group extends far beyond k, needs repeated deepening
    base = np.vstack([np.ones((50, 3)), np.zeros((1, 3)), 5 * np.ones((10, 3))])
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(base))
    base = base[perm]
    dist, ids = exact_knn(base, np.zeros((2, 3)), 7)
    zero_id = int(np.flatnonzero(perm == 50)[0])
    ones_ids = np.sort(np.flatnonzero(perm < 50))[:6]
    np.testing.assert_array_equal(ids[0], np.concatenate([[zero_id], ones_ids]))
    np.testing.assert_allclose(dist[0], [0] + [math.sqrt(3)] * 6, rtol=1e-6)


def test_relevance_helpers_hand():
    base = np.array([[0.0], [5.0], [1.0], [-1.0]])
    # query 0.0: distances 0, 5, 1, 1 -> top-2 = {0, 2} (tie 2 vs 3 goes to the smaller id)
    np.testing.assert_array_equal(relevance_topk(base, [[0.0]], 2), [[1, 0, 1, 0]])
    # fraction 0.5 of 4 -> K = 2; fraction 0.01 -> floor(0.04) = 0 -> at least 1
    np.testing.assert_array_equal(relevance_top_fraction(base, [[0.0]], 0.5), [[1, 0, 1, 0]])
    np.testing.assert_array_equal(relevance_top_fraction(base, [[0.0]], 0.01), [[1, 0, 0, 0]])
    np.testing.assert_array_equal(relevance_from_ids([[3, -1, 3]], 4), [[0, 0, 0, 1]])
    np.testing.assert_array_equal(relevance_labels(np.array(["a", "b"]), np.array(["b", "b", "a"])),
                                  [[0, 0, 1], [1, 1, 0]])
    multi_q = [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    multi_b = [[1, 1, 0], [0, 0, 1]]
    np.testing.assert_array_equal(relevance_labels(multi_q, multi_b), [[1, 0], [1, 1], [0, 0]])


def test_relevance_top_fraction_matches_matlab_floor():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((149, 4)).astype(np.float32)
    rel = relevance_top_fraction(base, base[:3], 0.02)        # floor(2.98) = 2
    np.testing.assert_array_equal(rel.sum(axis=1), [2, 2, 2])


def test_knn_recall_hand():
    true = np.array([[0.5, 1.0, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    returned = np.array([[1.0, 1.0005, np.inf], [1.0, 2.5, 9.0]])
    # q0: threshold 1.0 + 1e-3: both count -> 1; q1: threshold 2.001: 1.0 counts, 2.5 not -> 1/2
    assert knn_recall(returned, true, 2) == pytest.approx(0.75)
    np.testing.assert_allclose(knn_recall(returned, true, 2, per_query=True), [1.0, 0.5])
    assert knn_recall(returned, true, 2, eps=0.0) == pytest.approx(0.5)   # 1.0005 now misses
    # padding counts as a miss: k=3 on q0 -> (1 + 1 + 0) / 3 with threshold 1.0 + 1e-3
    assert knn_recall(returned[:1], true[:1], 3) == pytest.approx(2 / 3)


def test_knn_recall_ids_and_coverage_hand():
    ret = np.array([[3, 1, 1, 9], [-1, -1, 0, 2], [7, 8, 9, 10]])
    true = np.array([[1, 2, 3, 4], [0, 1, 2, 3], [10, 9, 8, 7]])
    # k=2: q0 {3,1}∩{1,2} = {1}; q1 {}∩{0,1}; q2 {7,8}∩{10,9} = {} -> (1/2 + 0 + 0) / 3
    assert knn_recall_ids(ret, true, 2) == pytest.approx(1 / 6)
    # m=4: q0 {3,1,9} ∩ {1,2,3,4} = 2 (duplicate 1 counts once); q1 {0,2} -> 2; q2 -> 4
    np.testing.assert_allclose(coverage_at_m(ret, true, 4, per_query=True), [0.5, 0.5, 1.0])


def test_set_overlap_huge_ids():
    big = np.array([[2 ** 61, 5], [2 ** 61 + 1, 2 ** 61]])
    assert knn_recall_ids(big, np.array([[5, 2 ** 61], [2 ** 61, 7]]), 2) == pytest.approx(0.75)


# ----------------------------------------------------------------------------------------------
# expected tie rule vs exhaustive permutation averages
# ----------------------------------------------------------------------------------------------
def _tiny_cases(n_cases, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        nb = int(rng.integers(1, 7))
        d = rng.integers(0, 3, size=(1, nb))
        rel = rng.random((1, nb)) < 0.5
        if not rel.any():
            rel[0, rng.integers(nb)] = True
        yield d, rel


@pytest.mark.parametrize("seed", range(4))
def test_expected_matches_exhaustive_permutations(seed):
    for d, rel in _tiny_cases(12, seed):
        nb = d.shape[1]
        full = _brute_expected(d[0], rel[0], nb, "ap")
        assert map_hamming_ranking(d, rel) == pytest.approx(full, rel=1e-12, abs=1e-12)
        r = rel.sum()
        for k in range(1, nb + 1):
            assert map_hamming_ranking(d, rel, at=k) == pytest.approx(
                _brute_expected(d[0], rel[0], k, "ap"), rel=1e-12, abs=1e-12)
            hits = _brute_expected(d[0], rel[0], k, "hits")
            assert precision_at_k(d, rel, k) == pytest.approx(hits / k, rel=1e-12, abs=1e-12)
            assert recall_at_k(d, rel, k) == pytest.approx(hits / r, rel=1e-12, abs=1e-12)


def test_expected_large_group_exhaustive():
    # one group of 7 with 3 relevant after 2 earlier items (5040 orders)
    d = np.array([[0, 0, 1, 1, 1, 1, 1, 1, 1, 2]])
    rel = np.array([[1, 0, 1, 0, 1, 0, 0, 1, 0, 1]], dtype=bool)
    for k in (3, 5, 9, 10):
        assert map_hamming_ranking(d, rel, at=k) == pytest.approx(
            _brute_expected(d[0], rel[0], k, "ap"), rel=1e-12)


def test_index_ties_match_naive_reference():
    rng = np.random.default_rng(5)
    d = rng.integers(0, 6, size=(20, 40))
    rel = rng.random((20, 40)) < 0.3
    rel[3] = False
    for at, norm in [(None, "relevant"), (7, "relevant"), (7, "retrieved"), (40, "retrieved")]:
        got = map_hamming_ranking(d, rel, ties="index", at=at, norm=norm, per_query=True)
        for i in range(20):
            ranked = [int(rel[i, j]) for j in _index_order(d[i])]
            if not any(ranked):
                assert np.isnan(got[i])
            else:
                assert got[i] == pytest.approx(_ap_of_order(ranked, at or 40, norm), rel=1e-12)
    ks = [1, 5, 13, 40]
    p = precision_at_k(d, rel, ks, ties="index", per_query=True)
    for i in range(20):
        ranked = [int(rel[i, j]) for j in _index_order(d[i])]
        np.testing.assert_allclose(p[i], [sum(ranked[:k]) / k for k in ks])


# ----------------------------------------------------------------------------------------------
# evaluate_codes, scale
# ----------------------------------------------------------------------------------------------
def test_evaluate_codes_matches_individual_metrics():
    rng = np.random.default_rng(3)
    qb = pack_bits(rng.integers(0, 2, size=(37, 16)))
    bb = pack_bits(rng.integers(0, 2, size=(300, 16)))
    rel = rng.random((37, 300)) < 0.05
    rel[4] = False
    d = hamming_distances(qb, bb)
    for ties in ("expected", "index"):
        res = evaluate_codes(qb, bb, rel, ks=(1, 50), ties=ties, map_at=20, chunk=8)
        assert res["map"] == pytest.approx(map_hamming_ranking(d, rel, ties=ties), rel=1e-12)
        assert res["map@20"] == pytest.approx(map_hamming_ranking(d, rel, ties=ties, at=20),
                                              rel=1e-12)
        for k in (1, 50):
            assert res[f"precision@{k}"] == pytest.approx(precision_at_k(d, rel, k, ties=ties))
            assert res[f"recall@{k}"] == pytest.approx(recall_at_k(d, rel, k, ties=ties))
        s = radius_stats(d, rel, 2)
        assert res["precision_within_radius"] == pytest.approx(s.precision)
        assert res["recall_within_radius"] == pytest.approx(s.recall)
        assert res["empty_ball_fraction"] == pytest.approx(s.empty_fraction)
        assert res["n_queries_without_relevant"] == 1 and res["n_queries"] == 37


def test_block_splitting_consistent(monkeypatch):
    """Results do not depend on the internal row-block size."""
    import ordhash._ranking as rk

    rng = np.random.default_rng(11)
    d = rng.integers(0, 9, size=(23, 50))
    rel = rng.random((23, 50)) < 0.2
    ref = [map_hamming_ranking(d, rel, per_query=True, ties=t) for t in ("expected", "index")]
    monkeypatch.setattr(rk, "_BLOCK_ELEMS", 60)
    got = [map_hamming_ranking(d, rel, per_query=True, ties=t) for t in ("expected", "index")]
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_moderate_scale_runs_and_agrees():
    rng = np.random.default_rng(2)
    d = rng.integers(0, 33, size=(200, 5000)).astype(np.int32)
    rel = rng.random((200, 5000)) < 0.02
    e = map_hamming_ranking(d, rel)
    # expected AP equals the average of index-AP over random column orders (loose MC check)
    mc = np.mean([map_hamming_ranking(d[:, p], rel[:, p], ties="index")
                  for p in (rng.permutation(5000) for _ in range(8))])
    assert abs(e - mc) < 0.01


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int64, np.uint64])
def test_distance_and_relevance_dtypes(dtype):
    rng = np.random.default_rng(4)
    d = rng.integers(0, 9, size=(6, 30))
    rel = rng.random((6, 30)) < 0.3
    rel[:, 0] = True
    ref = map_hamming_ranking(d.astype(np.int32), rel)
    assert map_hamming_ranking(d.astype(dtype), rel) == pytest.approx(ref, rel=1e-12)
    assert map_hamming_ranking(d.astype(dtype), rel.astype(np.float32)) == pytest.approx(ref)
    assert precision_at_k(d.astype(dtype), rel.astype(np.int64), 5, ties="index") == pytest.approx(
        precision_at_k(d, rel, 5, ties="index"))


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: map_hamming_ranking(D1, R1, ties="random"), ValueError, "'expected', 'index'"),
        (lambda: map_hamming_ranking(D1, R1, norm="x"), ValueError, "'relevant', 'retrieved'"),
        (lambda: map_hamming_ranking(D1, R1, norm="retrieved"), ValueError, "only valid"),
        (lambda: map_hamming_ranking(D1, R1, at=5), ValueError, "at must be <= 4"),
        (lambda: map_hamming_ranking(D1, R1, at=0), ValueError, "at must be >= 1"),
        (lambda: map_hamming_ranking(D1.astype(float), R1), TypeError, "distances"),
        (lambda: map_hamming_ranking(-D1, R1), ValueError, "non-negative"),
        (lambda: map_hamming_ranking(D1, R1[:, :3]), ValueError, "relevant has shape"),
        (lambda: map_hamming_ranking(D1[0], R1[0]), ValueError, "2-D"),
        (lambda: map_hamming_ranking(D1, [[0.0, np.nan, 1.0, 0.0]]), ValueError, "NaN"),
        (lambda: map_hamming_ranking(D1, [[0, 2, 1, 0]]), ValueError, "only 0/1"),
        (lambda: map_hamming_ranking(D1 + 70000, R1), ValueError, "Hamming distance"),
        (lambda: precision_at_k(D1, R1, 0), ValueError, "1 <= k"),
        (lambda: precision_at_k(D1, R1, [2, 5]), ValueError, "n_base = 4"),
        (lambda: recall_at_k(D1, R1, 1.5), TypeError, "k must hold integers"),
        (lambda: precision_within_radius(D1, R1, -1), ValueError, "radius"),
        (lambda: precision_within_radius(D1, R1, pooled=True, per_query=True), ValueError,
         "cannot be combined"),
        (lambda: exact_knn(np.ones((3, 2)), np.ones((1, 2)), 4), ValueError, "k must be <= 3"),
        (lambda: exact_knn(np.ones((3, 2)), np.ones((1, 3)), 1), ValueError, "queries has 3"),
        (lambda: exact_knn(np.ones((3, 2)), np.ones((1, 2)), 1, metric="cos"), ValueError,
         "'ip', 'l2'"),
        (lambda: exact_knn([[np.nan, 0.0]], [[0.0, 0.0]], 1), ValueError, "base contains NaN"),
        (lambda: relevance_top_fraction(np.ones((3, 2)), np.ones((1, 2)), 0.0), ValueError,
         "fraction"),
        (lambda: relevance_from_ids([[3]], 3), ValueError, "ids must lie"),
        (lambda: relevance_labels([1, 2], [[1, 0]]), ValueError, "both must be"),
        (lambda: relevance_labels([[1, 0]], [[1, 0, 0]]), ValueError, "labels per row"),
        (lambda: relevance_labels([np.nan], [1.0]), ValueError, "NaN"),
        (lambda: knn_recall([[1.0]], [[np.nan]], 1), ValueError, "true_distances contains NaN"),
        (lambda: knn_recall([[1.0]], [[1.0], [2.0]], 1), ValueError, "rows"),
        (lambda: knn_recall([[1.0]], [[1.0, 2.0]], 2), ValueError, "returned_distances has 1"),
        (lambda: knn_recall([[1.0]], [[np.inf]], 1), ValueError, "finite"),
        (lambda: knn_recall_ids([[1.5]], [[1]], 1), TypeError, "returned_ids"),
        (lambda: coverage_at_m([[-2]], [[1]], 1), ValueError, "returned_ids must hold"),
        (lambda: coverage_at_m([[1]], [[1]], 0), ValueError, "m must be >= 1"),
        (lambda: evaluate_codes(np.zeros((2, 1), np.uint8), np.zeros((3, 2), np.uint8),
                                np.ones((2, 3))), ValueError, "base_codes has 2 bytes"),
        (lambda: evaluate_codes(np.zeros((2, 1), np.uint8), np.zeros((3, 1), np.uint8),
                                np.ones((2, 4))), ValueError, "relevant has shape"),
        (lambda: evaluate_codes(np.zeros((2, 1), np.uint8), np.zeros((3, 1), np.uint8),
                                np.ones((2, 3)), ks=(4,)), ValueError, "ks must satisfy"),
    ],
)
def test_validation_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("module", [ordhash.metrics, ordhash._groundtruth, ordhash._ann_metrics])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
