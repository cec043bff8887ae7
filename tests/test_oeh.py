"""OEH: the intended learner, the released ``trainOEH.m`` port and the estimator contract."""

import warnings

import numpy as np
import pytest

from ordhash._kernels import ordinal as K
from ordhash.learners.oeh import OEH, train_oeh, train_oeh_released
from ordhash.learners.ordinal import TripletObjective, affinity, ordinal_matrix


def matlab_train_oeh_loop(Y, S, W, n_iter, beta, lamda, alph):
    """Loop-by-loop transcription of the released trainOEH.m training loop (spec §7.1).

    MATLAB indices are shifted by one; everything else (sort direction, H indexed by position,
    t_land(k) in tmp2, k = 10, the division by cout) is kept as written.
    """
    L = Y.shape[0]
    W = W.copy()
    for it in range(n_iter):
        rp1 = it % L                                  # rp1 = mod(iter + 1, L), 1-based
        lst = S[rp1, :]
        ind = np.argsort(lst, kind="stable")          # [~, ind] = sort(list, 'ascend')
        grad_w = np.zeros_like(W)
        t_land = Y[ind, :]
        H = np.tanh(Y @ W)
        k = 10
        cout = 0
        for i in range(1, k):                         # for i = 2:k
            for j in range(k - 1, L):                 # for j = k:L
                hxi, hxj, hxk = H[0, :], H[i, :], H[j, :]
                tmp1 = (np.outer(t_land[0, :], (1 - hxi ** 2) * hxj)
                        + np.outer(t_land[i, :], (1 - hxj ** 2) * hxi))
                tmp2 = (np.outer(t_land[0, :], (1 - hxi ** 2) * hxk)
                        + np.outer(t_land[k - 1, :], (1 - hxk ** 2) * hxi))
                tij = hxi @ hxj
                tik = hxi @ hxk
                ytmp = 1 / (1 + np.exp(-(beta + tij - tik)))
                y = ytmp * (1 - ytmp)
                if beta + tij > tik:
                    grad_w = grad_w + 0.5 * y * (tmp1 - tmp2)
                    cout = cout + 1
        I = np.eye(W.shape[0])
        wt = (W @ W.T - I) @ W
        W = W - alph * (lamda * wt + (1 / cout) * grad_w)
    return W


def _small_data(n=400, d=12, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(size=(8, d)) * 3
    return centres[rng.randint(0, 8, n)] + rng.normal(size=(n, d))


def test_released_loop_matches_matlab_transcription():
    rng = np.random.RandomState(1)
    C = rng.normal(size=(24, 6)) * 1.5
    Y = C[:, :4]
    S = affinity(C)
    W0 = rng.normal(size=(4, 6))
    ours, curve, steps = train_oeh_released(Y, S, W0, n_iter=30, beta=1.0, lam=0.01,
                                            learning_rate=0.1)
    ref = matlab_train_oeh_loop(Y, S, W0, 30, 1.0, 0.01, 0.1)
    assert steps == 30 and len(curve) == 30
    assert np.linalg.norm(ref - W0) > 1e-3  # the loop really moved W
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-11)


def test_released_estimator_is_the_transcription_on_its_own_preprocessing():
    X = _small_data(n=300, d=10)
    est = OEH(n_bits=6, n_landmarks=30, variant="released", random_state=3).fit(X)
    twin = OEH(n_bits=6, n_landmarks=30, variant="released", random_state=3)
    rng = np.random.RandomState(3)
    prep = twin._prepare(X, rng)
    W0 = rng.standard_normal((prep.P.shape[1], 6))
    ref = matlab_train_oeh_loop(prep.Y, prep.omega, W0, prep.Y.shape[0], 1.0, 0.01, 0.1)
    np.testing.assert_allclose(est.projection_, ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(est.components_, prep.P)
    assert est.input_scale_ == 1.0 and est.n_iter_ == est.n_landmarks_


def _released_objective(Y, W, beta):
    """sum over the MATLAB pair set of sigma(beta + T_0i - T_0j) on active pairs."""
    H = np.tanh(Y @ W)
    total = 0.0
    for i in range(1, 10):
        for j in range(9, Y.shape[0]):
            z = beta + H[0] @ H[i] - H[0] @ H[j]
            if z > 0:
                total += 1 / (1 + np.exp(-z))
    return total


def _fd(fun, W, eps=1e-6):
    G = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += eps
        Wm[idx] -= eps
        G[idx] = (fun(Wp) - fun(Wm)) / (2 * eps)
    return G


def test_released_loop_gradient_matches_finite_differences_when_defects_vanish():
    # With ind = identity (E2: code rows and feature rows agree) and every far landmark sharing
    # one feature row (E3: y_ind[k-1] = y_ind[j]), the released loop is the exact gradient
    # (times 1/2) of its relaxed objective.
    rng = np.random.RandomState(5)
    Y = rng.normal(size=(16, 4))
    Y[9:] = Y[9]
    W = rng.normal(size=(4, 5)) * 0.7
    ind = np.arange(16, dtype=np.int64)
    G, cnt, _ = K.released_oeh_gradient(Y, np.tanh(Y @ W), ind, 1.0)
    assert cnt > 0
    np.testing.assert_allclose(G, 0.5 * _fd(lambda Wx: _released_objective(Y, Wx, 1.0), W),
                               rtol=1e-5, atol=1e-8)
    # With a real (shuffled) ordering the released update is not that gradient (defects E2-E3).
    Yr = rng.normal(size=(16, 4))
    perm = rng.permutation(16).astype(np.int64)
    Gr, _, _ = K.released_oeh_gradient(Yr, np.tanh(Yr @ W), perm, 1.0)
    fd = 0.5 * _fd(lambda Wx: _released_objective(Yr, Wx, 1.0), W)
    assert np.linalg.norm(Gr - fd) > 0.1 * np.linalg.norm(fd)


def test_released_zero_active_pairs_applies_penalty_only_and_warns():
    Y = np.zeros((12, 3))
    S = affinity(np.random.RandomState(0).normal(size=(12, 3)))
    W0 = np.random.RandomState(1).normal(size=(3, 4))
    with pytest.warns(RuntimeWarning, match="no active pair"):
        W, _, _ = train_oeh_released(Y, S, W0, n_iter=3, beta=0.0)
    ref = W0.copy()
    for _ in range(3):
        ref = ref - 0.1 * 0.01 * ((ref @ ref.T - np.eye(3)) @ ref)
    np.testing.assert_allclose(W, ref)


def test_intended_training_lowers_the_relaxed_objective():
    rng = np.random.RandomState(2)
    C = rng.normal(size=(60, 8))
    Y = C[:, :6] / np.sqrt(np.mean(C[:, :6] ** 2))
    omega = ordinal_matrix(C)
    W0 = rng.normal(size=(6, 6)) / np.sqrt(6)
    obj = TripletObjective(Y, omega, rule="knn", n_neighbors=10, beta=1.0, average=True)

    def full(W):
        return obj.gradient(W, np.arange(60), rng)[1].mean() + 0.01 / 4 * np.sum(
            (W.T @ W - np.eye(6)) ** 2)

    W, curve, steps = train_oeh(Y, omega, W0, n_epochs=8, batch_size=10, learning_rate=0.2,
                                rng=np.random.RandomState(0))
    assert steps == 48 and len(curve) == 8
    assert full(W) < 0.9 * full(W0)
    assert curve[-1] < curve[0]


def test_fit_transform_contract_and_projection_formula():
    X = _small_data()
    est = OEH(n_bits=10, n_landmarks=40, random_state=0).fit(X)
    assert est.components_.shape == (12, 10) and est.projection_.shape == (10, 10)
    assert est.landmarks_.shape == (est.n_landmarks_, 12)
    # data mode: the landmarks are the anchor rows themselves
    assert all(np.abs(X - row).max(axis=1).min() < 1e-9 for row in est.landmarks_[:20])
    # intended defaults: data triplets, anchor pool min(2000, n), 6 epochs of 32 anchors
    assert est.n_landmarks_ == 400 and est.n_iter_ == 6 * -(-400 // 32)
    assert len(est.loss_curve_) == 6
    lm = OEH(n_bits=10, n_landmarks=40, triplet_source="landmarks", random_state=0).fit(X)
    assert lm.n_landmarks_ <= 40 and lm.n_iter_ == 5  # full-batch landmark steps
    assert OEH(n_bits=10, n_landmarks=40, batch_size=8, n_epochs=2, triplet_source="landmarks",
               random_state=0).fit(X).n_iter_ == 2 * -(-lm.n_landmarks_ // 8)
    assert 0.0 <= est.saturation_ <= 1.0
    scores = (X - est.mean_) @ est.components_ @ est.projection_
    np.testing.assert_allclose(est.project(X), scores, rtol=1e-9, atol=1e-9)
    codes = est.transform(X)
    assert codes.dtype == np.uint8 and codes.shape == (400, 2)
    np.testing.assert_array_equal(est.transform_bits(X), (scores > 0).astype(np.uint8))
    assert est.transform(X.astype(np.float32)).shape == (400, 2)


@pytest.mark.parametrize("variant", ["intended", "released"])
def test_deterministic_under_random_state(variant):
    X = _small_data(seed=4)
    a = OEH(n_bits=8, n_landmarks=30, variant=variant, random_state=7).fit(X)
    b = OEH(n_bits=8, n_landmarks=30, variant=variant, random_state=7).fit(X)
    c = OEH(n_bits=8, n_landmarks=30, variant=variant, random_state=8).fit(X)
    np.testing.assert_array_equal(a.projection_, b.projection_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert not np.array_equal(a.projection_, c.projection_)


@pytest.mark.parametrize("kw", [
    dict(triplets="pivots", batch_size=8, n_epochs=2, shuffle=True, triplet_source="landmarks"),
    dict(triplets="all", max_pairs_per_anchor=200, init="pca", triplet_source="landmarks"),
    dict(triplets="random_pivots", balance=0.5, decorrelation=0.5, init="itq",
         triplet_source="landmarks"),
    dict(ordinal_source="euclidean", landmark_method="random", input_scale=2.5,
         triplet_source="landmarks"),
    dict(near_fraction=0.05, n_anchors=50, sharpness=6.0, max_pairs_per_anchor=300,
         batch_size=10, decorrelation=0.2),
])
def test_options_fit(kw):
    X = _small_data(seed=1)
    est = OEH(n_bits=8, n_landmarks=30, random_state=0, **kw).fit(X)
    assert np.isfinite(est.projection_).all()
    assert est.transform(X).shape == (400, 1)


def test_itq_and_pca_inits():
    X = _small_data(seed=2)
    pca = OEH(n_bits=6, n_landmarks=30, init="pca", learning_rate=1e-12, random_state=0).fit(X)
    np.testing.assert_allclose(pca.projection_, np.eye(6), atol=1e-9)
    itq = OEH(n_bits=6, n_landmarks=30, init="itq", learning_rate=1e-12, random_state=0).fit(X)
    W = itq.projection_
    np.testing.assert_allclose(W.T @ W, np.eye(6), atol=1e-9)
    # the ITQ rotation lowers the quantisation loss of the training projections vs PCA
    V = (X - itq.mean_) @ itq.components_

    def q_loss(R):
        Z = V @ R
        return np.sum((np.sign(Z) - Z) ** 2)

    assert q_loss(W) < q_loss(np.eye(6))
    rnd = OEH(n_bits=6, n_landmarks=30, init="random", learning_rate=1e-12, random_state=0).fit(X)
    assert abs(np.linalg.norm(rnd.projection_) ** 2 / 36 - 1) < 0.5  # N(0, 1) entries


def test_tol_stops_early():
    X = _small_data(seed=3)
    est = OEH(n_bits=6, n_landmarks=20, n_epochs=200, learning_rate=1e-9, tol=1e-3,
              n_iter_no_change=2, batch_size=5, random_state=0).fit(X)
    assert len(est.loss_curve_) == 3
    assert est.n_iter_ == 3 * -(-est.n_landmarks_ // 5)


def test_more_bits_than_features_warns_and_caps_pca_dim():
    X = _small_data(d=6)
    with pytest.warns(UserWarning, match="n_features = 6"):
        est = OEH(n_bits=16, n_landmarks=30, random_state=0).fit(X)
    assert est.components_.shape == (6, 6) and est.projection_.shape == (6, 16)


@pytest.mark.parametrize("kw, match", [
    (dict(pca_dim=20), "pca_dim=20 exceeds n_features = 12"),
    (dict(variant="released", n_neighbors=5), "hard-codes n_neighbors=10"),
    (dict(variant="released", batch_size=4), "hard-codes batch_size=1"),
    (dict(variant="released", tol=0.5), "tol=0.5 is not available"),
    (dict(n_bits=16, init="itq"), "init='itq' needs pca_dim >= n_bits"),
    (dict(variant="released", init="itq"), "hard-codes init='random'"),
    (dict(variant="released", ordinal_source="log_affinity"), "ordinal_source"),
    (dict(triplets="nearest"), "triplets"),
    (dict(n_landmarks=1), "n_landmarks"),
    (dict(variant="paper"), "variant"),
])
def test_input_errors(kw, match):
    X = _small_data()
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # n_bits > n_features warns first
        OEH(**{"n_bits": 8, **kw}).fit(X)


def test_bad_inputs_to_fit_and_transform():
    X = _small_data()
    with pytest.raises(ValueError, match="NaN"):
        OEH(n_bits=4).fit(np.full((10, 3), np.nan))
    est = OEH(n_bits=4, n_landmarks=20, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OEH(n_bits=4, n_landmarks=20, random_state=0).fit(X)
