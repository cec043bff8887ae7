"""The matching-function protocol and adapters.

A *scorer* (matching function) maps a query and a batch of item ids to float scores, higher is
better. It is always called on batches: one call scores every new item of a walk round, for one
query or, when the scorer supports *pairs*, for a whole block of queries at once. It is never
called once per item.

Protocol (subclass :class:`Scorer`, or duck-type the same methods):

``prepare(queries) -> state``
    Per-query work done once per search call (a user tower, the query part of a first MLP
    layer). ``queries`` is what the user passed to ``search``; the default keeps a 2-D float
    array as is and any other sequence as a list of opaque query states.
``score(state, q, ids) -> (len(ids),) floats``
    Scores of the items ``ids`` (``int64``) for query number ``q``. Required.
``score_pairs(state, qidx, ids) -> (len(ids),) floats``
    Scores of the pairs ``(qidx[i], ids[i])``. The default groups the pairs by query and calls
    :meth:`Scorer.score` once per query; scorers that can do better set
    ``supports_pairs = True`` and override it.
``score_block(state, qrows, ids) -> (len(qrows), len(ids))``
    All queries of ``qrows`` against all ``ids`` (used by brute force). The default calls
    :meth:`Scorer.score` per query row.
``n_items``
    Number of items the scorer knows, or ``None``.

Adapters: :class:`CallableScorer` (plain Python function), :class:`NumbaScorer` (a
``numba.njit`` function), :class:`EstimatorScorer` (scikit-learn classifier or regressor on
query-item features); built-ins :class:`~ordhash.walk.scorers.DotScorer`,
:class:`~ordhash.walk.scorers.L2Scorer`, :class:`~ordhash.walk.scorers.MLPScorer` and
:class:`~ordhash.walk.scorers.MaskedScorer`; :func:`as_scorer` picks one.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = [
    "Scorer",
    "ScorerError",
    "CallableScorer",
    "NumbaScorer",
    "EstimatorScorer",
    "as_scorer",
    "scorer_name",
]


class ScorerError(ValueError):
    """A matching function failed or returned unusable scores (message names the scorer).

    A subclass of ``ValueError``. Raised by every search for a scorer that raises, or returns
    the wrong shape, non-numeric values, NaN or ``+inf``; the original exception is chained.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import ScorerError, brute_force_topk
    >>> def broken(query, ids):
    ...     return np.full(len(ids), np.nan)
    >>> try:
    ...     brute_force_topk(broken, np.zeros((1, 2)), n_items=10, k=3)
    ... except ScorerError as exc:
    ...     print("broken" in str(exc))
    True
    """


def scorer_name(scorer):
    """A short human-readable name of a scorer, used in every error message about it."""
    name = getattr(scorer, "name", None)
    if isinstance(name, str) and name:
        return name
    return type(scorer).__name__


def _as_item_vectors(item_vectors, name="item_vectors", *, required=True):
    if item_vectors is None:
        if required:
            raise TypeError(f"{name} is required")
        return None
    arr = np.asarray(item_vectors)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_items, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _default_prepare(queries):
    if isinstance(queries, np.ndarray):
        if queries.ndim == 1:
            raise ValueError(
                f"queries must be 2-D (n_queries, n_features), got shape {queries.shape}; "
                "pass one query as queries[None, :]"
            )
        return queries
    return list(queries)


def _as_query_array(state, name):
    arr = np.asarray(state)
    if arr.dtype == object or arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(
            f"{name} needs the queries as a 2-D numeric array (n_queries, n_features), "
            f"got {type(state).__name__} of shape {getattr(arr, 'shape', None)}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


class Scorer:
    """Base class of matching functions (see the module docstring for the protocol).

    Subclasses implement :meth:`score` and may override :meth:`prepare`,
    :meth:`score_pairs` (then set ``supports_pairs = True``) and :meth:`score_block`.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import Scorer
    >>> class Negated(Scorer):
    ...     def __init__(self, X):
    ...         self.X = X
    ...     def score(self, state, q, ids):
    ...         return -(self.X[ids] @ state[q])
    >>> X = np.eye(3, dtype=np.float32)
    >>> Negated(X)(np.array([1.0, 2.0, 3.0], dtype=np.float32), np.array([0, 2]))
    array([-1., -3.], dtype=float32)
    """

    supports_pairs = False
    n_items = None

    @property
    def name(self):
        """Short name of the scorer used in error messages (here the class name)."""
        return type(self).__name__

    def prepare(self, queries):
        """Per-query precomputation; returns the state passed to the scoring methods."""
        return _default_prepare(queries)

    def score(self, state, q, ids):
        """Scores of items ``ids`` for query ``q``: shape ``(len(ids),)``, higher is better."""
        raise NotImplementedError(f"{type(self).__name__} does not implement score()")

    def score_pairs(self, state, qidx, ids):
        """Scores of the pairs ``(qidx[i], ids[i])``; by default one ``score`` call per query."""
        out = np.empty(ids.shape[0], dtype=np.float32)
        if ids.shape[0] == 0:
            return out
        order = np.argsort(qidx, kind="stable")
        sq = qidx[order]
        bounds = np.flatnonzero(np.diff(sq)) + 1
        for part in np.split(order, bounds):
            out[part] = _check_scores(self, self.score(state, int(qidx[part[0]]), ids[part]),
                                      part.shape[0])
        return out

    def score_block(self, state, qrows, ids):
        """Scores of every query of ``qrows`` against every item of ``ids``."""
        out = np.empty((len(qrows), ids.shape[0]), dtype=np.float32)
        for r, q in enumerate(qrows):
            out[r] = _check_scores(self, self.score(state, int(q), ids), ids.shape[0])
        return out

    def __call__(self, query, ids):
        """Score ``ids`` for one query (convenience: prepares the single query each time)."""
        q = np.asarray(query)
        state = self.prepare(q[None, :] if q.ndim == 1 and q.dtype != object else [query])
        return np.asarray(self.score(state, 0, np.asarray(ids, dtype=np.int64)),
                          dtype=np.float32)


def _check_scores(scorer, s, m):
    """Validate one batch of scores returned by ``scorer``; returns float32 ``(m,)``."""
    name = scorer_name(scorer)
    try:
        arr = np.asarray(s)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is the scorer's fault
        raise ScorerError(f"scorer {name!r} returned an object that is not an array: "
                          f"{type(s).__name__} ({exc})") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ScorerError(f"scorer {name!r} returned non-numeric scores of dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ScorerError(f"scorer {name!r} returned complex scores")
    if arr.shape != (m,):
        raise ScorerError(
            f"scorer {name!r} returned scores of shape {arr.shape} for a batch of {m} items; "
            f"expected shape ({m},)"
        )
    arr = arr.astype(np.float32, copy=False)
    bad = np.isnan(arr) | (arr == np.inf)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        what = "NaN" if np.isnan(arr[first]) else "+inf"
        raise ScorerError(
            f"scorer {name!r} returned {what} for {int(bad.sum())} of {m} items (first at "
            f"batch position {first}); scores must be finite or -inf"
        )
    return arr


class ScoringSession:
    """A scorer prepared for one search call: validated, batched, counted and timed calls.

    Attributes
    ----------
    n_calls : int
        Scorer invocations (``score`` / ``score_pairs`` / ``score_block``).
    n_items : int
        Items (pairs) scored in total.
    seconds : float
        Wall time spent inside the scorer, ``prepare`` included.
    """

    def __init__(self, scorer, queries, n_queries):
        self.scorer = scorer
        self.name = scorer_name(scorer)
        self.n_calls = 0
        self.n_items = 0
        t0 = time.perf_counter()
        try:
            self.state = scorer.prepare(queries)
        except ScorerError:
            raise
        except Exception as exc:
            raise ScorerError(
                f"scorer {self.name!r} failed to prepare {n_queries} queries: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self.seconds = time.perf_counter() - t0
        self.pairs = bool(getattr(scorer, "supports_pairs", False))

    def _invoke(self, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        except ScorerError:
            raise
        except Exception as exc:
            raise ScorerError(
                f"scorer {self.name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self.seconds += time.perf_counter() - t0
            self.n_calls += 1

    def score(self, qidx, ids):
        """Scores of pairs ``(qidx[i], ids[i])`` (``int64`` arrays of equal length)."""
        m = ids.shape[0]
        self.n_items += m
        if m == 0:
            return np.empty(0, dtype=np.float32)
        if qidx[0] == qidx[-1] and (m < 3 or (qidx == qidx[0]).all()):
            s = self._invoke(self.scorer.score, self.state, int(qidx[0]), ids)
        elif self.pairs:
            s = self._invoke(self.scorer.score_pairs, self.state, qidx, ids)
        else:
            # No pair support: one call per query of the batch (still batched over items).
            out = np.empty(m, dtype=np.float32)
            order = np.argsort(qidx, kind="stable")
            bounds = np.flatnonzero(np.diff(qidx[order])) + 1
            for part in np.split(order, bounds):
                q = int(qidx[part[0]])
                out[part] = _check_scores(
                    self.scorer, self._invoke(self.scorer.score, self.state, q, ids[part]),
                    part.shape[0])
            return out
        return _check_scores(self.scorer, s, m)

    def score_block(self, qrows, ids):
        """Scores of all ``qrows`` against all ``ids``: ``(len(qrows), len(ids))`` float32."""
        self.n_items += len(qrows) * ids.shape[0]
        fn = getattr(self.scorer, "score_block", None)
        if fn is None:
            fn = lambda st, qr, it: Scorer.score_block(self.scorer, st, qr, it)  # noqa: E731
        s = self._invoke(fn, self.state, qrows, ids)
        arr = np.asarray(s)
        shape = (len(qrows), ids.shape[0])
        if arr.shape != shape:
            raise ScorerError(
                f"scorer {self.name!r} returned a score block of shape {arr.shape}; "
                f"expected {shape}"
            )
        return _check_scores(self.scorer, arr.reshape(-1), arr.size).reshape(shape)


# ------------------------------------------------------------------------------------------
# adapters
# ------------------------------------------------------------------------------------------
class CallableScorer(Scorer):
    """Adapt a plain Python function.

    Parameters
    ----------
    func : callable
        With ``pairs=False``: ``func(query, items) -> (m,) scores`` for one query, where
        ``query`` is one row (or opaque state) of the queries and ``items`` is
        ``item_vectors[ids]`` if ``item_vectors`` is given, else the ``int64`` ids.
        With ``pairs=True``: ``func(query_rows, items) -> (m,)`` scores the pairs
        ``(query_rows[i], items[i])``; the queries must then be a 2-D array.
    item_vectors : array-like of shape (n_items, d), optional
        Vectors gathered for ``func``.
    pairs : bool, default=False
        Whether ``func`` scores batches of (query, item) pairs (enables cross-query batching).
    name : str, optional
        Name used in error messages (default: the function's qualified name).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import CallableScorer
    >>> X = np.arange(6, dtype=np.float32).reshape(3, 2)
    >>> s = CallableScorer(lambda q, items: items @ q, X, name="dot")
    >>> s(np.array([1.0, 0.0], dtype=np.float32), [2, 0])
    array([4., 0.], dtype=float32)
    """

    def __init__(self, func, item_vectors=None, *, pairs=False, name=None):
        if not callable(func):
            raise TypeError(f"func must be callable, got {type(func).__name__}")
        self.func = func
        self.item_vectors = _as_item_vectors(item_vectors, required=False)
        self.supports_pairs = bool(pairs)
        self.n_items = None if self.item_vectors is None else self.item_vectors.shape[0]
        self._name = name or getattr(func, "__qualname__", None) or type(func).__name__

    @property
    def name(self):
        return self._name

    def _items(self, ids):
        return ids if self.item_vectors is None else self.item_vectors[ids]

    def prepare(self, queries):
        state = _default_prepare(queries)
        if self.supports_pairs:
            return _as_query_array(state, f"scorer {self._name!r} (pairs=True)")
        return state

    def score(self, state, q, ids):
        if self.supports_pairs:
            return self.func(np.repeat(state[q][None], ids.shape[0], axis=0),
                             self._items(ids))
        return self.func(state[q], self._items(ids))

    def score_pairs(self, state, qidx, ids):
        if not self.supports_pairs:
            return Scorer.score_pairs(self, state, qidx, ids)
        return self.func(state[qidx], self._items(ids))


def _is_numba_dispatcher(func):
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    return isinstance(func, Dispatcher)


def _pair_loop(func, Q, qidx, X, ids, out):
    for i in range(ids.shape[0]):
        out[i] = func(Q[qidx[i]], X[ids[i]])


_PAIR_LOOP = None


def _get_pair_loop():
    # Compiled lazily, once per process and per distinct ``func`` (numba specialises on the
    # dispatcher type). A function argument defeats numba's on-disk cache (pynndescent PR
    # #226), which is why this loop lives here and not in ``ordhash._kernels``.
    global _PAIR_LOOP
    if _PAIR_LOOP is None:
        from numba import njit

        _PAIR_LOOP = njit(nogil=True)(_pair_loop)
    return _PAIR_LOOP


class NumbaScorer(Scorer):
    """Adapt a ``numba.njit`` function.

    Parameters
    ----------
    func : numba dispatcher
        With ``kind="pair"``: ``func(query_vector, item_vector) -> float`` for one pair; ordhash
        runs it in a compiled loop over the batch (compiled once per function and process).
        With ``kind="batch"``: ``func(query_vector, item_matrix) -> (m,)`` scores.
    item_vectors : array-like of shape (n_items, d)
    kind : {"pair", "batch"}, default="pair"
    name : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> from numba import njit
    >>> from ordhash.walk import NumbaScorer
    >>> @njit
    ... def neg_l1(q, x):
    ...     return -np.abs(q - x).sum()
    >>> X = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    >>> NumbaScorer(neg_l1, X)(np.array([1.0, 1.0], dtype=np.float32), [0, 1])
    array([-2., -0.], dtype=float32)
    """

    def __init__(self, func, item_vectors, *, kind="pair", name=None):
        if not _is_numba_dispatcher(func):
            raise TypeError(
                f"func must be a numba.njit-compiled function, got {type(func).__name__}; "
                "use CallableScorer for plain Python functions"
            )
        if kind not in ("pair", "batch"):
            raise ValueError(f"unknown kind {kind!r}; expected 'pair' or 'batch'")
        self.func = func
        self.kind = kind
        self.item_vectors = np.ascontiguousarray(_as_item_vectors(item_vectors),
                                                 dtype=np.float32)
        self.n_items = self.item_vectors.shape[0]
        self.supports_pairs = kind == "pair"
        self._name = name or getattr(func, "__qualname__", None) or "numba function"

    @property
    def name(self):
        return self._name

    def prepare(self, queries):
        return _as_query_array(_default_prepare(queries), f"scorer {self._name!r}")

    def score(self, state, q, ids):
        if self.kind == "batch":
            return self.func(state[q], self.item_vectors[ids])
        qidx = np.full(ids.shape[0], q, dtype=np.int64)
        return self.score_pairs(state, qidx, ids)

    def score_pairs(self, state, qidx, ids):
        if self.kind == "batch":
            return Scorer.score_pairs(self, state, qidx, ids)
        out = np.empty(ids.shape[0], dtype=np.float64)
        _get_pair_loop()(self.func, state, qidx, self.item_vectors, ids, out)
        return out


class EstimatorScorer(Scorer):
    """Adapt a fitted scikit-learn estimator applied to query-item feature rows.

    Parameters
    ----------
    estimator : fitted estimator
        A classifier with ``predict_proba`` or ``decision_function``, or a regressor.
    item_vectors : array-like of shape (n_items, d_item)
    method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        ``"auto"`` takes the first of these the estimator has. ``predict_proba`` scores with
        the probability of the last class (the positive class of a binary classifier).
    features : {"concat", "concat_product"} or callable, default="concat"
        Feature row of a pair: ``[q, x]``, ``[q, x, q * x]`` (equal dimensions), or
        ``features(query_rows, item_rows) -> (m, n_features)``.
    name : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ordhash.walk import EstimatorScorer
    >>> rng = np.random.default_rng(0)
    >>> F = rng.standard_normal((200, 4)); y = (F[:, 0] * F[:, 2] > 0).astype(int)
    >>> clf = LogisticRegression().fit(np.c_[F, F[:, :2] * F[:, 2:]], y)
    >>> X = rng.standard_normal((10, 2)).astype(np.float32)
    >>> s = EstimatorScorer(clf, X, features="concat_product")
    >>> s(np.array([1.0, 0.0], dtype=np.float32), np.arange(10)).shape
    (10,)
    """

    supports_pairs = True

    def __init__(self, estimator, item_vectors, *, method="auto", features="concat", name=None):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(estimator)
        methods = ("predict_proba", "decision_function", "predict")
        if method == "auto":
            method = next((m for m in methods if hasattr(estimator, m)), None)
            if method is None:
                raise TypeError(f"{type(estimator).__name__} has none of {methods}")
        elif method not in methods:
            raise ValueError(f"unknown method {method!r}; expected 'auto' or one of {methods}")
        elif not hasattr(estimator, method):
            raise TypeError(f"{type(estimator).__name__} has no method {method!r}")
        if not (callable(features) or features in ("concat", "concat_product")):
            raise ValueError(
                f"unknown features {features!r}; expected 'concat', 'concat_product' or a "
                "callable"
            )
        self.estimator = estimator
        self.method = method
        self.features = features
        self.item_vectors = _as_item_vectors(item_vectors)
        self.n_items = self.item_vectors.shape[0]
        self._name = name or f"{type(estimator).__name__}.{method}"

    @property
    def name(self):
        return self._name

    def prepare(self, queries):
        return _as_query_array(_default_prepare(queries), f"scorer {self._name!r}")

    def _features(self, Qrows, Xrows):
        if callable(self.features):
            return self.features(Qrows, Xrows)
        if self.features == "concat_product":
            if Qrows.shape[1] != Xrows.shape[1]:
                raise ValueError(
                    f"features='concat_product' needs equal query and item dimensions, got "
                    f"{Qrows.shape[1]} and {Xrows.shape[1]}"
                )
            return np.hstack([Qrows, Xrows, Qrows * Xrows])
        return np.hstack([Qrows, Xrows])

    def _apply(self, F):
        out = getattr(self.estimator, self.method)(F)
        out = np.asarray(out)
        if self.method == "predict_proba":
            return out[:, -1]
        if out.ndim == 2 and out.shape[1] == 1:
            return out[:, 0]
        return out

    def score(self, state, q, ids):
        X = self.item_vectors[ids]
        return self._apply(self._features(np.broadcast_to(state[q], (X.shape[0],
                                                                    state.shape[1])), X))

    def score_pairs(self, state, qidx, ids):
        return self._apply(self._features(state[qidx], self.item_vectors[ids]))


def as_scorer(obj, item_vectors=None):
    """Return ``obj`` as a scorer.

    A :class:`Scorer` (or any object with ``prepare`` and ``score``) is returned as is; a numba
    dispatcher becomes a :class:`NumbaScorer`, a fitted scikit-learn estimator an
    :class:`EstimatorScorer` and any other callable a :class:`CallableScorer` (these need
    ``item_vectors`` except the callable, which then receives ids).

    Parameters
    ----------
    obj : Scorer, callable, numba function or fitted scikit-learn estimator
        The matching function.
    item_vectors : ndarray of shape (n_items, n_features), optional
        Item vectors passed to the adapter (a callable then receives vectors instead of ids).

    Returns
    -------
    Scorer

    Raises
    ------
    TypeError
        If ``obj`` cannot be used as a scorer.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import as_scorer
    >>> as_scorer(lambda q, ids: -ids.astype(float)).name
    '<lambda>'
    """
    if isinstance(obj, Scorer) or (hasattr(obj, "prepare") and hasattr(obj, "score")):
        return obj
    if _is_numba_dispatcher(obj):
        return NumbaScorer(obj, item_vectors)
    if hasattr(obj, "fit") and any(hasattr(obj, m) for m in
                                   ("predict_proba", "decision_function", "predict")):
        return EstimatorScorer(obj, item_vectors)
    if callable(obj):
        return CallableScorer(obj, item_vectors)
    raise TypeError(
        f"cannot use a {type(obj).__name__} as a scorer: expected a Scorer, a callable, a "
        "numba function or a fitted scikit-learn estimator"
    )
