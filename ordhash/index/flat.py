"""Exact Hamming search by a full scan: :class:`HammingIndex`."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .. import persist
from .._kernels import search as _sk
from .._validation import check_option
from ._common import (
    CodeStore,
    CodeStoreIndex,
    RangeSearchResult,
    chunked_range,
    SearchResult,
    check_ids,
    check_k,
    check_n_bits,
    check_n_jobs,
    check_packed,
    check_radius,
    empty_knn,
    empty_range,
    query_words,
    resolve_threads,
    run_tasks,
    split_ranges,
    two_pass,
)

__all__ = ["HammingIndex"]

_QBLOCK = 64  # queries sharing one pass over the database
_BLOCK_STATE_BYTES = 1 << 22  # cap on the per-block selection buffers
_NO_INT = np.empty(0, np.int64)
_NO_D = np.empty(0, np.int32)


def _qblock(k, n_queries):
    per_query = 12 * (3 * k + 32)
    return int(max(1, min(_QBLOCK, _BLOCK_STATE_BYTES // per_query, n_queries)))


def _n_parts(n_queries, qblock, n_codes, n_words, n_threads):
    """Split the database between threads when there are too few query blocks to share."""
    blocks = -(-n_queries // qblock)
    if n_threads <= 1 or blocks >= 2 * n_threads:
        return 1
    want = -(-2 * n_threads // blocks)
    most = max(1, n_codes // (4 * _sk.tile_codes(n_words)))
    return int(max(1, min(want, most)))


@contextmanager
def _faiss_threads(faiss, n_jobs):
    if n_jobs is None:
        yield
        return
    n = resolve_threads(n_jobs)
    prev = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(prev)



def restore_store(store, meta, arrays, owner):
    """Fill a :class:`CodeStore` from saved arrays, checking the index invariants.

    The arrays are used as they are (no copy), so memory-mapped codes stay mapped; a
    read-only store is copied by :func:`writable_store` before it is modified in place.
    """
    from .. import persist

    try:
        codes, ids = np.asarray(arrays["codes"]), np.asarray(arrays["ids"])
        next_id = int(meta["next_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise persist.FormatError(f"{owner} file is missing {exc}") from None
    n = ids.shape[0] if ids.ndim == 1 else -1
    if (codes.dtype != np.uint8 or ids.dtype != np.int64 or codes.ndim != 2
            or codes.shape != (n, store.code_size)):
        raise persist.FormatError(
            f"{owner} file holds codes {codes.dtype}{codes.shape} and ids {ids.dtype}{ids.shape}; "
            f"expected uint8 (n, {store.code_size}) and int64 (n,)"
        )
    if n and (ids[0] < 0 or (np.diff(ids) <= 0).any() or next_id <= ids[-1]):
        raise persist.FormatError(f"{owner} file has ids that are not distinct, "
                                  "non-negative and increasing")
    store._codes, store._ids, store.n, store.next_id = codes, ids, n, next_id


def writable_store(store):
    """Copy a read-only (memory-mapped) store into memory before an in-place change."""
    if not (store._codes.flags.writeable and store._ids.flags.writeable):
        store._codes = np.array(store.codes)
        store._ids = np.array(store.ids)


@persist.register("ordhash.HammingIndex")
class HammingIndex(CodeStoreIndex):
    """Exact k-NN and radius search over packed binary codes by a full scan.

    The numba backend computes distances with a vectorised popcount and selects neighbours
    in the same pass (query blocking, histogram selection instead of a heap); the faiss
    backend wraps ``faiss.IndexBinaryFlat`` behind the same API and conventions.

    Conventions: ids are non-negative int64; results are sorted by (distance, id), so ties are
    broken by the smaller id, identically in both backends; when the index holds fewer than
    ``k`` codes, k-NN rows are padded with distance ``PAD_DISTANCE`` (``INT32_MAX``) and id
    ``PAD_ID`` (-1), as faiss does; radius search is **inclusive** (distance ``<= radius``),
    whereas faiss ``range_search(x, r)`` keeps distance ``< r`` (call faiss with ``r + 1``).

    Parameters
    ----------
    n_bits : int
        Bits per code; codes are ``ceil(n_bits / 8)`` bytes, bit ``j`` in byte ``j // 8`` at
        position ``j % 8`` (:func:`ordhash.codes.pack_bits`). Unused high bits of the last byte
        must be zero.
    backend : {"numba", "faiss"}, default="numba"
        Scan implementation. ``"faiss"`` keeps a second copy of the codes inside faiss.
    n_jobs : int or None, default=None
        Threads per call. ``None`` follows numba's setting (``numba.get_num_threads()``, i.e.
        ``NUMBA_NUM_THREADS`` or ``numba.set_num_threads``) for the numba backend and faiss's
        current OpenMP setting for the faiss backend; ``-1`` uses all threads, ``-2`` all but
        one. The numba kernels release the GIL and run on a small thread pool (queries are
        split between threads; with fewer query blocks than threads the database is split);
        the faiss backend sets ``faiss.omp_set_num_threads`` for the call and restores it.

    Attributes
    ----------
    n_bits, code_size, ntotal, backend, n_jobs, ids, nbytes

    Notes
    -----
    Codes are stored in increasing id order, so breaking ties by position is breaking them by
    id. The faiss backend keeps its ``IndexBinaryFlat`` in the same order and maps the
    positions it returns to ids (rather than wrapping it in ``IndexBinaryIDMap2``, whose
    per-id hash map costs memory and whose positions would follow insertion order); faiss
    keeps the earliest position among ties at the k-th distance, so both backends return
    identical results.

    Not safe for concurrent ``add``/``remove`` with searches; concurrent searches are fine.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import pack_bits
    >>> from ordhash.index import HammingIndex
    >>> rng = np.random.default_rng(0)
    >>> codes = pack_bits(rng.integers(0, 2, size=(1000, 64)))
    >>> index = HammingIndex(64)
    >>> index.add(codes)
    >>> res = index.search(codes[:2], k=3)
    >>> res.ids[:, 0], res.distances[:, 0]
    (array([0, 1]), array([0, 0], dtype=int32))
    >>> index.range_search(codes[:2], radius=0).counts
    array([1, 1])
    """

    def __init__(self, n_bits, *, backend="numba", n_jobs=None):
        self._n_bits = check_n_bits(n_bits)
        self._backend = check_option(backend, "backend", {"numba", "faiss"})
        self._n_jobs = check_n_jobs(n_jobs)
        self._store = CodeStore((self._n_bits + 7) // 8)
        self._faiss_index = None
        if self._backend == "faiss":
            self._faiss_index = self._new_faiss()

    # ---------------------------------------------------------------- properties
    @property
    def backend(self):
        """``"numba"`` or ``"faiss"``."""
        return self._backend

    @property
    def nbytes(self):
        """Bytes held by the index: codes and ids (twice the codes for the faiss backend)."""
        extra = self.ntotal * self.code_size if self._backend == "faiss" else 0
        return self._store.nbytes() + extra

    def __repr__(self):
        return (f"HammingIndex(n_bits={self._n_bits}, backend={self._backend!r}, "
                f"n_jobs={self._n_jobs!r}, ntotal={self.ntotal})")

    # ---------------------------------------------------------------- mutation
    def add(self, codes, ids=None):
        """Add packed codes.

        Parameters
        ----------
        codes : ndarray of shape (n, code_size), dtype uint8
            Zero rows is a no-op.
        ids : array-like of int of shape (n,), optional
            Distinct non-negative ids, not already in the index. Default: consecutive ids
            starting one past the largest id ever added (0 for a new or reset index).
        """
        codes = check_packed(codes, "codes", self._n_bits, allow_empty=True)
        if ids is not None:
            ids = check_ids(ids, "ids", n=codes.shape[0])
        n_before = self.ntotal
        resorted = self._store.add(codes, ids)
        if self._faiss_index is not None and self.ntotal > n_before:
            if resorted:
                self._faiss_index.reset()
                self._faiss_index.add(self._store.codes)
            else:
                self._faiss_index.add(self._store.codes[n_before:])

    def remove(self, ids):
        """Remove the codes with these ids; unknown ids are ignored.

        Returns
        -------
        n_removed : int
        """
        ids = np.unique(check_ids(ids, "ids"))
        n_before = self.ntotal
        writable_store(self._store)
        keep = self._store.remove(ids)
        if keep is None:
            return 0
        if self._faiss_index is not None:
            import faiss

            gone = np.flatnonzero(~keep).astype(np.int64)
            self._faiss_index.remove_ids(faiss.IDSelectorBatch(gone))
        return n_before - self.ntotal

    def reset(self):
        """Remove every code; default ids start again at 0."""
        self._store.reset()
        if self._faiss_index is not None:
            self._faiss_index.reset()

    # ---------------------------------------------------------------- search
    def search(self, queries, k):
        """The ``k`` nearest codes of every query.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, code_size), dtype uint8
            Zero queries give an empty result of shape (0, k).
        k : int
            Neighbours per query, ``>= 1``; may exceed :attr:`ntotal` (the rest is padding).

        Returns
        -------
        SearchResult
            ``ids`` int64 and ``distances`` int32 of shape (n_queries, k), sorted by
            (distance, id), padded with (``PAD_DISTANCE``, -1).
        """
        queries = check_packed(queries, "queries", self._n_bits, allow_empty=True)
        k = check_k(k)
        nq, n = queries.shape[0], self.ntotal
        if nq == 0 or n == 0:
            return empty_knn(nq, k)
        kk = min(k, n)
        if self._backend == "faiss":
            dist, pos = self._faiss_knn(queries, kk)
        else:
            dist, pos = self._numba_knn(queries, kk)
        ids = self._store.ids[pos]
        if kk < k:
            out = empty_knn(nq, k)
            out.ids[:, :kk] = ids
            out.distances[:, :kk] = dist
            return out
        return SearchResult(ids=ids, distances=dist)

    def range_search(self, queries, radius):
        """Every code within Hamming distance ``radius`` (inclusive) of each query.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, code_size), dtype uint8
        radius : int
            ``>= 0``; codes with distance ``<= radius`` match. (faiss's radius is strict:
            ``faiss_index.range_search(q, radius + 1)`` gives the same set.)

        Returns
        -------
        RangeSearchResult
            CSR ``lims`` int64 (n_queries + 1), ``ids`` int64, ``distances`` int32, each
            query's matches sorted by (distance, id).
        """
        queries = check_packed(queries, "queries", self._n_bits, allow_empty=True)
        radius = check_radius(radius, self._n_bits)
        nq = queries.shape[0]
        if nq == 0 or self.ntotal == 0:
            return empty_range(nq)
        if self._backend == "faiss":
            lims, dist, pos = self._faiss_range(queries, radius)
        else:
            lims, dist, pos = self._numba_range(queries, radius)
        return RangeSearchResult(lims=lims, ids=self._store.ids[pos], distances=dist)

    # ---------------------------------------------------------------- numba backend
    def _words(self):
        codes = self._store.codes
        aligned = self.code_size % 8 == 0
        words = codes.reshape(-1).view(np.uint64) if aligned else np.empty(0, np.uint64)
        return codes, words, aligned

    def _numba_knn(self, queries, k):
        codes, words, aligned = self._words()
        nq = queries.shape[0]
        nw = (self.code_size + 7) // 8
        qw = query_words(queries, nw)
        qblock = _qblock(k, nq)
        n_threads = resolve_threads(self._n_jobs)
        parts = _n_parts(nq, qblock, codes.shape[0], nw, n_threads)
        res_d = np.empty((parts, nq, k), np.int32)
        res_p = np.empty((parts, nq, k), np.int64)
        n_units = -(-nq // qblock) * parts

        def task(u0, u1):
            _sk.flat_units(qw, words, codes, aligned, k, -1, self._n_bits, qblock, parts, u0, u1,
                           res_d, res_p, _NO_INT, _NO_INT, _NO_D, _NO_INT, _NO_INT)

        run_tasks(task, split_ranges(n_units, n_threads), n_threads)
        if parts == 1:
            return res_d[0], res_p[0]
        return _sk.merge_parts(res_d, res_p)

    def _numba_range(self, queries, radius):
        codes, words, aligned = self._words()
        nw = (self.code_size + 7) // 8
        n_threads = resolve_threads(self._n_jobs)
        no_d = np.empty((1, 0, 0), np.int32)
        no_p = np.empty((1, 0, 0), np.int64)

        def scan(qw, base, capacity, dist, pos, counts):
            def task(u0, u1):
                _sk.flat_units(qw, words, codes, aligned, 0, radius, self._n_bits, _QBLOCK, 1,
                               u0, u1, no_d, no_p, base, capacity, dist, pos, counts)

            run_tasks(task, split_ranges(-(-qw.shape[0] // _QBLOCK), n_threads), n_threads)

        def run_chunk(c0, c1, cap):
            lims, dist, pos = two_pass(query_words(queries[c0:c1], nw), cap, scan,
                                       _sk.gather_segments)
            _sk.sort_segments_stable(lims, dist, pos, radius)  # scans emit position order
            return lims, dist, pos

        return chunked_range(queries.shape[0], _QBLOCK * n_threads, run_chunk)

    # ---------------------------------------------------------------- faiss backend
    def _new_faiss(self):
        import faiss

        return faiss.IndexBinaryFlat(8 * self.code_size)

    def _faiss_knn(self, queries, k):
        import faiss

        with _faiss_threads(faiss, self._n_jobs):
            dist, pos = self._faiss_index.search(queries, k)
        # faiss breaks boundary ties by storage position (= id order here) but does not order
        # ties inside the result; sort each row by (distance, position)
        order = np.lexsort((pos, dist), axis=1)
        dist = np.take_along_axis(dist, order, axis=1).astype(np.int32, copy=False)
        pos = np.take_along_axis(pos, order, axis=1)
        return dist, pos

    def _faiss_range(self, queries, radius):
        import faiss

        with _faiss_threads(faiss, self._n_jobs):
            lims, dist, pos = self._faiss_index.range_search(queries, radius + 1)
        lims = lims.astype(np.int64)
        dist = np.ascontiguousarray(dist, dtype=np.int32)
        pos = np.ascontiguousarray(pos, dtype=np.int64)
        _sk.sort_segments_by_key(lims, dist, pos)
        return lims, dist, pos

    # ---------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_faiss_index"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._backend == "faiss":
            self._faiss_index = self._new_faiss()
            if self.ntotal:
                self._faiss_index.add(self._store.codes)

    # ---------------------------------------------------------------- persistence
    def save(self, path):
        """Save the index atomically to ``path`` in ordhash's pickle-free format.

        See :mod:`ordhash.persist`; codes and ids are stored as raw arrays.
        """
        return persist.save(self, path)

    @classmethod
    def load(cls, path, *, mmap=False):
        """Load an index saved by :meth:`save`.

        With ``mmap=True`` the codes (and ids) stay a read-only memory map of the file and are
        searched in place; :meth:`remove` first copies them into memory. The faiss backend
        always copies the codes into its own ``IndexBinaryFlat``.
        """
        return persist.load(path, expected=cls, mmap=mmap)

    def _get_state(self):
        meta = {"n_bits": self._n_bits, "backend": self._backend, "n_jobs": self._n_jobs,
                "next_id": int(self._store.next_id)}
        return meta, {"codes": self._store.codes, "ids": self._store.ids}

    @classmethod
    def _from_state(cls, meta, arrays):
        obj = cls(meta["n_bits"], backend=meta["backend"], n_jobs=meta["n_jobs"])
        restore_store(obj._store, meta, arrays, "HammingIndex")
        if obj._faiss_index is not None and obj.ntotal:
            obj._faiss_index.add(np.ascontiguousarray(obj._store.codes))
        return obj
