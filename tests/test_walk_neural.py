"""NeuralMatcher: gradients (incl. the adversarial term), training, scoring, persistence."""

import numpy as np
import pytest
from sklearn.base import clone

from ordhash.walk import GraphWalkIndex, NeuralMatcher, ProximityGraph, coverage


def _batch(seed, with_features):
    rng = np.random.default_rng(seed)
    B, dq, n = 4, 3, 9
    xq = rng.standard_normal((B, dq))
    ids = rng.integers(0, n, (B, 5))
    ids[0, 3] = ids[0, 0]                       # an accidental hit, masked out
    mask = ids != ids[:, :1]
    mask[:, 0] = True
    logq = rng.standard_normal((B, 5))
    feats = rng.standard_normal((n, 2)) if with_features else None
    return xq, ids, mask, logq, feats, n


def _numeric_check(model, seed=0, with_features=False):
    xq, ids, mask, logq, feats, n = _batch(seed, with_features)
    P = model._init_params(xq.shape[1], n, 0 if feats is None else 2,
                           np.random.RandomState(seed), np.float64)
    rng = np.random.default_rng(seed + 1)
    for key in P:                                  # move off the symmetric init (zero biases)
        P[key] = P[key] + 0.3 * rng.standard_normal(P[key].shape)
    val, aux, grads, dE, delta, z = model._loss_grad(P, xq, ids, logq, mask, feats)
    g_emb = np.zeros_like(P["emb"])
    np.add.at(g_emb, ids.reshape(-1), dE.reshape(-1, dE.shape[-1]))
    grads = {**grads, "emb": g_emb}
    assert set(grads) == set(P)
    h = 1e-6
    for key, value in P.items():
        num = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + h
            up = model._loss_grad(P, xq, ids, logq, mask, feats, delta=delta, target=z)[0]
            value[idx] = old - h
            down = model._loss_grad(P, xq, ids, logq, mask, feats, delta=delta, target=z)[0]
            value[idx] = old
            num[idx] = (up - down) / (2 * h)
        # Central differences in float64 are accurate to ~1e-9 here; a wrong term is O(0.1).
        np.testing.assert_allclose(grads[key], num, rtol=1e-5,
                                   atol=1e-7 + 1e-6 * np.abs(num).max(), err_msg=key)
    return val, aux, delta


@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_gradients_without_adversarial_term(loss):
    val, aux, delta = _numeric_check(NeuralMatcher(embedding_dim=4, hidden=(5, 3), loss=loss))
    assert aux == 0.0 and delta is None and val > 0


@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
@pytest.mark.parametrize("kl", ["softmax", "pointwise"])
@pytest.mark.parametrize("scale", ["absolute", "rms"])
def test_gradients_with_adversarial_term(loss, kl, scale):
    model = NeuralMatcher(embedding_dim=4, hidden=(5,), loss=loss, adv_eps=0.2, adv_kl=kl,
                          adv_eps_scale=scale, adv_weight=2.0)
    val, aux, delta = _numeric_check(model, seed=3, with_features=True)
    assert aux > 0
    # FGSM: every component moves by exactly ε (times the embedding RMS when relative).
    steps = np.unique(np.abs(delta[delta != 0]))
    assert steps.size == 1
    if scale == "absolute":
        assert steps[0] == pytest.approx(0.2)


def test_adversarial_loss_matches_definition():
    """L_aux computed by the model equals KL(softmax(z) || softmax(z_adv)) by hand."""
    model = NeuralMatcher(embedding_dim=4, hidden=(5,), adv_eps=0.1, adv_eps_scale="absolute",
                          adv_kl="softmax")
    xq, ids, mask, logq, _, n = _batch(5, False)
    P = model._init_params(3, n, 0, np.random.RandomState(0), np.float64)
    val, aux, _, _, delta, z = model._loss_grad(P, xq, ids, logq, mask)
    from ordhash.walk.neural import _forward

    s_adv, _ = _forward(P, xq, P["emb"][ids] + delta)
    za = np.where(mask, s_adv - logq, -np.inf)
    zc = np.where(mask, z, -np.inf)
    p = np.exp(zc - np.logaddexp.reduce(zc, axis=1, keepdims=True))
    lq = za - np.logaddexp.reduce(za, axis=1, keepdims=True)
    lp = np.log(np.where(mask, p, 1.0))
    want = np.where(mask, p * (lp - np.where(mask, lq, 0)), 0).sum() / xq.shape[0]
    assert aux == pytest.approx(want, rel=1e-10)
    base = NeuralMatcher(embedding_dim=4, hidden=(5,))._loss_grad(P, xq, ids, logq, mask)[0]
    assert val == pytest.approx(base + aux)


@pytest.fixture(scope="module")
def interactions():
    """Users prefer items whose latent factor aligns with theirs."""
    rng = np.random.default_rng(0)
    n_users, n_items, d = 600, 150, 6
    U = rng.standard_normal((n_users, d)).astype(np.float32)
    V = rng.standard_normal((n_items, d))
    logits = 2.5 * (U @ V.T)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    rows = np.repeat(np.arange(n_users), 8)
    y = np.array([rng.choice(n_items, p=p[u]) for u in rows])
    return U, rows, y, p


def test_training_learns_and_is_deterministic(interactions):
    U, rows, y, p = interactions
    model = NeuralMatcher(embedding_dim=8, hidden=(16,), n_negatives=10, n_epochs=4,
                          batch_size=128, random_state=0)
    model.fit(U[rows], y)
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    S = model.score_items(U)
    assert S.shape == (600, 150)
    # Scores correlate with the true preferences: the model's top-10 hold far more
    # probability mass than 10 random items (10 / 150).
    top = np.argsort(-S, axis=1)[:, :10]
    assert np.take_along_axis(p, top, 1).sum(1).mean() > 3 * 10 / 150
    again = clone(model).fit(U[rows], y)
    np.testing.assert_array_equal(again.item_embeddings_, model.item_embeddings_)


def test_adversarial_training_and_use_as_scorer(interactions, tmp_path):
    U, rows, y, _ = interactions
    model = NeuralMatcher(embedding_dim=8, hidden=(16,), n_negatives=10, n_epochs=2,
                          adv_eps=0.05, random_state=1).fit(U[rows], y)
    assert all(a > 0 for a in model.aux_curve_)
    graph = ProximityGraph.from_hnsw(model.item_embeddings_, M=8, random_state=0)
    index = GraphWalkIndex(graph)
    exact = index.search(model, U[:20], 10, method="exact")
    beam = index.search(model, U[:20], 10, ef={0: 60, 1: 30, 2: 30})
    np.testing.assert_allclose(exact.scores, np.sort(model.score_items(U[:20]), 1)[:, ::-1][
        :, :10], rtol=1e-4, atol=1e-5)
    assert coverage(beam.ids, exact.ids) >= 0.9
    path = tmp_path / "m.ordhash"
    model.save(path)
    back = NeuralMatcher.load(path)
    assert back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.score_items(U[:5]), model.score_items(U[:5]))


def test_validation_errors(interactions):
    U, rows, y, _ = interactions
    with pytest.raises(ValueError, match="n_negatives"):
        NeuralMatcher(n_negatives=0).fit(U[rows], y)
    with pytest.raises(ValueError, match="adv_kl"):
        NeuralMatcher(adv_kl="js").fit(U[rows], y)
    with pytest.raises(ValueError, match="outside"):
        NeuralMatcher(n_epochs=1).fit(U[rows], y, n_items=5)
    with pytest.raises(ValueError, match="non-negative item ids"):
        NeuralMatcher(n_epochs=1).fit(U[:3], [0, -1, 2])
    model = NeuralMatcher(embedding_dim=4, hidden=(4,), n_epochs=1, n_negatives=2).fit(U[rows],
                                                                                       y)
    with pytest.raises(ValueError, match="queries have 2 features; NeuralMatcher was fitted "
                                         "with 6"):
        model.prepare(U[:, :2])
