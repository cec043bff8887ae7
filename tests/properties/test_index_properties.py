"""Property tests: every exact index equals brute force (np.bitwise_count), ties by id included."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ordhash.index import PAD_DISTANCE, PAD_ID, HammingIndex, MultiIndexHashing

N_BITS = [1, 7, 8, 13, 24, 63, 64, 72, 100, 128, 136, 200, 256]


def pack(bits):
    return np.packbits(bits.astype(bool), axis=1, bitorder="little")


@st.composite
def datasets(draw, max_codes=250):
    """(n_bits, codes, ids, queries): uniform or clustered codes (few centres + bit flips, so
    many exact ties), ids a random sample, queries a mix of stored and fresh codes."""
    n_bits = draw(st.sampled_from(N_BITS))
    n = draw(st.integers(0, max_codes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        bits = rng.integers(0, 2, size=(n, n_bits))
    else:
        centres = rng.integers(0, 2, size=(draw(st.integers(1, 4)), n_bits))
        flip = draw(st.sampled_from([0.0, 0.02, 0.1]))
        bits = centres[rng.integers(0, len(centres), n)] ^ (rng.random((n, n_bits)) < flip)
    codes = pack(bits) if n else np.zeros((0, (n_bits + 7) // 8), dtype=np.uint8)
    ids = rng.choice(4 * n + 10, size=n, replace=False).astype(np.int64)
    fresh = pack(rng.integers(0, 2, size=(3, n_bits)))
    queries = np.concatenate([codes[: draw(st.integers(0, 4))], fresh])
    return n_bits, codes, ids, queries


def distances(queries, codes):
    return np.bitwise_count(queries[:, None, :] ^ codes[None, :, :]).sum(-1).astype(np.int64)


def check_knn(res, queries, codes, ids, k):
    kk = min(k, len(codes))
    d = distances(queries, codes)
    order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :kk]
    np.testing.assert_array_equal(res.distances[:, :kk], np.take_along_axis(d, order, axis=1))
    np.testing.assert_array_equal(res.ids[:, :kk], ids[order])
    assert (res.ids[:, kk:] == PAD_ID).all() and (res.distances[:, kk:] == PAD_DISTANCE).all()


def check_range(res, queries, codes, ids, radius):
    d = distances(queries, codes)
    assert res.lims[0] == 0 and len(res) == len(queries)
    for i in range(len(queries)):
        got_ids, got_d = res[i]
        sel = np.flatnonzero(d[i] <= radius)
        assert set(got_ids.tolist()) == set(ids[sel].tolist())
        order = np.argsort(ids)
        np.testing.assert_array_equal(got_d, d[i, order[np.searchsorted(ids, got_ids, sorter=order)]])
        keys = got_d.astype(np.int64) * (1 << 40) + got_ids
        assert (np.diff(keys) > 0).all()  # sorted by (distance, id)


def make(kind, n_bits, codes, ids, n_substrings=None):
    if kind == "mih":
        index = MultiIndexHashing(n_bits, n_substrings=n_substrings)
    else:
        index = HammingIndex(n_bits, backend=kind)
    index.add(codes, ids=ids)
    return index


@settings(max_examples=40, deadline=None)
@given(data=datasets(), k=st.integers(1, 40))
def test_flat_knn_equals_brute_force_and_faiss(data, k):
    n_bits, codes, ids, queries = data
    res = make("numba", n_bits, codes, ids).search(queries, k)
    check_knn(res, queries, codes, ids, k)
    res_faiss = make("faiss", n_bits, codes, ids).search(queries, k)
    np.testing.assert_array_equal(res_faiss.ids, res.ids)
    np.testing.assert_array_equal(res_faiss.distances, res.distances)


@settings(max_examples=40, deadline=None)
@given(data=datasets(), k=st.integers(1, 40), m_frac=st.floats(0, 1))
def test_mih_knn_equals_flat(data, k, m_frac):
    n_bits, codes, ids, queries = data
    lo = -(-n_bits // 64)
    m = None if m_frac < 0.3 else lo + int(round((m_frac - 0.3) / 0.7 * (min(n_bits, 12) - lo)))
    res = make("mih", n_bits, codes, ids, m).search(queries, k)
    check_knn(res, queries, codes, ids, k)


@settings(max_examples=30, deadline=None)
@given(data=datasets(), r_frac=st.floats(0, 0.6))
def test_radius_search_equals_brute_force_and_grows_with_r(data, r_frac):
    n_bits, codes, ids, queries = data
    radius = int(r_frac * n_bits)
    previous = None
    for kind in ("numba", "faiss", "mih"):
        index = make(kind, n_bits, codes, ids)
        res = index.range_search(queries, radius)
        check_range(res, queries, codes, ids, radius)
        if previous is not None:
            np.testing.assert_array_equal(res.lims, previous.lims)
            np.testing.assert_array_equal(res.ids, previous.ids)
        previous = res
        wider = index.range_search(queries, radius + 1)
        for i in range(len(queries)):
            assert set(res[i][0].tolist()) <= set(wider[i][0].tolist())


@settings(max_examples=25, deadline=None)
@given(data=datasets(), k=st.integers(1, 30), drop_frac=st.floats(0, 1), seed=st.integers(0, 1000))
def test_remove_then_search_equals_index_of_the_rest(data, k, drop_frac, seed):
    n_bits, codes, ids, queries = data
    rng = np.random.default_rng(seed)
    drop = rng.random(len(ids)) < drop_frac
    gone = np.concatenate([ids[drop], [10**9]])  # plus an id that was never added
    for kind in ("numba", "faiss", "mih"):
        index = make(kind, n_bits, codes, ids)
        if kind == "mih" and len(codes):
            index.search(queries[:1], 1)  # build tables before the removal
        assert index.remove(gone) == int(drop.sum())
        check_knn(index.search(queries, k), queries, codes[~drop], ids[~drop], k)
