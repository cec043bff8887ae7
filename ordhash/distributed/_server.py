"""Fast path of the sharded search: one long-lived shard server (a dask Actor) per worker.

A search on the task path costs one scheduler round trip per batch (``update_graph``, task
transitions, results back through ``gather``). On the fast path the client sends each
worker **one** message naming the shards it holds; the worker's :class:`ShardServer` looks
those shards up in the worker's own memory (``get_worker().data[key]``, where dask keeps the
shard futures' results) and runs the *same* module-level shard function as the task path on
them (:func:`~._shard.shard_knn`, :func:`~._shard.shard_range`, :func:`~._shard.shard_rerank`),
so both paths return identical replies.

The server is a dask Actor: dask creates it as a task pinned to its worker and keeps the
instance in ``worker.state.actors``. Its methods run on the worker's single actor thread
(``Dask-Actor-Threads``), never on the worker's event loop, so a long shard search does not
stall the worker's heartbeats and transfers. The client calls the worker's ``actor_execute``
handler directly over its connection pool -- what :class:`distributed.Actor` does with
``direct_to_workers=True`` -- rather than through the scheduler's proxy, and with its own
error handling: every failure (a shard not on that worker, server or worker lost, comm
closed, connect timeout) is raised as :class:`FastPathMiss`, and the caller retries once
(only when shards were merely not where it looked) or falls back to the task path, which
owns recovery and :class:`~.index.ShardUnavailableError`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from distributed import get_worker, wait
from distributed.core import send_recv
from distributed.protocol import to_serialize

from ._shard import Shard, shard_knn, shard_range, shard_rerank

__all__ = ["OPS", "FastPathMiss", "ShardServer", "server_pool"]

#: The shard functions a server runs, by name (the same functions the task path maps).
OPS = {"knn": shard_knn, "range": shard_range, "rerank": shard_rerank}

# A live worker on a reachable network accepts a connection in milliseconds; dask's own
# connect timeout (30 s, with retries) would stall a search on a worker that just died, so
# the fast path gives up sooner and lets the task path deal with the loss.
_CONNECT_TIMEOUT = 3.0
# Creating a server is one task per worker, once per client; it may queue behind a task that
# is running on the worker's thread. The search that starts servers waits this long for them
# (then uses tasks); later searches do not wait for a server still starting (they use tasks)
# and start it again if it has been pending for _RESTART_AFTER.
_START_TIMEOUT = 5.0
_RESTART_AFTER = 60.0
# While a call is out, the client checks this often whether the scheduler has reported one of
# the call's shards or its server as lost (a worker removed), to stop waiting at once.
_WATCH_SECONDS = 0.02


class FastPathMiss(RuntimeError):
    """The fast path could not answer this batch; the caller uses the task path instead.

    ``moved`` is True when every failed call only reported shards missing from its worker
    (the servers are fine; the shards were moved or a replica was dropped), in which case
    asking the scheduler where the shards are and trying again is worthwhile.
    """

    def __init__(self, message, moved=False):
        super().__init__(message)
        self.moved = moved


class _Lost(ConnectionError):
    """The scheduler reported a shard or server of a call lost while the call was out."""


class _Moved(LookupError):
    """Raised by a server asked for a shard that is not in its worker's memory."""


class _ServerError(Exception):
    """An exception raised inside a server method (the server and its worker are fine)."""


class ShardServer:
    """Answers shard queries on the worker it lives on (created with ``actor=True``).

    Stateless: the shards are the results of the index's shard futures, which dask keeps in
    the worker's memory (or spills). A shard is found by its future's key only if it is held
    on this worker; otherwise :meth:`run` raises ``LookupError``.
    """

    def run(self, op, keys, args):
        """``[OPS[op](shard, *args) for each shard key]``, on this worker's shards."""
        fn = OPS[op]
        data = get_worker().data  # zict >= 3 mappings are thread-safe
        replies = []
        for key in keys:
            try:
                shard = data[key]
            except KeyError:
                raise _Moved(f"shard {key!r} is not in this worker's memory") from None
            if not isinstance(shard, Shard):
                raise TypeError(f"key {key!r} holds a {type(shard).__name__}, not a Shard")
            replies.append(fn(shard, *args))
        return replies

    def thread_info(self):
        """Where the server's methods run: thread name and whether it is the event loop."""
        worker = get_worker()
        return {"thread_name": threading.current_thread().name,
                "event_loop_thread": threading.get_ident() == worker.thread_id,
                "worker": worker.address}


class _ServerPool:
    """The shard servers of one client, one per worker address, created on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._futures = {}  # worker address -> (Future of the server actor, submit time)

    def servers(self, client, addresses):
        """``{address: server future}`` for ``addresses``, starting the missing servers.

        Raises :class:`FastPathMiss` if one of them is not running (yet).
        """
        now = time.monotonic()
        with self._lock:
            futures, new = {}, []
            for addr in addresses:
                fut, since = self._futures.get(addr, (None, now))
                if fut is not None and (fut.status in ("error", "lost", "cancelled") or (
                        fut.status == "pending" and now - since > _RESTART_AFTER)):
                    fut.cancel()
                    fut = None
                if fut is None:
                    fut = client.submit(ShardServer, actor=True, workers=[addr],
                                        allow_other_workers=False, pure=False,
                                        key=f"ordhash-shard-server-{uuid.uuid4().hex}")
                    self._futures[addr] = (fut, now)
                    new.append(fut)
                futures[addr] = fut
        if new:
            try:
                wait(new, timeout=_START_TIMEOUT)
            except Exception:  # noqa: BLE001 - distributed.TimeoutError: still starting
                pass
        waiting = [a for a, f in futures.items() if f.status != "finished"]
        if waiting:
            raise FastPathMiss(f"the shard servers on {waiting} are not running (yet)")
        return futures

    def forget(self, addresses):
        """Drop (and release) the servers of these workers; the next use starts new ones."""
        with self._lock:
            for addr in addresses:
                fut, _ = self._futures.pop(addr, (None, None))
                if fut is not None and fut.status != "finished":
                    fut.cancel()

    @property
    def addresses(self):
        with self._lock:
            return sorted(self._futures)

    def call(self, client, calls, function="run", watch=None):
        """Run ``server.function(*args)`` for each ``(address, args)`` concurrently.

        ``watch``: for each call, futures (the shards it reads) whose leaving the
        ``"finished"`` state -- the scheduler reporting them lost -- aborts the call, as does
        the server's own future leaving it. Returns the results in order; raises
        :class:`FastPathMiss` if any call failed (after every call has ended, so nothing is
        left running on the client's loop).
        """
        servers = self.servers(client, sorted({addr for addr, _ in calls}))
        watch = [()] * len(calls) if watch is None else watch
        pool = client.rpc

        async def one(addr, args):
            comm = await pool.connect(addr, timeout=_CONNECT_TIMEOUT)
            try:  # a cancelled or failed call closes the comm instead of reusing it
                reply = await send_recv(comm=comm, op="actor_execute", actor=servers[addr].key,
                                        function=function,
                                        args=[to_serialize(a) for a in args], kwargs={})
            finally:
                pool.reuse(addr, comm)
            if reply["status"] != "OK":
                raise _ServerError(reply["exception"])
            return reply["result"]

        async def watched(addr, args, futures):
            futures = [servers[addr], *futures]
            task = asyncio.ensure_future(one(addr, args))
            while not (await asyncio.wait({task}, timeout=_WATCH_SECONDS))[0]:
                lost = [f.key for f in futures if f.status != "finished"]
                if lost:
                    task.cancel()
                    await asyncio.wait({task})
                    raise _Lost(f"the scheduler no longer has {lost[0]!r} in memory "
                                    "(its worker was lost?)")
            return task.result()

        async def all_calls():
            return await asyncio.gather(*(watched(a, args, w) for (a, args), w
                                          in zip(calls, watch)), return_exceptions=True)

        try:
            results = client.sync(all_calls)
        except Exception as exc:  # noqa: BLE001 - the client's own loop failed
            raise FastPathMiss(f"{type(exc).__name__}: {exc}") from exc
        failed = [(addr, r) for (addr, _), r in zip(calls, results)
                  if isinstance(r, BaseException)]
        if failed:
            # a server (or its worker) that did not answer is started anew next time
            self.forget([a for a, r in failed if not isinstance(r, _ServerError)])
            errors = [r.args[0] if isinstance(r, _ServerError) else r for _, r in failed]
            moved = all(isinstance(e, _Moved) for e in errors)
            addr, exc = failed[0][0], errors[0]
            raise FastPathMiss(f"worker {addr}: {type(exc).__name__}: {exc}",
                               moved=moved) from exc
        return results


_POOLS_LOCK = threading.Lock()


def server_pool(client):
    """The :class:`_ServerPool` of ``client`` (one per client, shared by its indexes).

    Kept as an attribute of the client rather than in a module-level registry: the pool
    holds futures, which hold the client, so a registry would keep every client alive.
    """
    with _POOLS_LOCK:
        pool = getattr(client, "_ordhash_shard_servers", None)
        if pool is None:
            pool = _ServerPool()
            client._ordhash_shard_servers = pool
        return pool
