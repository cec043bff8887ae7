"""Exact Hamming search over codes spread across dask workers: :class:`ShardedHammingIndex`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
from distributed import Client, Future, KilledWorker, get_client
from distributed.comm import CommClosedError

from .._validation import check_codes, check_int
from ..index import PAD_ID
from ._merge import merge_knn, merge_range
from ._server import OPS, FastPathMiss, server_pool
from ._shard import build_shard, count_common, shard_ids, shard_summary, shard_without

__all__ = ["ShardedHammingIndex", "ShardUnavailableError"]

# Query arrays larger than this are scattered to every worker once instead of being embedded
# in each shard task (and such batches take the task path: the fast path sends them inline).
_SCATTER_BYTES = 1 << 20

_LOST = (KilledWorker, CommClosedError, asyncio.CancelledError, concurrent.futures.CancelledError)


class ShardUnavailableError(RuntimeError):
    """A shard could not answer (its worker was lost and the shard could not be rebuilt).

    Raised instead of returning a partial result: a sharded search either returns the
    answer over every shard or raises.

    Examples
    --------
    >>> from ordhash.distributed import ShardUnavailableError
    >>> def search_or_report(index, queries, k):
    ...     try:
    ...         return index.search(queries, k=k)
    ...     except ShardUnavailableError as exc:   # codes added from numpy arrays were lost
    ...         print(f"add the codes again: {exc}")
    ...         raise
    >>> issubclass(ShardUnavailableError, RuntimeError)
    True
    """


def resolve_client(client):
    """``client`` or the current default :class:`distributed.Client`."""
    if client is None:
        try:
            return get_client()
        except ValueError:
            raise ValueError(
                "no dask.distributed Client is running: pass client=... or create one first "
                "(distributed.Client() or distributed.Client(LocalCluster(...)))"
            ) from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    return client


def check_n_jobs(n_jobs):
    if n_jobs is None:
        return None
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs == 0:
        raise ValueError("n_jobs must be a positive number of threads, a negative count, or None")
    return n_jobs


def check_id_array(ids, name="ids", n=None):
    """1-D non-negative int64 ids (a scalar becomes length 1)."""
    if ids is None or isinstance(ids, (str, bytes)):
        raise TypeError(f"{name} must be an array of integer ids, got {type(ids).__name__}")
    arr = np.asarray(ids)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.reshape(1) if arr.ndim == 0 else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, but there are {n} codes")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative (-1 is reserved for padding), "
                         f"got {arr.min()}")
    if arr.size and arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


@dataclass
class _ShardRef:
    future: Future
    n: int
    lo: int
    hi: int
    recoverable: bool


class ShardedHammingIndex:
    """Exact Hamming k-NN and radius search over codes held as shards on dask workers.

    Each block of the added dask array becomes one :class:`~ordhash.index.HammingIndex`
    built on a worker and kept there as a future; nothing but small summaries comes back to
    the client. A query batch is sent to every shard, each shard returns its own top-k (or
    radius matches), and the client merges them by (distance, id). Hamming distances are
    integers and ids are unique across shards, so the result is **identical** to one
    :class:`~ordhash.index.HammingIndex` holding every code: same ids, same distances, same
    tie order, same padding (``PAD_ID`` / ``PAD_DISTANCE``) when fewer than ``k`` codes exist.

    Parameters
    ----------
    n_bits : int
        Bits per code; codes are ``ceil(n_bits / 8)`` packed ``uint8`` bytes.
    client : distributed.Client or None, default=None
        Cluster to use; ``None`` takes the current default client.
    n_jobs : int or None, default=1
        Threads each shard uses for one search. dask already runs shards in parallel (one per
        worker thread), so 1 avoids oversubscribing the cores.
    fast_path : bool, default=True
        Answer query batches of up to 1 MiB through one long-lived shard server (a dask
        Actor) per worker, called directly by the client, instead of one dask task per shard
        through the scheduler. Same replies, same checks; any failure of the fast path falls
        back to the task path for that batch. ``False``: always use tasks.

    Attributes
    ----------
    last_search_stats : dict or None
        After each search: ``wall_seconds`` (client side), ``shard_seconds`` (each shard's
        own compute), ``n_shards``, ``path`` (``"actor"`` for the fast path, ``"tasks"``,
        ``None`` when nothing was sent) and ``fallback`` (why a fast-path search used tasks,
        else ``None``).

    Notes
    -----
    Worker loss: shards built from a dask array keep their task lineage, so when a worker
    dies dask recomputes the lost shards (removals included: shards are immutable and a
    removal is a new task) and the search still returns the full, exact answer. Shards built
    from in-memory numpy arrays are scattered data without lineage; losing one makes every
    later search raise :class:`ShardUnavailableError`. In both cases each shard's reply is
    checked (it must report the row count the client recorded and exactly ``min(k, rows)``
    neighbours per query), so a short result is never returned silently.

    Fast path: the client caches which worker holds which shard (``client.who_has``, asked
    again whenever the set of shards changes) and sends each worker one message naming its
    shards; the worker's server runs the same shard function as a task would on the shards in
    its memory. If a shard is not where the cache says, the cache is rebuilt and the call
    tried once more; if a server or worker is lost, a connection fails, or the second try
    misses too, the batch is answered by the task path instead (which rebuilds lost shards
    or raises :class:`ShardUnavailableError`).

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from ordhash.distributed import ShardedHammingIndex
    >>> from ordhash.index import HammingIndex
    >>> cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
    ...                        dashboard_address=None)
    >>> client = Client(cluster)
    >>> codes = np.random.default_rng(0).integers(0, 256, size=(1_000, 8), dtype=np.uint8)
    >>> index = ShardedHammingIndex(64, client=client)
    >>> index.add(da.from_array(codes, chunks=(250, 8)))
    >>> len(index), index.n_shards
    (1000, 4)
    >>> single = HammingIndex(64)
    >>> single.add(codes)
    >>> res = index.search(codes[:5], k=10)
    >>> bool((res.ids == single.search(codes[:5], k=10).ids).all())
    True
    >>> client.close(); cluster.close()
    """

    def __init__(self, n_bits, *, client=None, n_jobs=1, fast_path=True):
        self._n_bits = check_int(n_bits, "n_bits", min_value=1)
        self._client = resolve_client(client)
        self._n_jobs = check_n_jobs(n_jobs)
        self.fast_path = fast_path
        self._shards = []
        self._next_id = 0
        self._placement = None  # (shard keys, [(worker address, [shard positions])])
        self.last_search_stats = None

    # ---------------------------------------------------------------- properties
    @property
    def n_bits(self):
        """Bits per code."""
        return self._n_bits

    @property
    def code_size(self):
        """Bytes per packed code."""
        return (self._n_bits + 7) // 8

    @property
    def client(self):
        """The :class:`distributed.Client` holding the shards."""
        return self._client

    @property
    def n_jobs(self):
        """Threads per shard search."""
        return self._n_jobs

    @property
    def fast_path(self):
        """Whether searches try the shard servers (dask Actors) before the task path."""
        return self._fast_path

    @fast_path.setter
    def fast_path(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"fast_path must be True or False, got {value!r}")
        self._fast_path = bool(value)

    @property
    def ntotal(self):
        """Number of stored codes."""
        return sum(s.n for s in self._shards)

    @property
    def n_shards(self):
        """Number of (non-empty) shards."""
        return len(self._shards)

    @property
    def shard_sizes(self):
        """Rows per shard, in shard order."""
        return [s.n for s in self._shards]

    def __len__(self):
        return self.ntotal

    def __repr__(self):
        return (f"ShardedHammingIndex(n_bits={self._n_bits}, n_shards={self.n_shards}, "
                f"ntotal={self.ntotal})")

    # ---------------------------------------------------------------- mutation
    def add(self, codes, ids=None):
        """Add codes, one new shard per block, built on the workers.

        Parameters
        ----------
        codes : dask.array.Array or ndarray of shape (n, code_size), dtype uint8
            A dask array gives one shard per row chunk (with lineage: recomputable after a
            worker loss). An in-memory array is split into one piece per worker and scattered
            (no lineage).
        ids : array-like or dask array of int of shape (n,), optional
            Distinct non-negative ids, none already in the index. Default: consecutive ids
            from one past the largest id ever added (as :class:`~ordhash.index.HammingIndex`):
            for a first add, the row number in ``codes`` (chunk offsets give each block its
            range).
        """
        if isinstance(codes, da.Array):
            builds = self._graph_builds(codes, ids)
            futures = self._client.compute(builds) if builds else []
            recoverable = True
        else:
            futures = self._scatter_builds(codes, ids)
            recoverable = False
        self._commit(futures, recoverable)

    def remove(self, ids):
        """Remove the codes with these ids (unknown ids are ignored).

        Only shards whose id range can hold one of the ids are touched; each gets a new
        immutable shard built on its worker.

        Returns
        -------
        n_removed : int
        """
        ids = np.unique(check_id_array(ids))
        if ids.size == 0 or not self._shards:
            return 0
        touched, new = [], []
        for i, s in enumerate(self._shards):
            a, b = np.searchsorted(ids, [s.lo, s.hi + 1])
            if b > a:
                touched.append(i)
                new.append(self._client.submit(shard_without, s.future, ids[a:b], pure=False))
        if not touched:
            return 0
        summaries = self._collect(self._client.map(shard_summary, new, pure=False),
                                  [self._shards[i] for i in touched], "remove")
        removed = 0
        for i, fut, (n, lo, hi) in zip(touched, new, summaries):
            old = self._shards[i]
            removed += old.n - n
            self._shards[i] = _ShardRef(fut, n, lo, hi, old.recoverable) if n != old.n else old
        self._shards = [s for s in self._shards if s.n > 0]
        return removed

    def reset(self):
        """Drop every shard (their worker memory is released); default ids restart at 0."""
        self._shards = []
        self._next_id = 0
        self._placement = None

    # ---------------------------------------------------------------- search
    def search(self, queries, k):
        """The ``k`` nearest codes of every query, over all shards.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, code_size), dtype uint8
        k : int
            ``>= 1``; may exceed :attr:`ntotal` (the rest is padding).

        Returns
        -------
        SearchResult
            ``ids`` int64 and ``distances`` int32 of shape (n_queries, k), sorted by
            (distance, id), padded with (``PAD_DISTANCE``, ``PAD_ID``) -- exactly what one
            :class:`~ordhash.index.HammingIndex` over all codes returns.

        Raises
        ------
        ShardUnavailableError
            A shard could not answer (worker lost without recovery); no partial result.
        """
        queries = self._check_queries(queries)
        k = check_int(k, "k", min_value=1)
        nq = queries.shape[0]
        t0 = time.perf_counter()
        replies, path = self._fanout("knn", queries, k) if nq else ([], None)
        for s, (n, ids, dist, _) in zip(self._shards, replies):
            want = min(k, s.n)
            if ids.shape != (nq, want) or dist.shape != (nq, want) or (ids == PAD_ID).any():
                raise ShardUnavailableError(
                    f"a shard holding {s.n} codes returned {ids.shape[1]} neighbours per query "
                    f"with {int((ids == PAD_ID).sum())} padded slots instead of {want}; refusing "
                    "to return a short result"
                )
        res = merge_knn(nq, k, [r[1] for r in replies], [r[2] for r in replies])
        if nq and not (res.counts == min(k, self.ntotal)).all():
            raise ShardUnavailableError("the merged result is shorter than min(k, ntotal)")
        self._record(t0, replies, path)
        return res

    def range_search(self, queries, radius):
        """Every code within Hamming distance ``radius`` (inclusive) of each query.

        Returns
        -------
        RangeSearchResult
            CSR ``lims`` / ``ids`` / ``distances``, each query's matches sorted by
            (distance, id), identical to one :class:`~ordhash.index.HammingIndex`.
        """
        queries = self._check_queries(queries)
        radius = check_int(radius, "radius", min_value=0)
        nq = queries.shape[0]
        t0 = time.perf_counter()
        replies, path = self._fanout("range", queries, radius) if nq else ([], None)
        for s, (n, lims, ids, dist, _) in zip(self._shards, replies):
            if (lims.shape != (nq + 1,) or lims[0] != 0 or lims[-1] != ids.shape[0]
                    or dist.shape != ids.shape or (np.diff(lims) > s.n).any()):
                raise ShardUnavailableError(f"a shard holding {s.n} codes returned a malformed "
                                            "range result; refusing to return it")
        res = merge_range(nq, [r[1:4] for r in replies])
        self._record(t0, replies, path)
        return res

    # ---------------------------------------------------------------- internals
    def _check_queries(self, queries):
        q = check_codes(queries, "queries", code_size=self.code_size, allow_empty=True)
        spare = 8 * self.code_size - self._n_bits
        if spare and q.shape[0] and (q[:, -1] >> (8 - spare)).any():
            raise ValueError(f"queries has bits set beyond bit {self._n_bits - 1} in the last "
                             "byte; unused high bits must be zero")
        return q

    def _check_dask_codes(self, codes):
        if codes.ndim != 2:
            raise ValueError(f"codes must be 2-D (n_codes, code_size), got shape {codes.shape}")
        if codes.dtype != np.uint8:
            raise TypeError(f"codes must be packed binary codes of dtype uint8, got dtype "
                            f"{codes.dtype}")
        if codes.shape[1] != self.code_size:
            raise ValueError(f"codes has {codes.shape[1]} bytes per code, but the index holds "
                             f"{self._n_bits}-bit codes ({self.code_size} bytes per code)")
        if any(np.isnan(c) for c in codes.chunks[0]):
            raise ValueError("codes has unknown chunk sizes; call codes.compute_chunk_sizes() "
                             "first")
        return codes.rechunk({1: -1}) if len(codes.chunks[1]) > 1 else codes

    def _block_ids(self, ids, rows):
        """Per-block id arguments: ``(ids_block_or_None, offset)`` for each row chunk."""
        n = int(sum(rows))
        bounds = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])
        if ids is None:
            return [(None, self._next_id + int(b)) for b in bounds[:-1]]
        if isinstance(ids, da.Array):
            if ids.ndim != 1 or ids.shape[0] != n:
                raise ValueError(f"ids must be 1-D with {n} entries, got shape {ids.shape}")
            if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
                raise TypeError(f"ids must hold integers, got dtype {ids.dtype}")
            blocks = ids.rechunk((tuple(rows),)).to_delayed().ravel()
            return [(dask.delayed(check_id_array)(b), 0) for b in blocks]
        arr = check_id_array(ids, n=n)
        return [(arr[a:b], 0) for a, b in zip(bounds[:-1], bounds[1:])]

    def _graph_builds(self, codes, ids, vectors=None):
        codes = self._check_dask_codes(codes)
        rows = [int(c) for c in codes.chunks[0]]
        per_block = self._block_ids(ids, rows)
        code_blocks = codes.to_delayed().ravel()
        vec_blocks = [None] * len(rows) if vectors is None else vectors.to_delayed().ravel()
        build = dask.delayed(build_shard, pure=False)
        return [build(cb, bid, off, self._n_bits, self._n_jobs, vb)
                for cb, (bid, off), vb, r in zip(code_blocks, per_block, vec_blocks, rows) if r]

    def _scatter_builds(self, codes, ids):
        arr = check_codes(codes, "codes", code_size=self.code_size, allow_empty=True)
        n = arr.shape[0]
        if n == 0:
            return []
        pieces = max(1, min(n, len(self._client.nthreads())))
        bounds = np.linspace(0, n, pieces + 1).astype(np.int64)
        rows = np.diff(bounds).tolist()
        per_block = self._block_ids(ids, rows)
        data = self._client.scatter([arr[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
        return [self._client.submit(build_shard, d, bid, off, self._n_bits, self._n_jobs,
                                    pure=False)
                for d, (bid, off) in zip(data, per_block)]

    def _commit(self, futures, recoverable):
        """Summarise new shards, check their ids against every other shard, then keep them."""
        if not futures:
            return
        pending = [_ShardRef(f, 0, 0, 0, recoverable) for f in futures]
        summaries = self._collect(self._client.map(shard_summary, futures, pure=False),
                                  pending, "add")
        new = [_ShardRef(f, n, lo, hi, recoverable)
               for f, (n, lo, hi) in zip(futures, summaries) if n > 0]
        self._check_disjoint(new)
        self._shards.extend(new)
        if new:
            self._next_id = max(self._next_id, max(s.hi for s in new) + 1)

    def _check_disjoint(self, new):
        """Raise if an id of a new shard is in another new shard or already stored."""
        checks = []
        for i, s in enumerate(new):
            others = [o for o in new[i + 1:] + self._shards if o.lo <= s.hi and s.lo <= o.hi]
            if others:
                ids_f = self._client.submit(shard_ids, s.future, pure=False)
                checks += [self._client.submit(count_common, ids_f, o.future, pure=False)
                           for o in others]
        if not checks:
            return
        for count, example in self._collect(checks, new, "add"):
            if count:
                raise ValueError(f"ids must be distinct and not already in the index; id "
                                 f"{example} appears twice")

    def _ship(self, arr):
        if arr.nbytes > _SCATTER_BYTES:
            return self._client.scatter(arr, broadcast=True, hash=False)
        return arr

    def _fanout(self, op, *args, fast_path=None):
        """Run ``OPS[op](shard, *args)`` on every shard; check every shard answered in full.

        Tries the fast path (shard servers) first when enabled (``fast_path=None``: the
        index's setting) and the arrays in ``args`` total at most ``_SCATTER_BYTES``.

        Returns
        -------
        replies : list
            One reply per shard, in shard order.
        path : dict
            ``{"path": "actor" | "tasks" | None, "fallback": reason or None}``.
        """
        if not self._shards:
            return [], {"path": None, "fallback": None}
        shards = list(self._shards)
        path = {"path": "tasks", "fallback": None}
        replies = None
        if self._fast_path if fast_path is None else fast_path:
            nbytes = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
            if nbytes > _SCATTER_BYTES:
                path["fallback"] = (f"the query arrays hold {nbytes} bytes (> {_SCATTER_BYTES}): "
                                    "scattered once and sent through tasks")
            else:
                for attempt in range(2):
                    try:
                        replies = self._fast_fanout(op, shards, args)
                        path = {"path": "actor", "fallback": None}
                        break
                    except FastPathMiss as exc:
                        self._placement = None  # ask the scheduler where the shards are
                        path["fallback"] = str(exc)
                        if not exc.moved:  # only a moved shard is worth a second try
                            break
        if replies is None:
            sent = [self._ship(a) if isinstance(a, np.ndarray) else a for a in args]
            futures = self._client.map(OPS[op], [s.future for s in shards],
                                       *[[a] * len(shards) for a in sent], pure=False)
            replies = self._collect(futures, shards, "search")
        if len(replies) != len(shards):
            raise ShardUnavailableError(f"{len(replies)} of {len(shards)} shards answered; "
                                        "refusing to return a partial result")
        for i, (s, r) in enumerate(zip(shards, replies)):
            if r[0] != s.n:
                raise ShardUnavailableError(
                    f"shard {i} answered with {r[0]} codes but holds {s.n} (was it rebuilt from "
                    "a source that changed?); refusing to return an inexact result"
                )
        return replies, path

    def _fast_fanout(self, op, shards, args):
        """Replies of every shard from the shard servers; :class:`FastPathMiss` otherwise."""
        if any(s.future.status != "finished" for s in shards):
            raise FastPathMiss("a shard is not in memory (lost with its worker, or being "
                               "rebuilt)")
        groups = self._groups(shards)
        calls = [(addr, (op, [shards[i].future.key for i in pos], args)) for addr, pos in groups]
        watch = [[shards[i].future for i in pos] for _, pos in groups]
        results = server_pool(self._client).call(self._client, calls, watch=watch)
        replies = [None] * len(shards)
        for (addr, pos), res in zip(groups, results):
            if len(res) != len(pos):
                raise FastPathMiss(f"worker {addr} answered for {len(res)} of {len(pos)} shards")
            for i, r in zip(pos, res):
                replies[i] = r
        return replies

    def _groups(self, shards):
        """``[(worker address, [shard positions])]``: where each shard is read from.

        Cached for the current set of shards (their keys); a shard held by several workers
        (a replica made by a transfer) goes to the holder with the fewest rows so far.
        """
        keys = tuple(s.future.key for s in shards)
        cached = self._placement
        if cached is not None and cached[0] == keys:
            return cached[1]
        try:
            who = self._client.who_has([s.future for s in shards])
        except Exception as exc:  # noqa: BLE001 - scheduler unreachable: let the tasks fail
            raise FastPathMiss(f"who_has failed: {type(exc).__name__}: {exc}") from exc
        rows, groups = {}, {}
        for i, s in enumerate(shards):
            holders = sorted(who.get(s.future.key) or ())
            if not holders:
                raise FastPathMiss(f"no worker holds shard {i}")
            addr = min(holders, key=lambda a: (rows.get(a, 0), a))
            rows[addr] = rows.get(addr, 0) + s.n
            groups.setdefault(addr, []).append(i)
        groups = sorted(groups.items())
        self._placement = (keys, groups)
        return groups

    def _collect(self, futures, shards, what):
        """Gather ``futures``; turn worker loss into :class:`ShardUnavailableError`."""
        try:
            return self._client.gather(futures)
        except _LOST as exc:
            lost = [i for i, s in enumerate(shards) if s.future.status != "finished"]
            unrecoverable = [i for i in lost if not shards[i].recoverable]
            detail = (f"shard(s) {lost} were lost with their worker" if lost else
                      "a worker was lost while the shards answered")
            hint = (" They were built from in-memory arrays (scattered, without lineage) and "
                    "cannot be recomputed: add the codes again, or add them as a dask array "
                    "so that lost shards are rebuilt automatically." if unrecoverable else "")
            raise ShardUnavailableError(
                f"{what} over {len(shards)} shard(s) failed: {detail} "
                f"({type(exc).__name__}: {exc}).{hint} No partial result is returned."
            ) from exc

    def _record(self, t0, replies, path):
        self.last_search_stats = {
            "wall_seconds": time.perf_counter() - t0,
            "shard_seconds": [float(r[-1]) for r in replies],
            "n_shards": len(replies),
            "path": path["path"] if path else None,
            "fallback": path["fallback"] if path else None,
        }
