"""GraphWalkIndex: beam retrieval, the best-first walk and brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from ordhash._kernels import walk as kw
from ordhash.walk import (DotScorer, GraphWalkIndex, L2Scorer, MLPScorer, ProximityGraph, Scorer,
                          beam_search, brute_force_topk, coverage, hnsw_search)


def _clustered(n, d, n_clusters, seed):
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((n_clusters, d)) * 3
    X = C[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, d))
    Q = C[rng.integers(0, n_clusters, 12)] + rng.standard_normal((12, d))
    return X.astype(np.float32), Q.astype(np.float32)


@pytest.fixture(scope="module")
def data():
    X, Q = _clustered(3000, 16, 20, 0)
    return X, Q, ProximityGraph.from_hnsw(X, M=12, random_state=0)


class Recording(Scorer):
    """Dot-product scorer that records every (query, item) pair it is asked to score."""

    supports_pairs = True

    def __init__(self, X, pairs=True):
        self.X = X
        self.n_items = X.shape[0]
        self.seen = []
        self.supports_pairs = pairs

    def prepare(self, queries):
        return np.asarray(queries, dtype=np.float32)

    def score(self, state, q, ids):
        self.seen.append(np.stack([np.full(ids.size, q), ids], axis=1))
        return self.X[ids] @ state[q]

    def score_pairs(self, state, qidx, ids):
        self.seen.append(np.stack([qidx, ids], axis=1))
        return np.einsum("ij,ij->i", self.X[ids], state[qidx])

    def pairs_seen(self):
        return np.concatenate(self.seen)


def test_exact_is_descending_and_correct(data):
    X, Q, _ = data
    res = brute_force_topk(DotScorer(X), Q, X.shape[0], k=25, chunk_size=700, query_batch=5)
    S = Q @ X.T
    truth = np.argsort(-S, axis=1, kind="stable")[:, :25]
    np.testing.assert_array_equal(res.ids, truth)
    np.testing.assert_allclose(res.scores, np.take_along_axis(S, truth, 1), rtol=1e-5)
    assert (np.diff(res.scores, axis=1) <= 0).all()
    assert res.stats.frac_scored == 1.0
    assert (res.stats.n_calls == 5).all()            # ceil(3000 / 700) chunks


def _reachable(graph, entry):
    A = csr_matrix((np.ones(graph.indices[0].size), graph.indices[0], graph.indptr[0]),
                   shape=(graph.n_items, graph.n_items))
    seen = set()
    for e in entry:
        if e not in seen:
            seen.update(breadth_first_order(A, e, return_predecessors=False).tolist())
    return seen


@pytest.mark.parametrize("variant,scope", [("paper", "level"), ("paper", "query"),
                                           ("serving", "level")])
def test_beam_equals_brute_force_when_budget_covers_graph(variant, scope):
    X, Q = _clustered(250, 8, 5, 1)
    g = ProximityGraph.from_hnsw(X, M=6, random_state=1)
    assert len(_reachable(g, g.entry_set(1))) == 250       # precondition: all reachable
    scorer = MLPScorer.random(X, hidden=(16,), random_state=0)
    exact = brute_force_topk(scorer, Q, 250, k=40)
    res = beam_search(g, scorer, Q, 40, ef={0: 250, 1: 250, 2: 250}, T={0: 60, 1: 60},
                      variant=variant, visited_scope=scope, frontier=[250] * 60)
    np.testing.assert_array_equal(res.ids, exact.ids)
    np.testing.assert_allclose(res.scores, exact.scores, rtol=1e-6)
    # The whole reachable graph was evaluated, each item once.
    assert (res.stats.n_evaluated == 250).all()


def test_best_first_equals_brute_force_with_full_ef():
    X, Q = _clustered(250, 8, 5, 2)
    g = ProximityGraph.from_hnsw(X, M=6, random_state=2)
    scorer = DotScorer(X)
    exact = brute_force_topk(scorer, Q, 250, k=30)
    res = hnsw_search(g, scorer, Q, 30, ef_search=250)
    assert coverage(res.ids, exact.ids) == 1.0


def test_dot_scorer_coverage_is_high_on_clustered_data(data):
    X, Q, g = data
    index = GraphWalkIndex(g)
    exact = index.search(DotScorer(X), Q, 20, method="exact")
    beam = index.search(DotScorer(X), Q, 20, ef={0: 100, 1: 50, 2: 50}, T={0: 3, 1: 1})
    best = index.search(DotScorer(X), Q, 20, method="hnsw", ef_search=100)
    assert coverage(beam.ids, exact.ids) >= 0.95
    assert coverage(best.ids, exact.ids) >= 0.9
    assert beam.stats.frac_scored < 0.5 and best.stats.frac_scored < 0.5
    assert (np.diff(beam.scores, axis=1) <= 0).all()
    # A beam's scorer calls are few and batched; the best-first walk makes many small ones.
    assert beam.stats.n_calls.max() <= 1 + 1 + 3
    assert best.stats.n_calls.mean() > 5 * beam.stats.n_calls.mean()


@pytest.mark.parametrize("method,options", [
    ("beam", {}), ("beam", {"visited_scope": "query"}), ("beam", {"variant": "serving"}),
    ("hnsw", {"ef_search": 120})])
@pytest.mark.parametrize("pairs", [True, False])
def test_no_item_is_scored_twice_per_query(data, method, options, pairs):
    X, Q, g = data
    rec = Recording(X, pairs=pairs)
    res = GraphWalkIndex(g).search(rec, Q, 10, method=method,
                                   **({"ef": {0: 120, 1: 60, 2: 30}} if method == "beam"
                                      else {}), **options)
    seen = rec.pairs_seen()
    keys = seen[:, 0] * X.shape[0] + seen[:, 1]
    assert np.unique(keys).size == keys.size
    per_query = np.bincount(seen[:, 0], minlength=Q.shape[0])
    np.testing.assert_array_equal(per_query, res.stats.n_evaluated)
    assert (res.stats.n_scored >= res.stats.n_evaluated).all()
    assert res.stats.scorer_calls == len(rec.seen)
    if pairs:
        # Lockstep: one physical call per round for the whole block of queries.
        assert res.stats.scorer_calls >= res.stats.n_calls.max()
        assert res.stats.scorer_calls < res.stats.n_calls.sum()
        if method == "beam":
            assert res.stats.scorer_calls <= 1 + 1 + 3     # entry, layer 1, 3 layer-0 rounds
    else:
        # Without pair support: one call per query per round, never one per item.
        assert res.stats.scorer_calls == res.stats.n_calls.sum()


def test_query_batching_does_not_change_results(data):
    X, Q, g = data
    index = GraphWalkIndex(g)
    scorer = MLPScorer.random(X, hidden=(16,), random_state=1)
    for method, opts in [("beam", {"ef": {0: 80, 1: 40, 2: 20}}), ("hnsw", {"ef_search": 60})]:
        together = index.search(scorer, Q, 15, method=method, **opts)
        alone = index.search(scorer, Q, 15, method=method, query_batch=1, **opts)
        np.testing.assert_array_equal(together.ids, alone.ids)
        np.testing.assert_array_equal(together.stats.n_scored, alone.stats.n_scored)
        assert together.stats.scorer_calls < alone.stats.scorer_calls


def test_max_scored_budget(data):
    X, Q, g = data
    index = GraphWalkIndex(g)
    free = index.search(DotScorer(X), Q, 10, ef={0: 200, 1: 50, 2: 20})
    budget = int(free.stats.n_scored.min() // 2)
    capped = index.search(DotScorer(X), Q, 10, ef={0: 200, 1: 50, 2: 20}, max_scored=budget)
    assert (capped.stats.n_scored <= max(budget, capped.params["entry_size"])).all()
    assert capped.stats.frac_scored < free.stats.frac_scored


def test_start_level_falls_back_and_params_recorded(data):
    X, Q, g = data
    sizes = [g.entry_set(lvl).size for lvl in range(3)]
    res = GraphWalkIndex(g).search(DotScorer(X), Q[:2], 5, ef={0: 50, 1: sizes[1] + 1})
    # entry_set(2) is smaller than ef[2] (inherits ef[1]), so the walk starts at level 1.
    assert res.params["start_level"] == 1 and res.params["entry_size"] == sizes[1]
    assert set(res.params) >= {"ef", "T", "variant", "visited_scope"}


def test_flat_knn_graph_walk(data):
    X, Q, _ = data
    g = ProximityGraph.from_knn(X, k=16, random_state=0)
    # The L2 k-NN graph suits an L2 scorer: the walk finds nearly all exact neighbours.
    exact = brute_force_topk(L2Scorer(X), Q, X.shape[0], k=10)
    res = beam_search(g, L2Scorer(X), Q, 10, ef={0: 100, 1: 64})
    assert res.params["start_level"] == 1 and res.params["entry_size"] == g.entry_set(1).size
    assert coverage(res.ids, exact.ids) >= 0.95
    assert res.stats.frac_scored < 0.5


def test_bad_arguments(data):
    X, Q, g = data
    index = GraphWalkIndex(g)
    with pytest.raises(ValueError, match="k=3001 exceeds the number of items"):
        index.search(DotScorer(X), Q, 3001, method="exact")
    with pytest.raises(ValueError, match="k=3001 exceeds the number of items"):
        index.search(DotScorer(X), Q, 3001)
    with pytest.raises(ValueError, match=r"exceeds the layer-0 beam width ef\[0\]=400"):
        index.search(DotScorer(X), Q, 401)
    with pytest.raises(ValueError, match="knows 10 items but the graph has 3000"):
        index.search(DotScorer(X[:10]), Q, 5)
    with pytest.raises(TypeError, match="unexpected option"):
        index.search(DotScorer(X), Q, 5, method="hnsw", ef={0: 10})
    with pytest.raises(ValueError, match="unknown method"):
        index.search(DotScorer(X), Q, 5, method="greedy")
    with pytest.raises(TypeError, match="k must be an integer"):
        index.search(DotScorer(X), Q, 2.5)
    with pytest.raises(ValueError, match="must be 2-D"):
        index.search(DotScorer(X), Q[0], 5)
    with pytest.raises(TypeError, match="graph must be a ProximityGraph"):
        GraphWalkIndex(X)


@pytest.mark.parametrize("method", ["beam", "hnsw", "exact"])
def test_empty_queries(data, method):
    X, _, g = data
    rec = Recording(X)
    res = GraphWalkIndex(g).search(rec, np.empty((0, 16), np.float32), 7, method=method)
    assert res.ids.shape == (0, 7) and res.scores.shape == (0, 7)
    assert rec.seen == [] and res.stats.frac_scored == 0.0


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.integers(0, 60), elements=st.sampled_from(
    [-np.inf, -1.0, 0.0, 0.5, 2.0, 3.0])), st.integers(1, 70))
def test_top_positions_matches_stable_sort(scores, k):
    got = kw.top_positions(scores, k)
    want = np.argsort(-scores.astype(np.float64), kind="stable")[:k]
    np.testing.assert_array_equal(got, want)


def test_beam_merge_keeps_best_and_reports_new_entries():
    w_ids = np.array([[5, 6, 7, -1]], dtype=np.int64)
    w_sc = np.array([[3.0, 2.0, 1.0, 0.0]], dtype=np.float32)
    w_n = np.array([3])
    fptr, fids = kw.beam_merge(w_ids, w_sc, w_n, np.array([0, 3]), np.array([8, 9, 10]),
                               np.array([2.5, 0.5, 2.0], dtype=np.float32), 4)
    np.testing.assert_array_equal(w_ids[0], [5, 8, 6, 10])   # tie 2.0: old member first
    np.testing.assert_array_equal(fids, [8, 10])
    assert w_n[0] == 4 and fptr.tolist() == [0, 2]


def test_single_layer_graph_starts_from_the_entry_point(data):
    X, Q, g = data
    flat = ProximityGraph(np.ones(g.n_items, np.int32), [g.indptr[0]], [g.indices[0]],
                          g.entry_point)
    exact = brute_force_topk(DotScorer(X), Q, X.shape[0], k=10)
    res = beam_search(flat, DotScorer(X), Q, 10, ef={0: 200, 1: 100}, T={0: 8})
    assert res.params["entry_size"] == 1 and res.params["start_level"] == 1
    assert coverage(res.ids, exact.ids) >= 0.9 and res.stats.frac_scored < 0.6
    with pytest.raises(ValueError, match="start_level must be >= 1"):
        GraphWalkIndex(flat, start_level=0)
