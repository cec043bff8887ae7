"""Common estimator plumbing of :class:`~ordhash.learners.oeh.OEH` and
:class:`~ordhash.learners.och.OCH`: parameter resolution per variant, input checks, the shared
preprocessing pipeline of spec section 2 (centre, PCA, landmarks, ordinal matrix, projected
landmarks) and the encoder ``code(x) = 1[(x - mean_) @ components_ @ projection_ > 0]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from threadpoolctl import threadpool_limits

from .base import BaseHasher
from .ordinal_data import DataTripletObjective, exact_neighbors
from .ordinal import (
    ORDINAL_SOURCES,
    TRIPLET_RULES,
    affinity,
    itq_rotation,
    kmeans_landmarks,
    ordinal_matrix,
    pca_basis,
    polar,
    random_landmarks,
)

__all__ = ["OrdinalHasherBase", "Prepared", "data_objective"]

#: Parameters that only the intended variant reads; ``variant="released"`` rejects any
#: value other than these (the released MATLAB code has no such option).
_INTENDED_ONLY = {
    "n_anchors": 2000,
    "near_fraction": 0.02,
    "sharpness": None,
    "max_pairs_per_anchor": None,
    "far_sampling": "batch",
    "balance": 0.0,
    "decorrelation": 0.0,
    "tol": None,
}


def data_objective(prep, beta, average, max_pairs_per_anchor, far_sampling="batch"):
    """The :class:`DataTripletObjective` of prepared data; ``max_pairs_per_anchor`` (default
    4000) is split into ``n_near = sqrt(max_pairs / 10)`` near and ``10 n_near`` far draws."""
    pairs = 4000 if max_pairs_per_anchor is None else int(max_pairs_per_anchor)
    n_near = max(1, int(round(np.sqrt(pairs / 10.0))))
    n_far = max(1, pairs // n_near)
    return DataTripletObjective(prep.V, prep.anchors, prep.neighbors, beta=beta,
                                average=average, n_near=n_near, n_far=n_far,
                                dtype=np.float32, far_sampling=far_sampling)


#: Data triplets use at most this many (random) training rows.
DATA_MAX_ROWS = 20000
#: The ITQ warm start is fitted on at most this many (random) training rows.
ITQ_MAX_ROWS = 10000


@dataclass
class Prepared:
    """Output of the shared preprocessing (spec section 2, or the data-triplet setup)."""

    mean: np.ndarray        # (d,)
    P: np.ndarray           # (d, d') PCA basis
    centres: np.ndarray     # (L_eff, d) centred landmarks (data mode: the anchor rows)
    omega: np.ndarray       # (L_eff, L_eff) ordinal matrix (raw affinity S for "released")
    Y: np.ndarray           # (L_eff, d') projected landmarks divided by `scale`
    scale: float
    Xc: np.ndarray          # (n, d) centred training rows (data mode: the rows used)
    V: np.ndarray = None    # data mode: (n, d') projected training rows divided by `scale`
    anchors: np.ndarray = None    # data mode: anchor row ids (m,)
    neighbors: np.ndarray = None  # data mode: (m, K) exact nearest rows of each anchor


class OrdinalHasherBase(BaseHasher):
    """Base class of the ordinal learners; not meant to be used directly.

    Subclasses define ``_variant_defaults`` (``{variant: {param: value}}`` for every
    parameter whose default is ``None``), ``_released_fixed`` (parameters the released code
    hard-codes) and ``_train(prepared, rng)`` returning ``(W, loss_curve, n_steps)``.
    """

    _parameter_constraints: dict = {
        **BaseHasher._parameter_constraints,
        "n_landmarks": [Interval(Integral, 2, None, closed="left")],
        "n_neighbors": [Interval(Integral, 2, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "pca_dim": [Interval(Integral, 1, None, closed="left"), None],
        "triplets": [StrOptions(set(TRIPLET_RULES)), None],
        "n_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "kmeans_iter": [Interval(Integral, 0, None, closed="left"), None],
        "landmark_method": [StrOptions({"kmeans", "random"})],
        "triplet_source": [StrOptions({"landmarks", "data"}), None],
        "n_anchors": [Interval(Integral, 1, None, closed="left")],
        "near_fraction": [Interval(Real, 0, 1, closed="neither")],
        "sharpness": [Interval(Real, 0, None, closed="neither"), None],
        "ordinal_source": [StrOptions(set(ORDINAL_SOURCES)), None],
        "input_scale": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither"), None],
        "init": [StrOptions({"random", "pca", "itq"}), None],
        "shuffle": ["boolean", None],
        "balance": [Interval(Real, 0, None, closed="left")],
        "decorrelation": [Interval(Real, 0, None, closed="left")],
        "max_pairs_per_anchor": [Interval(Integral, 1, None, closed="left"), None],
        "far_sampling": [StrOptions({"batch", "anchor"})],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "variant": [StrOptions({"intended", "released"})],
        "verbose": ["verbose"],
    }

    _variant_defaults: dict = {}
    _released_fixed: dict = {}

    # -- parameter resolution --------------------------------------------------------------
    def _source(self):
        if self.variant == "released":
            return "landmarks"
        return self.triplet_source or "data"

    def _param(self, name):
        """The value of parameter ``name``, ``None`` replaced by the default of the variant
        (``"released"``) or of the intended variant's triplet source (``"landmarks"`` or
        ``"data"``)."""
        value = getattr(self, name)
        if value is None:
            key = "released" if self.variant == "released" else self._source()
            value = self._variant_defaults[key].get(name)
        return value

    def _check_variant_options(self):
        if self.variant != "released":
            return
        for name, default in {**_INTENDED_ONLY, **self._extra_intended_only()}.items():
            value = getattr(self, name)
            if value != default:
                raise ValueError(
                    f"{name}={value!r} is not available with variant='released' (the authors' "
                    f"code has no such option); use variant='intended' or {name}={default!r}"
                )
        for name, fixed in self._released_fixed.items():
            value = getattr(self, name)
            if value is not None and value != fixed:
                raise ValueError(
                    f"{name}={value!r} has no effect with variant='released': the released "
                    f"MATLAB code hard-codes {name}={fixed!r}"
                )

    def _extra_intended_only(self):
        return {}

    def _resolve_pca_dim(self, n_features):
        """``d'``; subclasses override for their validation rules."""
        dim = self._param("pca_dim")
        if dim is None:
            dim = self.n_bits
        return dim

    # -- preprocessing (spec section 2) ----------------------------------------------------
    def _prepare(self, X, rng):
        """Centre, PCA, landmarks, ordinal matrix and projected landmarks.

        Random draws (in this order): the K-means start or the random landmarks (landmark
        triplets), or the anchor pool (data triplets); the warm start and the training loop
        draw afterwards.
        """
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        self._check_variant_options()
        dprime = self._resolve_pca_dim(d)
        mean = X.mean(axis=0)
        Xc = X - mean
        P, _ = pca_basis(Xc, dprime)
        if self._source() == "data":
            return self._prepare_data(Xc, mean, P, rng)
        if self.landmark_method == "kmeans":
            centres = kmeans_landmarks(Xc, self.n_landmarks, self._param("kmeans_iter"), rng)
        else:
            centres = random_landmarks(Xc, self.n_landmarks, rng)
        if self.variant == "released":
            omega = affinity(centres, log=False)
        else:
            omega = ordinal_matrix(centres, self._param("ordinal_source"))
        Y = centres @ P
        scale = self._scale(Y)
        return Prepared(mean=mean, P=P, centres=centres, omega=omega, Y=Y / scale, scale=scale,
                        Xc=Xc)

    def _scale(self, Z):
        """Divisor of the projected rows: ``input_scale``, or for ``"auto"`` their
        root-mean-square entry divided by ``sharpness``."""
        scale = self._param("input_scale")
        if scale == "auto":
            rms = float(np.sqrt(np.mean(Z * Z))) if Z.size else 0.0
            scale = rms / self._param("sharpness") if rms > 0 else 1.0
        return float(scale)

    def _prepare_data(self, Xc, mean, P, rng):
        """Anchor pool, exact neighbour lists and projected rows for data triplets [D].

        At most ``DATA_MAX_ROWS`` random training rows take part (the PCA uses all rows), so
        the exact neighbour search costs O(n_anchors * DATA_MAX_ROWS * d) at most.
        """
        rows = Xc
        if Xc.shape[0] > DATA_MAX_ROWS:
            rows = Xc[np.sort(rng.choice(Xc.shape[0], DATA_MAX_ROWS, replace=False))]
        n = rows.shape[0]
        anchors = np.sort(rng.choice(n, min(self.n_anchors, n), replace=False))
        K = int(max(1, min(n - 1, round(self.near_fraction * n))))
        neighbors, _ = exact_neighbors(rows, anchors, K)
        V = rows @ P
        scale = self._scale(V)
        return Prepared(mean=mean, P=P, centres=rows[anchors], omega=None,
                        Y=V[anchors] / scale, scale=scale, Xc=rows, V=V / scale,
                        anchors=anchors, neighbors=neighbors)

    def _warm_start(self, prep, rng, dprime, r):
        """Initial projection for ``init`` in {"random", "pca", "itq"} [D]."""
        init = self._param("init")
        if init == "random" or (self.init is None and dprime < r):
            # The default warm start needs pca_dim >= n_bits; otherwise start at random.
            return self._random_init(rng, dprime, r)
        if dprime < r:
            raise ValueError(
                f"init={init!r} needs pca_dim >= n_bits (got pca_dim={dprime}, n_bits={r}); "
                "use init='random'"
            )
        W = np.zeros((dprime, r))
        if init == "pca":
            W[:r, :r] = np.eye(r)
            return W
        Xs = prep.Xc
        if Xs.shape[0] > ITQ_MAX_ROWS:
            Xs = Xs[np.sort(rng.choice(Xs.shape[0], ITQ_MAX_ROWS, replace=False))]
        V = Xs @ prep.P[:, :r]
        W[:r, :r] = itq_rotation(V, 50, rng)
        return W

    def _random_init(self, rng, dprime, r):
        return polar(rng.standard_normal((dprime, r)))

    # -- BaseHasher hooks ------------------------------------------------------------------
    def _fit(self, X, random_state):
        # One BLAS thread for the whole fit: training multiplies many small matrices, where
        # threaded BLAS only adds synchronisation (and oversubscribes the cores next to numba's
        # threads); on the shared 2-core benchmark machine even the one large product (the
        # covariance) ran 20x slower threaded than single-threaded.
        with threadpool_limits(limits=1, user_api="blas"):
            prep = self._prepare(X, random_state)
            W, loss_curve, n_steps = self._train(prep, random_state)
        self.mean_ = prep.mean
        self.components_ = prep.P
        self.projection_ = np.ascontiguousarray(W)
        self.landmarks_ = prep.centres + prep.mean
        self.n_landmarks_ = prep.centres.shape[0]
        self.loss_curve_ = list(loss_curve)
        self.n_iter_ = int(n_steps)
        self.input_scale_ = prep.scale
        H = np.tanh(prep.Y @ W)
        self.saturation_ = float(np.mean(np.abs(H) > 0.99)) if H.size else 0.0
        return self

    def _project(self, X):
        M = self.components_ @ self.projection_
        if X.dtype == np.float32:
            M = M.astype(np.float32)
        return X @ M - (self.mean_ @ M).astype(M.dtype)
