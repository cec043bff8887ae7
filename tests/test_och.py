"""OCH: the intended Stiefel learner, the released ``trainOCH.m`` port, the estimator contract."""

import numpy as np
import pytest

from ordhash.learners.och import OCH, f_och, train_och, train_och_released
from ordhash.learners.ordinal import (
    TripletObjective,
    affinity,
    ordinal_matrix,
    polar,
    polar_truncated,
)


def matlab_train_och_loop(Y, S, W, k, max_iter):
    """Loop-by-loop transcription of the released trainOCH.m (HEAD 32a9f94, spec §7.3).

    MATLAB indices are shifted by one. The two documented deviations of spec §7.6 are
    transcribed as ordhash applies them: an iteration with ``stiefip < 1e-8`` counts as a
    non-moving iteration, and a step already cut to 0 that still fails the test ends the search.
    """
    L, dim = Y.shape
    bits = W.shape[1]
    beta = 0.0

    def project_stiefel(Q):
        U, s, Vt = np.linalg.svd(Q, full_matrices=False)
        ev = s ** 2
        keep = ev / ev.max() >= 1e-10
        return U[:, keep] @ Vt[keep, :]

    def f(Wx):
        B = np.sign(Y @ Wx)
        D = np.diag(np.sum(S, axis=0))
        return 0.5 * np.trace(B.T @ (D - S) @ B)

    if np.linalg.norm(W.T @ W - np.eye(bits), "fro") > 1e-4:
        W = project_stiefel(W)
    cout = 0
    it = 0
    while it < max_iter:
        rp1 = it % L
        wt = W
        grad_w = np.zeros_like(W)
        H = np.tanh(Y @ W)
        for i in range(1, k):                          # for i = 2:k
            for j in range(i, L):                      # for j = i:L
                with np.errstate(divide="ignore", invalid="ignore"):
                    keep = S[rp1, i] / S[rp1, j] < 1
                if keep:
                    hxi, hxj, hxk = H[rp1, :], H[i, :], H[j, :]
                    tmp1 = (np.outer(Y[rp1, :], (1 - hxi ** 2) * hxj)
                            + np.outer(Y[i, :], (1 - hxj ** 2) * hxi))
                    tmp2 = (np.outer(Y[rp1, :], (1 - hxi ** 2) * hxk)
                            + np.outer(Y[j, :], (1 - hxk ** 2) * hxi))
                    tij = hxi @ hxj
                    tik = hxi @ hxk
                    ytmp = 1 / (1 + np.exp(-(beta + tij - tik)))
                    y = ytmp * (1 - ytmp)
                    if beta + tij > tik:
                        grad_w = grad_w + 0.5 * y * (tmp1 - tmp2)
        Z = -1 * (grad_w - W @ grad_w.T @ W)
        stiefip = np.trace(Z.T @ (np.eye(dim) - 0.5 * W @ W.T) @ Z)
        fQ = f(W)
        if stiefip < 1e-8:                             # deviation 2 (MATLAB: endless loop)
            it += 1
            cout += 1
            if cout > 10:
                break
            continue
        gam = 1e-3
        while fQ - f(project_stiefel(W + 2 * gam * Z)) >= gam * stiefip:
            gam = 2 * gam
        while fQ - f(project_stiefel(W + gam * Z)) < 0.5 * gam * stiefip:
            if gam == 0:                               # MATLAB would loop forever here
                break
            gam = 0.5 * gam
            if gam < 1e-8:
                gam = 0
        W = project_stiefel(W + gam * Z)
        it = it + 1
        if np.linalg.norm(W - wt, 2) < 1e-6:
            cout = cout + 1
        else:
            cout = 0
        if cout > 10:
            break
    return W, it


def _small_data(n=400, d=12, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(size=(8, d)) * 3
    return centres[rng.randint(0, 8, n)] + rng.normal(size=(n, d))


@pytest.mark.parametrize("seed, dim, bits", [(0, 5, 4), (4, 3, 6)])
def test_released_loop_matches_matlab_transcription(seed, dim, bits):
    # Seeds chosen so that the Armijo search accepts some steps (on most tiny problems the
    # discrete f_och rejects every step, defect H1, and W never moves).
    rng = np.random.RandomState(seed)
    C = rng.normal(size=(40, 8))
    Y = C[:, :dim]
    S = affinity(C)
    W0 = rng.normal(size=(dim, bits))
    ours, curve, steps = train_och_released(Y, S, W0, n_neighbors=10, max_iter=40)
    ref, ref_steps = matlab_train_och_loop(Y, S, W0, 10, 40)
    assert steps == ref_steps and len(curve) == steps
    assert np.linalg.norm(ref - polar_truncated(W0)) > 1e-2  # some Armijo steps were accepted
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-11)


def test_released_estimator_is_the_transcription_on_its_own_preprocessing():
    X = _small_data(n=300, d=10)
    est = OCH(n_bits=8, n_landmarks=30, variant="released", random_state=5).fit(X)
    twin = OCH(n_bits=8, n_landmarks=30, variant="released", random_state=5)
    rng = np.random.RandomState(5)
    prep = twin._prepare(X, rng)
    assert prep.P.shape == (10, 10)  # pca_dim = min(20, n_features), as the demo's dimD = 20
    W0 = rng.standard_normal((10, 8))
    ref, steps = matlab_train_och_loop(prep.Y, prep.omega, W0, 10, prep.Y.shape[0])
    np.testing.assert_allclose(est.projection_, ref, rtol=1e-8, atol=1e-10)
    assert est.n_iter_ == steps


def test_released_with_pca_dim_below_bits_gives_row_orthonormal_projection():
    X = _small_data(n=300, d=30)
    est = OCH(n_bits=32, n_landmarks=30, variant="released", random_state=0).fit(X)
    W = est.projection_
    assert W.shape == (20, 32)
    np.testing.assert_allclose(W @ W.T, np.eye(20), atol=1e-9)


def test_released_stalls_stop_training_when_the_gradient_vanishes():
    Y = np.zeros((15, 4))
    S = affinity(np.random.RandomState(0).normal(size=(15, 4)))
    W0 = np.random.RandomState(1).normal(size=(4, 3))
    W, curve, steps = train_och_released(Y, S, W0, max_iter=100)
    assert steps == 11  # ip < 1e-8 eleven times in a row (MATLAB would hang instead)
    np.testing.assert_allclose(W, polar(W0), atol=1e-12)


def test_f_och_is_the_laplacian_cut():
    rng = np.random.RandomState(0)
    Y = rng.normal(size=(9, 3))
    S = affinity(rng.normal(size=(9, 4)))
    W = rng.normal(size=(3, 5))
    B = np.sign(Y @ W)
    ref = 0.25 * sum(S[i, j] * np.sum((B[i] - B[j]) ** 2) for i in range(9) for j in range(9))
    assert f_och(W, Y, np.diag(S.sum(0)) - S) == pytest.approx(ref)


@pytest.mark.parametrize("retraction", ["polar", "cayley"])
@pytest.mark.parametrize("pca_dim", [None, 9])
@pytest.mark.parametrize("init", [None, "random"])
@pytest.mark.parametrize("source", ["data", "landmarks"])
def test_intended_fit_stays_on_the_stiefel_manifold(retraction, pca_dim, init, source):
    X = _small_data()
    est = OCH(n_bits=6, n_landmarks=40, n_anchors=150, pca_dim=pca_dim, retraction=retraction,
              init=init, triplet_source=source, random_state=0).fit(X)
    W = est.projection_
    assert W.shape == (pca_dim or 6, 6)
    assert np.linalg.norm(W.T @ W - np.eye(6)) < 1e-6
    if source == "landmarks":
        assert est.n_iter_ == 8  # full batch: one step per epoch
    else:
        assert est.n_landmarks_ == 150  # the anchor pool
        assert est.n_iter_ == 6 * -(-150 // 32)  # 6 epochs of 32-anchor batches


def test_intended_training_lowers_the_relaxed_objective():
    rng = np.random.RandomState(4)
    C = rng.normal(size=(50, 8))
    Y = C[:, :6] / np.sqrt(np.mean(C[:, :6] ** 2))
    omega = ordinal_matrix(C)
    W0 = polar(rng.normal(size=(6, 5)))
    obj = TripletObjective(Y, omega, rule="pivots", n_neighbors=10, beta=0.0, average=False)

    def full(W):
        return obj.gradient(W, np.arange(50), rng)[1].sum()

    W, curve, steps = train_och(Y, omega, W0, n_epochs=6, batch_size=50, learning_rate=0.1,
                                rng=np.random.RandomState(0))
    assert steps == 6
    assert full(W) < 0.9 * full(W0)
    assert curve[-1] < curve[0]


@pytest.mark.parametrize("variant", ["intended", "released"])
def test_deterministic_under_random_state(variant):
    X = _small_data(seed=4)
    a = OCH(n_bits=8, n_landmarks=30, variant=variant, random_state=7).fit(X)
    b = OCH(n_bits=8, n_landmarks=30, variant=variant, random_state=7).fit(X)
    c = OCH(n_bits=8, n_landmarks=30, variant=variant, random_state=8).fit(X)
    np.testing.assert_array_equal(a.projection_, b.projection_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert not np.array_equal(a.projection_, c.projection_)


@pytest.mark.parametrize("kw", [
    dict(triplets="knn", batch_size=16, n_epochs=2, shuffle=False, beta=0.5,
         triplet_source="landmarks"),
    dict(triplets="all", max_pairs_per_anchor=150, init="pca"),
    dict(triplets="random_pivots", balance=0.5, decorrelation=0.5, init="itq"),
    dict(ordinal_source="affinity", landmark_method="random", tol=0.0, n_epochs=4,
         triplet_source="landmarks"),
    dict(near_fraction=0.05, n_anchors=50, sharpness=6.0, max_pairs_per_anchor=300,
         batch_size=10, balance=0.2),
])
def test_options_fit(kw):
    X = _small_data(seed=1)
    est = OCH(n_bits=8, n_landmarks=30, random_state=0, **kw).fit(X)
    assert np.linalg.norm(est.projection_.T @ est.projection_ - np.eye(8)) < 1e-6
    assert est.transform(X).shape == (400, 1)


def test_projection_formula():
    X = _small_data()
    est = OCH(n_bits=8, n_landmarks=30, random_state=0).fit(X)
    scores = (X - est.mean_) @ est.components_ @ est.projection_
    np.testing.assert_allclose(est.project(X), scores, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kw, match", [
    (dict(n_bits=16), "n_bits=16 exceeds n_features = 12"),
    (dict(pca_dim=4), "pca_dim=4 is smaller than n_bits=8"),
    (dict(pca_dim=13), "pca_dim=13 exceeds n_features = 12"),
    (dict(variant="released", beta=1.0), "hard-codes beta=0.0"),
    (dict(variant="released", learning_rate=0.1), "learning_rate"),
    (dict(variant="released", retraction="cayley"), "retraction='cayley' is not available"),
    (dict(variant="released", tol=0.1), "tol=0.1 is not available"),
    (dict(variant="released", triplet_source="data"), "hard-codes triplet_source='landmarks'"),
    (dict(variant="released", sharpness=2.0), "sharpness=2.0 is not available"),
    (dict(triplet_source="pairs"), "triplet_source"),
    (dict(near_fraction=1.5), "near_fraction"),
    (dict(retraction="qr"), "retraction"),
    (dict(init="zeros"), "init"),
])
def test_input_errors(kw, match):
    X = _small_data()
    with pytest.raises(ValueError, match=match):
        OCH(**{"n_bits": 8, **kw}).fit(X)


def test_released_allows_more_bits_than_features():
    X = _small_data(d=6)
    est = OCH(n_bits=16, n_landmarks=30, variant="released", random_state=0).fit(X)
    assert est.projection_.shape == (6, 16)
