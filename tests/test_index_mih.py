"""MultiIndexHashing: exactness against the flat index, tables, rebuilds and errors."""

import pickle
from math import ceil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordhash import persist
from ordhash.codes import pack_bits
from ordhash.index import PAD_DISTANCE, PAD_ID, HammingIndex, MultiIndexHashing
from ordhash.index.mih import default_substrings


def clustered_codes(rng, n, n_bits, n_centres=4, flip=0.04):
    centres = rng.integers(0, 2, size=(n_centres, n_bits))
    bits = centres[rng.integers(0, n_centres, n)] ^ (rng.random((n, n_bits)) < flip)
    return pack_bits(bits)


def pair(n_bits, codes, ids=None, **kwargs):
    flat, mih = HammingIndex(n_bits), MultiIndexHashing(n_bits, **kwargs)
    flat.add(codes, ids=ids)
    mih.add(codes, ids=ids)
    return flat, mih


def assert_same_knn(flat, mih, queries, k):
    a, b = flat.search(queries, k), mih.search(queries, k)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


def assert_same_range(flat, mih, queries, radius):
    a, b = flat.range_search(queries, radius), mih.range_search(queries, radius)
    np.testing.assert_array_equal(a.lims, b.lims)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


@pytest.mark.parametrize("n_bits,n_substrings", [(64, None), (64, 2), (64, 5), (37, 3), (128, None),
                                                 (130, 3), (256, 8), (8, 1), (16, 16)])
def test_equals_flat_on_clustered_codes(n_bits, n_substrings):
    rng = np.random.default_rng(n_bits + (n_substrings or 0))
    codes = clustered_codes(rng, 3000, n_bits)
    ids = rng.choice(100_000, size=3000, replace=False)
    flat, mih = pair(n_bits, codes, ids, n_substrings=n_substrings)
    queries = np.concatenate([codes[:6], clustered_codes(rng, 6, n_bits)])
    for k in (1, 10, 100):
        assert_same_knn(flat, mih, queries, k)
    for radius in (0, 1, n_bits // 16, n_bits // 6):
        assert_same_range(flat, mih, queries, radius)


def lossy(mih):
    """Whether the table entries hold only part of the other bits (positions take the rest)."""
    t = mih.build()._tables
    n_words = (mih.code_size + 7) // 8
    return 64 * n_words - int(t["pbits"][0]) < mih.n_bits - int(t["lens"].min())


@pytest.mark.parametrize("n_bits,n_substrings", [(64, 8), (128, 16), (120, 40)])
def test_entries_with_truncated_bits_stay_exact(n_bits, n_substrings):
    # 3000 codes need 12 position bits, so short substrings leave more bits than an entry
    # keeps: the stored bits give a lower bound and candidates are checked on the full code
    # (one word, several words, and a code size that is not a multiple of 8 bytes)
    rng = np.random.default_rng(n_bits)
    codes = np.concatenate([clustered_codes(rng, 2000, n_bits, flip=0.1),
                            pack_bits(rng.integers(0, 2, size=(1000, n_bits)))])
    flat, mih = pair(n_bits, codes, n_substrings=n_substrings)
    assert lossy(mih)
    queries = np.concatenate([codes[::500], clustered_codes(rng, 6, n_bits, flip=0.1)])
    for k in (1, 10, 100):
        assert_same_knn(flat, mih, queries, k)
    for radius in (2, n_bits // 8, n_bits // 4):
        assert_same_range(flat, mih, queries, radius)


@st.composite
def index_cases(draw):
    n_bits = draw(st.integers(1, 140))
    m = draw(st.integers(-(-n_bits // 64), min(n_bits, 12)))
    n = draw(st.integers(0, 300))
    n_centres = draw(st.sampled_from([1, 3, 0]))  # 0: uniform codes
    seed = draw(st.integers(0, 2**31 - 1))
    return n_bits, m, n, n_centres, seed


@given(case=index_cases(), k=st.integers(1, 40), radius_frac=st.floats(0, 0.5))
@settings(max_examples=40, deadline=None)
def test_property_equals_flat(case, k, radius_frac):
    n_bits, m, n, n_centres, seed = case
    rng = np.random.default_rng(seed)
    if n_centres:
        codes = clustered_codes(rng, n + 8, n_bits, n_centres=n_centres, flip=0.05)
    else:
        codes = pack_bits(rng.integers(0, 2, size=(n + 8, n_bits)))
    ids = rng.choice(10 * n + 10, size=n, replace=False)
    flat, mih = pair(n_bits, codes[:n], ids, n_substrings=m)
    queries = np.concatenate([codes[: min(n, 3)], codes[n:]])
    assert_same_knn(flat, mih, queries, k)
    assert_same_range(flat, mih, queries, int(radius_frac * n_bits))


def test_one_and_two_codes():
    for n in (1, 2):
        codes = np.array([[0x0F, 0xF0]] * n, dtype=np.uint8)
        codes[-1, 0] = 0x0E
        flat, mih = pair(16, codes, n_substrings=2)
        assert_same_knn(flat, mih, codes, 3)
        assert_same_range(flat, mih, codes, 16)


def test_version_1_file_loads_and_rebuilds_its_tables(tmp_path):
    rng = np.random.default_rng(7)
    codes = clustered_codes(rng, 200, 32)
    ids = np.arange(0, 400, 2, dtype=np.int64)
    old = {"codes": codes, "ids": ids, "table.tcodes": np.zeros((2, 200), np.uint64),
           "table.tpos": np.zeros((2, 200), np.int32)}
    for key in ("starts", "lens", "direct", "doffs", "dbase", "skeys", "soffs", "sbase",
                "sobase", "snum"):
        old[f"table.{key}"] = np.zeros(2, np.int64)
    meta = {"n_bits": 32, "n_substrings": 2, "n_jobs": None, "next_id": 400, "tables": True}
    path = tmp_path / "v1.ordhash"
    persist.write_state(path, "ordhash.MultiIndexHashing", meta, old, kind_version=1)
    mih = MultiIndexHashing.load(path)
    assert mih._tables is None  # the old layout is dropped and rebuilt on demand
    flat = HammingIndex(32)
    flat.add(codes, ids=ids)
    assert_same_knn(flat, mih, codes[:20], 5)
    assert_same_range(flat, mih, codes[:20], 3)


def test_long_substrings_use_sorted_key_tables():
    # 32-bit substrings are too long for a direct-address table: sorted keys + binary search
    rng = np.random.default_rng(1)
    codes = clustered_codes(rng, 4000, 64, flip=0.02)
    flat, mih = pair(64, codes, n_substrings=2)
    mih.build()
    assert not mih._tables["direct"].any()
    queries = codes[::400]
    for k in (1, 5, 30):
        assert_same_knn(flat, mih, queries, k)
    assert_same_range(flat, mih, queries, 3)


def test_high_entropy_queries_fall_back_to_a_scan_and_stay_exact():
    # uniform codes with one 24-bit substring: enumerating the keys would cost far more than
    # a scan, so the query verifies every code once
    rng = np.random.default_rng(2)
    codes = pack_bits(rng.integers(0, 2, size=(500, 24)))
    flat, mih = pair(24, codes, n_substrings=1)
    queries = pack_bits(rng.integers(0, 2, size=(20, 24)))
    for k in (1, 7, 500):
        assert_same_knn(flat, mih, queries, k)
    assert_same_range(flat, mih, queries, 12)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_expensive_queries_go_to_the_blocked_flat_scan(n_jobs, monkeypatch):
    # from 65,536 codes on, a query that would examine more than n / 8 bucket entries is
    # answered by the flat scan instead (here: large k or radius on uniform 32-bit codes),
    # the others by the tables; both kinds in one call
    rng = np.random.default_rng(8)
    codes = pack_bits(rng.integers(0, 2, size=(70_000, 32)))
    flat, mih = pair(32, codes, n_jobs=n_jobs)
    handed = []
    original = mih._flat_scan
    monkeypatch.setattr(mih, "_flat_scan", lambda qw, idx, *a: (handed.append(idx.size),
                                                                  original(qw, idx, *a)))
    queries = np.concatenate([codes[:5], pack_bits(rng.integers(0, 2, size=(60, 32)))])
    for k in (1, 50):
        assert_same_knn(flat, mih, queries, k)
    for radius in (2, 9):
        assert_same_range(flat, mih, queries, radius)
    assert handed and min(handed) >= 1  # the expensive k / radius went to the flat scan
    handed.clear()
    assert_same_knn(flat, mih, queries, 1)
    assert not handed  # 1-NN stays on the tables


def test_many_exact_duplicates_keep_the_smallest_ids():
    # thousands of ties at distance 0 overflow the selection buffer (sort-and-trim path)
    code = np.full((1, 4), 0x5A, dtype=np.uint8)
    codes = np.repeat(code, 3000, axis=0)
    codes[::7] ^= 0x01
    ids = np.random.default_rng(3).permutation(3000) * 2 + 1
    flat, mih = pair(32, codes, ids)
    for k in (1, 10, 200):
        assert_same_knn(flat, mih, code, k)
    assert_same_range(flat, mih, code, 1)


def test_default_substrings_rule():
    assert default_substrings(64, 10_000_000) == 4  # ~16-bit substrings, ~150 codes/bucket
    assert default_substrings(64, 1_000_000) == 5
    assert default_substrings(64, 100) == 8  # substrings never shorter than 8 bits
    assert default_substrings(8, 10**9) == 1
    assert default_substrings(512, 10) == 64
    assert default_substrings(1, 0) == 1
    for n_bits in (1, 7, 65, 130, 1000):
        m = default_substrings(n_bits, 10**12)
        assert ceil(n_bits / 64) <= m <= n_bits


@pytest.mark.parametrize("n_bits,m", [(64, 5), (70, 3), (8, 8), (130, 3)])
def test_substrings_are_contiguous_and_balanced(n_bits, m):
    mih = MultiIndexHashing(n_bits, n_substrings=m)
    mih.add(np.zeros((3, (n_bits + 7) // 8), dtype=np.uint8))
    subs = mih.substrings
    assert len(subs) == m and subs[0][0] == 0
    assert all(a + b == c for (a, b), (c, _) in zip(subs, subs[1:]))
    assert subs[-1][0] + subs[-1][1] == n_bits
    lengths = [b for _, b in subs]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_tables_follow_adds_and_removes():
    rng = np.random.default_rng(4)
    codes = clustered_codes(rng, 1200, 48)
    flat, mih = pair(48, codes[:1000])
    queries = codes[995:1005]
    assert_same_knn(flat, mih, queries, 5)
    for index in (flat, mih):
        index.add(codes[1000:])
        assert index.remove(np.arange(0, 1200, 3)) == 400
    assert mih._tables is None  # stale until the next search
    assert_same_knn(flat, mih, queries, 5)
    assert_same_range(flat, mih, queries, 4)
    res = mih.search(queries, 50)
    assert not np.isin(res.ids, np.arange(0, 1200, 3)).any()
    assert mih.build() is mih and mih._tables is not None
    assert mih.nbytes >= mih.ntotal * (8 + 6 + mih.build()._tables["lens"].shape[0] * 8)
    np.testing.assert_array_equal(mih.reconstruct([1, 1199]), codes[[1, 1199]])
    mih.reset()
    res = mih.search(queries, 3)
    assert (res.ids == PAD_ID).all() and (res.distances == PAD_DISTANCE).all()
    assert mih.range_search(queries, 10).lims[-1] == 0


def test_padding_empty_queries_and_n_jobs():
    rng = np.random.default_rng(5)
    codes = clustered_codes(rng, 40, 20)
    mih = MultiIndexHashing(20, n_jobs=2)
    mih.add(codes)
    res = mih.search(codes[:3], k=50)
    assert (res.ids[:, 40:] == PAD_ID).all() and (res.distances[:, 40:] == PAD_DISTANCE).all()
    np.testing.assert_array_equal(res.counts, [40, 40, 40])
    empty = np.zeros((0, 3), dtype=np.uint8)
    assert mih.search(empty, 4).ids.shape == (0, 4)
    np.testing.assert_array_equal(mih.range_search(empty, 4).lims, [0])
    one = MultiIndexHashing(20, n_jobs=1)
    one.add(codes)
    queries = clustered_codes(rng, 64, 20)
    np.testing.assert_array_equal(mih.search(queries, 6).ids, one.search(queries, 6).ids)


def test_errors():
    with pytest.raises(ValueError, match="n_substrings must be >= 2"):
        MultiIndexHashing(128, n_substrings=1)  # substrings are at most 64 bits
    with pytest.raises(ValueError, match="n_substrings must be <= 16"):
        MultiIndexHashing(16, n_substrings=17)
    with pytest.raises(TypeError, match="n_substrings"):
        MultiIndexHashing(16, n_substrings=2.0)
    with pytest.raises(ValueError, match="n_jobs"):
        MultiIndexHashing(16, n_jobs=0)
    mih = MultiIndexHashing(16)
    mih.add(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        mih.search(np.zeros((1, 2), dtype=np.int8), 1)
    with pytest.raises(ValueError, match="bytes per code"):
        mih.add(np.zeros((1, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="k must be >= 1"):
        mih.search(np.zeros((1, 2), dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        mih.range_search(np.zeros((1, 2), dtype=np.uint8), -2)
    with pytest.raises(ValueError, match="already in the index"):
        mih.add(np.zeros((1, 2), dtype=np.uint8), ids=[1])


def test_pickle_round_trip():
    rng = np.random.default_rng(6)
    codes = clustered_codes(rng, 300, 40)
    mih = MultiIndexHashing(40, n_substrings=4)
    mih.add(codes)
    before = mih.search(codes[:5], 3)
    clone = pickle.loads(pickle.dumps(mih))
    np.testing.assert_array_equal(clone.search(codes[:5], 3).ids, before.ids)
    assert clone.substrings == mih.substrings and "ntotal=300" in repr(clone)
