"""Matching-function adapters, built-in scorers and scorer error reporting."""

import numpy as np
import pytest
from numba import njit
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import LinearSVC

from ordhash.walk import (CallableScorer, DotScorer, EstimatorScorer, GraphWalkIndex,
                          L2Scorer, MaskedScorer, MLPScorer, NumbaScorer, ProximityGraph,
                          Scorer, ScorerError, as_scorer, brute_force_topk)
from ordhash.walk.matching import ScoringSession

rng = np.random.default_rng(0)
X = rng.standard_normal((300, 6)).astype(np.float32)
Q = rng.standard_normal((4, 6)).astype(np.float32)
IDS = np.array([3, 7, 0, 299, 150], dtype=np.int64)


@njit
def _nb_pair(q, x):
    return -np.abs(q - x).sum()


@njit
def _nb_batch(q, items):
    out = np.empty(items.shape[0])
    for i in range(items.shape[0]):
        out[i] = -np.abs(q - items[i]).sum()
    return out


def _all_forms(scorer, Qs=Q):
    """score / score_pairs / score_block / session on the same pairs must agree."""
    state = scorer.prepare(Qs)
    block = np.asarray(scorer.score_block(state, np.arange(len(Qs)), IDS))
    for q in range(len(Qs)):
        np.testing.assert_allclose(scorer.score(state, q, IDS), block[q], rtol=1e-5, atol=1e-5)
    qidx = np.repeat(np.arange(len(Qs)), IDS.size)
    pairs = scorer.score_pairs(state, qidx, np.tile(IDS, len(Qs)))
    np.testing.assert_allclose(np.asarray(pairs).reshape(block.shape), block, rtol=1e-5,
                               atol=1e-5)
    session = ScoringSession(scorer, Qs, len(Qs))
    np.testing.assert_allclose(session.score(qidx, np.tile(IDS, len(Qs))).reshape(block.shape),
                               block, rtol=1e-5, atol=1e-5)
    return block


def test_builtin_scorers_match_formulas():
    np.testing.assert_allclose(_all_forms(DotScorer(X)), Q @ X[IDS].T, rtol=1e-5)
    d2 = ((Q[:, None, :] - X[IDS][None]) ** 2).sum(-1)
    np.testing.assert_allclose(_all_forms(L2Scorer(X)), -d2, rtol=1e-4, atol=1e-4)
    mlp = MLPScorer.random(X, hidden=(8, 5), dot_weight=0.5, random_state=0)
    H = np.hstack([np.repeat(Q, IDS.size, 0), np.tile(X[IDS], (4, 1))])
    for W, b in zip(mlp.coefs[:-1], mlp.intercepts[:-1]):
        H = np.maximum(H @ W + b, 0)
    want = (H @ mlp.coefs[-1])[:, 0] + mlp.intercepts[-1][0]
    want = want.reshape(4, -1) + 0.5 * Q @ X[IDS].T
    np.testing.assert_allclose(_all_forms(mlp), want, rtol=1e-4, atol=1e-4)


def test_callable_adapters():
    single = CallableScorer(lambda q, items: items @ q, X, name="dot-single")
    pairs = CallableScorer(lambda qs, items: (qs * items).sum(1), X, pairs=True)
    ids_only = CallableScorer(lambda q, ids: -ids.astype(float))
    want = Q @ X[IDS].T
    np.testing.assert_allclose(_all_forms(single), want, rtol=1e-5)
    np.testing.assert_allclose(_all_forms(pairs), want, rtol=1e-5)
    assert single.name == "dot-single" and not single.supports_pairs and pairs.supports_pairs
    assert (_all_forms(ids_only) == -IDS).all()
    # Opaque (non-array) query states are passed through to a single-query callable.
    opaque = CallableScorer(lambda q, items: items @ q["vec"], X)
    np.testing.assert_allclose(opaque(({"vec": Q[0]}), IDS), want[0], rtol=1e-5)


def test_numba_adapters():
    want = -np.abs(Q[:, None, :] - X[IDS][None]).sum(-1)
    np.testing.assert_allclose(_all_forms(NumbaScorer(_nb_pair, X)), want, rtol=1e-5)
    np.testing.assert_allclose(_all_forms(NumbaScorer(_nb_batch, X, kind="batch")), want,
                               rtol=1e-5)
    assert isinstance(as_scorer(_nb_pair, X), NumbaScorer)
    with pytest.raises(TypeError, match="numba.njit-compiled"):
        NumbaScorer(lambda q, x: 0.0, X)


def test_estimator_adapter():
    F = np.hstack([np.repeat(Q, 75, 0), X])
    y = (F[:, 0] * F[:, 6] > 0).astype(int)
    for est, method in [(LogisticRegression().fit(F, y), "predict_proba"),
                        (LinearSVC().fit(F, y), "decision_function"),
                        (Ridge().fit(F, y.astype(float)), "predict")]:
        s = EstimatorScorer(est, X)
        assert s.method == method
        block = _all_forms(s)
        Fq = np.hstack([np.repeat(Q[:1], IDS.size, 0), X[IDS]])
        out = getattr(est, method)(Fq)
        np.testing.assert_allclose(block[0], out[:, 1] if out.ndim == 2 else out, rtol=1e-5)
        assert isinstance(as_scorer(est, X), EstimatorScorer)
    prod = EstimatorScorer(LogisticRegression().fit(np.c_[F, F[:, :6] * F[:, 6:]], y), X,
                           features="concat_product")
    _all_forms(prod)
    with pytest.raises(Exception, match="not fitted"):
        EstimatorScorer(LogisticRegression(), X)


def test_masked_scorer_excludes_items():
    base = DotScorer(X)
    masked = MaskedScorer(base, [IDS[:2], [], IDS[4:], IDS])
    block = _all_forms(masked)
    assert np.isneginf(block[0, :2]).all() and np.isfinite(block[0, 2:]).all()
    assert np.isfinite(block[1]).all() and np.isneginf(block[3]).all()
    top = brute_force_topk(masked, Q, X.shape[0], k=20)
    for q, excl in enumerate(masked.exclude):
        assert not np.isin(excl, top.ids[q]).any()
    with pytest.raises(ValueError, match="exclusion lists for 4 queries but was given 2"):
        masked.prepare(Q[:2])


class _Bad(Scorer):
    def __init__(self, mode):
        self.mode = mode

    @property
    def name(self):
        return f"bad-{self.mode}"

    def score(self, state, q, ids):
        if self.mode == "shape":
            return np.zeros((ids.size, 2))
        if self.mode == "short":
            return np.zeros(ids.size - 1)
        if self.mode == "nan":
            out = np.zeros(ids.size)
            out[ids.size // 2] = np.nan
            return out
        if self.mode == "inf":
            return np.full(ids.size, np.inf)
        if self.mode == "text":
            return np.array(["a"] * ids.size)
        raise KeyError("user table missing")


@pytest.fixture(scope="module")
def small_index():
    return GraphWalkIndex(ProximityGraph.from_hnsw(X, M=6, random_state=0))


@pytest.mark.parametrize("mode,pattern", [
    ("shape", r"'bad-shape' returned scores of shape \(\d+, 2\) for a batch of \d+ items"),
    ("short", r"'bad-short' returned scores of shape \(\d+,\) for a batch of \d+ items"),
    ("nan", r"'bad-nan' returned NaN for 1 of \d+ items"),
    ("inf", r"'bad-inf' returned \+inf"),
    ("text", r"'bad-text' returned non-numeric scores"),
    ("raise", r"'bad-raise' raised KeyError: 'user table missing'"),
])
@pytest.mark.parametrize("method", ["beam", "hnsw", "exact"])
def test_bad_scorer_errors_name_the_scorer(small_index, mode, pattern, method):
    with pytest.raises(ScorerError, match=pattern) as info:
        small_index.search(_Bad(mode), Q, 5, method=method)
    if mode == "raise":
        assert isinstance(info.value.__cause__, KeyError)


def test_prepare_failure_and_coercion_errors(small_index):
    class NoPrep(Scorer):
        name = "noprep"

        def prepare(self, queries):
            raise RuntimeError("tower offline")

        def score(self, state, q, ids):
            return np.zeros(ids.size)

    with pytest.raises(ScorerError, match="'noprep' failed to prepare 4 queries: RuntimeError"):
        small_index.search(NoPrep(), Q, 5)
    with pytest.raises(TypeError, match="cannot use a int as a scorer"):
        as_scorer(3)
    with pytest.raises(ValueError, match="queries have 3 features but the items of DotScorer"):
        small_index.search(DotScorer(X), Q[:, :3], 5)
    with pytest.raises(TypeError, match="func must be callable"):
        CallableScorer(5)
    with pytest.raises(ValueError, match="item_vectors must be 2-D"):
        DotScorer(X[0])
