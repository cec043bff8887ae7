"""Tests of ordhash.distributed: blockwise encoding and sharded, exact search on Dask.

One module-scoped 2-process LocalCluster serves every test. Work stealing is off in it so
that the worker-loss tests are deterministic (a task queued behind a blocker on worker A stays
on A until A is killed); stealing never changes a result, only where a task runs.

Searches go through the fast path (shard servers, dask Actors) by default; the equality tests
run on both paths and check ``last_search_stats["path"]``, the task-path worker-loss tests
turn the fast path off, and the fast-path worker-loss tests block or kill the worker while a
fast-path call is on it.
"""

import os
import pickle
import threading
import time

import numpy as np
import pytest

dask = pytest.importorskip(
    "dask", reason="ordhash.distributed needs dask: pip install 'ordhash[dask]'"
)
distributed = pytest.importorskip(
    "distributed", reason="ordhash.distributed needs distributed: pip install 'ordhash[dask]'"
)
da = pytest.importorskip("dask.array", reason="ordhash.distributed needs dask[array]")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sklearn.utils.random import sample_without_replacement  # noqa: E402

from ordhash.codes import pack_bits  # noqa: E402
from ordhash.distributed import (  # noqa: E402
    ShardedHammingIndex,
    ShardedHashingSearcher,
    ShardUnavailableError,
    encode,
    fit_sample,
)
from ordhash.distributed._server import FastPathMiss, _ServerPool, server_pool  # noqa: E402
from ordhash.index import PAD_DISTANCE, PAD_ID, HammingIndex  # noqa: E402
from ordhash.learners import AGH, ITQ, LSH, PCAH  # noqa: E402

FEW = settings(max_examples=12, deadline=None)


@pytest.fixture(scope="module")
def client():
    with dask.config.set({"distributed.scheduler.work-stealing": False}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        cl = distributed.Client(cluster)
        try:
            yield cl
        finally:
            cl.close()
            cluster.close()


def random_codes(rng, n, n_bits, clustered):
    """Packed codes; ``clustered`` draws every row from 3 distinct codes (many ties)."""
    if clustered:
        pool = rng.integers(0, 2, size=(3, n_bits))
        bits = pool[rng.integers(0, 3, size=n)]
    else:
        bits = rng.integers(0, 2, size=(n, n_bits))
    return pack_bits(bits.reshape(n, n_bits))


def single_index(n_bits, codes, ids=None):
    index = HammingIndex(n_bits)
    index.add(codes, ids=ids)
    return index


def assert_same_knn(got, want):
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)
    assert got.ids.dtype == np.int64 and got.distances.dtype == np.int32


def assert_same_range(got, want):
    np.testing.assert_array_equal(got.lims, want.lims)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)


def assert_path(index, fast_path, searched=True):
    """The last search went through the fast path (``"actor"``) or the tasks, as asked."""
    stats = index.last_search_stats
    if not searched:
        assert stats["path"] is None
    elif fast_path:
        assert (stats["path"], stats["fallback"]) == ("actor", None)
    else:
        assert (stats["path"], stats["fallback"]) == ("tasks", None)


chunkings = st.lists(st.integers(0, 70), min_size=1, max_size=5)
both_paths = pytest.mark.parametrize("fast_path", [True, False], ids=["actor", "tasks"])


# ------------------------------------------------------------------------- sharded index
@both_paths
@FEW
@given(sizes=chunkings, n_bits=st.sampled_from([8, 13, 64, 100]), clustered=st.booleans(),
       extra_k=st.integers(-60, 8), nq=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_sharded_knn_equals_single_index(client, fast_path, sizes, n_bits, clustered, extra_k,
                                         nq, seed):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    codes = random_codes(rng, n, n_bits, clustered)
    queries = random_codes(rng, nq, n_bits, clustered)
    k = max(1, n + extra_k)  # often k > n: the result must be padded exactly as one index
    sharded = ShardedHammingIndex(n_bits, client=client, fast_path=fast_path)
    sharded.add(da.from_array(codes, chunks=(tuple(sizes), codes.shape[1])))
    assert len(sharded) == n
    assert sharded.n_shards == sum(1 for s in sizes if s)
    assert_same_knn(sharded.search(queries, k), single_index(n_bits, codes).search(queries, k))
    assert_path(sharded, fast_path, searched=nq > 0 and n > 0)


@both_paths
@FEW
@given(sizes=chunkings, n_bits=st.sampled_from([8, 24, 64]), clustered=st.booleans(),
       radius=st.integers(0, 70), nq=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_sharded_range_search_equals_single_index(client, fast_path, sizes, n_bits, clustered,
                                                  radius, nq, seed):
    rng = np.random.default_rng(seed)
    codes = random_codes(rng, sum(sizes), n_bits, clustered)
    queries = random_codes(rng, nq, n_bits, clustered)
    sharded = ShardedHammingIndex(n_bits, client=client, fast_path=fast_path)
    sharded.add(da.from_array(codes, chunks=(tuple(sizes), codes.shape[1])))
    got = sharded.range_search(queries, radius)
    assert_same_range(got, single_index(n_bits, codes).range_search(queries, radius))
    assert_path(sharded, fast_path, searched=nq > 0 and sum(sizes) > 0)


def test_explicit_ids_several_adds_and_remove(client):
    rng = np.random.default_rng(1)
    n_bits = 32
    a = random_codes(rng, 300, n_bits, clustered=True)
    b = random_codes(rng, 200, n_bits, clustered=False)
    ids_a = rng.permutation(np.arange(1000, 4000, 10))  # shuffled, with gaps
    sharded = ShardedHammingIndex(n_bits, client=client)
    single = HammingIndex(n_bits)
    sharded.add(da.from_array(a, chunks=(70, 4)), ids=ids_a)
    single.add(a, ids=ids_a)
    # second add: default ids continue after the largest id, as in HammingIndex
    sharded.add(da.from_array(b, chunks=(45, 4)))
    single.add(b)
    # third add: ids as a dask array with chunks unrelated to the codes' chunks
    c = random_codes(rng, 50, n_bits, clustered=False)
    ids_c = np.arange(50) * 7 + 11
    sharded.add(da.from_array(c, chunks=(20, 4)), ids=da.from_array(ids_c, chunks=13))
    single.add(c, ids=ids_c)
    q = random_codes(rng, 6, n_bits, clustered=True)
    assert len(sharded) == len(single) == 550
    assert_same_knn(sharded.search(q, 40), single.search(q, 40))

    # remove: routed to the shards whose id range holds the ids; a fully removed shard goes
    gone = np.concatenate([ids_a[:70], ids_a[100:103], [4001, 4002], ids_c[::5], [10**9]])
    assert sharded.remove(gone) == single.remove(gone)
    assert len(sharded) == len(single)
    assert sharded.n_shards == 5 + 5 + 3 - 1  # the first block (ids_a[:70]) is gone
    assert_same_knn(sharded.search(q, 600), single.search(q, 600))
    assert_same_range(sharded.range_search(q, 12), single.range_search(q, 12))
    assert sharded.remove([10**9, 5]) == 0


def test_numpy_input_is_scattered_and_exact(client):
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 301, 20, clustered=True)
    sharded = ShardedHammingIndex(20, client=client)
    sharded.add(codes)
    assert sharded.n_shards == 2 and sum(sharded.shard_sizes) == 301
    q = random_codes(rng, 5, 20, clustered=True)
    assert_same_knn(sharded.search(q, 17), single_index(20, codes).search(q, 17))
    stats = sharded.last_search_stats
    assert stats["n_shards"] == 2 and len(stats["shard_seconds"]) == 2
    assert stats["wall_seconds"] >= max(stats["shard_seconds"])


def test_empty_index_pads(client):
    sharded = ShardedHammingIndex(16, client=client)
    res = sharded.search(np.zeros((2, 2), np.uint8), k=3)
    assert (res.ids == PAD_ID).all() and (res.distances == PAD_DISTANCE).all()
    assert sharded.range_search(np.zeros((2, 2), np.uint8), 5).lims.tolist() == [0, 0, 0]


def test_duplicate_ids_are_rejected_and_leave_the_index_unchanged(client):
    codes = random_codes(np.random.default_rng(3), 40, 16, clustered=False)
    sharded = ShardedHammingIndex(16, client=client)
    ids = np.arange(40)
    ids[35] = 3  # duplicate across two blocks
    with pytest.raises(ValueError, match="id 3 appears twice"):
        sharded.add(da.from_array(codes, chunks=(20, 2)), ids=ids)
    assert len(sharded) == 0
    ids = np.arange(40)
    ids[5] = 3  # duplicate inside one block: rejected by the shard's HammingIndex
    with pytest.raises(ValueError, match="duplicates"):
        sharded.add(da.from_array(codes, chunks=(20, 2)), ids=ids)
    sharded.add(da.from_array(codes, chunks=(20, 2)))
    with pytest.raises(ValueError, match="appears twice"):
        sharded.add(da.from_array(codes[:5], chunks=(5, 2)), ids=[100, 101, 39, 102, 103])
    assert len(sharded) == 40


def test_bad_input_names_the_argument(client):
    sharded = ShardedHammingIndex(12, client=client)
    with pytest.raises(TypeError, match="codes must be packed"):
        sharded.add(da.zeros((4, 2), dtype=np.int32, chunks=2))
    with pytest.raises(ValueError, match="bytes per code"):
        sharded.add(da.zeros((4, 3), dtype=np.uint8, chunks=2))
    with pytest.raises(ValueError, match="beyond bit 11"):
        sharded.add(da.full((4, 2), 255, dtype=np.uint8, chunks=2))
    sharded.add(da.zeros((4, 2), dtype=np.uint8, chunks=2))
    with pytest.raises(ValueError, match="beyond bit 11"):
        sharded.search(np.full((1, 2), 255, np.uint8), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        sharded.search(np.zeros((1, 2), np.uint8), 0)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        sharded.range_search(np.zeros((1, 2), np.uint8), -1)
    with pytest.raises(ValueError, match="ids must be non-negative"):
        sharded.remove([-1])
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        ShardedHammingIndex(8, client="tcp://nowhere")
    with pytest.raises(ValueError, match="n_bits must be >= 1"):
        ShardedHammingIndex(0, client=client)
    with pytest.raises(TypeError, match="fast_path must be True or False"):
        ShardedHammingIndex(8, client=client, fast_path=1)


# ------------------------------------------------------------------------- fast path
def test_fast_path_runs_on_actor_threads_and_falls_back_to_tasks(client, monkeypatch):
    rng = np.random.default_rng(12)
    codes = random_codes(rng, 600, 64, clustered=True)
    single = single_index(64, codes)
    q = random_codes(rng, 30, 64, clustered=True)
    index = ShardedHammingIndex(64, client=client)
    assert index.fast_path is True
    index.add(da.from_array(codes, chunks=150))
    assert_same_knn(index.search(q, 20), single.search(q, 20))
    assert_path(index, True)
    # one server per worker holding shards, answering on the worker's actor thread
    keys, placement = index._placement
    assert sorted(i for _, pos in placement for i in pos) == list(range(4))
    infos = server_pool(client).call(client, [(addr, ()) for addr, _ in placement],
                                     function="thread_info")
    assert [i["worker"] for i in infos] == [addr for addr, _ in placement]
    for info in infos:
        assert "Dask-Actor-Threads" in info["thread_name"], info
        assert not info["event_loop_thread"]
    # a stale placement (each shard said to be on a worker that does not hold it, as after a
    # replica was dropped): the servers report the missing shards, the client asks the
    # scheduler again and retries once
    workers = sorted(client.scheduler_info()["workers"])
    stale = [(next(w for w in workers if w != addr), pos) for addr, pos in placement]
    index._placement = (keys, stale)
    assert_same_knn(index.search(q, 20), single.search(q, 20))
    assert_path(index, True)
    assert index._placement == (keys, placement)
    # any other failure of the fast path: the batch is answered by tasks
    def fail(*args, **kwargs):
        raise FastPathMiss("servers unavailable (test)")

    monkeypatch.setattr(_ServerPool, "call", fail)
    assert_same_range(index.range_search(q, 10), single.range_search(q, 10))
    stats = index.last_search_stats
    assert (stats["path"], stats["fallback"]) == ("tasks", "servers unavailable (test)")
    assert index._placement is None
    monkeypatch.undo()
    assert_same_range(index.range_search(q, 10), single.range_search(q, 10))
    assert_path(index, True)
    # turned off: tasks only
    index.fast_path = False
    assert_same_knn(index.search(q, 20), single.search(q, 20))
    assert_path(index, False)
    with pytest.raises(TypeError, match="fast_path must be True or False"):
        index.fast_path = "yes"
    # a query batch over 1 MiB is scattered once and sent through tasks
    index.fast_path = True
    big = np.repeat(q, 1 + (1 << 20) // q.nbytes, axis=0)
    assert_same_knn(index.search(big, 3), single.search(big, 3))
    stats = index.last_search_stats
    assert stats["path"] == "tasks" and "scattered once" in stats["fallback"]


def test_add_remove_reset_after_fast_path_searches_stay_exact(client):
    rng = np.random.default_rng(13)
    a = random_codes(rng, 400, 32, clustered=True)
    b = random_codes(rng, 300, 32, clustered=False)
    q = random_codes(rng, 10, 32, clustered=True)
    index = ShardedHammingIndex(32, client=client)
    single = HammingIndex(32)

    def check():
        assert_same_knn(index.search(q, 50), single.search(q, 50))
        assert_path(index, True)
        assert_same_range(index.range_search(q, 9), single.range_search(q, 9))
        assert_path(index, True)

    index.add(da.from_array(a, chunks=100))
    single.add(a)
    check()
    index.add(da.from_array(b, chunks=150))  # new shards: the placement is asked again
    single.add(b)
    check()
    index.add(b[:40], ids=np.arange(5_000, 5_040))  # scattered shards
    single.add(b[:40], ids=np.arange(5_000, 5_040))
    check()
    gone = np.concatenate([np.arange(0, 700, 4), np.arange(5_000, 5_020)])
    assert index.remove(gone) == single.remove(gone)  # rebuilt shards have new keys
    check()
    index.reset()
    single.reset()
    res = index.search(q, 5)
    assert (res.ids == PAD_ID).all()
    assert_path(index, True, searched=False)
    index.add(da.from_array(b, chunks=100))
    single.add(b)
    check()


# ------------------------------------------------------------------------- encoding
@pytest.mark.parametrize("learner", [LSH(n_bits=20, random_state=0), ITQ(n_bits=8, random_state=0),
                                     AGH(n_bits=6, n_anchors=24, random_state=0)],
                         ids=["LSH", "ITQ", "AGH"])
def test_encode_equals_transform_and_ships_the_learner_once(client, learner):
    X = da.random.default_rng(5).standard_normal((2_000, 12), chunks=((300, 0, 700, 1_000), (5, 7)),
                                                 dtype=np.float32)
    Xn = X.compute()
    learner.fit(Xn[:500])
    codes = encode(learner, X)
    assert codes.chunks == ((300, 0, 700, 1_000), ((learner.n_bits + 7) // 8,))
    np.testing.assert_array_equal(codes.compute(), learner.transform(Xn))
    # the learner is one node of the graph: pickling the graph costs one learner, not one
    # per block task
    wide = encode(learner, X.rechunk((50, 12)))  # 40 blocks
    graph_bytes = len(pickle.dumps(dict(wide.__dask_graph__())))
    assert graph_bytes < len(pickle.dumps(learner)) + 40 * 2_000


def test_fit_sample_fits_on_exactly_the_sampled_rows(client):
    X = da.random.default_rng(6).standard_normal((3_000, 10), chunks=(700, 10))
    Xn = X.compute()
    learner = fit_sample(PCAH(n_bits=6), X, n_samples=400, random_state=7)
    rows = np.sort(sample_without_replacement(3_000, 400, random_state=7))
    ref = PCAH(n_bits=6).fit(Xn[rows])
    np.testing.assert_allclose(learner.components_, ref.components_)
    np.testing.assert_array_equal(learner.transform(Xn), ref.transform(Xn))
    everything = fit_sample(PCAH(n_bits=6), X, n_samples=10_000)
    np.testing.assert_allclose(everything.mean_, Xn.mean(axis=0))
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        fit_sample(PCAH(n_bits=6), X, n_samples=1)
    with pytest.raises(TypeError, match="learner must be an ordhash learner"):
        fit_sample(object(), X, n_samples=10)
    with pytest.raises(TypeError, match="X must be a dask.array.Array"):
        encode(learner, Xn)


# ------------------------------------------------------------------------- searcher
def per_shard_reference(X, sizes, learner, Xq, k, candidates, metric):
    """The searcher's procedure run block by block on one machine, merged with sorted()."""
    X = X.astype(np.float32)
    Xq64 = Xq.astype(np.float32).astype(np.float64)
    codes, qcodes = learner.transform(X), learner.transform(Xq)
    rows = [[] for _ in range(len(Xq))]
    start = 0
    for size in sizes:
        if size:
            block = single_index(learner.n_bits, codes[start:start + size],
                                 ids=np.arange(start, start + size))
            cand = block.search(qcodes, min(candidates, size)).ids
            for i, c in enumerate(cand):
                v = X[c].astype(np.float64)
                s = ((v - Xq64[i]) ** 2).sum(1) if metric == "l2" else v @ Xq64[i]
                rows[i] += list(zip(s if metric == "l2" else -s, c))
        start += size
    ids = np.full((len(Xq), k), PAD_ID, np.int64)
    dist = np.full((len(Xq), k), np.inf if metric == "l2" else -np.inf)
    for i, row in enumerate(rows):
        best = sorted(row)[:k]
        ids[i, :len(best)] = [b[1] for b in best]
        dist[i, :len(best)] = [b[0] if metric == "l2" else -b[0] for b in best]
    return ids, dist


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("sizes", [(250, 250, 250, 250), (90, 0, 410, 333, 167)])
def test_searcher_equals_per_shard_reference(client, metric, sizes):
    rng = np.random.default_rng(8)
    centres = rng.normal(size=(5, 16))
    X = (centres[rng.integers(0, 5, size=sum(sizes))] + 0.3 * rng.normal(size=(sum(sizes), 16)))
    X[::50] = 3 * X[1]  # exact duplicates of large norm: ties (by id) for both metrics
    X = X.astype(np.float32)
    Xq = np.concatenate([X[[0, 7]], rng.normal(size=(4, 16))]).astype(np.float32)
    searcher = ShardedHashingSearcher(ITQ(n_bits=16, random_state=0), metric=metric, client=client)
    searcher.fit(da.from_array(X, chunks=(sizes, 16)), n_samples=600, random_state=0)
    assert len(searcher) == sum(sizes) and searcher.n_shards == sum(1 for s in sizes if s)
    for k, cand in [(5, 20), (30, 30), (4, 4)]:
        ids, dist = per_shard_reference(X, sizes, searcher.learner_, Xq, k, cand, metric)
        for fast_path in (True, False):
            res = searcher.set_params(fast_path=fast_path).search(Xq, k, candidates=cand)
            assert_path(searcher.index_, fast_path)
            np.testing.assert_array_equal(res.ids, ids)
            np.testing.assert_allclose(res.distances, dist, rtol=1e-12, atol=1e-12)
    # k beyond the candidate pool: padded
    res = searcher.search(Xq[:2], 200, candidates=200)
    pool = sum(min(200, s) for s in sizes)
    assert (res.counts == min(200, pool)).all()


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_searcher_with_all_candidates_is_exact_knn(client, metric):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(900, 8)).astype(np.float32)
    Xq = rng.normal(size=(7, 8)).astype(np.float32)
    searcher = ShardedHashingSearcher(LSH(n_bits=12, random_state=1), metric=metric, client=client)
    searcher.fit(da.from_array(X, chunks=300), n_samples=200, random_state=1)
    res = searcher.search(Xq, 10, candidates=300)
    X64, Q64 = X.astype(np.float64), Xq.astype(np.float64)
    score = ((X64[None] - Q64[:, None]) ** 2).sum(-1) if metric == "l2" else Q64 @ X64.T
    order = np.argsort(score if metric == "l2" else -score, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(res.ids, order)
    np.testing.assert_allclose(res.distances, np.take_along_axis(score, order, 1), rtol=1e-12)
    # removing the true nearest neighbours changes the answer accordingly
    searcher.remove(order[:, 0])
    res2 = searcher.search(Xq, 9, candidates=300)
    assert len(searcher) == 900 - np.unique(order[:, 0]).size
    assert not np.isin(res2.ids, order[:, 0]).any()
    with pytest.raises(ValueError, match="candidates must be >= 10"):
        searcher.search(Xq, 10, candidates=5)
    with pytest.raises(ValueError, match="Xq has 3 features"):
        searcher.search(Xq[:, :3], 10)
    with pytest.raises(ValueError, match="metric"):
        ShardedHashingSearcher(LSH(), metric="cos", client=client).fit(da.from_array(X, chunks=300))


# ------------------------------------------------------------------------- worker loss
def kill_worker_mid_query(client, index, queries, k):
    """Start ``index.search`` while the worker holding most shards is blocked, kill that
    worker once its shard tasks are queued, and return ``(result or exception, killed)``."""
    who = client.who_has([s.future for s in index._shards])
    holders = [next(iter(who[s.future.key])) for s in index._shards]
    victim = max(set(holders), key=holders.count)
    n_on_victim = holders.count(victim)
    gate = distributed.Event(f"gate-{time.monotonic_ns()}")
    blocker = client.submit(gate.wait, 60, workers=[victim], pure=False)
    deadline = time.monotonic() + 30
    while not any("wait" in str(key) for key in client.processing().get(victim, ())):
        assert time.monotonic() < deadline, "blocker did not start"
        time.sleep(0.01)
    outcome = {}

    def run():
        try:
            outcome["value"] = index.search(queries, k)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["value"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    # wait until the query's tasks for the victim's shards sit queued behind the blocker
    while sum("shard_knn" in str(key) for key in client.processing().get(victim, ())) < n_on_victim:
        assert time.monotonic() < deadline, "query tasks never reached the victim"
        time.sleep(0.01)
    assert "value" not in outcome  # the query cannot have finished: the victim is blocked
    try:
        client.run(os._exit, 1, workers=[victim])
    except Exception:  # noqa: BLE001 - the connection drops as the worker dies
        pass
    gate.set()  # a rescheduled blocker must not hold the surviving worker
    thread.join(60)
    assert not thread.is_alive()
    del blocker
    client.wait_for_workers(2, timeout=60)
    return outcome["value"], victim


def test_worker_killed_mid_query_shards_with_lineage_are_recomputed_exactly(client):
    rng = np.random.default_rng(10)
    codes = random_codes(rng, 2_000, 64, clustered=True)
    queries = random_codes(rng, 50, 64, clustered=False)
    index = ShardedHammingIndex(64, client=client)
    index.add(da.from_array(codes, chunks=250))
    index.remove(np.arange(0, 2_000, 3))  # removals are part of the lineage too
    single = single_index(64, codes)
    single.remove(np.arange(0, 2_000, 3))
    index.fast_path = False  # the blocker holds the worker's task thread: tasks queue behind it
    result, victim = kill_worker_mid_query(client, index, queries, 25)
    assert victim not in client.scheduler_info()["workers"]  # the worker really died
    assert not isinstance(result, Exception), result
    assert_same_knn(result, single.search(queries, 25))
    assert_same_knn(index.search(queries, 25), single.search(queries, 25))


def test_worker_killed_mid_query_scattered_shards_raise_clearly(client):
    rng = np.random.default_rng(11)
    codes = random_codes(rng, 1_000, 32, clustered=False)
    index = ShardedHammingIndex(32, client=client, fast_path=False)
    index.add(codes)  # in-memory input: scattered, no lineage
    result, victim = kill_worker_mid_query(client, index, codes[:20], 10)
    assert victim not in client.scheduler_info()["workers"]
    assert isinstance(result, ShardUnavailableError), result
    assert "No partial result" in str(result) and "cannot be recomputed" in str(result)
    with pytest.raises(ShardUnavailableError):
        index.search(codes[:20], 10)


def busiest_server(index):
    """The worker whose shard server answers for the most shards of ``index``."""
    return max(index._placement[1], key=lambda group: len(group[1]))[0]


def test_fast_path_worker_killed_mid_query_is_answered_exactly_by_tasks(client):
    rng = np.random.default_rng(14)
    codes = random_codes(rng, 2_000, 64, clustered=True)
    queries = random_codes(rng, 40, 64, clustered=False)
    index = ShardedHammingIndex(64, client=client)
    index.add(da.from_array(codes, chunks=250))
    single = single_index(64, codes)
    assert_same_knn(index.search(queries, 25), single.search(queries, 25))
    assert_path(index, True)
    victim = busiest_server(index)
    # occupy the victim's (single) actor thread, so that the search's call queues behind it
    gate = client.submit(threading.Event, actor=True, workers=[victim], pure=False).result()
    held = gate.wait(60)  # noqa: F841 - keeps the call alive until the worker dies
    deadline = time.monotonic() + 30
    while not client.run(lambda dask_worker: any("wait" in str(v) for v in
                                                 dask_worker.active_threads.values()),
                         workers=[victim])[victim]:
        assert time.monotonic() < deadline, "the actor thread was not blocked"
        time.sleep(0.01)
    outcome = {}

    def run():
        try:
            outcome["value"] = index.search(queries, 25)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["value"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    while not client.run(lambda dask_worker: dask_worker.executors["actor"]._work_queue.qsize(),
                         workers=[victim])[victim]:
        assert time.monotonic() < deadline, "the fast-path call never reached the victim"
        time.sleep(0.01)
    assert "value" not in outcome  # blocked behind the gate: the search cannot have finished
    try:
        client.run(os._exit, 1, workers=[victim])
    except Exception:  # noqa: BLE001 - the connection drops as the worker dies
        pass
    thread.join(60)
    assert not thread.is_alive()
    result = outcome["value"]
    assert not isinstance(result, Exception), result
    assert_same_knn(result, single.search(queries, 25))  # lost shards were recomputed
    stats = index.last_search_stats
    assert stats["path"] == "tasks" and victim in stats["fallback"]
    del gate, held
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.scheduler_info()["workers"]  # the worker really died
    assert_same_knn(index.search(queries, 25), single.search(queries, 25))
    assert_path(index, True)  # new servers, new placement


def test_fast_path_worker_killed_between_queries_scattered_shards_raise(client):
    rng = np.random.default_rng(15)
    codes = random_codes(rng, 1_000, 32, clustered=False)
    index = ShardedHammingIndex(32, client=client)
    index.add(codes)  # scattered: one shard per worker, no lineage
    assert_same_knn(index.search(codes[:20], 10), single_index(32, codes).search(codes[:20], 10))
    assert_path(index, True)
    victim = busiest_server(index)
    try:
        client.run(os._exit, 1, workers=[victim])
    except Exception:  # noqa: BLE001 - the connection drops as the worker dies
        pass
    with pytest.raises(ShardUnavailableError, match="No partial result"):
        index.search(codes[:20], 10)
    with pytest.raises(ShardUnavailableError, match="cannot be recomputed"):
        index.range_search(codes[:20], 5)
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.scheduler_info()["workers"]
    with pytest.raises(ShardUnavailableError):
        index.search(codes[:20], 10)
