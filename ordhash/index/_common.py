"""Pieces shared by the Hamming indexes: result types, id storage, validation, threads.

Conventions (both :class:`~ordhash.index.HammingIndex` and
:class:`~ordhash.index.MultiIndexHashing`):

- ids are non-negative ``int64``; codes are stored in increasing id order, so "tie broken by
  id" and "tie broken by storage position" are the same rule;
- k-NN rows are sorted by (distance, id) and padded with distance :data:`PAD_DISTANCE`
  (``INT32_MAX``) and id :data:`PAD_ID` (-1), which is exactly what faiss returns;
- radii are inclusive: ``range_search(q, r)`` returns every code with distance ``<= r``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Integral

import numba
import numpy as np

from .._kernels.search import PAD_DISTANCE as _PAD_DISTANCE
from .._validation import check_codes, check_int

PAD_DISTANCE = int(_PAD_DISTANCE)
"""Distance reported for a missing neighbour (``INT32_MAX``, as in faiss)."""

PAD_ID = -1
"""Id reported for a missing neighbour (as in faiss)."""


@dataclass(frozen=True)
class SearchResult:
    """k-nearest-neighbour result for a batch of queries.

    Attributes
    ----------
    ids : ndarray of shape (n_queries, k), dtype int64
        Neighbour ids sorted by (distance, id); :data:`PAD_ID` (-1) where the index holds
        fewer than ``k`` codes.
    distances : ndarray of shape (n_queries, k), dtype int32
        Hamming distances; :data:`PAD_DISTANCE` (``INT32_MAX``) in padded slots.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.index import HammingIndex
    >>> index = HammingIndex(8)
    >>> index.add(np.array([[0], [3]], dtype=np.uint8))
    >>> res = index.search(np.array([[1]], dtype=np.uint8), k=3)
    >>> res.ids, res.distances, res.counts
    (array([[ 0,  1, -1]]), array([[         1,          1, 2147483647]], dtype=int32), array([2]))
    """

    ids: np.ndarray
    distances: np.ndarray

    @property
    def counts(self):
        """Number of real (non-padded) neighbours per query, ``int64`` of shape (n_queries,)."""
        return np.count_nonzero(self.ids != PAD_ID, axis=1).astype(np.int64)

    def __len__(self):
        return self.ids.shape[0]


@dataclass(frozen=True)
class RangeSearchResult:
    """Radius-search result in CSR form (the layout of faiss ``range_search``).

    The matches of query ``i`` are ``ids[lims[i]:lims[i + 1]]`` with
    ``distances[lims[i]:lims[i + 1]]``, sorted by (distance, id).

    Attributes
    ----------
    lims : ndarray of shape (n_queries + 1,), dtype int64
    ids : ndarray of shape (lims[-1],), dtype int64
    distances : ndarray of shape (lims[-1],), dtype int32

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.index import HammingIndex
    >>> index = HammingIndex(8)
    >>> index.add(np.array([[0], [3], [255]], dtype=np.uint8))
    >>> res = index.range_search(np.array([[1], [254]], dtype=np.uint8), radius=1)
    >>> res.lims, res.counts, res[0]
    (array([0, 2, 3]), array([2, 1]), (array([0, 1]), array([1, 1], dtype=int32)))
    """

    lims: np.ndarray
    ids: np.ndarray
    distances: np.ndarray

    @property
    def counts(self):
        """Number of matches per query, ``int64`` of shape (n_queries,)."""
        return np.diff(self.lims)

    def __len__(self):
        return self.lims.shape[0] - 1

    def __getitem__(self, i):
        """``(ids, distances)`` of query ``i``."""
        n = len(self)
        i = check_int(i, "i")
        if not -n <= i < n:
            raise IndexError(f"query index {i} out of range for {n} queries")
        i %= n
        lo, hi = self.lims[i], self.lims[i + 1]
        return self.ids[lo:hi], self.distances[lo:hi]


def empty_knn(n_queries, k):
    """An all-padding k-NN result."""
    return SearchResult(
        ids=np.full((n_queries, k), PAD_ID, dtype=np.int64),
        distances=np.full((n_queries, k), PAD_DISTANCE, dtype=np.int32),
    )


def empty_range(n_queries):
    """A range result with no match for any query."""
    return RangeSearchResult(
        lims=np.zeros(n_queries + 1, dtype=np.int64),
        ids=np.empty(0, dtype=np.int64),
        distances=np.empty(0, dtype=np.int32),
    )


# --------------------------------------------------------------------------------------------
# validation


def check_n_bits(n_bits):
    return check_int(n_bits, "n_bits", min_value=1)


def check_packed(codes, name, n_bits, *, allow_empty):
    """Packed ``uint8`` codes of ``n_bits`` bits: right width and zero padding bits."""
    size = (n_bits + 7) // 8
    arr = check_codes(codes, name, allow_empty=allow_empty)
    if arr.shape[1] != size:
        raise ValueError(
            f"{name} has {arr.shape[1]} bytes per code, but the index holds {n_bits}-bit codes "
            f"({size} bytes per code)"
        )
    spare = 8 * size - n_bits
    if spare and arr.shape[0]:
        high = np.uint8((0xFF << (8 - spare)) & 0xFF)
        if (arr[:, -1] & high).any():
            raise ValueError(
                f"{name} has bits set beyond bit {n_bits - 1} in the last byte; the "
                f"{spare} unused high bits of each code must be zero (ordhash.codes.pack_bits "
                "produces such codes)"
            )
    return arr


def check_k(k):
    return check_int(k, "k", min_value=1)


def check_radius(radius, n_bits):
    radius = check_int(radius, "radius", min_value=0)
    return min(radius, n_bits)


def check_ids(ids, name="ids", *, n=None):
    """1-D non-negative ``int64`` ids (a scalar id is accepted and becomes length 1)."""
    if ids is None or isinstance(ids, (str, bytes)):
        raise TypeError(f"{name} must be an array of integer ids, got {type(ids).__name__}")
    arr = np.asarray(ids)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, but there are {n} codes")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative (-1 is reserved for padding), got {arr.min()}")
    if arr.size and arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_n_jobs(n_jobs):
    """``None`` (numba's current setting), a positive count, or a joblib-style negative count."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (Integral, np.integer)):
        raise TypeError(f"n_jobs must be None or an integer, got {n_jobs!r}")
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs must be a positive number of threads, a negative count (-1: all), or None")
    return n_jobs


def resolve_threads(n_jobs):
    """Number of threads for one call.

    ``None`` follows numba's current setting (``numba.get_num_threads()``, which honours
    ``NUMBA_NUM_THREADS`` and ``numba.set_num_threads``); a positive value is clamped to
    ``numba.config.NUMBA_NUM_THREADS``; ``-1`` means all of them, ``-2`` all but one, etc.
    """
    if n_jobs is None:
        return max(1, numba.get_num_threads())
    top = numba.config.NUMBA_NUM_THREADS
    return min(n_jobs, top) if n_jobs > 0 else max(1, top + 1 + n_jobs)


_POOL = None
_POOL_LOCK = threading.Lock()


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                       thread_name_prefix="ordhash")
        return _POOL


def run_tasks(fn, ranges, n_threads):
    """Call ``fn(lo, hi)`` for every ``(lo, hi)`` in ``ranges`` on up to ``n_threads`` threads.

    The kernels release the GIL, so plain threads run them in parallel without compiling a
    numba ``parallel=True`` variant (which would add seconds of JIT per kernel). Ranges are
    handed out dynamically; the calling thread works too, so nested calls cannot deadlock.
    """
    ranges = list(ranges)
    n_threads = min(n_threads, len(ranges))
    if n_threads <= 1:
        for lo, hi in ranges:
            fn(lo, hi)
        return
    lock = threading.Lock()
    todo = iter(ranges)

    def worker():
        while True:
            with lock:
                item = next(todo, None)
            if item is None:
                return
            fn(*item)

    futures = [_pool().submit(worker) for _ in range(n_threads - 1)]
    try:
        worker()
    finally:
        for f in futures:
            f.cancel()
        for f in futures:
            if not f.cancelled():
                f.result()


def split_ranges(n, n_threads, per_thread=4):
    """Cut ``range(n)`` into about ``per_thread * n_threads`` contiguous ``(lo, hi)`` pieces."""
    pieces = max(1, min(n, per_thread * n_threads))
    bounds = np.linspace(0, n, pieces + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


_SCRATCH_MIN = 64  # first-pass matches kept per query before the scratch is sized from data
_SCRATCH_MAX = 1 << 16
_SCRATCH_BYTES = 1 << 25  # bound on the first-pass scratch of one chunk of queries


def chunked_range(n_queries, pilot, run_chunk):
    """Radius search over query chunks with a per-query scratch sized from the counts seen.

    ``run_chunk(c0, c1, cap)`` searches queries ``c0 .. c1`` keeping up to ``cap`` matches per
    query in a first pass (queries with more are searched again with the exact room) and
    returns ``(lims, distances, positions)`` for the chunk. The first chunk is a pilot of
    ``pilot`` queries with a small scratch; later chunks use room for the 95th percentile
    count (times 1.25) so that few queries need the second pass, and are as large as the
    scratch budget allows. Returns the concatenated ``(lims, distances, positions)``.
    """
    lims_all, dist_all, pos_all = [np.zeros(1, np.int64)], [], []
    offset, c0, cap = 0, 0, _SCRATCH_MIN
    while c0 < n_queries:
        size = pilot if c0 == 0 else max(pilot, _SCRATCH_BYTES // (12 * cap))
        c1 = min(n_queries, c0 + size)
        lims, dist, pos = run_chunk(c0, c1, cap)
        want = 1.25 * float(np.quantile(np.diff(lims), 0.95)) + 1
        cap = int(min(_SCRATCH_MAX, max(_SCRATCH_MIN, 1 << int(np.ceil(np.log2(want))))))
        lims_all.append(lims[1:] + offset)
        offset += int(lims[-1])
        dist_all.append(dist)
        pos_all.append(pos)
        c0 = c1
    return np.concatenate(lims_all), np.concatenate(dist_all), np.concatenate(pos_all)


def two_pass(qw, cap, scan, gather):
    """Radius matches of the queries ``qw`` in two passes, as unsorted CSR segments.

    ``scan(qw, base, capacity, dist, pos, counts)`` writes at most ``capacity[i]`` matches of
    query ``i`` from ``dist/pos[base[i]]`` and counts all of them. The first pass gives every
    query ``cap`` slots of scratch; queries with more matches are scanned again straight into
    the output with the exact room. ``gather`` copies the finished scratch segments.
    """
    m = qw.shape[0]
    base = np.arange(m, dtype=np.int64) * cap
    scratch_d = np.empty(m * cap, np.int32)
    scratch_p = np.empty(m * cap, np.int64)
    counts = np.zeros(m, np.int64)
    scan(qw, base, np.full(m, cap, np.int64), scratch_d, scratch_p, counts)
    lims = np.zeros(m + 1, np.int64)
    np.cumsum(counts, out=lims[1:])
    dist = np.empty(lims[-1], np.int32)
    pos = np.empty(lims[-1], np.int64)
    done = counts <= cap
    gather(lims, base, scratch_d, scratch_p, done, dist, pos)
    if not done.all():
        over = np.flatnonzero(~done)
        scan(np.ascontiguousarray(qw[over]), lims[over], counts[over], dist, pos,
             np.zeros(over.shape[0], np.int64))
    return lims, dist, pos


def query_words(queries, n_words):
    """Packed ``uint8`` queries as zero-padded ``uint64`` words, shape (n, n_words)."""
    n, size = queries.shape
    if size == 8 * n_words:
        return np.ascontiguousarray(queries).view(np.uint64)
    padded = np.zeros((n, 8 * n_words), dtype=np.uint8)
    padded[:, :size] = queries
    return padded.view(np.uint64)


# --------------------------------------------------------------------------------------------
# storage


class CodeStore:
    """Codes and their ids, kept in increasing id order, with amortised appends.

    ``codes`` and ``ids`` are views of over-allocated buffers. Adding ids larger than every
    stored id appends; any other add merges and re-sorts the whole store.
    """

    def __init__(self, code_size):
        self.code_size = code_size
        self.reset()

    def reset(self):
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)
        self._ids = np.empty(0, dtype=np.int64)
        self.n = 0
        self.next_id = 0

    @property
    def codes(self):
        return self._codes[: self.n]

    @property
    def ids(self):
        return self._ids[: self.n]

    def nbytes(self):
        return int(self.codes.nbytes + self.ids.nbytes)

    def _reserve(self, n_new):
        need = self.n + n_new
        if need <= self._ids.shape[0]:
            return
        cap = max(need, int(1.5 * self._ids.shape[0]), 1024)
        codes = np.empty((cap, self.code_size), dtype=np.uint8)
        ids = np.empty(cap, dtype=np.int64)
        codes[: self.n] = self.codes
        ids[: self.n] = self.ids
        self._codes, self._ids = codes, ids

    def add(self, codes, ids):
        """Insert ``codes`` under ``ids`` (``None``: consecutive from :attr:`next_id`).

        Returns ``True`` when existing codes changed position (the store was re-sorted).
        """
        m = codes.shape[0]
        if ids is None:
            ids = np.arange(self.next_id, self.next_id + m, dtype=np.int64)
        else:
            ids = check_ids(ids, "ids", n=m)
            if m > 1 and (np.diff(ids) <= 0).any():
                order = np.argsort(ids, kind="stable")
                ids, codes = ids[order], codes[order]
                dup = ids[1:][ids[1:] == ids[:-1]]
                if dup.size:
                    raise ValueError(f"ids contains duplicates, e.g. {int(dup[0])}")
        if m == 0:
            return False
        stored = self.ids
        resort = self.n > 0 and ids[0] <= stored[-1]
        if resort:
            at = np.searchsorted(stored, ids)
            hit = at < self.n
            hit[hit] = stored[at[hit]] == ids[hit]
            if hit.any():
                raise ValueError(f"ids already in the index, e.g. {int(ids[hit][0])}")
        self._reserve(m)
        self._codes[self.n : self.n + m] = codes
        self._ids[self.n : self.n + m] = ids
        self.n += m
        if resort:
            order = np.argsort(self.ids, kind="stable")
            self._codes[: self.n] = self.codes[order]
            self._ids[: self.n] = self.ids[order]
        self.next_id = max(self.next_id, int(ids[-1]) + 1)
        return bool(resort)

    def positions(self, ids):
        """Positions of ``ids`` and a mask telling which ids are stored."""
        stored = self.ids
        at = np.searchsorted(stored, ids)
        found = at < self.n
        found[found] = stored[at[found]] == ids[found]
        return at, found

    def remove(self, ids):
        """Drop the codes with these ids (unknown ids are ignored); returns the keep mask or None."""
        at, found = self.positions(ids)
        if not found.any():
            return None
        keep = np.ones(self.n, dtype=bool)
        keep[at[found]] = False
        kept = int(keep.sum())
        self._codes[:kept] = self.codes[keep]
        self._ids[:kept] = self.ids[keep]
        self.n = kept
        return keep

    def reconstruct(self, ids):
        ids = check_ids(ids, "ids")
        at, found = self.positions(ids)
        if not found.all():
            raise ValueError(f"ids not in the index: {ids[~found][:10].tolist()}")
        return self.codes[at]


class CodeStoreIndex:
    """What every index over a :class:`CodeStore` shares: sizes, ids and stored codes.

    Subclasses set ``_n_bits``, ``_n_jobs`` and ``_store`` in ``__init__``.
    """

    @property
    def n_bits(self):
        """Bits per code."""
        return self._n_bits

    @property
    def code_size(self):
        """Bytes per packed code, ``ceil(n_bits / 8)``."""
        return self._store.code_size

    @property
    def ntotal(self):
        """Number of stored codes."""
        return self._store.n

    @property
    def n_jobs(self):
        """Threads per call (``None``: the library's current setting)."""
        return self._n_jobs

    @property
    def ids(self):
        """Stored ids in increasing order (a copy: later ``add``/``remove`` do not change it)."""
        return self._store.ids.copy()

    def __len__(self):
        return self._store.n

    def reconstruct(self, ids):
        """Stored codes of these ids, shape (len(ids), code_size), ``uint8``.

        Raises ``ValueError`` if an id is not in the index.
        """
        return self._store.reconstruct(ids)
