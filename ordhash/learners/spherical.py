"""Spherical Hashing (Heo, Lee, He, Chang & Yoon, CVPR 2012)."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval

from .base import BaseHasher

__all__ = ["SpH"]

_CHUNK_ROWS = 16384
# Training points averaged into each initial pivot (the reference ``random_center``).
_INIT_SAMPLE = 5


def _sq_distances(X, pivots, pivot_sq_norms, x_sq_norms=None):
    """Squared Euclidean distances, shape ``(n, n_pivots)``, clipped at 0."""
    if x_sq_norms is None:
        x_sq_norms = np.einsum("ij,ij->i", X, X)
    d2 = X @ pivots.T
    d2 *= -2.0
    d2 += pivot_sq_norms
    d2 += x_sq_norms[:, None]
    return np.maximum(d2, 0.0, out=d2)


def _radii_and_membership(dist, n_inside):
    """Radius of each sphere enclosing exactly ``n_inside`` points, and the membership.

    ``dist`` has shape ``(n, n_bits)``. The radius lies halfway between the ``n_inside``-th
    and ``n_inside + 1``-th smallest distances, so ``dist < radius`` and ``dist <= radius``
    agree on every training point (barring tied distances).
    """
    part = np.partition(dist, (n_inside - 1, n_inside), axis=0)
    radii = 0.5 * (part[n_inside - 1] + part[n_inside])
    return radii, dist < radii


def _pivot_forces(pivots, overlaps, n):
    """Displacement of every pivot for one iteration of the paper's force model.

    Pair ``(i, j)`` exerts ``f_ij = 0.5 (o_ij - n/4) / (n/4) (p_i - p_j)`` on ``p_i`` (spheres that
    overlap too much repel, too little attract); pivot ``i`` moves by
    ``sum_{j != i} f_ij / n_bits``.
    """
    quarter = n / 4.0
    A = 0.5 * (overlaps - quarter) / quarter
    np.fill_diagonal(A, 0.0)
    return (A.sum(axis=1)[:, None] * pivots - A @ pivots) / pivots.shape[0]


class SpH(BaseHasher):
    """Spherical Hashing (Heo, Lee, He, Chang & Yoon, CVPR 2012).

    Bit ``k`` of ``x`` is 1 when ``x`` lies inside hypersphere ``k``:
    ``||x - p_k|| <= t_k``. Pivots ``p_k`` and radii ``t_k`` are trained on (a subset of)
    ``n`` training points by the paper's iterative algorithm, as in the reference MATLAB code:

    - each pivot starts as the mean of 5 random training points;
    - each radius is set so that the sphere holds half the points (``floor(n / 2)``);
    - with ``o_ij`` the number of points inside both spheres ``i`` and ``j``, every pair exerts
      the force ``f_ij = 0.5 (o_ij - n/4) / (n/4) (p_i - p_j)`` on ``p_i`` (and its opposite on
      ``p_j``); each pivot moves by the sum of its forces divided by ``n_bits``;
    - training stops when the mean of ``|o_ij - n/4|`` is at most ``epsilon_mean * n/4`` and
      the standard deviation of ``o_ij`` at most ``epsilon_stddev * n/4``, or after ``n_iter``
      iterations (with a :class:`~sklearn.exceptions.ConvergenceWarning`).

    The radius is placed halfway between the ``floor(n/2)``-th and the next training distance,
    so a sphere holds exactly ``floor(n/2)`` training points whether the boundary counts as
    inside or not. ``project`` returns ``t_k - ||x - p_k||``.

    Parameters
    ----------
    n_bits : int, default=32
        Code length (number of hyperspheres).
    n_iter : int, default=100
        Maximum number of force iterations.
    epsilon_mean : float, default=0.10
        Tolerance on the mean absolute deviation of the pairwise overlaps from ``n/4``,
        relative to ``n/4`` (paper and reference code: 0.10).
    epsilon_stddev : float, default=0.15
        Tolerance on the standard deviation of the pairwise overlaps, relative to ``n/4``
        (paper and reference code: 0.15).
    n_train : int, default=10000
        Training points used: a random subset of this size when ``X`` has more rows.
    random_state : int, RandomState instance or None, default=None
        Seed of the subset and of the initial pivots.

    Attributes
    ----------
    pivots_ : ndarray of shape (n_bits, n_features)
        Sphere centres ``p_k``.
    radii_ : ndarray of shape (n_bits,)
        Sphere radii ``t_k``.
    n_iter_ : int
        Iterations run.
    converged_ : bool
        Whether both overlap tolerances were met.
    overlap_mean_ : float
        Final mean of ``|o_ij - n/4| / (n/4)`` over pairs ``i < j``.
    overlap_std_ : float
        Final standard deviation of ``o_ij / (n/4)`` over pairs ``i < j``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    code_size_ : int
        Bytes per packed code.

    Notes
    -----
    The paper ranks spherical codes with the *spherical Hamming distance*
    ``d_SHD(b_i, b_j) = |b_i XOR b_j| / |b_i AND b_j|``. ordhash's indexes and metrics use the
    plain Hamming distance for every learner; the codes produced here are the paper's, the
    ranking distance is not.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.classic import SpH
    >>> X = np.random.default_rng(0).normal(size=(1000, 16))
    >>> sph = SpH(n_bits=16, random_state=0).fit(X)
    >>> bits = sph.transform_bits(X)
    >>> bool(np.all(bits.sum(axis=0) == 500))
    True
    """

    _parameter_constraints: dict = {
        **BaseHasher._parameter_constraints,
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "epsilon_mean": [Interval(Real, 0, None, closed="neither")],
        "epsilon_stddev": [Interval(Real, 0, None, closed="neither")],
        "n_train": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(
        self,
        *,
        n_bits=32,
        n_iter=100,
        epsilon_mean=0.10,
        epsilon_stddev=0.15,
        n_train=10000,
        random_state=None,
    ):
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.epsilon_mean = epsilon_mean
        self.epsilon_stddev = epsilon_stddev
        self.n_train = n_train
        self.random_state = random_state

    def _fit(self, X, random_state):
        n_all = X.shape[0]
        if n_all > self.n_train:
            X = X[np.sort(random_state.choice(n_all, self.n_train, replace=False))]
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[0]
        c = self.n_bits
        n_inside = n // 2
        quarter = n / 4.0
        x_sq = np.einsum("ij,ij->i", X, X)
        m = min(_INIT_SAMPLE, n)
        pivots = np.stack([X[random_state.permutation(n)[:m]].mean(axis=0) for _ in range(c)])
        iu = np.triu_indices(c, k=1)

        def statistics(P):
            d2 = _sq_distances(X, P, np.einsum("ij,ij->i", P, P), x_sq)
            radii, inside = _radii_and_membership(np.sqrt(d2), n_inside)
            b = inside.astype(np.float64)
            overlaps = b.T @ b
            return radii, overlaps

        radii, overlaps = statistics(pivots)
        mean_dev = std_dev = 0.0
        converged = c == 1  # a single sphere has no pair to balance
        it = 0
        while not converged and it < self.n_iter:
            pivots = pivots + _pivot_forces(pivots, overlaps, n)
            radii, overlaps = statistics(pivots)
            it += 1
            o = overlaps[iu]
            mean_dev = float(np.mean(np.abs(o - quarter)))
            std_dev = float(np.std(o))
            converged = (
                mean_dev <= self.epsilon_mean * quarter
                and std_dev <= self.epsilon_stddev * quarter
            )
        if not converged:
            warnings.warn(
                f"SpH did not meet the overlap tolerances in n_iter={self.n_iter} iterations "
                f"(mean |o_ij - n/4| = {mean_dev / quarter:.3f} n/4, std = "
                f"{std_dev / quarter:.3f} n/4); raise n_iter or the epsilons",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.pivots_ = pivots
        self.radii_ = radii
        self.n_iter_ = it
        self.converged_ = bool(converged)
        self.overlap_mean_ = mean_dev / quarter
        self.overlap_std_ = std_dev / quarter

    def _project(self, X):
        n = X.shape[0]
        p_sq = np.einsum("ij,ij->i", self.pivots_, self.pivots_)
        out = np.empty((n, self.pivots_.shape[0]))
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n)
            chunk = np.asarray(X[start:stop], dtype=np.float64)
            d = np.sqrt(_sq_distances(chunk, self.pivots_, p_sq))
            np.subtract(self.radii_, d, out=out[start:stop])
        return out
