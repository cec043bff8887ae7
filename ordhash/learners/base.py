"""``BaseHasher``: the small scikit-learn base class every learner in ordhash derives from."""

from __future__ import annotations

from abc import abstractmethod
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import persist
from ..codes import code_size, pack_bits

FLOAT_DTYPES = (np.float64, np.float32)


class BaseHasher(TransformerMixin, BaseEstimator):
    """Base class of the binary-code learners.

    A subclass implements two methods:

    - ``_fit(X, random_state)``: learn from the validated float array ``X`` and set fitted,
      trailing-underscore attributes;
    - ``_project(X)``: real-valued scores of shape ``(n_samples, n_bits)``; bit ``j`` of a
      code is 1 exactly when score ``j`` is strictly positive.

    Everything else is shared: parameter and input validation, ``transform`` to packed
    ``uint8`` codes (the faiss binary layout, see :mod:`ordhash.codes`), ``transform_bits``,
    ``transform_signs`` and ``project``.

    Parameters
    ----------
    n_bits : int, default=32
        Code length in bits (any value >= 1; the last byte is zero-padded).
    random_state : int, RandomState instance or None, default=None
        Seed for every random choice made by ``fit``.

    Examples
    --------
    A learner whose bit ``j`` is the sign of the centred feature ``j``:

    >>> import numpy as np
    >>> from ordhash.learners import BaseHasher
    >>> class CentredSigns(BaseHasher):
    ...     def _fit(self, X, random_state):
    ...         if self.n_bits > X.shape[1]:
    ...             raise ValueError("n_bits must be <= n_features")
    ...         self.mean_ = X[:, : self.n_bits].mean(axis=0)
    ...     def _project(self, X):
    ...         return X[:, : self.n_bits] - self.mean_
    >>> X = np.random.default_rng(0).standard_normal((100, 8))
    >>> hasher = CentredSigns(n_bits=4).fit(X)
    >>> hasher.transform(X[:3]).shape, hasher.transform_bits(X[:3]).shape
    ((3, 1), (3, 4))
    """

    _parameter_constraints: dict = {
        "n_bits": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Every public learner in the package is saveable; user subclasses opt in with
        # ``ordhash.persist.register("mypackage.MyHasher")``.
        if cls.__module__.startswith("ordhash.") and not cls.__name__.startswith("_"):
            persist.register(f"ordhash.{cls.__name__}")(cls)

    def __init__(self, *, n_bits=32, random_state=None):
        self.n_bits = n_bits
        self.random_state = random_state

    # -- to implement ---------------------------------------------------------------------
    @abstractmethod
    def _fit(self, X, random_state):
        """Learn the hash function from validated data."""

    @abstractmethod
    def _project(self, X):
        """Real-valued scores whose signs are the bits."""

    # -- shared ----------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Learn the hash function.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training vectors (finite floats).
        y : None
            Ignored; present for scikit-learn API consistency.

        Returns
        -------
        self : object
            The fitted learner.
        """
        self._validate_params()
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_min_samples=2)
        self._fit(X, check_random_state(self.random_state))
        self.code_size_ = code_size(self.n_bits)
        return self

    def _validated(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=FLOAT_DTYPES, reset=False)

    def project(self, X):
        """Real-valued projections before thresholding.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_bits)
            Bit ``j`` of the code of row ``i`` is ``scores[i, j] > 0``.
        """
        return self._project(self._validated(X))

    def transform_bits(self, X):
        """Codes as ``{0, 1}`` bits, an ``uint8`` array of shape (n_samples, n_bits)."""
        return (self.project(X) > 0).astype(np.uint8)

    def transform_signs(self, X):
        """Codes as ``{-1, +1}`` signs, an ``int8`` array of shape (n_samples, n_bits)."""
        return np.where(self.project(X) > 0, 1, -1).astype(np.int8)

    def transform(self, X):
        """Packed binary codes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        codes : ndarray of shape (n_samples, ceil(n_bits / 8)), dtype uint8
            Bit ``j`` at byte ``j // 8``, position ``j % 8`` (the faiss binary layout).
        """
        return pack_bits(self.project(X) > 0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Codes are uint8 whatever the input dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags

    # -- persistence -------------------------------------------------------------------------
    def save(self, path):
        """Save the (fitted) learner to ``path`` atomically, in ordhash's pickle-free format.

        See :mod:`ordhash.persist` for the format. Parameters must be JSON-able (an integer or
        ``None`` ``random_state``; a ``RandomState`` instance cannot be saved).
        """
        return persist.save(self, path)

    @classmethod
    def load(cls, path, *, mmap=False):
        """Load a learner saved by :meth:`save`; the file must hold this exact class."""
        return persist.load(path, expected=cls, mmap=mmap)

    def _get_state(self):
        params = self.get_params(deep=False)
        for name, value in params.items():
            if not _is_json_scalar(value) and not (
                isinstance(value, (list, tuple)) and all(_is_json_scalar(v) for v in value)
            ):
                raise TypeError(
                    f"cannot save {type(self).__name__}: parameter {name}={value!r} is not "
                    "JSON-serialisable (use an int or None for random_state)"
                )
        meta = {"params": params, "fitted": {}, "object_arrays": {}}
        arrays = {}
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if isinstance(value, np.ndarray) and value.dtype == object:
                meta["object_arrays"][name] = [str(v) for v in value]
            elif isinstance(value, np.ndarray):
                arrays[name] = value
            elif isinstance(value, np.generic):
                meta["fitted"][name] = value.item()
            elif _is_json_scalar(value) or (
                isinstance(value, (list, tuple)) and all(_is_json_scalar(v) for v in value)
            ):
                meta["fitted"][name] = list(value) if isinstance(value, tuple) else value
            else:
                raise TypeError(
                    f"cannot save {type(self).__name__}: fitted attribute {name} of type "
                    f"{type(value).__name__} is not an array or a JSON value"
                )
        return meta, arrays

    @classmethod
    def _from_state(cls, meta, arrays):
        obj = cls(**meta["params"])
        for name, value in meta["fitted"].items():
            setattr(obj, name, value)
        for name, value in meta["object_arrays"].items():
            setattr(obj, name, np.asarray(value, dtype=object))
        for name, value in arrays.items():
            setattr(obj, name, value)
        return obj


def _is_json_scalar(value):
    return value is None or isinstance(value, (bool, int, float, str))
