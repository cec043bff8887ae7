"""Shared machinery of the ordinal learners OEH and OCH (``spec-ordinal-hashing.md``).

This module holds the pieces both learners use:

- landmark selection: seeded K-means (random-sample start, fixed Lloyd iterations, empty
  clusters dropped so ``L_eff <= L``; the shipped ``litekmeans.m`` re-seeds them instead) or
  random rows;
- the locally scaled affinity of spec section 2 step 4, its log form and the Euclidean option
  (:func:`affinity`, :func:`ordinal_matrix`);
- the triplet rules per anchor (:class:`TripletObjective`): ``"knn"`` (the k-1 nearest
  against the rest, OEH), ``"pivots"`` (the sorted top-(k-1) pivots against every less-similar
  landmark, OCH), ``"all"`` (every ordered pair) and ``"random_pivots"``;
- the Stiefel-manifold tools of spec section 5.2 (:func:`polar`, :func:`stiefel_step`) and a
  small ITQ rotation used as a warm start.

Tags used in the docstrings: **[C]** read in the authors' released MATLAB code, **[R]**
reconstructed from the abstracts and that code, **[D]** an ordhash decision.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import eigh
from threadpoolctl import threadpool_limits

from .._kernels import ordinal as _ok

__all__ = [
    "TRIPLET_RULES",
    "ORDINAL_SOURCES",
    "pca_basis",
    "kmeans_landmarks",
    "random_landmarks",
    "landmark_distances",
    "affinity",
    "ordinal_matrix",
    "TripletObjective",
    "code_regularizer",
    "polar",
    "polar_truncated",
    "stiefel_step",
    "itq_rotation",
]

TRIPLET_RULES = ("knn", "pivots", "all", "random_pivots")
ORDINAL_SOURCES = ("log_affinity", "affinity", "euclidean")

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)

#: A coefficient-kernel call with at least this many candidate triplets runs the parallel
#: (prange) kernel; smaller calls use its single-threaded twin, which avoids the thread
#: start-up and barrier cost (large on a shared machine, where a descheduled worker stalls
#: the whole parallel region).
PARALLEL_MIN_PAIRS = 4_000_000


# -- PCA ------------------------------------------------------------------------------------
def pca_basis(Xc, dim):
    """Top-``dim`` eigenvectors of the covariance of centred rows ``Xc`` [C].

    Parameters
    ----------
    Xc : ndarray of shape (n, d)
        Centred rows.
    dim : int
        Number of components, ``1 <= dim <= d``.

    Returns
    -------
    P : ndarray of shape (d, dim)
        Orthonormal columns, largest eigenvalue first; each column is oriented so that its
        largest-magnitude entry is positive (a deterministic sign convention).
    eigenvalues : ndarray of shape (dim,)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import pca_basis
    >>> X = np.random.default_rng(0).normal(size=(50, 4)) * [5.0, 1.0, 0.1, 0.01]
    >>> P, ev = pca_basis(X - X.mean(0), 2)
    >>> P.shape, bool(ev[0] > ev[1])
    ((4, 2), True)
    """
    n, d = Xc.shape
    # A single-threaded LAPACK call: threaded eigensolvers on d x d (d < ~2000) gain little and
    # stall badly when the cores are shared.
    with threadpool_limits(limits=1, user_api="blas"):
        cov = (Xc.T @ Xc) / max(n - 1, 1)
        vals, vecs = eigh(cov, subset_by_index=[d - dim, d - 1], driver="evr")
    vals = vals[::-1]
    vecs = vecs[:, ::-1]
    flip = vecs[np.argmax(np.abs(vecs), axis=0), np.arange(dim)] < 0
    vecs[:, flip] *= -1.0
    return np.ascontiguousarray(vecs), vals


# -- landmarks ------------------------------------------------------------------------------
def kmeans_landmarks(Xc, n_landmarks, n_iter, rng):
    """Seeded K-means centres with empty clusters dropped [C, D].

    Mirrors the released ``litekmeans(X, L, 'MaxIter', iters)`` call: start from ``L``
    distinct random rows, alternate assignment and centre update for at most ``n_iter``
    iterations and stop early when no label changes. A cluster that ends up empty is
    dropped, so ``L_eff <= L`` centres are returned. (Spec section 11, row 14 assumed
    ``litekmeans`` does the same; the shipped ``litekmeans.m`` re-seeds an empty cluster with
    the points farthest from their centres. No cluster emptied on digits, SIFT or MNIST, so
    the two agree there; see ``docs/released-code.md``.) Assignments use float32 distances.

    Parameters
    ----------
    Xc : ndarray of shape (n, d)
    n_landmarks : int
        Requested number of centres ``L`` (at most ``n`` are used).
    n_iter : int
        Maximum number of Lloyd iterations (>= 0; 0 returns the random start).
    rng : numpy.random.RandomState

    Returns
    -------
    centres : ndarray of shape (L_eff, d), float64

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import kmeans_landmarks
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> kmeans_landmarks(X, 10, 20, np.random.RandomState(0)).shape
    (10, 3)
    """
    n = Xc.shape[0]
    L = min(int(n_landmarks), n)
    centres = Xc[np.sort(rng.choice(n, L, replace=False))].astype(np.float64)
    X32 = np.ascontiguousarray(Xc, dtype=np.float32)
    labels = None
    rows = np.arange(n)
    for _ in range(n_iter):
        c32 = centres.astype(np.float32)
        dist = (c32 * c32).sum(axis=1)[None, :] - 2.0 * (X32 @ c32.T)
        new = np.argmin(dist, axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        counts = np.bincount(new, minlength=centres.shape[0])
        member = sp.csr_matrix((np.ones(n), (new, rows)), shape=(centres.shape[0], n))
        sums = np.asarray(member @ Xc)
        keep = counts > 0
        if not keep.all():
            remap = np.cumsum(keep) - 1
            new = remap[new]
        centres = sums[keep] / counts[keep, None]
        labels = new
    return np.ascontiguousarray(centres)


def random_landmarks(Xc, n_landmarks, rng):
    """``min(L, n)`` distinct random rows of ``Xc`` as landmarks (the OCP "random samples").

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import random_landmarks
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> random_landmarks(X, 4, np.random.RandomState(0)).shape
    (4, 2)
    """
    n = Xc.shape[0]
    idx = np.sort(rng.choice(n, min(int(n_landmarks), n), replace=False))
    return np.ascontiguousarray(Xc[idx], dtype=np.float64)


# -- affinity and ordinal matrices -----------------------------------------------------------
def landmark_distances(C):
    """Euclidean distance matrix of the landmark rows, as the released ``EuDist2`` [C].

    Squared distances are expanded, clipped at 0, square-rooted and symmetrised.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import landmark_distances
    >>> landmark_distances(np.array([[0.0, 0.0], [3.0, 4.0]]))
    array([[0., 5.],
           [5., 0.]])
    """
    sq = (C * C).sum(axis=1)
    D = sq[:, None] + sq[None, :] - 2.0 * (C @ C.T)
    np.maximum(D, 0.0, out=D)
    np.sqrt(D, out=D)
    np.maximum(D, D.T, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def _local_sigma(E):
    L = E.shape[0]
    K = min(16, L - 1)
    if K < 1:
        return np.ones((L, L))
    srt = np.sort(E, axis=1)[:, 1:K + 1]  # MATLAB T(i, 2:17): the 16 smallest off-diagonal
    m = srt.mean(axis=1)
    sigma = 0.35 * 0.5 * (m[:, None] + m[None, :])
    positive = sigma[sigma > 0]
    floor = positive.min() if positive.size else 1.0
    return np.maximum(sigma, floor * 1e-12 if positive.size else 1.0)


def affinity(C, log=False):
    """Locally scaled Gaussian affinity of the landmarks (spec section 2, step 4) [C].

    ``S_ij = exp(-E_ij^2 / (2 s_ij^2)) / (s_ij sqrt(2 pi))`` with
    ``s_ij = 0.35 (m_i + m_j) / 2`` and ``m_i`` the mean of the 16 smallest off-diagonal
    distances of row ``i``; ``S_ii = 0``. With ``log=True`` the log form
    ``-E^2/(2 s^2) - log s - log(2 pi)/2`` is returned [D]: it ranks exactly like ``S`` where
    ``S`` is positive but never underflows to ties; its diagonal is ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import affinity
    >>> C = np.random.default_rng(0).normal(size=(30, 5))
    >>> S = affinity(C)
    >>> bool(np.allclose(S, S.T)), float(S[0, 0])
    (True, 0.0)
    """
    E = landmark_distances(C)
    sigma = _local_sigma(E)
    logS = -(E * E) / (2.0 * sigma * sigma) - np.log(sigma) - _LOG_SQRT_2PI
    if log:
        np.fill_diagonal(logS, -np.inf)
        return logS
    S = np.exp(logS)
    np.fill_diagonal(S, 0.0)
    return S


def ordinal_matrix(C, source="log_affinity"):
    """The matrix ``Omega`` whose rows are ranked (larger = more similar).

    Parameters
    ----------
    C : ndarray of shape (L, d)
        Centred landmarks (un-projected, as in the released codes).
    source : {"log_affinity", "affinity", "euclidean"}
        ``log S`` (default, no underflow ties) [D], the raw affinity ``S`` of the released
        codes (far landmarks tie at 0) [C], or ``-E`` (plain Euclidean order).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import ordinal_matrix
    >>> C = np.random.default_rng(0).normal(size=(20, 3))
    >>> ordinal_matrix(C, "euclidean").shape
    (20, 20)
    """
    if source == "log_affinity":
        return affinity(C, log=True)
    if source == "affinity":
        return affinity(C, log=False)
    if source == "euclidean":
        E = -landmark_distances(C)
        np.fill_diagonal(E, -np.inf)
        return E
    raise ValueError(f"unknown ordinal_source {source!r}; expected one of {ORDINAL_SOURCES}")


# -- triplets -------------------------------------------------------------------------------
class TripletObjective:
    """Relaxed ordinal triplet loss over landmark anchors, with its gradient.

    Parameters
    ----------
    Y : ndarray of shape (L, d')
        Projected (and possibly rescaled) landmarks.
    omega : ndarray of shape (L, L)
        Ordinal matrix (larger = more similar); row ``q`` ranks the landmarks for anchor ``q``.
    rule : {"knn", "pivots", "all", "random_pivots"}
        Triplets of anchor ``q``, with ``rank`` = the other landmarks by decreasing
        ``omega[q]`` (stable) and only strict inequalities forming a triplet:

        - ``"knn"`` (OEH, [R]): near = ``rank[:k-1]``, far = ``rank[k-1:]``;
        - ``"pivots"`` (OCH intended, [D]): pivot ``p`` in ``rank[:k-1]`` against every
          landmark less similar than ``p`` (keeps the order inside the top k-1);
        - ``"all"``: every ordered pair ``(i, j)`` with ``omega[q, i] > omega[q, j]``;
        - ``"random_pivots"``: like ``"pivots"`` with k-1 pivots drawn uniformly per anchor.
    n_neighbors : int
        ``k`` (k-1 near landmarks / pivots); clipped to ``L``.
    beta : float
        Margin.
    average : bool
        Divide each anchor's loss and gradient by its number of active triplets (OEH) or sum
        them (OCH).
    max_pairs_per_anchor : int or None
        If set, each near landmark keeps at most ``ceil(max_pairs / n_near)`` far landmarks,
        drawn uniformly with replacement and re-weighted, so a step costs O(L r + max_pairs)
        whatever ``L`` is [D].

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import TripletObjective, ordinal_matrix
    >>> rng = np.random.RandomState(0)
    >>> C = rng.normal(size=(40, 6)); Y = C[:, :4]
    >>> obj = TripletObjective(Y, ordinal_matrix(C), rule="knn", n_neighbors=5, beta=1.0)
    >>> G, loss, active = obj.gradient(rng.normal(size=(4, 8)) * 0.3, np.array([0, 1]), rng)
    >>> G.shape, loss.shape
    ((4, 8), (2,))
    """

    def __init__(self, Y, omega, *, rule="knn", n_neighbors=10, beta=1.0, average=True,
                 max_pairs_per_anchor=None):
        if rule not in TRIPLET_RULES:
            raise ValueError(f"unknown triplets rule {rule!r}; expected one of {TRIPLET_RULES}")
        self.Y = np.ascontiguousarray(Y, dtype=np.float64)
        self.L = self.Y.shape[0]
        self.rule = rule
        self.k = max(1, min(int(n_neighbors), self.L))
        self.beta = float(beta)
        self.average = bool(average)
        self.max_pairs = None if max_pairs_per_anchor is None else int(max_pairs_per_anchor)
        self.order, self.next_lower = _ok.rank_orders(np.ascontiguousarray(omega, np.float64))
        if rule in ("knn", "pivots", "random_pivots"):
            self.n_near = max(0, self.k - 1)
        else:
            self.n_near = max(0, self.L - 1)
        self.far_lo = self.k - 1 if rule == "knn" else 0

    @property
    def n_anchors(self):
        """Number of anchors (the landmarks)."""
        return self.L

    @property
    def reg_rows(self):
        """Rows whose relaxed codes the optional code regulariser acts on."""
        return self.Y

    def near_positions(self, anchors, rng):
        """Positions (into each anchor's ranking) of the near landmarks / pivots."""
        B = anchors.shape[0]
        if self.rule == "random_pivots":
            out = np.empty((B, self.n_near), dtype=np.int64)
            for b in range(B):
                out[b] = np.sort(rng.choice(self.L - 1, self.n_near, replace=False))
            return out
        return np.ascontiguousarray(
            np.broadcast_to(np.arange(self.n_near, dtype=np.int64), (B, self.n_near)))

    def coefficients(self, H, anchors, rng):
        """Per-anchor coefficient rows, losses and active counts (kernel call).

        Anchors are processed in parallel (``prange``) when the call has at least
        ``PARALLEL_MIN_PAIRS`` candidate triplets, otherwise by the single-threaded twin.
        """
        anchors = np.ascontiguousarray(anchors, dtype=np.int64)
        near = self.near_positions(anchors, rng)
        if self.max_pairs is not None and self.n_near > 0:
            m = max(1, -(-self.max_pairs // self.n_near))
            far_u = rng.random_sample((anchors.shape[0], self.n_near, m))
        else:
            far_u = np.empty((anchors.shape[0], self.n_near, 0))
        T = H[anchors] @ H.T
        per_near = self.L if far_u.shape[2] == 0 else far_u.shape[2]
        work = anchors.shape[0] * self.n_near * per_near
        kernel = (_ok.ranked_pair_coefficients if work >= PARALLEL_MIN_PAIRS
                  else _ok.ranked_pair_coefficients_serial)
        return kernel(T, anchors, self.order, self.next_lower, near, self.far_lo, far_u,
                      self.beta, self.average)

    def gradient(self, W, anchors, rng, H=None):
        """Sum over ``anchors`` of the per-anchor gradients (spec section 3.2).

        Returns
        -------
        G : ndarray (d', r)
            Half the gradient of ``sum(loss)`` with respect to ``W``.
        loss, active : ndarray (len(anchors),)
        """
        if H is None:
            H = np.tanh(self.Y @ W)
        anchors = np.ascontiguousarray(anchors, dtype=np.int64)
        C, loss, active = self.coefficients(H, anchors, rng)
        return _ok.assemble_gradient(self.Y, H, anchors, C), loss, active


def code_regularizer(Y, H, balance, decorrelation):
    """Optional bit-balance / decorrelation penalty on the relaxed landmark codes [D].

    ``balance * ||mean_m h_m||^2 + decorrelation * ||offdiag(H^T H / L)||_F^2``.

    Returns
    -------
    value : float
    grad : ndarray (d', r)
        Gradient with respect to ``W`` (``H = tanh(Y W)``).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import code_regularizer
    >>> Y = np.random.default_rng(0).normal(size=(30, 4)); H = np.tanh(Y @ np.eye(4))
    >>> value, grad = code_regularizer(Y, H, 1.0, 1.0)
    >>> grad.shape
    (4, 4)
    """
    L = H.shape[0]
    dH = np.zeros_like(H)
    value = 0.0
    if balance:
        mu = H.mean(axis=0)
        value += balance * float(mu @ mu)
        dH += (2.0 * balance / L) * mu[None, :]
    if decorrelation:
        M = (H.T @ H) / L
        np.fill_diagonal(M, 0.0)
        value += decorrelation * float((M * M).sum())
        dH += (4.0 * decorrelation / L) * (H @ M)
    return value, Y.T @ ((1.0 - H * H) * dH)


# -- Stiefel manifold -----------------------------------------------------------------------
def polar(M):
    """Polar factor ``U V^T`` of the thin SVD ``M = U S V^T`` (closest matrix with
    orthonormal columns, or rows when ``M`` is wide).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import polar
    >>> Q = polar(np.random.default_rng(0).normal(size=(5, 3)))
    >>> bool(np.allclose(Q.T @ Q, np.eye(3)))
    True
    """
    U, _, Vt = np.linalg.svd(M, full_matrices=False)
    return U @ Vt


def polar_truncated(M, rel_tol=1e-10):
    """``project_stiefel`` of the released OCH code [C]: ``U V^T`` keeping only singular
    directions whose eigenvalue ``s^2`` is at least ``rel_tol`` times the largest.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import polar_truncated
    >>> Q = polar_truncated(np.random.default_rng(0).normal(size=(3, 8)))
    >>> bool(np.allclose(Q @ Q.T, np.eye(3)))
    True
    """
    U, s, Vt = np.linalg.svd(M, full_matrices=False)
    ev = s * s
    keep = ev >= rel_tol * ev.max() if ev.size and ev.max() > 0 else np.zeros(ev.shape, bool)
    return U[:, keep] @ Vt[keep]


def stiefel_step(W, G, step, retraction="polar"):
    """One normalised Riemannian descent step on ``St(d', r)`` (spec section 5.2) [D].

    ``R = G - W G^T W`` (canonical metric); the step has Frobenius length ``step`` along
    ``-R / ||R||_F`` and is retracted by the polar factor, or by the Cayley transform
    ``(I + t/2 A)^-1 (I - t/2 A) W`` with ``A = (G W^T - W G^T) / ||R||_F`` (computed in
    low-rank form, Wen & Yin 2013). When ``||R||_F < 1e-12`` ``W`` is returned unchanged.

    Returns
    -------
    W_new : ndarray (d', r)
    moved : bool

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import polar, stiefel_step
    >>> rng = np.random.default_rng(0)
    >>> W = polar(rng.normal(size=(6, 3)))
    >>> W2, moved = stiefel_step(W, rng.normal(size=(6, 3)), 0.1, "cayley")
    >>> bool(np.allclose(W2.T @ W2, np.eye(3))), moved
    (True, True)
    """
    R = G - W @ (G.T @ W)
    nrm = float(np.linalg.norm(R))
    if not np.isfinite(nrm) or nrm < 1e-12:
        return W, False
    if retraction == "polar":
        return polar(W - (step / nrm) * R), True
    if retraction == "cayley":
        r = W.shape[1]
        Gn = G / nrm
        U = np.hstack([Gn, W])
        V = np.hstack([W, -Gn])
        tau = float(step)
        inner = np.eye(2 * r) + 0.5 * tau * (V.T @ U)
        return W - tau * (U @ np.linalg.solve(inner, V.T @ W)), True
    raise ValueError(f"unknown retraction {retraction!r}; expected 'polar' or 'cayley'")


def itq_rotation(V, n_iter, rng):
    """ITQ rotation (Gong & Lazebnik, CVPR 2011) of PCA-projected rows ``V`` (n x r).

    Minimises ``||sign(V R) - V R||_F`` over orthogonal ``R`` by alternating the codes and
    an orthogonal Procrustes step, from a random rotation. Used as a warm start [D].

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import itq_rotation
    >>> V = np.random.default_rng(0).normal(size=(100, 4))
    >>> R = itq_rotation(V, 10, np.random.RandomState(0))
    >>> bool(np.allclose(R.T @ R, np.eye(4)))
    True
    """
    r = V.shape[1]
    R = polar(rng.standard_normal((r, r)))
    # The two n x r products run in float32 (half the time of float64; the codes are signs and
    # the r x r Procrustes step stays in float64).
    V32 = np.ascontiguousarray(V, dtype=np.float32)
    one, minus_one = np.float32(1.0), np.float32(-1.0)
    for _ in range(n_iter):
        B = np.where(V32 @ R.astype(np.float32) >= 0, one, minus_one)
        U, _, Vt = np.linalg.svd((B.T @ V32).astype(np.float64))
        R = (U @ Vt).T
    return R


def convergence_update(loss, best, stale, tol, n_iter_no_change):
    """One epoch of the ``tol`` / ``n_iter_no_change`` stopping rule [D].

    An epoch whose loss is not below ``best - tol * |best|`` counts as stale; training stops
    after ``n_iter_no_change`` consecutive stale epochs.

    Returns
    -------
    stale : int
    best : float
    stop : bool

    Examples
    --------
    >>> from ordhash.learners.ordinal import convergence_update
    >>> convergence_update(1.0, 1.0, 0, 1e-3, 2)
    (1, 1.0, False)
    """
    if np.isfinite(best) and loss > best - tol * abs(best):
        stale += 1
    else:
        stale = 0
    best = min(best, loss)
    return stale, best, stale >= n_iter_no_change
