"""OCH: Ordinal Constraint Hashing (Liu, Ji, Wu, Huang, AAAI 2017; Liu, Ji, Wang, Shen,
TPAMI 2019).

Two variants (``spec-ordinal-hashing.md`` sections 5 and 7.3):

- ``variant="intended"`` (default): the reconstructed algorithm [R] — sorted pivot triplets
  on K-means landmarks, optimised on the Stiefel manifold with a normalised Riemannian step
  and a polar (or Cayley) retraction [D];
- ``variant="released"``: a step-by-step port of the authors' public ``trainOCH.m``
  (github.com/Lyn-L/OCH, HEAD 32a9f94): fixed pivot ids, ``beta = 0``, an Armijo search on the
  discrete Laplacian cut ``f_och`` and the 11-stall stop [C], with the documented deviations
  of spec section 7.6.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils._param_validation import StrOptions

from .._kernels import ordinal as _ok
from .ordinal import (
    TripletObjective,
    code_regularizer,
    convergence_update,
    polar_truncated,
    stiefel_step,
)
from .ordinal_base import OrdinalHasherBase, data_objective

__all__ = ["OCH", "train_och", "train_och_released", "f_och"]


def train_och(Y, omega, W, *, n_neighbors=10, beta=0.0, learning_rate=0.05,
              retraction="polar", triplets="pivots", n_epochs=3, batch_size=1, shuffle=True,
              balance=0.0, decorrelation=0.0, max_pairs_per_anchor=None, tol=None,
              n_iter_no_change=5, rng=None, verbose=0):
    """Train the intended OCH projection on the Stiefel manifold (spec sections 5.2-5.3).

    Each epoch visits the anchors in a random order (``shuffle``) in batches; the summed
    per-anchor triplet gradients (averaged over the batch, plus the optional code
    regulariser) give the Euclidean gradient ``G``; the step is
    ``W <- retract(W - learning_rate * R / ||R||_F)`` with ``R = G - W G^T W``.

    Parameters
    ----------
    Y : ndarray (L, d')
    omega : ndarray (L, L)
    W : ndarray (d', r)
        Initial point with orthonormal columns (``d' >= r``).

    Returns
    -------
    W : ndarray (d', r)
    loss_curve : list of float
        Mean per-anchor loss of each epoch.
    n_steps : int

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import ordinal_matrix, polar
    >>> from ordhash.learners.och import train_och
    >>> rng = np.random.RandomState(0)
    >>> C = rng.normal(size=(30, 6))
    >>> W, curve, steps = train_och(C[:, :4], ordinal_matrix(C), polar(rng.normal(size=(4, 4))),
    ...                             n_epochs=2, rng=rng)
    >>> bool(np.allclose(W.T @ W, np.eye(4))), steps
    (True, 60)
    """
    rng = np.random.RandomState(0) if rng is None else rng
    objective = TripletObjective(Y, omega, rule=triplets, n_neighbors=n_neighbors, beta=beta,
                                 average=False, max_pairs_per_anchor=max_pairs_per_anchor)
    return _run_stiefel_epochs(
        objective, np.array(W, dtype=np.float64), n_epochs=n_epochs, batch_size=batch_size,
        learning_rate=learning_rate, retraction=retraction, shuffle=shuffle, balance=balance,
        decorrelation=decorrelation, tol=tol, n_iter_no_change=n_iter_no_change, rng=rng,
        verbose=verbose)


def _run_stiefel_epochs(objective, W, *, n_epochs, batch_size, learning_rate, retraction,
                        shuffle, balance, decorrelation, tol, n_iter_no_change, rng, verbose=0):
    """Riemannian SGD over the anchors of ``objective`` (landmark or data triplets)."""
    L = objective.n_anchors
    loss_curve = []
    steps = 0
    best = np.inf
    stale = 0
    if L < 1:
        return W, loss_curve, steps
    step = L if batch_size is None else int(batch_size)
    for epoch in range(n_epochs):
        anchors = rng.permutation(L) if shuffle else np.arange(L)
        total = 0.0
        for start in range(0, L, step):
            batch = anchors[start:start + step]
            G, loss, _ = objective.gradient(W, batch, rng)
            G /= batch.shape[0]
            if balance or decorrelation:
                Yr = objective.reg_rows
                G += code_regularizer(Yr, np.tanh(Yr @ W), balance, decorrelation)[1]
            W, _ = stiefel_step(W, G, learning_rate, retraction)
            total += float(loss.sum())
            steps += 1
        loss_curve.append(total / L)
        if verbose:
            print(f"[OCH] epoch {epoch + 1}: loss {loss_curve[-1]:.6f}")
        if tol is not None:
            stale, best, stop = convergence_update(loss_curve[-1], best, stale, tol,
                                                   n_iter_no_change)
            if stop:
                break
    return W, loss_curve, steps


def f_och(W, Y, laplacian):
    """The released ``f_och.m`` [C]: ``0.5 tr(B^T (D - S) B)`` with ``B = sign(Y W)``
    (``sign(0) = 0``), a discrete Laplacian cut of the landmark codes.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.och import f_och
    >>> S = np.array([[0.0, 1.0], [1.0, 0.0]]); Lap = np.diag(S.sum(0)) - S
    >>> f_och(np.eye(2), np.array([[1.0, 1.0], [1.0, -1.0]]), Lap)
    2.0
    """
    B = np.sign(Y @ W)
    return 0.5 * float(np.sum(B * (laplacian @ B)))


def train_och_released(Y, S, W, *, n_neighbors=10, max_iter=300, verbose=0):
    """The training loop of the released ``trainOCH.m`` (spec section 7.3) [C].

    ``W`` is the raw ``randn`` draw; it is first projected to the Stiefel manifold when
    ``||W^T W - I||_F > 1e-4`` (by the truncated polar factor of ``project_stiefel``). Each
    iteration ``it`` uses anchor ``q = it mod L``, the fixed pivot ids ``1 .. k-1`` of
    :func:`ordhash._kernels.ordinal.released_och_pairs`, ``beta = 0``, the direction
    ``Z = -(G - W G^T W)``, the Armijo search on :func:`f_och` (start ``1e-3``, doubling, then
    halving down to ``1e-8`` and then 0) and stops after more than 10 consecutive steps
    with ``||W - W_prev||_2 < 1e-6``.

    Documented deviations (spec section 7.6): an iteration with ``ip < 1e-8`` counts as a
    non-moving iteration (MATLAB never increments its counter and hangs); and if the step has
    already been cut to 0 but ``f_och`` of the re-projected ``W`` is still worse than ``fQ``
    (MATLAB would loop forever), the search stops at 0.

    Returns
    -------
    W : ndarray (d', r)
    loss_curve : list of float
        Relaxed triplet loss (sum over active triplets) of every iteration.
    n_steps : int
        Iterations run (MATLAB ``iter``).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal import affinity
    >>> from ordhash.learners.och import train_och_released
    >>> rng = np.random.RandomState(0)
    >>> C = rng.normal(size=(25, 6))
    >>> W, curve, steps = train_och_released(C[:, :5], affinity(C), rng.normal(size=(5, 3)),
    ...                                      max_iter=20)
    >>> bool(np.allclose(W.T @ W, np.eye(3)))
    True
    """
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    S = np.ascontiguousarray(S, dtype=np.float64)
    W = np.array(W, dtype=np.float64)
    L, dim = Y.shape
    r = W.shape[1]
    if np.linalg.norm(W.T @ W - np.eye(r)) > 1e-4:
        W = polar_truncated(W)
    laplacian = np.diag(S.sum(axis=0)) - S
    loss_curve = []
    it = 0
    stall = 0
    while it < max_iter:
        q = it % L
        W_prev = W
        H = np.tanh(Y @ W)
        near, far = _ok.released_och_pairs(S, q, int(n_neighbors))
        anchors = np.array([q], dtype=np.int64)
        ptr = np.array([0, near.shape[0]], dtype=np.int64)
        T = H[anchors] @ H.T
        C, loss, _ = _ok.listed_pair_coefficients(T, ptr, near, far, 0.0, False)
        G = _ok.assemble_gradient(Y, H, anchors, C)
        loss_curve.append(float(loss[0]))
        Z = -(G - W @ (G.T @ W))
        WtZ = W.T @ Z
        ip = float(np.sum(Z * Z) - 0.5 * np.sum(WtZ * WtZ))
        fQ = f_och(W, Y, laplacian)
        if ip < 1e-8:
            it += 1
            stall += 1
            if stall > 10:
                break
            continue
        gam = 1e-3
        while fQ - f_och(polar_truncated(W + 2.0 * gam * Z), Y, laplacian) >= gam * ip:
            gam *= 2.0
        while fQ - f_och(polar_truncated(W + gam * Z), Y, laplacian) < 0.5 * gam * ip:
            if gam == 0.0:
                break
            gam *= 0.5
            if gam < 1e-8:
                gam = 0.0
        W = polar_truncated(W + gam * Z)
        it += 1
        stall = stall + 1 if np.linalg.norm(W - W_prev, 2) < 1e-6 else 0
        if verbose and it % 10 == 0:
            print(f"[OCH released] iter {it}: step {gam:.3g}, loss {loss_curve[-1]:.6f}")
        if stall > 10:
            break
    return W, loss_curve, it


class OCH(OrdinalHasherBase):
    """Ordinal Constraint Hashing (OCH; AAAI 2017, TPAMI 2019).

    Learns ``code(x) = 1[(x - mean_) @ components_ @ projection_ > 0]`` with ``projection_``
    on the Stiefel manifold (orthonormal columns), so that for every anchor landmark the
    ranking of the other landmarks (by the locally scaled affinity of the released code) is
    kept by the relaxed code similarities.

    What comes from where (see ``spec-ordinal-hashing.md``): the tensor-product ordinal graph
    and its ordinal constraint projection onto landmarks are known only from the abstracts,
    so the objective (OCH-1) is **reconstructed** [R] from them and from the released MATLAB
    code, which provides the landmark pipeline, the affinity, the triplet loss and the
    polar projection [C]. The sorted-pivot triplet rule, the normalised fixed Riemannian step
    (instead of the released line search on a different objective) and the options beyond
    the paper are ordhash decisions [D]. ``variant="released"`` reproduces ``trainOCH.m``
    literally (defects H1-H7 of spec section 7.4; ``pca_dim`` 20 as in the demo).

    Two sources of triplets (``triplet_source``) share the loss, the relaxation and the
    Stiefel step: ``"landmarks"`` is the paper's ordinal constraint projection onto K-means
    landmarks; ``"data"`` [D] samples the triplets from the training rows themselves (anchor
    rows, near items among their exact nearest rows, far items drawn uniformly;
    :mod:`ordhash.learners.ordinal_data`).

    Parameters
    ----------
    n_bits : int, default=32
        Code length ``r``. The intended variant requires ``n_bits <= n_features`` and
        ``pca_dim >= n_bits`` (``W^T W = I`` is impossible otherwise); use
        :class:`~ordhash.learners.oeh.OEH` for longer codes.
    n_landmarks : int, default=300
        Requested number of K-means landmarks (``triplet_source="landmarks"``).
    n_neighbors : int, default=10
        ``k``: the k-1 pivots per anchor (released: the fixed ids ``1 .. k-1``).
    beta : float, default=0.0
        Margin (the released code hard-codes 0 and rejects any other value).
    learning_rate : float or None, default=None
        Riemannian step length ``eta`` (``None``: 0.02 with data triplets, 0.05 with
        landmark triplets). Not used by the released variant (Armijo search).
    retraction : {"polar", "cayley"}, default="polar"
    pca_dim : int or None, default=None
        ``d'`` (``None``: ``n_bits`` for the intended variant, ``min(20, n_features)`` for
        the released one, as its demo).
    triplets : {"knn", "pivots", "all", "random_pivots"} or None, default=None
        Landmark triplet rule (``None``: ``"pivots"``).
    n_epochs : int or None, default=None
        Passes over the anchors (``None``: 6 with data triplets, 8 with landmark triplets;
        released: 1, i.e. ``maxIter = L``).
    batch_size : int or None, default=None
        Anchors per step (``None``: 32 with data triplets, all landmarks with landmark
        triplets; released: 1, which it requires) [D].
    kmeans_iter : int or None, default=None
        Lloyd iterations of the landmark K-means (``None``: 10, as released).
    landmark_method : {"kmeans", "random"}, default="kmeans"
    ordinal_source : {"log_affinity", "affinity", "euclidean"} or None, default=None
        (``None``: ``"log_affinity"``; released: the raw affinity.)
    triplet_source : {"data", "landmarks"} or None, default=None
        (``None``: ``"data"``; released: ``"landmarks"``) [D].
    n_anchors : int, default=2000
        Data triplets: size of the random pool of anchor rows [D].
    near_fraction : float, default=0.02
        Data triplets: near items are among the ``near_fraction * n_samples`` exact nearest
        training rows of the anchor [D].
    sharpness : float or None, default=None
        Root-mean-square projected coordinate after ``input_scale="auto"`` (``None``: 3.0
        with data triplets, 1.0 with landmark triplets) [D].
    input_scale : "auto", float or None, default=None
        (``None``: ``"auto"`` intended, ``1.0`` released.)
    init : {"random", "pca", "itq"} or None, default=None
        Initial ``W``: the polar factor of a ``N(0, 1)`` matrix, the identity (PCA hashing)
        or the ITQ rotation of the top-``n_bits`` PCA coordinates [D] (``None``: ``"itq"``
        intended, ``"random"`` released).
    shuffle : bool or None, default=None
        (``None``: ``True`` intended, ``False`` (cyclic) released.)
    balance, decorrelation : float, default=0.0
    max_pairs_per_anchor : int or None, default=None
        As in :class:`~ordhash.learners.oeh.OEH`.
    far_sampling : {"batch", "anchor"}, default="batch"
        As in :class:`~ordhash.learners.oeh.OEH`.
    tol : float or None, default=None
    n_iter_no_change : int, default=5
    variant : {"intended", "released"}, default="intended"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    mean_, components_, projection_, landmarks_, n_landmarks_, loss_curve_, n_iter_,
    input_scale_, saturation_, code_size_
        As in :class:`~ordhash.learners.oeh.OEH`; ``loss_curve_`` holds the per-iteration
        loss for the released variant.

    Notes
    -----
    Measured on digits, SIFT10k and MNIST (top-2% Euclidean ground truth; ``docs/ordinal.md``):
    the spec §5.3 recipe (``triplet_source="landmarks", init="random", batch_size=1,
    n_epochs=3``) stays 5-8 mAP points below ITQ; from the ITQ rotation, landmark triplets
    keep ITQ's accuracy but do not add to it. The intended defaults (ITQ warm start, then
    data triplets with a sharper relaxation) are what improved on ITQ there.

    See Also
    --------
    ordhash.learners.oeh.OEH

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.och import OCH
    >>> X = np.random.default_rng(0).normal(size=(500, 16))
    >>> och = OCH(n_bits=8, n_landmarks=50, random_state=0).fit(X)
    >>> W = och.projection_
    >>> bool(np.allclose(W.T @ W, np.eye(8)))
    True
    """

    _parameter_constraints: dict = {
        **OrdinalHasherBase._parameter_constraints,
        "retraction": [StrOptions({"polar", "cayley"})],
    }

    _variant_defaults = {
        "data": {"triplets": "pivots", "n_epochs": 6, "ordinal_source": "log_affinity",
                 "input_scale": "auto", "sharpness": 3.0, "init": "itq", "shuffle": True,
                 "learning_rate": 0.02, "batch_size": 32, "kmeans_iter": 10},
        "landmarks": {"triplets": "pivots", "n_epochs": 8, "ordinal_source": "log_affinity",
                      "input_scale": "auto", "sharpness": 1.0, "init": "itq", "shuffle": True,
                      "learning_rate": 0.05, "batch_size": None, "kmeans_iter": 10},
        "released": {"triplets": "pivots", "n_epochs": 1, "ordinal_source": "affinity",
                     "input_scale": 1.0, "init": "random", "shuffle": False,
                     "learning_rate": None, "batch_size": 1, "kmeans_iter": 10},
    }
    _released_fixed = {"beta": 0.0, "triplets": "pivots", "ordinal_source": "affinity",
                       "input_scale": 1.0, "init": "random", "shuffle": False,
                       "learning_rate": "Armijo search", "batch_size": 1,
                       "triplet_source": "landmarks"}

    def __init__(self, *, n_bits=32, n_landmarks=300, n_neighbors=10, beta=0.0,
                 learning_rate=None, retraction="polar", pca_dim=None, triplets=None,
                 n_epochs=None, batch_size=None, kmeans_iter=None, landmark_method="kmeans",
                 ordinal_source=None, triplet_source=None, n_anchors=2000, near_fraction=0.02,
                 sharpness=None, input_scale=None, init=None, shuffle=None, balance=0.0,
                 decorrelation=0.0, max_pairs_per_anchor=None, far_sampling="batch", tol=None,
                 n_iter_no_change=5, variant="intended", random_state=None, verbose=0):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.n_landmarks = n_landmarks
        self.n_neighbors = n_neighbors
        self.beta = beta
        self.learning_rate = learning_rate
        self.retraction = retraction
        self.pca_dim = pca_dim
        self.triplets = triplets
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.kmeans_iter = kmeans_iter
        self.landmark_method = landmark_method
        self.ordinal_source = ordinal_source
        self.triplet_source = triplet_source
        self.n_anchors = n_anchors
        self.near_fraction = near_fraction
        self.sharpness = sharpness
        self.input_scale = input_scale
        self.init = init
        self.shuffle = shuffle
        self.balance = balance
        self.decorrelation = decorrelation
        self.max_pairs_per_anchor = max_pairs_per_anchor
        self.far_sampling = far_sampling
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.variant = variant
        self.verbose = verbose

    def _extra_intended_only(self):
        return {"retraction": "polar", "landmark_method": "kmeans"}

    def _resolve_pca_dim(self, n_features):
        r = self.n_bits
        dim = self.pca_dim
        if dim is not None and dim > n_features:
            raise ValueError(
                f"pca_dim={dim} exceeds n_features = {n_features}; PCA cannot keep more "
                "dimensions than the input has"
            )
        if self.variant == "released":
            return dim if dim is not None else min(20, n_features)
        if r > n_features:
            raise ValueError(
                f"n_bits={r} exceeds n_features = {n_features}: OCH keeps W^T W = I on the "
                "Stiefel manifold, which needs n_bits <= n_features; use fewer bits or OEH "
                "(soft orthogonality)"
            )
        if dim is None:
            return r
        if dim < r:
            raise ValueError(
                f"pca_dim={dim} is smaller than n_bits={r}: the intended OCH needs "
                "pca_dim >= n_bits so that W^T W = I is possible (variant='released' allows "
                "it, as the authors' demo with pca_dim=20)"
            )
        return dim

    def _train(self, prep, rng):
        dprime = prep.P.shape[1]
        r = self.n_bits
        if self.variant == "released":
            W0 = rng.standard_normal((dprime, r))
            max_iter = self._param("n_epochs") * prep.Y.shape[0]
            return train_och_released(prep.Y, prep.omega, W0, n_neighbors=self.n_neighbors,
                                      max_iter=max_iter, verbose=self.verbose)
        W0 = self._warm_start(prep, rng, dprime, r)
        common = dict(n_epochs=self._param("n_epochs"), batch_size=self._param("batch_size"),
                      learning_rate=self._param("learning_rate"), retraction=self.retraction,
                      shuffle=self._param("shuffle"), balance=self.balance,
                      decorrelation=self.decorrelation, tol=self.tol,
                      n_iter_no_change=self.n_iter_no_change, rng=rng, verbose=self.verbose)
        if self._source() == "data":
            objective = data_objective(prep, self.beta, False, self.max_pairs_per_anchor,
                                       self.far_sampling)
        else:
            objective = TripletObjective(prep.Y, prep.omega, rule=self._param("triplets"),
                                         n_neighbors=self.n_neighbors, beta=self.beta,
                                         average=False,
                                         max_pairs_per_anchor=self.max_pairs_per_anchor)
        return _run_stiefel_epochs(objective, W0, **common)
