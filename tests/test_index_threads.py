"""Concurrent searches from several Python threads return exactly the serial results."""

import threading

import numpy as np
import pytest

from ordhash.codes import pack_bits
from ordhash.index import HammingIndex, HashingSearcher, MultiIndexHashing
from ordhash.learners import ITQ

N_THREADS = 4
ROUNDS = 3


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    centers = rng.integers(0, 2, size=(30, 64))
    flips = rng.random((6000, 64)) < 0.1
    db = pack_bits(centers[rng.integers(0, 30, 6000)] ^ flips)
    q = pack_bits(centers[rng.integers(0, 30, 200)] ^ (rng.random((200, 64)) < 0.1))
    return db, q


def _concurrent(fn, n_tasks):
    """Run ``fn(i)`` for ``i < n_tasks`` on N_THREADS threads started together."""
    results = [None] * n_tasks
    errors = []
    barrier = threading.Barrier(N_THREADS)

    def worker(t):
        barrier.wait()
        try:
            for i in range(t, n_tasks, N_THREADS):
                results[i] = fn(i)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return results


def _slices(n, parts):
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


@pytest.mark.parametrize("make", [
    lambda: HammingIndex(64, backend="numba"),
    lambda: HammingIndex(64, backend="numba", n_jobs=2),
    lambda: HammingIndex(64, backend="faiss"),
    lambda: MultiIndexHashing(64),
    lambda: MultiIndexHashing(64, n_substrings=4, n_jobs=2),
], ids=["numba", "numba-2jobs", "faiss", "mih", "mih-2jobs"])
def test_concurrent_search_and_range_search(codes, make):
    db, q = codes
    index = make()
    index.add(db)
    # serial reference; the MIH tables are deliberately left unbuilt before the threads start,
    # so the first concurrent searches also race on the lazy table build
    ref_index = make()
    ref_index.add(db)
    ks = [1, 5, 17, 40]
    radii = [0, 4, 9]
    ref_knn = {k: ref_index.search(q, k) for k in ks}
    ref_rng = {r: ref_index.range_search(q, r) for r in radii}
    pieces = _slices(q.shape[0], 5)
    tasks = [(kind, p, arg) for kind, args in (("knn", ks), ("range", radii))
             for p in pieces for arg in args] * ROUNDS

    def run(i):
        kind, (lo, hi), arg = tasks[i]
        if kind == "knn":
            return index.search(q[lo:hi], arg)
        return index.range_search(q[lo:hi], arg)

    out = _concurrent(run, len(tasks))
    for (kind, (lo, hi), arg), res in zip(tasks, out):
        if kind == "knn":
            np.testing.assert_array_equal(res.ids, ref_knn[arg].ids[lo:hi])
            np.testing.assert_array_equal(res.distances, ref_knn[arg].distances[lo:hi])
        else:
            ref = ref_rng[arg]
            a, b = ref.lims[lo], ref.lims[hi]
            np.testing.assert_array_equal(res.lims, ref.lims[lo:hi + 1] - a)
            np.testing.assert_array_equal(res.ids, ref.ids[a:b])
            np.testing.assert_array_equal(res.distances, ref.distances[a:b])


@pytest.mark.parametrize("index", ["flat", "faiss", "mih"])
def test_concurrent_searcher(index):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 32)).astype(np.float32)
    Q = rng.normal(size=(120, 32)).astype(np.float32)
    s = HashingSearcher(ITQ(n_bits=32, random_state=0), index=index, candidates=50).fit(X)
    pieces = _slices(Q.shape[0], 6)
    tasks = [(p, k) for p in pieces for k in (1, 10, 50)] * ROUNDS
    ref = {k: s.search(Q, k) for k in (1, 10, 50)}
    out = _concurrent(lambda i: s.search(Q[tasks[i][0][0]:tasks[i][0][1]], tasks[i][1]),
                      len(tasks))
    for ((lo, hi), k), res in zip(tasks, out):
        np.testing.assert_array_equal(res.ids, ref[k].ids[lo:hi])
        np.testing.assert_array_equal(res.distances, ref[k].distances[lo:hi])
