"""Exact sub-linear Hamming search: :class:`MultiIndexHashing`."""

from __future__ import annotations

from math import ceil, comb, log2

import numpy as np

from .. import persist
from .._kernels import mih as _mk
from .._kernels import search as _sk
from .._validation import check_int
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
from .flat import restore_store, writable_store

__all__ = ["MultiIndexHashing"]

_BINOM = np.array([[comb(n, s) for s in range(65)] for n in range(65)], dtype=np.int64)
_NO_D = np.empty(0, np.int32)
_NO_P = np.empty(0, np.int64)
_TABLE_KEYS = {"tent", "pbits", "starts", "lens", "direct", "doffs", "dbase", "skeys", "soffs",
               "sbase", "sobase", "snum"}
_OLD_TABLE_KEYS = {"tcodes", "tpos", "starts", "lens", "direct", "doffs", "dbase", "skeys",
                   "soffs", "sbase", "sobase", "snum"}  # kind version 1: rebuilt on load
_BLOCK = 1024  # queries per kernel call (they advance through the probe steps together)
# A query is handed to the blocked flat scan once its probes and bucket entries exceed
# n / _FLAT_SPEEDUP (a bucket entry costs several codes of the flat scan); indexes of fewer
# than _FALLBACK_MIN_N codes allow n (their tables sit in cache, the flat scan gains less).
_FLAT_SPEEDUP = 8
_FALLBACK_MIN_N = 1 << 16
_BUCKET_LOG2 = 7  # default substrings leave ~2**7 codes per bucket (see default_substrings)


def default_substrings(n_bits, n_codes):
    """Default number of substrings ``m`` for ``n_codes`` codes of ``n_bits`` bits.

    The paper's rule (Norouzi et al.) is ``m ≈ n_bits / log2(n)``: substrings of about
    ``log2(n)`` bits, i.e. about one code per bucket, because each candidate costs a random
    access. Here buckets hold the code bits themselves and are verified by a sequential
    vectorised scan shared by a block of queries, so fewer, larger buckets are cheaper:
    substrings of ``log2(n) - 7`` bits (about 128 codes per bucket, at least 8 bits). On 10M
    uniform 64-bit codes (10-NN, one thread, ``eval/bench_index.py`` on a busy machine) the
    paper's m = 3 gave 298 queries/s, this rule's m = 4 2,281 and m = 5 1,112; on 1M codes
    m = 4 and 5 are about equally fast (m = 4 uses 7 bytes per code less).

    Examples
    --------
    >>> from ordhash.index.mih import default_substrings
    >>> default_substrings(64, 10_000_000), default_substrings(128, 1_000_000)
    (4, 10)
    """
    length = max(log2(max(n_codes, 2)) - _BUCKET_LOG2, 8.0)
    m = int(round(n_bits / length))
    return int(min(max(m, ceil(n_bits / 64), 1), n_bits))


@persist.register("ordhash.MultiIndexHashing", version=2)
class MultiIndexHashing(CodeStoreIndex):
    """Exact k-NN and radius search with multi-index hashing (Norouzi, Punjani & Fleet).

    Codes are split into ``m`` contiguous substrings, each indexed by a hash table; a query
    probes keys at growing substring distances and verifies the codes found, stopping as soon
    as the pigeonhole principle guarantees the answer. Results are **exact** and identical to
    :class:`~ordhash.index.HammingIndex`, including the tie order (by id) and padding.

    Parameters
    ----------
    n_bits : int
        Bits per code (packed as for :class:`~ordhash.index.HammingIndex`).
    n_substrings : int, optional
        Number of substrings ``m``, between ``ceil(n_bits / 64)`` and ``n_bits``. Default:
        :func:`default_substrings` of the current size, recomputed whenever the tables are
        rebuilt. Substring lengths differ by at most one bit (longer ones first).
    n_jobs : int or None, default=None
        Threads per call (``None``: ``numba.get_num_threads()``, ``-1``: all); queries and
        table builds run in parallel on GIL-free kernels.

    Notes
    -----
    Memory: every table holds, in bucket order, one entry as large as a word-padded code: the
    code's position and as many of its other bits as fit (all of them when ``n`` is small
    enough). The index therefore uses ``m * 8 * ceil(code_size / 8)`` bytes per code plus the
    bucket offsets on top of the codes and ids, e.g. 48.1 bytes per code for 10M 64-bit codes
    with m = 4. Entries are verified by sequential scans; the few whose stored bits are within
    the bound are checked against the full code. Queries are searched in blocks that probe
    the tables together, so a bucket probed by several queries is read once (large batches of
    queries are faster per query than single queries). The tables are built on the first
    search after :meth:`add` or :meth:`remove` (``O(n)``, or call :meth:`build`). Multi-index
    hashing pays off when the answer lies at a small radius relative to the code length (many
    codes, or clustered codes); on high-entropy codes at a large radius a query falls back to
    one linear scan.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.codes import pack_bits
    >>> from ordhash.index import MultiIndexHashing
    >>> rng = np.random.default_rng(0)
    >>> codes = pack_bits(rng.integers(0, 2, size=(1000, 32)))
    >>> index = MultiIndexHashing(32, n_substrings=4)
    >>> index.add(codes)
    >>> res = index.search(codes[:2], k=3)
    >>> res.ids[:, 0], res.distances[:, 0]
    (array([0, 1]), array([0, 0], dtype=int32))
    >>> index.substrings
    ((0, 8), (8, 8), (16, 8), (24, 8))
    """

    def __init__(self, n_bits, *, n_substrings=None, n_jobs=None):
        self._n_bits = check_n_bits(n_bits)
        if n_substrings is not None:
            n_substrings = check_int(n_substrings, "n_substrings", min_value=ceil(self._n_bits / 64),
                                     max_value=self._n_bits)
        self._n_substrings = n_substrings
        self._n_jobs = check_n_jobs(n_jobs)
        self._store = CodeStore((self._n_bits + 7) // 8)
        self._tables = None

    # ---------------------------------------------------------------- properties
    @property
    def n_substrings(self):
        """The ``n_substrings`` parameter (``None``: chosen from the size at build time)."""
        return self._n_substrings

    @property
    def substrings(self):
        """``(start_bit, length)`` of each substring of the current tables (built if stale)."""
        t = self.build()._tables
        return tuple((int(a), int(b)) for a, b in zip(t["starts"], t["lens"]))

    @property
    def nbytes(self):
        """Bytes held: codes and ids plus the tables (0 until built)."""
        extra = 0
        if self._tables is not None:
            extra = sum(int(v.nbytes) for v in self._tables.values() if isinstance(v, np.ndarray))
        return self._store.nbytes() + extra

    def __repr__(self):
        return (f"MultiIndexHashing(n_bits={self._n_bits}, n_substrings={self._n_substrings!r}, "
                f"n_jobs={self._n_jobs!r}, ntotal={self.ntotal})")

    # ---------------------------------------------------------------- mutation
    def add(self, codes, ids=None):
        """Add packed codes (same contract as :meth:`HammingIndex.add`); tables go stale."""
        codes = check_packed(codes, "codes", self._n_bits, allow_empty=True)
        if ids is not None:
            ids = check_ids(ids, "ids", n=codes.shape[0])
        if codes.shape[0]:
            self._store.add(codes, ids)
            self._tables = None

    def remove(self, ids):
        """Remove the codes with these ids (unknown ids are ignored); returns the count."""
        ids = np.unique(check_ids(ids, "ids"))
        n_before = self.ntotal
        writable_store(self._store)
        if self._store.remove(ids) is None:
            return 0
        self._tables = None
        return n_before - self.ntotal

    def reset(self):
        """Remove every code; default ids start again at 0."""
        self._store.reset()
        self._tables = None

    def build(self):
        """Build the hash tables now if they are stale (otherwise done by the next search).

        Returns
        -------
        self
        """
        if self._tables is not None:
            return self
        n = self.ntotal
        m = self._n_substrings or default_substrings(self._n_bits, n)
        lens = np.array([self._n_bits // m + (1 if j < self._n_bits % m else 0) for j in range(m)],
                        dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        codes = self._store.codes
        nw = (self.code_size + 7) // 8
        aligned = self.code_size % 8 == 0
        words = codes.reshape(-1).view(np.uint64) if aligned else np.empty(0, np.uint64)
        pbits = max(1, int(n - 1).bit_length())
        off_dtype = np.int32 if n < 2**31 - 1 else np.int64
        tent = np.empty((m, nw * n), dtype=np.uint64)
        direct = np.zeros(m, dtype=np.bool_)
        found = [None] * m

        def build_table(j0, j1):  # tables are independent; the kernels release the GIL
            for j in range(j0, j1):
                L = int(lens[j])
                keys = _mk.extract_keys(codes, int(starts[j]), L)
                if L <= 30 and 2**L <= 4 * n + 65536:
                    offsets = np.empty(2**L + 1, off_dtype)
                    perm = _mk.counting_sort(keys, 2**L, offsets)
                    found[j] = (offsets, None, None)
                else:
                    perm = np.argsort(keys, kind="stable")
                    uniq, first = np.unique(keys[perm], return_index=True)
                    found[j] = (None, uniq, np.append(first, n).astype(off_dtype))
                _mk.fill_entries(codes, words, aligned, perm, int(starts[j]), L, self._n_bits,
                                 pbits, tent[j])

        n_threads = resolve_threads(self._n_jobs)
        run_tasks(build_table, [(j, j + 1) for j in range(m)], n_threads)
        doffs, skeys, soffs = [], [], []
        dbase, sbase, sobase, snum = (np.zeros(m, np.int64) for _ in range(4))
        nd = ns = nso = 0
        for j, (offsets, uniq, first) in enumerate(found):
            if offsets is not None:
                direct[j] = True
                dbase[j] = nd
                doffs.append(offsets)
                nd += offsets.shape[0]
            else:
                sbase[j], sobase[j], snum[j] = ns, nso, uniq.shape[0]
                skeys.append(uniq)
                soffs.append(first)
                ns += uniq.shape[0]
                nso += uniq.shape[0] + 1
        self._tables = dict(
            tent=tent, pbits=np.array([pbits], np.int64), starts=starts, lens=lens, direct=direct,
            doffs=np.concatenate(doffs) if doffs else np.zeros(1, off_dtype), dbase=dbase,
            skeys=np.concatenate(skeys) if skeys else np.zeros(1, np.uint64),
            soffs=np.concatenate(soffs) if soffs else np.zeros(1, off_dtype),
            sbase=sbase, sobase=sobase, snum=snum,
        )
        return self

    def _table_args(self):
        t = self._tables
        codes = self._store.codes
        aligned = self.code_size % 8 == 0
        words = codes.reshape(-1).view(np.uint64) if aligned else np.empty(0, np.uint64)
        return (codes, words, aligned, t["tent"], int(t["pbits"][0]), t["starts"], t["lens"],
                t["direct"], t["doffs"], t["dbase"], t["skeys"], t["soffs"], t["sbase"],
                t["sobase"], t["snum"], _BINOM)

    # ---------------------------------------------------------------- search
    def _run(self, qw, k, radius, base, capacity, out_d, out_p, knn_d, knn_p, counts):
        args = self._table_args()
        n_threads = resolve_threads(self._n_jobs)
        n = self.ntotal
        # a bucket entry costs several times a code of the (query-blocked) flat scan
        limit = n if n < _FALLBACK_MIN_N else n // _FLAT_SPEEDUP
        fell = np.zeros(qw.shape[0], np.uint8)

        def task(i0, i1):
            _mk.mih_block(i0, i1, qw, *args, k, radius, self._n_bits, limit, base, capacity,
                          out_d, out_p, knn_d, knn_p, counts, fell)

        # blocks of queries share the buckets they probe: as few blocks as threads allow
        nq = qw.shape[0]
        per_thread = max(1, -(-nq // (n_threads * _BLOCK)))
        run_tasks(task, split_ranges(nq, n_threads, per_thread=per_thread), n_threads)
        idx = np.flatnonzero(fell)
        if idx.size:
            self._flat_scan(qw[idx], idx, k, radius, base, capacity, out_d, out_p, knn_d, knn_p,
                            counts)

    def _flat_scan(self, qw, idx, k, radius, base, capacity, out_d, out_p, knn_d, knn_p, counts):
        """Answer the queries ``idx`` (words ``qw``) with the query-blocked flat scan."""
        codes, words, aligned = self._table_args()[:3]
        qw = np.ascontiguousarray(qw)
        nf = qw.shape[0]
        qblock = int(max(1, min(64, nf, (1 << 22) // (12 * (3 * k + 32)))))
        n_threads = resolve_threads(self._n_jobs)
        units = split_ranges(-(-nf // qblock), n_threads)
        if k > 0:
            res_d = np.empty((1, nf, k), np.int32)
            res_p = np.empty((1, nf, k), np.int64)

            def task(u0, u1):
                _sk.flat_units(qw, words, codes, aligned, k, -1, self._n_bits, qblock, 1, u0, u1,
                               res_d, res_p, _NO_P, _NO_P, _NO_D, _NO_P, _NO_P)

            run_tasks(task, units, n_threads)
            knn_d[idx] = res_d[0]
            knn_p[idx] = res_p[0]
            return
        sub_base = np.ascontiguousarray(base[idx])
        sub_cap = np.ascontiguousarray(capacity[idx])
        sub_counts = np.zeros(nf, np.int64)
        no_d = np.empty((1, 0, 0), np.int32)
        no_p = np.empty((1, 0, 0), np.int64)

        def task(u0, u1):
            _sk.flat_units(qw, words, codes, aligned, 0, radius, self._n_bits, qblock, 1, u0, u1,
                           no_d, no_p, sub_base, sub_cap, out_d, out_p, sub_counts)

        run_tasks(task, units, n_threads)
        counts[idx] = sub_counts

    def search(self, queries, k):
        """The ``k`` nearest codes of every query (contract of :meth:`HammingIndex.search`).

        Returns
        -------
        SearchResult
            Sorted by (distance, id), padded with (``PAD_DISTANCE``, -1) beyond ``ntotal``.
        """
        queries = check_packed(queries, "queries", self._n_bits, allow_empty=True)
        k = check_k(k)
        nq, n = queries.shape[0], self.ntotal
        if nq == 0 or n == 0:
            return empty_knn(nq, k)
        kk = min(k, n)
        self.build()
        qw = query_words(queries, (self.code_size + 7) // 8)
        dist = np.empty((nq, kk), np.int32)
        pos = np.empty((nq, kk), np.int64)
        zeros = np.zeros(nq, np.int64)
        self._run(qw, kk, -1, zeros, zeros, _NO_D, _NO_P, dist, pos, np.zeros(nq, np.int64))
        ids = self._store.ids[pos]
        if kk < k:
            out = empty_knn(nq, k)
            out.ids[:, :kk] = ids
            out.distances[:, :kk] = dist
            return out
        return SearchResult(ids=ids, distances=dist)

    def range_search(self, queries, radius):
        """Every code within distance ``radius`` (inclusive) of each query, in CSR form.

        Same contract as :meth:`HammingIndex.range_search`.
        """
        queries = check_packed(queries, "queries", self._n_bits, allow_empty=True)
        radius = check_radius(radius, self._n_bits)
        nq = queries.shape[0]
        if nq == 0 or self.ntotal == 0:
            return empty_range(nq)
        self.build()
        nw = (self.code_size + 7) // 8
        no_d = np.empty((0, 0), np.int32)
        no_p = np.empty((0, 0), np.int64)

        def scan(qw, base, capacity, dist, pos, counts):
            self._run(qw, 0, radius, base, capacity, dist, pos, no_d, no_p, counts)

        def run_chunk(c0, c1, cap):
            lims, dist, pos = two_pass(query_words(queries[c0:c1], nw), cap, scan,
                                       _sk.gather_segments)
            _sk.sort_segments_by_key(lims, dist, pos)
            return lims, dist, pos

        lims, dist, pos = chunked_range(nq, 16 * resolve_threads(self._n_jobs), run_chunk)
        return RangeSearchResult(lims=lims, ids=self._store.ids[pos], distances=dist)

    # ---------------------------------------------------------------- persistence
    def save(self, path):
        """Save the index (and its hash tables, if built) atomically to ``path``.

        See :mod:`ordhash.persist` for the pickle-free format.
        """
        return persist.save(self, path)

    @classmethod
    def load(cls, path, *, mmap=False):
        """Load an index saved by :meth:`save`.

        With ``mmap=True`` the codes, ids and saved tables stay read-only memory maps of the
        file and are searched in place; :meth:`remove` first copies the codes into memory.
        """
        return persist.load(path, expected=cls, mmap=mmap)

    def _get_state(self):
        meta = {"n_bits": self._n_bits, "n_substrings": self._n_substrings,
                "n_jobs": self._n_jobs, "next_id": int(self._store.next_id),
                "tables": self._tables is not None}
        arrays = {"codes": self._store.codes, "ids": self._store.ids}
        if self._tables is not None:
            arrays.update({f"table.{k}": v for k, v in self._tables.items()})
        return meta, arrays

    @classmethod
    def _from_state(cls, meta, arrays):
        obj = cls(meta["n_bits"], n_substrings=meta["n_substrings"], n_jobs=meta["n_jobs"])
        restore_store(obj._store, meta, arrays, "MultiIndexHashing")
        if meta.get("tables"):
            tables = {k[len("table."):]: np.asarray(v) for k, v in arrays.items()
                      if k.startswith("table.")}
            if set(tables) == _OLD_TABLE_KEYS:
                return obj  # version-1 table layout: rebuilt by the first search
            if set(tables) != _TABLE_KEYS:
                raise persist.FormatError("MultiIndexHashing file has incomplete hash tables")
            nw = (obj.code_size + 7) // 8
            if (tables["tent"].shape != (tables["lens"].shape[0], nw * obj.ntotal)
                    or tables["pbits"].shape != (1,)
                    or obj.ntotal > 2 ** int(tables["pbits"][0])):
                raise persist.FormatError("MultiIndexHashing file has tables of another size")
            obj._tables = tables
        return obj
