"""Fit a learner on a sample of a dask array and encode the whole array blockwise."""

from __future__ import annotations

import uuid

import dask
import dask.array as da
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.random import sample_without_replacement
from sklearn.utils.validation import check_is_fitted

from .._validation import check_int
from ._shard import encode_block

__all__ = ["fit_sample", "encode"]


def check_learner(learner, name="learner", *, fitted=False):
    """A hashing learner: ``fit``/``transform`` and an integer ``n_bits``."""
    for attr in ("fit", "transform", "n_bits"):
        if not hasattr(learner, attr):
            raise TypeError(
                f"{name} must be an ordhash learner (fit, transform, n_bits), got "
                f"{type(learner).__name__} without {attr!r}"
            )
    check_int(learner.n_bits, f"{name}.n_bits", min_value=1)
    if fitted:
        check_is_fitted(learner)
    return learner


def check_dask_rows(X, name="X"):
    """``X`` as a 2-D dask array, one chunk across the columns."""
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array, got {type(X).__name__} (wrap an in-memory "
            "array with dask.array.from_array, or call learner.transform on it directly)"
        )
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def learner_node(learner):
    """The learner as one ``dask.delayed`` node: serialised once into the graph, fetched once
    by each worker that needs it, never re-pickled into every task."""
    return dask.delayed(learner, name=f"ordhash-learner-{uuid.uuid4().hex}")


def fit_sample(learner, X, n_samples, random_state=None):
    """Fit ``learner`` on ``n_samples`` rows drawn uniformly without replacement from ``X``.

    Only the sampled rows are computed and brought to the caller; the fit itself runs
    locally (learners train on in-memory arrays).

    Parameters
    ----------
    learner : ordhash learner
        An unfitted or fitted learner (e.g. :class:`ordhash.learners.ITQ`); fitted in place.
    X : dask.array.Array or array-like of shape (n_samples_total, n_features)
        Row count must be known (``X.compute_chunk_sizes()`` for arrays with unknown chunks).
    n_samples : int
        Rows to sample, ``>= 2``; all rows (in order) when ``n_samples >= len(X)``.
    random_state : int, RandomState instance or None, default=None
        Seed of the row sample (the learner keeps its own ``random_state`` for its fit).

    Returns
    -------
    learner : the fitted learner (the same object).

    Examples
    --------
    >>> import dask.array as da
    >>> from ordhash.learners import PCAH
    >>> from ordhash.distributed import fit_sample
    >>> X = da.random.default_rng(0).standard_normal((10_000, 16), chunks=(2_500, 16))
    >>> learner = fit_sample(PCAH(n_bits=8), X, n_samples=1_000, random_state=0)
    >>> learner.n_features_in_
    16
    """
    check_learner(learner)
    n_samples = check_int(n_samples, "n_samples", min_value=2)
    if isinstance(X, da.Array):
        X = check_dask_rows(X)
        n = X.shape[0]
        if np.isnan(n):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        n = X.shape[0]
    n = int(n)
    if n < 2:
        raise ValueError(f"X must have at least 2 rows to fit a learner, got {n}")
    if n_samples >= n:
        sample = X
    else:
        rows = sample_without_replacement(n, n_samples,
                                          random_state=check_random_state(random_state))
        sample = X[np.sort(rows).astype(np.int64)]
    if isinstance(sample, da.Array):
        sample = sample.compute()
    learner.fit(np.asarray(sample))
    return learner


def encode(learner, X):
    """Packed codes of every row of ``X``, computed blockwise on the workers.

    Parameters
    ----------
    learner : fitted ordhash learner
        Put in the graph once as a ``dask.delayed`` node; every block task refers to it, so
        it is serialised once and each worker fetches it once.
    X : dask.array.Array of shape (n, n_features)
        Rechunked to a single column chunk if needed; row chunks are kept.

    Returns
    -------
    codes : dask.array.Array of shape (n, ceil(n_bits / 8)), dtype uint8
        Lazy; same row chunks as ``X``; equal to ``learner.transform(X.compute())``.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from ordhash.learners import LSH
    >>> from ordhash.distributed import encode
    >>> X = da.random.default_rng(0).standard_normal((1_000, 8), chunks=(250, 8))
    >>> learner = LSH(n_bits=16, random_state=0).fit(X[:100].compute())
    >>> codes = encode(learner, X)
    >>> codes.shape, codes.dtype, codes.chunks[0]
    ((1000, 2), dtype('uint8'), (250, 250, 250, 250))
    >>> bool((codes.compute() == learner.transform(X.compute())).all())
    True
    """
    check_learner(learner, fitted=True)
    X = check_dask_rows(X)
    n_in = getattr(learner, "n_features_in_", None)
    if n_in is not None and X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features, but the learner was fitted on {n_in}")
    size = (int(learner.n_bits) + 7) // 8
    return X.map_blocks(
        encode_block,
        learner_node(learner),
        dtype=np.uint8,
        chunks=(X.chunks[0], (size,)),
        meta=np.empty((0, size), dtype=np.uint8),
    )
