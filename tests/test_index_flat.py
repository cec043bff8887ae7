"""HammingIndex: behaviour, conventions and errors (numba and faiss backends)."""

import pickle

import faiss
import numba
import numpy as np
import pytest

from ordhash.codes import pack_bits
from ordhash.index import PAD_DISTANCE, PAD_ID, HammingIndex, RangeSearchResult, SearchResult

BACKENDS = ["numba", "faiss"]


def brute_knn(queries, codes, ids, k):
    d = np.bitwise_count(queries[:, None, :] ^ codes[None, :, :]).sum(-1).astype(np.int64)
    order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :k]
    return np.take_along_axis(d, order, axis=1), ids[order]


def brute_range(queries, codes, ids, radius):
    d = np.bitwise_count(queries[:, None, :] ^ codes[None, :, :]).sum(-1).astype(np.int64)
    lims, out_ids, out_d = [0], [], []
    for row in d:
        sel = np.flatnonzero(row <= radius)
        order = np.lexsort((ids[sel], row[sel]))
        out_ids.append(ids[sel][order])
        out_d.append(row[sel][order])
        lims.append(lims[-1] + sel.size)
    return np.array(lims), np.concatenate(out_ids), np.concatenate(out_d)


def random_codes(rng, n, n_bits):
    return pack_bits(rng.integers(0, 2, size=(n, n_bits)))


def clustered_codes(rng, n, n_bits, n_centres=3, flip=0.05):
    centres = rng.integers(0, 2, size=(n_centres, n_bits))
    bits = centres[rng.integers(0, n_centres, n)] ^ (rng.random((n, n_bits)) < flip)
    return pack_bits(bits)


def assert_knn(res, queries, codes, ids, k):
    kk = min(k, codes.shape[0])
    d_ref, i_ref = brute_knn(queries, codes, ids, kk)
    np.testing.assert_array_equal(res.distances[:, :kk], d_ref)
    np.testing.assert_array_equal(res.ids[:, :kk], i_ref)
    assert (res.ids[:, kk:] == PAD_ID).all()
    assert (res.distances[:, kk:] == PAD_DISTANCE).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_bits", [8, 12, 64, 100, 128, 136, 256, 320])
def test_knn_and_range_match_brute_force(backend, n_bits):
    rng = np.random.default_rng(n_bits)
    codes = clustered_codes(rng, 700, n_bits)
    ids = rng.choice(10_000, size=700, replace=False)
    queries = np.concatenate([codes[:5], random_codes(rng, 5, n_bits)])
    index = HammingIndex(n_bits, backend=backend)
    index.add(codes, ids=ids)
    for k in (1, 10, 50):
        assert_knn(index.search(queries, k), queries, codes, ids, k)
    for radius in (0, n_bits // 8, n_bits // 3):
        res = index.range_search(queries, radius)
        lims, r_ids, r_d = brute_range(queries, codes, ids, radius)
        np.testing.assert_array_equal(res.lims, lims)
        np.testing.assert_array_equal(res.ids, r_ids)
        np.testing.assert_array_equal(res.distances, r_d)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_are_broken_by_id_whatever_the_insertion_order(backend):
    code = np.array([[0b1010_1010]], dtype=np.uint8)
    codes = np.repeat(code, 6, axis=0)
    index = HammingIndex(8, backend=backend)
    index.add(codes[:3], ids=[50, 7, 30])
    index.add(codes[3:], ids=[2, 99, 8])  # interleaves with the stored ids: store re-sorts
    res = index.search(code, k=4)
    np.testing.assert_array_equal(res.ids, [[2, 7, 8, 30]])
    np.testing.assert_array_equal(res.distances, [[0, 0, 0, 0]])
    np.testing.assert_array_equal(index.range_search(code, 0).ids, [2, 7, 8, 30, 50, 99])
    np.testing.assert_array_equal(index.ids, [2, 7, 8, 30, 50, 99])


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_when_the_index_holds_fewer_than_k(backend):
    index = HammingIndex(16, backend=backend)
    index.add(np.array([[0, 0], [1, 0]], dtype=np.uint8))
    res = index.search(np.array([[0, 0], [3, 0]], dtype=np.uint8), k=4)
    np.testing.assert_array_equal(res.ids, [[0, 1, -1, -1], [1, 0, -1, -1]])
    np.testing.assert_array_equal(res.distances[:, :2], [[0, 1], [1, 2]])
    assert (res.distances[:, 2:] == np.iinfo(np.int32).max).all()
    np.testing.assert_array_equal(res.counts, [2, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_index_and_empty_queries(backend):
    index = HammingIndex(24, backend=backend)
    queries = np.zeros((3, 3), dtype=np.uint8)
    res = index.search(queries, k=2)
    assert res.ids.shape == (3, 2) and (res.ids == PAD_ID).all()
    assert (res.distances == PAD_DISTANCE).all()
    rr = index.range_search(queries, 5)
    np.testing.assert_array_equal(rr.lims, [0, 0, 0, 0])
    assert rr.ids.size == 0 and rr.distances.size == 0
    index.add(np.zeros((0, 3), dtype=np.uint8))  # adding nothing is a no-op
    assert len(index) == 0
    index.add(np.ones((4, 3), dtype=np.uint8))
    empty = np.zeros((0, 3), dtype=np.uint8)
    res = index.search(empty, k=7)
    assert res.ids.shape == (0, 7) and res.distances.shape == (0, 7)
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.int32
    rr = index.range_search(empty, 1)
    np.testing.assert_array_equal(rr.lims, [0])
    assert len(rr) == 0


def test_result_types():
    rng = np.random.default_rng(0)
    codes = random_codes(rng, 50, 32)
    index = HammingIndex(32)
    index.add(codes)
    res = index.search(codes[:4], k=3)
    assert isinstance(res, SearchResult) and len(res) == 4
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.int32
    assert res.ids.shape == res.distances.shape == (4, 3)
    with pytest.raises(AttributeError):
        res.ids = None
    rr = index.range_search(codes[:4], 12)
    assert isinstance(rr, RangeSearchResult) and len(rr) == 4
    assert rr.lims.dtype == np.int64 and rr.ids.dtype == np.int64 and rr.distances.dtype == np.int32
    np.testing.assert_array_equal(rr.counts, np.diff(rr.lims))
    ids_1, d_1 = rr[1]
    np.testing.assert_array_equal(ids_1, rr.ids[rr.lims[1]:rr.lims[2]])
    np.testing.assert_array_equal(rr[-1][0], rr[3][0])
    with pytest.raises(IndexError):
        rr[4]
    with pytest.raises(TypeError):
        rr[1.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_remove_reconstruct_reset(backend):
    rng = np.random.default_rng(1)
    codes = random_codes(rng, 6, 40)
    index = HammingIndex(40, backend=backend)
    index.add(codes[:3])
    np.testing.assert_array_equal(index.ids, [0, 1, 2])
    assert index.remove([2, 17]) == 1  # unknown ids are ignored
    assert index.remove(np.array([], dtype=np.int64)) == 0
    index.add(codes[3:4])  # default ids never reuse a removed id
    np.testing.assert_array_equal(index.ids, [0, 1, 3])
    index.add(codes[4:], ids=[10, 5])
    np.testing.assert_array_equal(index.ids, [0, 1, 3, 5, 10])
    np.testing.assert_array_equal(index.reconstruct([10, 0]), codes[[4, 0]])
    np.testing.assert_array_equal(index.reconstruct(5), codes[[5]])
    with pytest.raises(ValueError, match="not in the index"):
        index.reconstruct([2])
    res = index.search(codes, k=5)
    assert not np.isin(res.ids, [2]).any()
    index.add(codes[:1])
    assert index.ids[-1] == 11
    with pytest.raises(AttributeError):
        index.ids = None
    snapshot = index.ids
    snapshot[0] = 99  # a copy: writing to it does not touch the index
    assert index.ids[0] == 0
    index.remove([0])
    index.add(codes[1:2], ids=[42])
    np.testing.assert_array_equal(snapshot, [99, 1, 3, 5, 10, 11])  # unchanged by remove/add
    index.reset()
    assert len(index) == index.ntotal == 0
    index.add(codes[:2])
    np.testing.assert_array_equal(index.ids, [0, 1])
    np.testing.assert_array_equal(index.search(codes[:2], 1).ids[:, 0], [0, 1])


def test_duplicate_and_invalid_ids_are_rejected():
    codes = np.zeros((3, 1), dtype=np.uint8)
    index = HammingIndex(8)
    with pytest.raises(ValueError, match="duplicates"):
        index.add(codes, ids=[4, 1, 4])
    index.add(codes, ids=[1, 2, 3])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(codes[:2], ids=[0, 2])
    with pytest.raises(ValueError, match="non-negative"):
        index.add(codes[:1], ids=[-1])
    with pytest.raises(ValueError, match="3 codes"):
        index.add(codes, ids=[7, 8])
    with pytest.raises(TypeError, match="integers"):
        index.add(codes, ids=[1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="integers"):
        index.remove(["a"])
    assert len(index) == 3  # failed adds change nothing
    np.testing.assert_array_equal(index.ids, [1, 2, 3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_errors(backend):
    index = HammingIndex(12, backend=backend)
    index.add(np.zeros((2, 2), dtype=np.uint8))
    good = np.zeros((1, 2), dtype=np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        index.search(good.astype(np.int64), 1)
    with pytest.raises(TypeError, match="uint8"):
        index.add(np.zeros((1, 2), dtype=bool))
    with pytest.raises(ValueError, match="bytes per code"):
        index.search(np.zeros((1, 3), dtype=np.uint8), 1)
    with pytest.raises(ValueError, match="2-D"):
        index.search(np.zeros(2, dtype=np.uint8), 1)
    with pytest.raises(ValueError, match="unused high bits"):
        index.add(np.array([[0, 0x10]], dtype=np.uint8))
    with pytest.raises(ValueError, match="unused high bits"):
        index.search(np.array([[0, 0xF0]], dtype=np.uint8), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(good, 0)
    for bad_k in (2.0, True, "3", None):
        with pytest.raises(TypeError, match="k must be an integer"):
            index.search(good, bad_k)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        index.range_search(good, -1)
    with pytest.raises(TypeError, match="radius must be an integer"):
        index.range_search(good, 1.5)
    # a radius beyond n_bits is the whole index
    assert index.range_search(good, 10**6).counts[0] == 2


def test_constructor_errors():
    with pytest.raises(ValueError, match="n_bits"):
        HammingIndex(0)
    with pytest.raises(TypeError, match="n_bits"):
        HammingIndex(64.0)
    with pytest.raises(ValueError, match="backend"):
        HammingIndex(64, backend="gpu")
    with pytest.raises(ValueError, match="n_jobs"):
        HammingIndex(64, n_jobs=0)
    with pytest.raises(TypeError, match="n_jobs"):
        HammingIndex(64, n_jobs="2")


def test_radius_is_inclusive_and_faiss_needs_radius_plus_one():
    rng = np.random.default_rng(2)
    codes = clustered_codes(rng, 300, 64)
    queries = codes[:7]
    index = HammingIndex(64)
    index.add(codes)
    flat = faiss.IndexBinaryFlat(64)
    flat.add(codes)
    for radius in (0, 3, 9):
        ours = index.range_search(queries, radius)
        lims, _, ids = flat.range_search(queries, radius + 1)
        np.testing.assert_array_equal(ours.lims, lims.astype(np.int64))
        for i in range(len(queries)):
            assert set(ours[i][0]) == set(ids[lims[i]:lims[i + 1]])
            assert (ours[i][1] <= radius).all()
        strict = flat.range_search(queries, radius)[0]
        assert (np.diff(strict) <= ours.counts).all()


@pytest.mark.parametrize("n_bits", [64, 96, 128])
def test_few_queries_split_the_database_between_threads(n_bits):
    # 3 queries form one block; with 2 threads the scan is split in database parts and merged
    rng = np.random.default_rng(3)
    codes = clustered_codes(rng, 40_000, n_bits, n_centres=2, flip=0.1)
    ids = np.arange(40_000) * 3
    queries = codes[[5, 17, 39_999]]
    single = HammingIndex(n_bits, n_jobs=1)
    double = HammingIndex(n_bits, n_jobs=2)
    for index in (single, double):
        index.add(codes, ids=ids)
    for k in (1, 25):
        a, b = single.search(queries, k), double.search(queries, k)
        assert_knn(a, queries, codes, ids, k)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.distances, b.distances)


def test_n_jobs_does_not_change_results_or_global_thread_settings():
    rng = np.random.default_rng(4)
    codes = random_codes(rng, 3000, 128)
    queries = random_codes(rng, 200, 128)
    before_numba, before_faiss = numba.get_num_threads(), faiss.omp_get_max_threads()
    results = []
    for backend in BACKENDS:
        for n_jobs in (None, 1, 2, -1, 64):
            index = HammingIndex(128, backend=backend, n_jobs=n_jobs)
            index.add(codes)
            results.append(index.search(queries, 7))
    assert numba.get_num_threads() == before_numba
    assert faiss.omp_get_max_threads() == before_faiss
    for res in results[1:]:
        np.testing.assert_array_equal(res.ids, results[0].ids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_range_search_with_many_matches_per_query(backend):
    # some queries have far more matches than the first pass keeps, others none
    rng = np.random.default_rng(5)
    codes = clustered_codes(rng, 2000, 48, n_centres=2, flip=0.02)
    queries = np.concatenate([codes[:3], ~codes[:2]])
    ids = rng.permutation(5000)[:2000]
    index = HammingIndex(48, backend=backend)
    index.add(codes, ids=ids)
    res = index.range_search(queries, 4)
    lims, r_ids, r_d = brute_range(queries, codes, ids, 4)
    assert res.counts[:3].min() > 0 and res.counts.max() > 64 and res.counts[3:].max() == 0
    np.testing.assert_array_equal(res.lims, lims)
    np.testing.assert_array_equal(res.ids, r_ids)
    np.testing.assert_array_equal(res.distances, r_d)


def test_selection_buffer_compaction_with_steadily_closer_codes():
    # each code is closer to the query than all before it, so every code enters the top-k
    # buffer and the buffer is compacted many times
    n_bits = 64
    bits = np.zeros((640, n_bits), dtype=np.uint8)
    for j in range(640):
        bits[j, : 63 - (j // 10)] = 1
    codes = pack_bits(bits)
    query = np.zeros((1, 8), dtype=np.uint8)
    index = HammingIndex(n_bits)
    index.add(codes)
    for k in (1, 3, 40):
        assert_knn(index.search(query, k), query, codes, np.arange(640), k)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickle_round_trip(backend):
    rng = np.random.default_rng(6)
    codes = random_codes(rng, 100, 72)
    index = HammingIndex(72, backend=backend, n_jobs=1)
    index.add(codes, ids=np.arange(100) + 1000)
    clone = pickle.loads(pickle.dumps(index))
    assert clone.backend == backend and clone.n_jobs == 1 and len(clone) == 100
    a, b = index.search(codes[:9], 4), clone.search(codes[:9], 4)
    np.testing.assert_array_equal(a.ids, b.ids)
    clone.add(codes[:1])
    assert clone.ids[-1] == 1100 and len(index) == 100


def test_properties_and_repr():
    index = HammingIndex(70, backend="faiss", n_jobs=2)
    assert index.n_bits == 70 and index.code_size == 9 and index.backend == "faiss"
    assert index.n_jobs == 2 and index.nbytes == 0
    index.add(np.zeros((4, 9), dtype=np.uint8))
    assert index.nbytes == 4 * (9 + 8) + 4 * 9  # codes and ids, plus faiss's copy of the codes
    assert "ntotal=4" in repr(index)
