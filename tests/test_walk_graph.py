"""ProximityGraph: CSR extraction from faiss HNSW, k-NN and binary-code graphs, persistence."""

import faiss
import numpy as np
import pytest

from ordhash import persist
from ordhash.codes import hamming_distance_rows, hamming_distances, pack_bits
from ordhash.walk import GraphWalkIndex, ProximityGraph


def _faiss_lists(index):
    """Neighbour lists read through faiss' own API: neighbor_range + the raw table pointer."""
    h = index.hnsw
    raw = np.array(faiss.rev_swig_ptr(h.neighbors.data(), h.neighbors.size()), copy=True)
    begin, end = np.zeros(1, "uint64"), np.zeros(1, "uint64")
    out = {}
    for i in range(index.ntotal):
        for lvl in range(int(h.levels.at(i))):
            h.neighbor_range(i, lvl, faiss.swig_ptr(begin), faiss.swig_ptr(end))
            row = raw[int(begin[0]):int(end[0])]
            # faiss stops reading a list at the first -1.
            stop = np.flatnonzero(row < 0)
            out[i, lvl] = row[: stop[0] if stop.size else row.size]
    return out


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    return rng.standard_normal((1500, 12)).astype(np.float32)


def test_csr_matches_faiss_neighbour_lists(vectors):
    index = faiss.IndexHNSWFlat(vectors.shape[1], 6)
    index.hnsw.efConstruction = 30
    index.add(vectors)
    g = ProximityGraph.from_faiss(index)
    lists = _faiss_lists(index)
    assert g.max_level + 1 == int(faiss.vector_to_array(index.hnsw.levels).max())
    assert g.entry_point == index.hnsw.entry_point
    for lvl in range(g.max_level + 1):
        for i in range(g.n_items):
            got = g.neighbors(i, lvl)
            np.testing.assert_array_equal(got, lists.get((i, lvl), np.empty(0, np.int32)))
    # Layer 0 has 2M slots, upper layers M, and no padding survives.
    assert g.degrees(0).max() <= 12 and g.degrees(1).max() <= 6
    assert all(ix.min() >= 0 for ix in g.indices if ix.size)
    # Nodes absent from a layer have empty rows there.
    absent = np.flatnonzero(g.levels <= 1)
    assert (g.degrees(1)[absent] == 0).all()


def test_from_hnsw_params_seed_and_direction(vectors):
    g1 = ProximityGraph.from_hnsw(vectors, M=8, ef_construction=20, random_state=3, n_threads=1)
    g2 = ProximityGraph.from_hnsw(vectors, M=8, ef_construction=20, random_state=3, n_threads=1)
    np.testing.assert_array_equal(g1.levels, g2.levels)
    np.testing.assert_array_equal(g1.indices[0], g2.indices[0])
    assert g1.params == {"M": 8, "ef_construction": 20, "metric": "l2"}
    # Directed edges: not every edge is reciprocated, but most are.
    r = g1.reciprocity(0)
    assert 0.3 < r < 1.0
    assert set(g1.entry_set(1)) == set(np.flatnonzero(g1.levels > 1))
    assert g1.entry_point in g1.entry_set(g1.max_level)


def test_knn_graph_is_exact(vectors):
    X = vectors[:400]
    g = ProximityGraph.from_knn(X, k=7, n_seeds=40, chunk_size=97, random_state=0)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    for i in range(0, 400, 13):
        nb = g.neighbors(i)
        assert nb.size == 7 and i not in nb
        # Same set as brute force up to float ties at the 7th distance.
        assert D[i, nb].max() <= np.sort(D[i])[6] * (1 + 1e-5)
    seeds = g.entry_set(1)
    assert seeds.size == 40
    for s in seeds[:5]:
        assert set(g.neighbors(s, 1)) <= set(seeds)
        assert g.neighbors(s, 1).size == 7


@pytest.mark.parametrize("method", ["hnsw", "knn"])
def test_graph_over_binary_codes(method):
    rng = np.random.default_rng(1)
    codes = pack_bits(rng.integers(0, 2, size=(600, 64)))
    g = ProximityGraph.from_codes(codes, method=method, M=8, k=6, random_state=0)
    assert g.n_items == 600
    assert g.kind == ("binary_hnsw" if method == "hnsw" else "binary_knn")
    if method == "knn":
        D = hamming_distances(codes, codes).astype(np.int64)
        np.fill_diagonal(D, 10**6)
        for i in range(0, 600, 37):
            nb = g.neighbors(i)
            key = D[i] * 600 + np.arange(600)
            np.testing.assert_array_equal(nb, np.argsort(key)[:6])
    else:
        # Hamming-HNSW neighbours are much closer than random pairs of codes.
        src = np.repeat(np.arange(600), g.degrees(0))
        d_edges = hamming_distance_rows(codes[src], codes[g.indices[0]])
        d_random = hamming_distance_rows(codes[src], codes[rng.permutation(src)])
        assert d_edges.mean() < d_random.mean() - 4


def test_graph_persistence_round_trip(tmp_path, vectors):
    g = ProximityGraph.from_hnsw(vectors[:500], M=6, random_state=0)
    path = tmp_path / "g.ordhash"
    g.save(path)
    for mmap in (False, True):
        h = ProximityGraph.load(path, mmap=mmap)
        assert (h.kind, h.entry_point, h.params) == (g.kind, g.entry_point, g.params)
        np.testing.assert_array_equal(h.levels, g.levels)
        for a, b in zip(h.indptr + h.indices, g.indptr + g.indices):
            np.testing.assert_array_equal(a, b)
    index = GraphWalkIndex(g, ef={0: 50, 1: 20, 2: 10}, T={0: 2, 1: 1}, variant="serving")
    index.save(tmp_path / "i.ordhash")
    back = GraphWalkIndex.load(tmp_path / "i.ordhash")
    assert back.ef == {0: 50, 1: 20, 2: 10} and back.variant == "serving"
    np.testing.assert_array_equal(back.graph.indices[0], g.indices[0])
    with pytest.raises(persist.FormatError, match="not a 'ordhash.ProximityGraph'"):
        ProximityGraph.load(tmp_path / "i.ordhash")


def test_graph_validation():
    with pytest.raises(ValueError, match="levels must be >= 1"):
        ProximityGraph(np.zeros(3), [np.zeros(4)], [np.zeros(0)], 0)
    with pytest.raises(ValueError, match="imply 1 layers"):
        ProximityGraph(np.ones(3), [], [], 0)
    with pytest.raises(ValueError, match="neighbour ids must lie"):
        ProximityGraph(np.ones(2), [np.array([0, 1, 1])], [np.array([5])], 0)
    with pytest.raises(ValueError, match="not a valid CSR"):
        ProximityGraph(np.ones(2), [np.array([0, 2, 1])], [np.array([1])], 0)
    with pytest.raises(TypeError, match="faiss HNSW index"):
        ProximityGraph.from_faiss(faiss.IndexFlatL2(4))
    with pytest.raises(ValueError, match="unknown metric"):
        ProximityGraph.from_hnsw(np.ones((5, 2)), metric="cosine")
    with pytest.raises(TypeError, match="uint8"):
        ProximityGraph.from_codes(np.ones((5, 2), dtype=np.int32))
    with pytest.raises(ValueError, match="NaN"):
        ProximityGraph.from_hnsw(np.full((5, 2), np.nan))
