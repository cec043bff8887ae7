"""Input checks shared by every public entry point.

Each check raises ``TypeError`` or ``ValueError`` with a message that names the argument and the
problem, so that a user sees *which* input is wrong and *why* before any kernel runs.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np


def check_vectors(X, name="X", *, dtype=np.float32, n_features=None, allow_empty=False):
    """Return ``X`` as a finite, C-contiguous 2-D float array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The vectors. A 1-D array is rejected (reshape it explicitly).
    name : str
        Argument name used in error messages.
    dtype : numpy dtype, default=np.float32
        Floating dtype of the returned array.
    n_features : int or None
        If given, the required number of columns.
    allow_empty : bool, default=False
        Whether zero rows are acceptable.
    """
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be a 2-D numeric array, got {type(X).__name__}")
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got an array of shape {arr.shape}"
        )
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: it has 0 rows (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 features (shape {arr.shape})")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but {n_features} were expected"
        )
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.size and not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(f"{name} contains {bad}; every value must be finite")
    return arr


def check_codes(codes, name="codes", *, code_size=None, allow_empty=False):
    """Return packed binary codes as a C-contiguous 2-D ``uint8`` array.

    Packed codes are never cast silently: any dtype other than ``uint8`` is a ``TypeError``.
    """
    if codes is None or isinstance(codes, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D uint8 array of packed codes, got {type(codes).__name__}")
    arr = np.asarray(codes)
    if arr.dtype != np.uint8:
        raise TypeError(
            f"{name} must be packed binary codes of dtype uint8, got dtype {arr.dtype} "
            "(use ordhash.codes.pack_bits to pack {0,1} bits)"
        )
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_codes, code_size), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: it has 0 rows (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has code_size 0 (shape {arr.shape})")
    if code_size is not None and arr.shape[1] != code_size:
        raise ValueError(
            f"{name} has {arr.shape[1]} bytes per code, but {code_size} were expected"
        )
    return np.ascontiguousarray(arr)


def check_int(value, name, *, min_value=None, max_value=None):
    """Return ``value`` as a Python int, rejecting bools, floats and out-of-range values."""
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_real(value, name, *, min_value=None, max_value=None, inclusive=True):
    """Return ``value`` as a finite Python float in the given range."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if min_value is not None and (value < min_value if inclusive else value <= min_value):
        op = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {op} {min_value}, got {value}")
    if max_value is not None and (value > max_value if inclusive else value >= max_value):
        op = "<=" if inclusive else "<"
        raise ValueError(f"{name} must be {op} {max_value}, got {value}")
    return value


def check_option(value, name, options):
    """Return ``value`` if it is one of ``options``; otherwise a ``ValueError`` listing them."""
    if value not in options:
        listed = ", ".join(repr(o) for o in sorted(options, key=str))
        raise ValueError(f"unknown {name} {value!r}; expected one of {listed}")
    return value
