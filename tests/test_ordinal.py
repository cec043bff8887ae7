"""Shared ordinal machinery: rankings, affinity, landmarks, triplets, gradients, Stiefel tools."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ordhash._kernels import ordinal as K
from ordhash.learners import ordinal as O


# -- helpers --------------------------------------------------------------------------------
def _problem(L=24, dfull=7, dprime=5, r=6, seed=0, scale=0.6):
    rng = np.random.RandomState(seed)
    C = rng.normal(size=(L, dfull))
    Y = C[:, :dprime].copy()
    W = rng.normal(size=(dprime, r)) * scale
    return rng, C, Y, W


def _brute_pairs(omega, q, rule, k, pivots=None):
    """(near, far) pairs of anchor q, straight from the definitions (spec §4.2, §5.3)."""
    L = omega.shape[0]
    rank = [m for m in np.argsort(-omega[q], kind="stable") if m != q]
    val = omega[q]
    if rule == "knn":
        N, F = rank[: k - 1], rank[k - 1:]
        return [(n, f) for n in N for f in F if val[n] > val[f]]
    if rule in ("pivots", "random_pivots"):
        piv = rank[: k - 1] if pivots is None else pivots
        return [(p, f) for p in piv for f in range(L) if f not in (q, p) and val[p] > val[f]]
    return [(i, j) for i in range(L) for j in range(L)
            if i != q and j != q and val[i] > val[j]]


def _brute_loss(Y, W, omega, anchors, rule, k, beta, average, pivots=None):
    H = np.tanh(Y @ W)
    losses, actives = [], []
    for b, q in enumerate(anchors):
        pv = None if pivots is None else pivots[b]
        zs = np.array([beta + H[q] @ H[f] - H[q] @ H[n]
                       for n, f in _brute_pairs(omega, q, rule, k, pv)])
        act = 1.0 / (1.0 + np.exp(-zs[zs > 0]))
        losses.append(act.sum() / len(act) if (average and len(act)) else act.sum())
        actives.append(len(act))
    return np.array(losses), np.array(actives)


def _fd_grad(fun, W, eps=1e-6):
    G = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += eps
        Wm[idx] -= eps
        G[idx] = (fun(Wp) - fun(Wm)) / (2 * eps)
    return G


# -- rankings -------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 9), st.just(9)),
              elements=st.integers(-3, 3).map(float)))
def test_rank_orders_match_stable_sort_with_ties(block):
    L = block.shape[0]
    omega = np.ascontiguousarray(block[:, :L])
    order, next_lower = K.rank_orders(omega)
    for q in range(L):
        expected = [m for m in np.argsort(-omega[q], kind="stable") if m != q]
        assert order[q].tolist() == expected
        vals = omega[q, order[q]]
        for a in range(L - 1):
            lower = [b for b in range(a + 1, L - 1) if vals[b] < vals[a]]
            assert next_lower[q, a] == (lower[0] if lower else L - 1)


# -- affinity -------------------------------------------------------------------------------
def test_affinity_matches_released_formula():
    rng = np.random.RandomState(3)
    C = rng.normal(size=(30, 4))
    S = O.affinity(C)
    E = np.sqrt(((C[:, None, :] - C[None, :, :]) ** 2).sum(-1))
    m = np.sort(E, axis=1)[:, 1:17].mean(axis=1)
    for i, j in [(0, 1), (5, 17), (29, 3)]:
        s = 0.35 * (m[i] + m[j]) / 2
        ref = np.exp(-E[i, j] ** 2 / (2 * s * s)) / (s * np.sqrt(2 * np.pi))
        assert S[i, j] == pytest.approx(ref, rel=1e-9)
    assert np.allclose(S, S.T) and np.all(np.diag(S) == 0)


def test_log_affinity_ranks_like_affinity_and_breaks_underflow_ties():
    rng = np.random.RandomState(4)
    C = np.vstack([rng.normal(size=(20, 3)), rng.normal(size=(20, 3)) + 200.0])
    S = O.affinity(C)
    logS = O.affinity(C, log=True)
    pos = S > 0
    assert np.allclose(np.log(S[pos]), logS[pos])
    # far clusters underflow to exact zeros in S (ties) but stay ordered in log S
    assert (S[0, 20:] == 0).all()
    assert len(np.unique(logS[0, 20:])) == 20
    eu = O.ordinal_matrix(C, "euclidean")
    assert eu[0, 1] == pytest.approx(-np.linalg.norm(C[0] - C[1]))
    with pytest.raises(ValueError, match="ordinal_source"):
        O.ordinal_matrix(C, "cosine")


# -- landmarks ------------------------------------------------------------------------------
def test_kmeans_drops_empty_clusters_and_is_seeded():
    rng = np.random.RandomState(0)
    X = np.repeat(rng.normal(size=(5, 3)), 10, axis=0)  # only 5 distinct points
    C = O.kmeans_landmarks(X, 12, 10, np.random.RandomState(1))
    assert 1 <= C.shape[0] <= 5  # duplicated starts leave empty clusters, which are dropped
    assert len({tuple(np.round(c, 9)) for c in C}) == C.shape[0]
    Z = rng.normal(size=(300, 4))
    a = O.kmeans_landmarks(Z, 20, 15, np.random.RandomState(7))
    b = O.kmeans_landmarks(Z, 20, 15, np.random.RandomState(7))
    np.testing.assert_array_equal(a, b)
    assert O.kmeans_landmarks(Z, 500, 2, np.random.RandomState(0)).shape[0] <= 300
    # run to convergence: every centre is then the mean of the rows nearest to it
    c = O.kmeans_landmarks(Z, 8, 300, np.random.RandomState(3))
    lab = np.argmin(((Z[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    for j in range(c.shape[0]):
        np.testing.assert_allclose(c[j], Z[lab == j].mean(axis=0), atol=1e-9)


def test_pca_basis_orthonormal_and_sorted():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(400, 6)) * np.array([9, 5, 3, 2, 1, 0.5])
    P, ev = O.pca_basis(X - X.mean(0), 4)
    assert np.allclose(P.T @ P, np.eye(4))
    assert np.all(np.diff(ev) <= 0)
    assert np.argmax(np.abs(P[:, 0])) == 0


# -- triplet rules and kernels --------------------------------------------------------------
@pytest.mark.parametrize("rule", ["knn", "pivots", "all"])
@pytest.mark.parametrize("average", [True, False])
def test_ranked_kernel_matches_brute_force_pairs(rule, average):
    rng, C, Y, W = _problem(L=18, seed=2)
    omega = O.ordinal_matrix(np.round(C, 1), "euclidean")  # rounding creates ties
    obj = O.TripletObjective(Y, omega, rule=rule, n_neighbors=5, beta=0.4, average=average)
    anchors = np.arange(18)
    H = np.tanh(Y @ W)
    Cc, loss, active = obj.coefficients(H, anchors, rng)
    ref_loss, ref_active = _brute_loss(Y, W, omega, anchors, rule, 5, 0.4, average)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(active, ref_active)


def test_random_pivots_use_drawn_positions():
    rng, C, Y, W = _problem(L=16, seed=5)
    omega = O.ordinal_matrix(C)
    obj = O.TripletObjective(Y, omega, rule="random_pivots", n_neighbors=4, beta=0.3,
                             average=False)
    anchors = np.array([0, 7])
    near = obj.near_positions(anchors, np.random.RandomState(9))
    pivots = [list(obj.order[q, near[b]]) for b, q in enumerate(anchors)]
    _, loss, _ = obj.coefficients(np.tanh(Y @ W), anchors, np.random.RandomState(9))
    ref, _ = _brute_loss(Y, W, omega, anchors, "random_pivots", 4, 0.3, False, pivots)
    np.testing.assert_allclose(loss, ref, rtol=1e-10)


@pytest.mark.parametrize("rule", ["knn", "pivots", "all", "random_pivots"])
@pytest.mark.parametrize("average", [True, False])
def test_gradient_matches_finite_differences(rule, average):
    rng, C, Y, W = _problem(L=20, seed=11)
    omega = O.ordinal_matrix(C)
    obj = O.TripletObjective(Y, omega, rule=rule, n_neighbors=5, beta=0.5, average=average)
    anchors = np.array([0, 4, 9, 19])
    G, _, _ = obj.gradient(W, anchors, np.random.RandomState(1))

    def fun(Wx):
        return obj.gradient(Wx, anchors, np.random.RandomState(1))[1].sum()

    np.testing.assert_allclose(G, 0.5 * _fd_grad(fun, W), rtol=1e-5, atol=1e-7)


def test_parallel_and_serial_kernels_agree():
    rng, C, Y, W = _problem(L=40, seed=6)
    obj = O.TripletObjective(Y, O.ordinal_matrix(C), rule="pivots", n_neighbors=6, beta=0.2)
    anchors = np.arange(40, dtype=np.int64)
    H = np.tanh(Y @ W)
    T = H @ H.T
    near = obj.near_positions(anchors, rng)
    u = np.empty((40, near.shape[1], 0))
    par = K.ranked_pair_coefficients(T, anchors, obj.order, obj.next_lower, near, 0, u, 0.2, True)
    ser = K.ranked_pair_coefficients_serial(T, anchors, obj.order, obj.next_lower, near, 0, u,
                                            0.2, True)
    for a, b in zip(par, ser):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert O.PARALLEL_MIN_PAIRS > 0


def test_sampled_pairs_are_unbiased_and_exact_when_cap_is_large():
    rng, C, Y, W = _problem(L=60, seed=8, scale=0.3)
    omega = O.ordinal_matrix(C)
    anchors = np.arange(0, 60, 7)
    full = O.TripletObjective(Y, omega, rule="all", beta=0.6, average=False)
    G_full, loss_full, act_full = full.gradient(W, anchors, rng)
    big = O.TripletObjective(Y, omega, rule="all", beta=0.6, average=False,
                             max_pairs_per_anchor=60 * 60)
    np.testing.assert_allclose(big.gradient(W, anchors, rng)[1], loss_full)
    small = O.TripletObjective(Y, omega, rule="all", beta=0.6, average=False,
                               max_pairs_per_anchor=300)
    draws = [small.gradient(W, anchors, np.random.RandomState(s)) for s in range(150)]
    mean_act = np.mean([d[2] for d in draws], axis=0)
    mean_G = np.mean([d[0] for d in draws], axis=0)
    np.testing.assert_allclose(mean_act, act_full, rtol=0.05)
    assert np.linalg.norm(mean_G - G_full) < 0.1 * np.linalg.norm(G_full)


def test_listed_pairs_gradient_with_self_triplets():
    rng, C, Y, W = _problem(L=12, seed=3)
    q = 2
    near = np.array([5, 7, 2, 9], dtype=np.int64)   # anchor itself appears as near and far
    far = np.array([2, 1, 8, 2], dtype=np.int64)
    ptr = np.array([0, 4], dtype=np.int64)
    anchors = np.array([q], dtype=np.int64)

    def parts(Wx):
        H = np.tanh(Y @ Wx)
        return K.listed_pair_coefficients(H[anchors] @ H.T, ptr, near, far, 1.5, False), H

    (Cc, loss, active), H = parts(W)
    assert active[0] > 0
    G = K.assemble_gradient(Y, H, anchors, Cc)
    np.testing.assert_allclose(G, 0.5 * _fd_grad(lambda Wx: parts(Wx)[0][1][0], W),
                               rtol=1e-5, atol=1e-8)


def test_released_och_pairs_follow_ratio_rule():
    S = np.array([[0.0, 0.5, 0.0, 0.9, 0.2],
                  [0.5, 0.0, 0.3, 0.1, 0.0],
                  [0.0, 0.3, 0.0, 0.4, 0.6],
                  [0.9, 0.1, 0.4, 0.0, 0.7],
                  [0.2, 0.0, 0.6, 0.7, 0.0]])
    near, far = K.released_och_pairs(S, 0, 3)
    pairs = set(zip(far.tolist(), near.tolist()))
    expected = {(i, j) for i in (1, 2) for j in range(i, 5)
                if S[0, j] > 0 and S[0, i] / S[0, j] < 1}
    assert pairs == expected and (2, 3) in pairs and (1, 2) not in pairs


# -- regulariser, Stiefel, ITQ --------------------------------------------------------------
def test_code_regularizer_gradient():
    rng, C, Y, W = _problem(L=15, seed=12)

    def val(Wx):
        return O.code_regularizer(Y, np.tanh(Y @ Wx), 0.7, 1.3)[0]

    _, G = O.code_regularizer(Y, np.tanh(Y @ W), 0.7, 1.3)
    np.testing.assert_allclose(G, _fd_grad(val, W), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("retraction", ["polar", "cayley"])
def test_stiefel_step_stays_on_manifold_and_descends(retraction):
    rng = np.random.RandomState(0)
    A = rng.normal(size=(7, 7))
    A = A @ A.T
    W = O.polar(rng.normal(size=(7, 3)))
    f = lambda Wx: np.trace(Wx.T @ A @ Wx)  # noqa: E731
    for t in range(300):
        step = 0.01 if t < 10 else 0.3 / (1.0 + t / 10.0)
        W_new, moved = O.stiefel_step(W, 2 * A @ W, step, retraction)
        assert moved
        assert np.linalg.norm(W_new.T @ W_new - np.eye(3)) < 1e-10
        if t < 10:  # small steps far from the optimum: strict descent
            assert f(W_new) < f(W)
        W = W_new
    lowest = np.sort(np.linalg.eigvalsh(A))[:3].sum()
    assert f(W) == pytest.approx(lowest, rel=1e-3)
    same, moved = O.stiefel_step(W, np.zeros_like(W), 0.1, retraction)
    assert not moved and same is W


def test_polar_truncated_handles_wide_matrices():
    rng = np.random.RandomState(2)
    M = rng.normal(size=(4, 10))
    Q = O.polar_truncated(M)
    assert np.allclose(Q @ Q.T, np.eye(4))
    Z = O.polar_truncated(np.outer(np.ones(5), np.arange(1.0, 4.0)))
    assert np.linalg.matrix_rank(Z) == 1


def test_itq_rotation_reduces_quantisation_error():
    rng = np.random.RandomState(0)
    V = rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6))
    R0 = O.polar(np.random.RandomState(5).standard_normal((6, 6)))
    R = O.itq_rotation(V, 30, np.random.RandomState(5))

    def q_err(Rx):
        Z = V @ Rx
        return np.sum((np.sign(Z) - Z) ** 2)

    assert np.allclose(R.T @ R, np.eye(6))
    assert q_err(R) < q_err(R0)


def test_convergence_update():
    stale, best, stop = O.convergence_update(5.0, np.inf, 0, 0.1, 2)
    assert (stale, best, stop) == (0, 5.0, False)
    stale, best, stop = O.convergence_update(4.9, best, stale, 0.1, 2)
    assert stale == 1 and not stop
    stale, best, stop = O.convergence_update(4.8, best, stale, 0.1, 2)
    assert stale == 2 and stop and best == 4.8


# -- data triplets --------------------------------------------------------------------------
def test_exact_neighbors_match_brute_force():
    from ordhash.learners.ordinal_data import exact_neighbors

    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 6))
    rows = np.array([0, 17, 119])
    ids, kth = exact_neighbors(X, rows, 7)
    for i, row in enumerate(rows):
        d2 = ((X - X[row]) ** 2).sum(1)
        d2[row] = np.inf
        ref = np.argsort(d2, kind="stable")[:7]
        assert set(ids[i]) == set(ref) and row not in ids[i]
        assert kth[i] == pytest.approx(np.sort(d2)[6], rel=1e-4)


@pytest.mark.parametrize("far_sampling", ["anchor", "batch"])
def test_data_triplet_sampling_respects_the_neighbour_sets(far_sampling):
    from ordhash.learners.ordinal_data import DataTripletObjective, exact_neighbors

    rng = np.random.RandomState(1)
    X = rng.normal(size=(80, 4))
    pool = np.arange(0, 80, 4)
    nn, _ = exact_neighbors(X, pool, 10)
    obj = DataTripletObjective(X[:, :3], pool, nn, n_near=15, n_far=60,
                               far_sampling=far_sampling)
    batch = np.arange(pool.size)
    A, near, far, valid = obj.sample(batch, rng)
    assert far.shape == ((60,) if far_sampling == "batch" else (batch.size, 60))
    assert valid.shape == (batch.size, 60)
    for b in range(batch.size):
        assert set(near[b]) <= set(nn[b])
        excluded = set(nn[b]) | {pool[b]}
        far_b = far if far_sampling == "batch" else far[b]
        assert all((f not in excluded) == v for f, v in zip(far_b, valid[b]))
    assert valid.mean() > 0.7 and (~valid).any()
    with pytest.raises(ValueError, match="far_sampling"):
        DataTripletObjective(X[:, :3], pool, nn, far_sampling="shared")


@pytest.mark.parametrize("far_sampling", ["anchor", "batch"])
@pytest.mark.parametrize("average", [True, False])
def test_data_triplet_gradient_matches_finite_differences(average, far_sampling):
    from ordhash.learners.ordinal_data import DataTripletObjective, exact_neighbors

    rng = np.random.RandomState(4)
    X = rng.normal(size=(90, 5))
    pool = np.arange(0, 90, 9)
    nn, _ = exact_neighbors(X, pool, 12)
    obj = DataTripletObjective(X[:, :4], pool, nn, beta=0.3, average=average, n_near=6,
                               n_far=30, far_sampling=far_sampling)
    W = rng.normal(size=(4, 5)) * 0.6
    batch = np.arange(pool.size)
    G, loss, active = obj.gradient(W, batch, np.random.RandomState(2))
    assert active.sum() > 0

    def fun(Wx):
        return obj.gradient(Wx, batch, np.random.RandomState(2))[1].sum()

    np.testing.assert_allclose(G, 0.5 * _fd_grad(fun, W), rtol=1e-5, atol=1e-8)
    obj32 = DataTripletObjective(X[:, :4], pool, nn, beta=0.3, average=average, n_near=6,
                                 n_far=30, dtype=np.float32, far_sampling=far_sampling)
    G32 = obj32.gradient(W, batch, np.random.RandomState(2))[0]
    assert G32.dtype == np.float64
    np.testing.assert_allclose(G32, G, rtol=1e-3, atol=1e-5 * np.abs(G).max())
    tn = np.random.RandomState(0).normal(size=(40, 30))
    tf = np.random.RandomState(1).normal(size=(40, 500))
    par = K.sampled_pair_coefficients(tn, tf, 0.2, average)
    ser = K.sampled_pair_coefficients_serial(tn, tf, 0.2, average)
    for a, b in zip(par, ser):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
