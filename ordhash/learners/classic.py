"""Classic unsupervised hashing baselines: LSH, PCAH, ITQ, SH, AGH and SpH.

Every learner is a :class:`~ordhash.learners.base.BaseHasher`: ``fit`` learns the hash
functions, ``project`` returns real scores whose signs are the bits and ``transform`` packs
them into ``uint8`` rows (the faiss binary layout). The four projection-based learners live
here; :class:`~ordhash.learners.anchor.AGH` (anchor graph hashing) and
:class:`~ordhash.learners.spherical.SpH` (spherical hashing) are defined in their own modules
and re-exported from this one.

References
----------
- LSH: M. Charikar, *Similarity estimation techniques from rounding algorithms*, STOC 2002
  (sign random projections).
- PCAH / ITQ: Y. Gong, S. Lazebnik, *Iterative Quantization: a Procrustean approach to
  learning binary codes*, CVPR 2011.
- SH: Y. Weiss, A. Torralba, R. Fergus, *Spectral Hashing*, NIPS 2008 (reference MATLAB code
  ``trainSH.m`` / ``compressSH.m``).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.linalg import eigh
from sklearn.utils._param_validation import Interval

from .anchor import AGH
from .base import BaseHasher
from .spherical import SpH

__all__ = ["LSH", "PCAH", "ITQ", "SH", "AGH", "SpH"]


# -- shared helpers ------------------------------------------------------------------------
def _top_principal_axes(X, n_components):
    """Mean and the top principal axes of ``X``, largest variance first.

    The axes are the leading eigenvectors of the sample covariance (computed in float64).
    Each axis is oriented so that its largest-magnitude loading is positive, the convention of
    :class:`sklearn.decomposition.PCA`, so the result does not depend on the LAPACK build.

    Returns
    -------
    mean : ndarray of shape (n_features,)
    components : ndarray of shape (n_components, n_features)
    variances : ndarray of shape (n_components,)
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    mean = X.mean(axis=0)
    Xc = X - mean
    cov = Xc.T @ Xc / max(n - 1, 1)
    w, V = eigh(cov, subset_by_index=[d - n_components, d - 1])
    order = np.argsort(w)[::-1]
    w, V = w[order], V[:, order]
    components = V.T
    rows = np.arange(n_components)
    signs = np.sign(components[rows, np.argmax(np.abs(components), axis=1)])
    signs[signs == 0] = 1.0
    components *= signs[:, None]
    return mean, np.ascontiguousarray(components), np.maximum(w, 0.0)


def _check_pca_bits(estimator, n_samples, n_features):
    limit = min(n_samples, n_features)
    if estimator.n_bits > limit:
        raise ValueError(
            f"{type(estimator).__name__} projects onto n_bits principal directions, so n_bits "
            f"must be <= min(n_samples, n_features) = {limit}; got n_bits={estimator.n_bits} "
            f"with n_samples={n_samples}, n_features={n_features}"
        )


def _affine_scores(X, weights, mean):
    """``(X - mean) @ weights`` without materialising ``X - mean``, in ``X``'s dtype."""
    W = weights.astype(X.dtype, copy=False)
    bias = (mean @ weights).astype(X.dtype, copy=False)
    scores = X @ W
    scores -= bias
    return scores


# -- LSH ---------------------------------------------------------------------------------
class LSH(BaseHasher):
    """Sign random projections (hyperplane LSH).

    Bit ``j`` of ``x`` is ``w_j . (x - m) > 0`` where the ``w_j`` are independent standard
    Gaussian vectors and ``m`` is the training mean (``center=True``) or the origin. Without
    centring, hyperplanes through the origin estimate angles (Charikar's SimHash); with
    centring they split the data near its middle, which balances the bits on data that are
    not centred, such as SIFT or pixel intensities.

    Parameters
    ----------
    n_bits : int, default=32
        Code length.
    center : bool, default=True
        Subtract the training mean before projecting.
    random_state : int, RandomState instance or None, default=None
        Seed of the Gaussian hyperplanes.

    Attributes
    ----------
    components_ : ndarray of shape (n_bits, n_features)
        The hyperplane normals.
    mean_ : ndarray of shape (n_features,)
        The training mean (zeros when ``center=False``).
    n_features_in_ : int
        Number of features seen during ``fit``.
    code_size_ : int
        Bytes per packed code.

    See Also
    --------
    PCAH : hyperplanes along the principal directions.
    ITQ : principal directions rotated to reduce quantisation error.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.classic import LSH
    >>> X = np.random.default_rng(0).normal(size=(100, 16))
    >>> lsh = LSH(n_bits=16, random_state=0).fit(X)
    >>> lsh.transform(X[:3]).shape
    (3, 2)
    >>> bool(np.all(lsh.transform(X) == lsh.transform(X)))
    True
    """

    _parameter_constraints: dict = {
        **BaseHasher._parameter_constraints,
        "center": ["boolean"],
    }

    def __init__(self, *, n_bits=32, center=True, random_state=None):
        self.n_bits = n_bits
        self.center = center
        self.random_state = random_state

    def _fit(self, X, random_state):
        d = X.shape[1]
        self.components_ = random_state.standard_normal((self.n_bits, d))
        self.mean_ = X.mean(axis=0, dtype=np.float64) if self.center else np.zeros(d)

    def _project(self, X):
        return _affine_scores(X, self.components_.T, self.mean_)


# -- PCAH --------------------------------------------------------------------------------
class PCAH(BaseHasher):
    """PCA hashing: the signs of the top ``n_bits`` principal components.

    Bit ``j`` of ``x`` is ``v_j . (x - m) > 0`` where ``v_j`` is the ``j``-th principal axis of
    the training data and ``m`` its mean.

    Parameters
    ----------
    n_bits : int, default=32
        Code length; at most ``min(n_samples, n_features)`` of the training data.
    random_state : int, RandomState instance or None, default=None
        Unused (PCAH is deterministic); kept for a uniform learner interface.

    Attributes
    ----------
    components_ : ndarray of shape (n_bits, n_features)
        Principal axes, largest variance first; each axis's largest-magnitude loading is
        positive.
    explained_variance_ : ndarray of shape (n_bits,)
        Variance of the training data along each axis.
    mean_ : ndarray of shape (n_features,)
        Training mean.
    n_features_in_ : int
        Number of features seen during ``fit``.
    code_size_ : int
        Bytes per packed code.

    See Also
    --------
    ITQ : rotates these axes to balance variance across bits.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.classic import PCAH
    >>> X = np.random.default_rng(0).normal(size=(200, 32))
    >>> pcah = PCAH(n_bits=8).fit(X)
    >>> pcah.transform_bits(X[:2]).shape
    (2, 8)
    """

    def _fit(self, X, random_state):
        _check_pca_bits(self, *X.shape)
        self.mean_, self.components_, self.explained_variance_ = _top_principal_axes(
            X, self.n_bits
        )

    def _project(self, X):
        return _affine_scores(X, self.components_.T, self.mean_)


# -- ITQ ---------------------------------------------------------------------------------
class ITQ(BaseHasher):
    """Iterative Quantization (Gong & Lazebnik, CVPR 2011).

    The data are centred and projected onto their top ``n_bits`` principal axes, ``V``; an
    orthogonal rotation ``R`` then minimises the quantisation loss ``||B - V R||_F^2`` over
    ``B in {-1, +1}`` by alternating ``B = sign(V R)`` with the orthogonal Procrustes solution
    ``R = S_hat S^T`` where ``S Omega S_hat^T`` is the SVD of ``B^T V``. The rotation starts
    from the left singular vectors of a standard Gaussian matrix, as in the authors' code.
    Each of the ``n_iter`` iterations makes one ``B`` update and one ``R`` update (the
    reference MATLAB loop ``for iter = 0:n_iter`` runs one more).

    Parameters
    ----------
    n_bits : int, default=32
        Code length; at most ``min(n_samples, n_features)``.
    n_iter : int, default=50
        Number of alternations.
    random_state : int, RandomState instance or None, default=None
        Seed of the initial rotation.

    Attributes
    ----------
    components_ : ndarray of shape (n_bits, n_features)
        Principal axes (before rotation).
    rotation_ : ndarray of shape (n_bits, n_bits)
        The learned orthogonal rotation ``R``; the code of ``x`` is
        ``sign((x - mean_) @ components_.T @ rotation_)``.
    mean_ : ndarray of shape (n_features,)
        Training mean.
    quantization_loss_ : ndarray of shape (n_iter,)
        ``||B - V R||_F^2 / n_samples`` after each iteration's rotation update
        (non-increasing).
    n_features_in_ : int
        Number of features seen during ``fit``.
    code_size_ : int
        Bytes per packed code.

    Notes
    -----
    faiss's ``ITQTransform`` additionally L2-normalises the centred training vectors before
    PCA; this class follows the paper and the authors' code, which do not.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.classic import ITQ
    >>> X = np.random.default_rng(0).normal(size=(300, 32))
    >>> itq = ITQ(n_bits=16, random_state=0).fit(X)
    >>> bool(np.allclose(itq.rotation_ @ itq.rotation_.T, np.eye(16)))
    True
    >>> bool(np.all(np.diff(itq.quantization_loss_) <= 1e-9))
    True
    """

    _parameter_constraints: dict = {
        **BaseHasher._parameter_constraints,
        "n_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, n_bits=32, n_iter=50, random_state=None):
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.random_state = random_state

    def _fit(self, X, random_state):
        n = X.shape[0]
        _check_pca_bits(self, *X.shape)
        self.mean_, self.components_, _ = _top_principal_axes(X, self.n_bits)
        V = (X - self.mean_) @ self.components_.T
        R, _, _ = np.linalg.svd(random_state.standard_normal((self.n_bits, self.n_bits)))
        # ||B - V R||^2 = ||B||^2 + ||V||^2 - 2 <V^T B, R> for orthogonal R.
        const = self.n_bits * n + np.sum(V * V)
        losses = np.empty(self.n_iter)
        for it in range(self.n_iter):
            B = np.where(V @ R >= 0, 1.0, -1.0)
            VtB = V.T @ B
            U, _, Wt = np.linalg.svd(VtB)  # V^T B = U S W^T  ->  R = U W^T
            R = U @ Wt
            losses[it] = (const - 2.0 * np.sum(VtB * R)) / n
        self.rotation_ = R
        self.quantization_loss_ = losses

    def _project(self, X):
        return _affine_scores(X, self.components_.T @ self.rotation_, self.mean_)


# -- SH ----------------------------------------------------------------------------------
class SH(BaseHasher):
    """Spectral Hashing (Weiss, Torralba & Fergus, NIPS 2008).

    A faithful port of the authors' ``trainSH.m`` / ``compressSH.m``:

    1. PCA to ``n_pca = min(n_bits, n_features)`` directions (covariance eigenvectors); the
       data are projected without centring, as in the reference code.
    2. A uniform distribution is fitted to each direction: ``mn = min - eps``,
       ``mx = max + eps`` with ``eps = 2**-52`` (MATLAB's ``eps``).
    3. For direction ``i`` of range ``R_i = mx_i - mn_i`` the candidate modes are
       ``k = 1 .. maxMode_i - 1`` with ``maxMode_i = ceil((n_bits + 1) R_i / max(R))``; the
       analytical eigenvalue of mode ``(i, k)`` is ``(k pi / R_i)^2``. The ``n_bits`` modes with
       the smallest eigenvalues (the trivial all-zero mode excluded; ties kept in the
       reference's stable order) become the bits.
    4. The code of ``x`` is ``sin(pi/2 + k pi / R_i * (x_i - mn_i)) > 0`` where ``x_i`` is the
       projection of ``x`` on direction ``i``. (The reference multiplies ``sin(pi/2 + 0)``
       factors over the other directions, which are exactly 1.)

    Parameters
    ----------
    n_bits : int, default=32
        Code length.
    random_state : int, RandomState instance or None, default=None
        Unused (SH is deterministic); kept for a uniform learner interface.

    Attributes
    ----------
    components_ : ndarray of shape (n_pca, n_features)
        PCA directions, largest variance first.
    min_, max_ : ndarray of shape (n_pca,)
        Range ``[mn, mx]`` of the training projections, widened by ``eps``.
    modes_ : ndarray of shape (n_bits, n_pca), dtype int64
        Mode matrix of the reference code: row ``j`` holds the frequency index ``k`` of bit
        ``j`` in the column of its direction and zeros elsewhere.
    eigenvalues_ : ndarray of shape (n_bits,)
        Analytical eigenvalue ``(k pi / R_i)^2`` of each selected mode, ascending.
    n_features_in_ : int
        Number of features seen during ``fit``.
    code_size_ : int
        Bytes per packed code.

    Notes
    -----
    A direction with zero range (constant projections) contributes no modes; ``fit`` fails
    only when every direction is constant.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.classic import SH
    >>> X = np.random.default_rng(0).normal(size=(200, 16))
    >>> sh = SH(n_bits=24).fit(X)
    >>> sh.modes_.shape, sh.transform(X[:5]).shape
    ((24, 16), (5, 3))
    """

    def _fit(self, X, random_state):
        d = X.shape[1]
        n_pca = min(self.n_bits, d)
        _, pc, _ = _top_principal_axes(X, n_pca)
        P = np.asarray(X, dtype=np.float64) @ pc.T
        eps = np.finfo(np.float64).eps
        mn = P.min(axis=0) - eps
        mx = P.max(axis=0) + eps
        R = mx - mn
        if not np.any(R > 0):
            raise ValueError(
                "X has zero spread along every principal direction, so Spectral Hashing "
                "has no eigenfunction to threshold"
            )
        max_mode = np.ceil((self.n_bits + 1) * R / R.max()).astype(np.int64)
        # Non-trivial modes of every direction, in the reference's row order
        # (direction 1's k = 1..maxMode-1, then direction 2's, ...).
        dims = np.repeat(np.arange(n_pca), np.maximum(max_mode - 1, 0))
        ks = np.concatenate([np.arange(1, m) for m in max_mode]).astype(np.int64)
        omega0 = np.pi / np.where(R > 0, R, 1.0)
        eig = (ks * omega0[dims]) ** 2  # as the reference computes it, so ties sort alike
        order = np.argsort(eig, kind="stable")[: self.n_bits]
        if order.size < self.n_bits:
            raise ValueError(
                f"SH found only {order.size} eigenfunctions for n_bits={self.n_bits}"
            )
        modes = np.zeros((self.n_bits, n_pca), dtype=np.int64)
        modes[np.arange(self.n_bits), dims[order]] = ks[order]
        self.components_ = pc
        self.min_ = mn
        self.max_ = mx
        self.modes_ = modes
        self.eigenvalues_ = eig[order]

    def _project(self, X):
        dims = np.argmax(self.modes_, axis=1)
        k = self.modes_[np.arange(self.modes_.shape[0]), dims]
        omega = k * (np.pi / (self.max_ - self.min_))[dims]
        # theta = omega (x . c - mn) = x . (omega c) - omega mn: one product in X's dtype,
        # then the phase in float64.
        weights = (self.components_[dims] * omega[:, None]).T
        P = (X @ weights.astype(X.dtype)).astype(np.float64, copy=False)
        P += np.pi / 2 - omega * self.min_[dims]
        return np.sin(P, out=P)
