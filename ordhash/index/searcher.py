"""Two-stage search over float vectors: Hamming candidates, then exact re-ranking.

:class:`HashingSearcher` encodes vectors with a learner from :mod:`ordhash.learners`, keeps the
codes in a Hamming index and the original ``float32`` vectors beside them, and answers a k-NN
query by taking the ``candidates`` nearest codes and re-ranking them by the exact metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import persist
from .._validation import check_int, check_vectors
from ._common import PAD_ID, check_ids
from .flat import HammingIndex
from .mih import MultiIndexHashing

__all__ = ["HashingSearcher", "FloatSearchResult"]

_CHUNK_BYTES = 1 << 22  # bound on the gathered candidate vectors of one query chunk (4 MiB)


@dataclass(frozen=True)
class FloatSearchResult:
    """k-NN result of :class:`HashingSearcher` (exact distances of re-ranked candidates).

    Attributes
    ----------
    ids : ndarray of shape (n_queries, k), dtype int64
        Neighbour ids, best first, ties broken by the smaller id; ``-1`` in padded slots.
    distances : ndarray of shape (n_queries, k), dtype float32
        Euclidean distances (``metric="l2"``, ascending, padding ``inf``) or inner products
        (``metric="ip"``, descending, padding ``-inf``).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.index import FloatSearchResult
    >>> res = FloatSearchResult(np.array([[3, -1]]), np.array([[0.5, np.inf]], np.float32))
    >>> res.counts
    array([1])
    """

    ids: np.ndarray
    distances: np.ndarray

    @property
    def counts(self):
        """Number of real (non-padded) neighbours per query, ``int64`` of shape (n_queries,)."""
        return np.count_nonzero(self.ids != PAD_ID, axis=1).astype(np.int64)

    def __len__(self):
        return self.ids.shape[0]


def _make_index(kind, n_bits, n_jobs):
    if kind == "flat":
        return HammingIndex(n_bits, backend="numba", n_jobs=n_jobs)
    if kind == "faiss":
        return HammingIndex(n_bits, backend="faiss", n_jobs=n_jobs)
    return MultiIndexHashing(n_bits, n_jobs=n_jobs)


def _select(key, tie, k):
    """Columns of the ``k`` smallest ``(key, tie)`` pairs of every row, in that order.

    ``argpartition`` finds the ``k`` smallest keys; rows where several entries tie with the
    ``k``-th key (so that the partition's choice among them is arbitrary) are fully sorted.
    """
    m, c = key.shape
    if k < c:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
        thr = np.take_along_axis(key, part, axis=1).max(axis=1, keepdims=True)
        ambiguous = ((key <= thr).sum(axis=1) > k) & np.isfinite(thr[:, 0])
        if ambiguous.any():
            part[ambiguous] = np.lexsort((tie[ambiguous], key[ambiguous]), axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(c), (m, c))
    order = np.lexsort((np.take_along_axis(tie, part, axis=1),
                        np.take_along_axis(key, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def rerank(queries, vectors, rows, cand_ids, k, metric):
    """Re-rank candidates by the exact metric, in query chunks of bounded memory.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, d), float32
    vectors : ndarray of shape (n, d), float32
    rows : ndarray of shape (n_queries, c), int64
        Row of each candidate in ``vectors``; ignored where ``cand_ids`` is ``-1``.
    cand_ids : ndarray of shape (n_queries, c), int64
        Candidate ids, ``-1`` for a missing candidate.
    k : int
        Neighbours to keep, ``<= c``.
    metric : {"l2", "ip"}

    Returns
    -------
    FloatSearchResult
    """
    nq, c = cand_ids.shape
    d = vectors.shape[1]
    out_ids = np.empty((nq, k), np.int64)
    out_d = np.empty((nq, k), np.float32)
    pad = np.float32(np.inf if metric == "l2" else -np.inf)
    # small chunks keep the gathered vectors in cache (and reuse one buffer)
    chunk = int(max(1, min(nq, _CHUNK_BYTES // max(1, c * d * 4))))
    buf = np.empty((chunk, c, d), np.float32)
    for q0 in range(0, nq, chunk):
        q1 = min(nq, q0 + chunk)
        ids = cand_ids[q0:q1]
        valid = ids != PAD_ID
        gathered = buf[: q1 - q0]
        np.take(vectors, np.where(valid, rows[q0:q1], 0), axis=0, out=gathered)
        q = queries[q0:q1]
        if metric == "l2":
            gathered -= q[:, None, :]
            score = np.sqrt(np.einsum("ijk,ijk->ij", gathered, gathered))
            key = score
        else:
            score = np.einsum("ijk,ik->ij", gathered, q)
            key = -score
        key = np.where(valid, key, np.inf)
        tie = np.where(valid, ids, np.iinfo(np.int64).max)
        sel = _select(key, tie, k)
        sel_ids = np.take_along_axis(ids, sel, axis=1)
        sel_d = np.take_along_axis(score, sel, axis=1).astype(np.float32, copy=False)
        sel_valid = np.take_along_axis(valid, sel, axis=1)
        out_ids[q0:q1] = np.where(sel_valid, sel_ids, PAD_ID)
        out_d[q0:q1] = np.where(sel_valid, sel_d, pad)
    return FloatSearchResult(ids=out_ids, distances=out_d)


@persist.register("ordhash.HashingSearcher")
class HashingSearcher(BaseEstimator):
    """Approximate k-NN over float vectors: Hamming candidates re-ranked exactly.

    ``fit`` trains a clone of ``learner`` on the data, stores the codes in a Hamming index and
    keeps the vectors (``float32``). ``search`` encodes the queries, takes the ``candidates``
    nearest codes of each (Hamming ties broken by id) and re-ranks them by exact Euclidean
    distance or inner product, ties broken by id. More candidates cost time and raise recall.

    Parameters
    ----------
    learner : BaseHasher
        An (unfitted) ordhash learner, e.g. ``ITQ(n_bits=64, random_state=0)``; it is cloned.
    index : {"flat", "faiss", "mih"}, default="flat"
        Hamming index: :class:`~ordhash.index.HammingIndex` with the numba backend, the same
        with the faiss backend, or :class:`~ordhash.index.MultiIndexHashing`.
    metric : {"l2", "ip"}, default="l2"
        Re-ranking metric: Euclidean distance (smaller is better) or inner product (larger is
        better).
    candidates : int, default=100
        Hamming neighbours re-ranked per query (default of :meth:`search`).
    n_jobs : int or None, default=None
        Threads of the Hamming index (see :class:`~ordhash.index.HammingIndex`).

    Attributes
    ----------
    learner_ : BaseHasher
        The fitted learner.
    index_ : HammingIndex or MultiIndexHashing
        The codes of every stored vector.
    vectors_ : ndarray of shape (n_stored, n_features), dtype float32
        The stored vectors, in increasing id order (the order of ``index_.ids``).
    n_features_in_ : int
        Number of features seen during ``fit``.

    Notes
    -----
    Thread safety: concurrent :meth:`search` calls from several threads are safe and return
    the same results as serial calls (they only read the learner, the index and the vectors).
    :meth:`add`, :meth:`remove` and :meth:`fit` modify them and must not run concurrently with
    each other or with a search; guard them with a lock (or a readers-writer lock) if needed.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.index import HashingSearcher
    >>> from ordhash.learners import ITQ
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 16)).astype(np.float32)
    >>> searcher = HashingSearcher(ITQ(n_bits=16, random_state=0), candidates=50).fit(X)
    >>> res = searcher.search(X[:3], k=2)
    >>> res.ids[:, 0], res.distances[:, 0]
    (array([0, 1, 2]), array([0., 0., 0.], dtype=float32))
    """

    _parameter_constraints: dict = {
        "learner": [HasMethods(["fit", "transform"])],
        "index": [StrOptions({"flat", "faiss", "mih"})],
        "metric": [StrOptions({"l2", "ip"})],
        "candidates": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
    }

    def __init__(self, learner, *, index="flat", metric="l2", candidates=100, n_jobs=None):
        self.learner = learner
        self.index = index
        self.metric = metric
        self.candidates = candidates
        self.n_jobs = n_jobs

    # ---------------------------------------------------------------- building
    def fit(self, X, y=None):
        """Fit the learner on ``X``, index the codes of ``X`` under ids ``0..n-1``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite float vectors.
        y : None
            Ignored.

        Returns
        -------
        self : HashingSearcher
        """
        self._validate_params()
        given = X
        X = check_vectors(X, "X")
        if X is given:  # keep a private copy of the vectors
            X = X.copy()
        learner = clone(self.learner).fit(X)
        index = _make_index(self.index, int(learner.n_bits), self.n_jobs)
        return self._attach(learner, X, learner.transform(X), index)

    def _attach(self, learner, X, codes, index, ids=None):
        """Store a fitted ``learner``, the ``codes`` of ``X`` in ``index`` and the vectors.

        ``fit`` calls it after training; ``ordhash build --searcher`` calls it with a learner
        that is already fitted (no refit). ``ids`` default to ``0..n-1``; the vectors are kept
        in increasing id order, the order of ``index.ids``.
        """
        index.add(codes, ids)
        if ids is None:
            vectors, next_id = X, X.shape[0]
        else:
            vectors, next_id = X[np.argsort(ids, kind="stable")], int(ids.max()) + 1
        self.learner_ = learner
        self.index_ = index
        self.vectors_ = np.ascontiguousarray(vectors)
        self.n_features_in_ = X.shape[1]
        self._next_id = next_id
        return self

    def _check_X(self, X, name):
        check_is_fitted(self, "index_")
        return check_vectors(X, name, n_features=self.n_features_in_, allow_empty=True)

    def add(self, X, ids=None):
        """Encode and add vectors.

        Parameters
        ----------
        X : array-like of shape (n, n_features)
        ids : array-like of int of shape (n,), optional
            Distinct non-negative ids not already stored. Default: consecutive ids starting
            one past the largest id ever stored.

        Returns
        -------
        self : HashingSearcher
        """
        X = self._check_X(X, "X")
        m = X.shape[0]
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
        else:
            ids = check_ids(ids, "ids", n=m)
        if m == 0:
            return self
        old_ids = np.array(self.index_.ids)
        self.index_.add(self.learner_.transform(X), ids)  # validates ids (no duplicates)
        vectors = np.concatenate([self.vectors_, X])
        if (old_ids.shape[0] and ids.min() <= old_ids[-1]) or (np.diff(ids) <= 0).any():
            order = np.argsort(np.concatenate([old_ids, ids]), kind="stable")
            vectors = vectors[order]
        self.vectors_ = vectors
        self._next_id = max(self._next_id, int(ids.max()) + 1)
        return self

    def remove(self, ids):
        """Remove the vectors with these ids (unknown ids are ignored).

        Returns
        -------
        n_removed : int
        """
        check_is_fitted(self, "index_")
        ids = check_ids(ids, "ids")
        keep = ~np.isin(np.asarray(self.index_.ids), ids)
        n_removed = self.index_.remove(ids)
        if n_removed:
            self.vectors_ = self.vectors_[keep]
        return int(n_removed)

    @property
    def ids(self):
        """Stored ids in increasing order (the rows of ``vectors_``)."""
        check_is_fitted(self, "index_")
        return self.index_.ids

    # ---------------------------------------------------------------- search
    def search(self, X, k, candidates=None):
        """The ``k`` nearest stored vectors of every query after exact re-ranking.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Finite query vectors.
        k : int
            Neighbours per query, ``1 <= k <= candidates``.
        candidates : int, optional
            Hamming neighbours re-ranked per query; default: the ``candidates`` parameter.

        Returns
        -------
        FloatSearchResult
            ``ids`` int64 and ``distances`` float32 of shape (n_queries, k): Euclidean
            distances ascending (padding ``inf``) or inner products descending (padding
            ``-inf``), ties broken by id; id ``-1`` where fewer than ``k`` vectors are stored.
        """
        Xq = self._check_X(X, "X")
        k = check_int(k, "k", min_value=1)
        if candidates is None:
            candidates = self.candidates
        candidates = check_int(candidates, "candidates", min_value=1)
        if k > candidates:
            raise ValueError(
                f"k={k} exceeds candidates={candidates}: re-ranking can only return neighbours "
                "among the candidates; pass candidates >= k"
            )
        if Xq.shape[0] == 0:
            return FloatSearchResult(ids=np.empty((0, k), np.int64),
                                     distances=np.empty((0, k), np.float32))
        hamming = self.index_.search(self.learner_.transform(Xq), candidates)
        cand = hamming.ids
        stored = np.asarray(self.index_.ids)
        rows = np.searchsorted(stored, cand)
        return rerank(Xq, self.vectors_, rows, cand, k, self.metric)

    # ---------------------------------------------------------------- persistence
    def save(self, path):
        """Save the fitted searcher (learner, codes, vectors) atomically to ``path``.

        Uses ordhash's pickle-free format (:mod:`ordhash.persist`); the learner must be a
        saveable ordhash learner.
        """
        return persist.save(self, path)

    @classmethod
    def load(cls, path, *, mmap=False):
        """Load a searcher saved by :meth:`save`.

        With ``mmap=True`` the large arrays (codes, vectors) stay read-only memory maps of the
        file; :meth:`add` and :meth:`remove` then work on in-memory copies.
        """
        return persist.load(path, expected=cls, mmap=mmap)

    def _get_state(self):
        check_is_fitted(self, "index_")
        kind = getattr(type(self.learner_), "_persist_kind", None)
        if kind is None:
            raise TypeError(f"cannot save a HashingSearcher over a {type(self.learner_).__name__}"
                            ": the learner is not a saveable ordhash learner")
        lmeta, larrays = self.learner_._get_state()
        imeta, iarrays = self.index_._get_state()
        meta = {
            "params": {"index": self.index, "metric": self.metric,
                       "candidates": int(self.candidates), "n_jobs": self.n_jobs},
            "learner": {"kind": kind, "meta": lmeta},
            "index": {"kind": type(self.index_)._persist_kind, "meta": imeta},
            "n_features_in": int(self.n_features_in_),
            "next_id": int(self._next_id),
        }
        arrays = {"vectors": self.vectors_}
        arrays.update({f"learner.{k}": v for k, v in larrays.items()})
        arrays.update({f"index.{k}": v for k, v in iarrays.items()})
        return meta, arrays

    @classmethod
    def _from_state(cls, meta, arrays):
        def part(prefix):
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        classes = []
        for name in ("learner", "index"):
            kind = meta[name]["kind"]
            klass = persist.registered_class(kind)
            if klass is None:
                raise persist.FormatError(f"HashingSearcher file holds an unknown {name} {kind!r}")
            classes.append(klass)
        learner = classes[0]._from_state(meta["learner"]["meta"], part("learner."))
        index = classes[1]._from_state(meta["index"]["meta"], part("index."))
        vectors = arrays["vectors"]
        if vectors.shape != (len(index), meta["n_features_in"]):
            raise persist.FormatError(
                f"HashingSearcher file is inconsistent: {vectors.shape[0]} vectors of "
                f"{vectors.shape[1]} features for {len(index)} codes"
            )
        obj = cls(clone(learner), **meta["params"])
        obj.learner_ = learner
        obj.index_ = index
        obj.vectors_ = vectors
        obj.n_features_in_ = int(meta["n_features_in"])
        obj._next_id = int(meta["next_id"])
        return obj
