"""One-layer Anchor Graph Hashing (Liu, Wang, Kumar & Chang, ICML 2011)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.utils._param_validation import Interval, StrOptions

from .._kernels import classic as _ck
from .base import BaseHasher

__all__ = ["AGH"]

# Rows of the (n, n_anchors) distance matrix computed at once when encoding.
_CHUNK_ROWS = 8192
# The reference code keeps eigenvalues in (0, 1 - 1e-3): 1 is the trivial eigenvalue of the
# normalised anchor graph (one per connected component). Eigenvalues below this relative
# floor are numerical zeros; their eigenvectors carry no graph information.
_TRIVIAL_GAP = 1e-3
_ZERO_EIG = 1e-10


def _sq_anchor_distances(X, anchors, anchor_sq_norms):
    """Squared Euclidean distances (float64) from the rows of ``X`` to the anchors, >= 0."""
    X = np.asarray(X, dtype=np.float64)
    d2 = X @ anchors.T
    d2 *= -2.0
    d2 += anchor_sq_norms
    d2 += np.einsum("ij,ij->i", X, X)[:, None]
    return np.maximum(d2, 0.0, out=d2)


class AGH(BaseHasher):
    """One-layer Anchor Graph Hashing (Liu, Wang, Kumar & Chang, *Hashing with Graphs*, ICML 2011).

    Training, as in the authors' ``OneLayerAGH_Train.m``:

    1. ``n_anchors`` anchors are k-means centres of the training data.
    2. Each point ``x`` is linked to its ``s`` nearest anchors with weights
       ``exp(-||x - u_j||^2 / sigma^2)``, normalised to sum to one: the truncated similarity
       row ``Z(x)``. By default ``sigma`` is the mean distance to the ``s``-th nearest anchor.
    3. With ``Lambda = diag(Z^T 1)`` and ``M = Lambda^{-1/2} Z^T Z Lambda^{-1/2}``, the
       eigenvectors ``V`` of ``M`` with the ``n_bits`` largest eigenvalues ``Sigma`` strictly
       inside ``(0, 1 - 1e-3)`` are kept (this drops the trivial eigenvalue 1, i.e. the
       second to ``n_bits + 1``-th eigenvectors of a connected graph).
    4. ``W = sqrt(n) Lambda^{-1/2} V Sigma^{-1/2}``; the code of any ``x`` (training or new)
       is ``sign(Z(x) W)``.

    Parameters
    ----------
    n_bits : int, default=32
        Code length; must be smaller than ``n_anchors``.
    n_anchors : int, default=300
        Number of anchors; at most ``n_samples``.
    s : int, default=3
        Number of nearest anchors linked to each point; at most ``n_anchors``.
    sigma : float or "auto", default="auto"
        Width of the Gaussian kernel ``exp(-d^2 / sigma^2)``. ``"auto"`` uses the mean
        distance from the training points to their ``s``-th nearest anchor.
    kmeans : {"lloyd", "minibatch"}, default="lloyd"
        Anchor clustering: :class:`sklearn.cluster.KMeans` or
        :class:`sklearn.cluster.MiniBatchKMeans` (faster on large training sets).
    kmeans_iter : int, default=5
        Iterations (epochs for ``"minibatch"``) of k-means; 5 is the setting of Deng Cai's
        ``AGH1_learn.m`` (``litekmeans(..., 'MaxIter', 5)``).
    random_state : int, RandomState instance or None, default=None
        Seed of the k-means initialisation.

    Attributes
    ----------
    anchors_ : ndarray of shape (n_anchors, n_features)
        The anchors.
    sigma_ : float
        Kernel width used.
    projection_ : ndarray of shape (n_anchors, n_bits)
        ``W``; rows of anchors that no training point links to are zero.
    eigenvalues_ : ndarray of shape (n_bits,)
        Eigenvalues ``Sigma`` of the selected eigenvectors, descending.
    n_features_in_ : int
        Number of features seen during ``fit``.
    code_size_ : int
        Bytes per packed code.

    Notes
    -----
    An anchor with ``Lambda_jj = 0`` (no training point among whose ``s`` nearest anchors it
    is, e.g. a duplicate k-means centre) gets ``Lambda_jj^{-1/2} = 0`` instead of the
    reference's division by zero. Eigenvalues below ``1e-10`` times the largest count as
    zero (the reference keeps any positive one; such eigenvectors are rounding noise). A
    graph with several connected components has eigenvalue 1 once per component, all of them
    dropped. ``fit`` raises ``ValueError`` when fewer than ``n_bits`` eigenvectors remain.
    The Gaussian weights are computed as ``exp(-(d^2 - d_min^2) / sigma^2)`` before
    normalisation, which is equal to the reference's and cannot underflow to ``0 / 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.classic import AGH
    >>> X = np.random.default_rng(0).normal(size=(500, 8))
    >>> agh = AGH(n_bits=16, n_anchors=50, random_state=0).fit(X)
    >>> agh.transform(X[:4]).shape
    (4, 2)
    >>> agh.projection_.shape
    (50, 16)
    """

    _parameter_constraints: dict = {
        **BaseHasher._parameter_constraints,
        "n_anchors": [Interval(Integral, 2, None, closed="left")],
        "s": [Interval(Integral, 1, None, closed="left")],
        "sigma": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "kmeans": [StrOptions({"lloyd", "minibatch"})],
        "kmeans_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        n_bits=32,
        n_anchors=300,
        s=3,
        sigma="auto",
        kmeans="lloyd",
        kmeans_iter=5,
        random_state=None,
    ):
        self.n_bits = n_bits
        self.n_anchors = n_anchors
        self.s = s
        self.sigma = sigma
        self.kmeans = kmeans
        self.kmeans_iter = kmeans_iter
        self.random_state = random_state

    def _check_sizes(self, n_samples):
        if self.n_bits >= self.n_anchors:
            raise ValueError(
                f"AGH needs n_bits < n_anchors (the anchor graph has n_anchors - 1 non-trivial "
                f"eigenvectors); got n_bits={self.n_bits}, n_anchors={self.n_anchors}"
            )
        if self.n_anchors > n_samples:
            raise ValueError(
                f"AGH needs n_anchors <= n_samples to find the anchors by k-means; got "
                f"n_anchors={self.n_anchors} with n_samples={n_samples}"
            )
        if self.s > self.n_anchors:
            raise ValueError(
                f"s must be <= n_anchors; got s={self.s}, n_anchors={self.n_anchors}"
            )

    def _fit(self, X, random_state):
        n = X.shape[0]
        self._check_sizes(n)
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        if self.kmeans == "lloyd":
            km = KMeans(self.n_anchors, n_init=1, max_iter=self.kmeans_iter, random_state=seed)
        else:
            km = MiniBatchKMeans(
                self.n_anchors, n_init=1, max_iter=self.kmeans_iter, random_state=seed
            )
        Xd = np.asarray(X, dtype=np.float64)
        anchors = np.ascontiguousarray(km.fit(Xd).cluster_centers_, dtype=np.float64)
        a_sq = np.einsum("ij,ij->i", anchors, anchors)
        idx = np.empty((n, self.s), dtype=np.int64)
        d2 = np.empty((n, self.s))
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n)
            idx[start:stop], d2[start:stop] = _ck.smallest_k(
                _sq_anchor_distances(Xd[start:stop], anchors, a_sq), self.s
            )
        if self.sigma == "auto":
            sigma = float(np.mean(np.sqrt(d2[:, -1])))
            if not sigma > 0:
                raise ValueError(
                    "sigma='auto' is 0: every training point coincides with its s nearest "
                    "anchors; pass a positive sigma or use more distinct training points"
                )
        else:
            sigma = float(self.sigma)
        # Row-normalised Gaussian weights; the shift by the row minimum cancels in the
        # normalisation and keeps far-away rows from underflowing to 0 / 0.
        w = np.exp(-(d2 - d2[:, :1]) / sigma**2)
        w /= w.sum(axis=1, keepdims=True)
        Z = sparse.csr_matrix(
            (w.ravel(), idx.ravel(), np.arange(0, n * self.s + 1, self.s)),
            shape=(n, self.n_anchors),
        )
        lam = np.asarray(Z.sum(axis=0)).ravel()
        inv_sqrt = np.zeros_like(lam)
        inv_sqrt[lam > 0] = lam[lam > 0] ** -0.5
        ZtZ = (Z.T @ Z).toarray()
        M = inv_sqrt[:, None] * ZtZ * inv_sqrt[None, :]
        M = (M + M.T) / 2
        evals, evecs = np.linalg.eigh(M)
        order = np.argsort(evals)[::-1]
        evals, evecs = evals[order], evecs[:, order]
        keep = (evals > _ZERO_EIG * max(evals[0], 1.0)) & (evals < 1.0 - _TRIVIAL_GAP)
        if keep.sum() < self.n_bits:
            raise ValueError(
                f"the anchor graph has only {int(keep.sum())} usable eigenvectors (eigenvalues "
                f"in (0, 1 - {_TRIVIAL_GAP})) but n_bits={self.n_bits}; lower n_bits, or raise "
                f"n_anchors or s"
            )
        evals, V = evals[keep][: self.n_bits], evecs[:, keep][:, : self.n_bits]
        signs = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(self.n_bits)])
        V = V * np.where(signs == 0, 1.0, signs)
        self.anchors_ = anchors
        self.sigma_ = sigma
        self.projection_ = np.sqrt(n) * inv_sqrt[:, None] * V / np.sqrt(evals)[None, :]
        self.eigenvalues_ = evals

    def _project(self, X):
        n = X.shape[0]
        a_sq = np.einsum("ij,ij->i", self.anchors_, self.anchors_)
        W = np.ascontiguousarray(self.projection_, dtype=np.float64)
        inv_sigma2 = 1.0 / self.sigma_**2
        out = np.empty((n, W.shape[1]))
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n)
            d2 = _sq_anchor_distances(X[start:stop], self.anchors_, a_sq)
            out[start:stop] = _ck.anchor_embedding(d2, self.s, inv_sigma2, W)
        return out
