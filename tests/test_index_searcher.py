"""HashingSearcher, HashingKNeighborsTransformer and the faiss interop."""

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from sklearn.datasets import make_swiss_roll
from sklearn.manifold import Isomap
from sklearn.neighbors import KNeighborsClassifier, KNeighborsTransformer
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from ordhash.codes import pack_bits
from ordhash.index import (
    HammingIndex,
    HashingKNeighborsTransformer,
    HashingSearcher,
    MultiIndexHashing,
    from_faiss,
    to_faiss,
)
from ordhash.learners import ITQ, LSH


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(20, 40))
    X = (centers[rng.integers(0, 20, 1500)] + rng.normal(size=(1500, 40))).astype(np.float32)
    return X[:1400], X[1400:]


def _exact(X, Q, metric):
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    if metric == "l2":
        return np.sqrt(((Q64[:, None, :] - X64[None]) ** 2).sum(-1))
    return Q64 @ X64.T


def _reference(searcher, Q, k, candidates):
    """Brute-force reference: Hamming top-candidates (ties by id), exact re-rank (ties by id)."""
    codes = searcher.learner_.transform(searcher.vectors_)
    qcodes = searcher.learner_.transform(Q)
    ids = np.asarray(searcher.ids)
    ham = np.unpackbits(qcodes[:, None, :] ^ codes[None], axis=2).sum(2)
    out = []
    for i in range(Q.shape[0]):
        cand = np.lexsort((ids, ham[i]))[:candidates]
        d = _exact(searcher.vectors_[cand], Q[i : i + 1], searcher.metric)[0]
        key = d if searcher.metric == "l2" else -d
        out.append(ids[cand[np.lexsort((ids[cand], key))[:k]]])
    return np.array(out)


@pytest.mark.parametrize("index", ["flat", "faiss", "mih"])
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_search_matches_reference(data, index, metric):
    X, Q = data
    s = HashingSearcher(ITQ(n_bits=32, random_state=0), index=index, metric=metric,
                        candidates=60).fit(X)
    res = s.search(Q, k=10)
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.float32
    assert res.ids.shape == res.distances.shape == (Q.shape[0], 10)
    np.testing.assert_array_equal(res.ids, _reference(s, Q, 10, 60))
    exact = _exact(X, Q, metric)
    np.testing.assert_allclose(res.distances, np.take_along_axis(exact, res.ids, 1),
                               rtol=1e-5, atol=1e-4)
    step = np.diff(res.distances.astype(np.float64), axis=1)
    assert (step >= 0).all() if metric == "l2" else (step <= 0).all()


def test_all_candidates_is_exact_search(data):
    X, Q = data
    s = HashingSearcher(LSH(n_bits=16, random_state=0), candidates=X.shape[0]).fit(X)
    res = s.search(Q, k=5)
    exact = _exact(X, Q, "l2")
    np.testing.assert_allclose(res.distances, np.sort(exact, axis=1)[:, :5], rtol=1e-5,
                               atol=1e-4)


def test_more_candidates_raise_recall(data):
    X, Q = data
    s = HashingSearcher(ITQ(n_bits=16, random_state=0)).fit(X)
    truth = np.argsort(_exact(X, Q, "l2"), axis=1)[:, :10]
    recalls = []
    for c in (10, 50, 400):
        ids = s.search(Q, 10, candidates=c).ids
        recalls.append(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)]))
    assert recalls[0] < recalls[1] < recalls[2]
    assert recalls[2] > 0.9


def test_chunked_rerank_equals_unchunked(data, monkeypatch):
    X, Q = data
    s = HashingSearcher(ITQ(n_bits=32, random_state=0), candidates=80).fit(X)
    whole = s.search(Q, 7)
    import ordhash.index.searcher as mod

    monkeypatch.setattr(mod, "_CHUNK_BYTES", 80 * 40 * 4 * 3)  # 3 queries per chunk
    part = s.search(Q, 7)
    np.testing.assert_array_equal(whole.ids, part.ids)
    np.testing.assert_array_equal(whole.distances, part.distances)


def test_ties_broken_by_id_and_padding():
    X = np.zeros((4, 3), np.float32)
    X[3] = 1.0
    s = HashingSearcher(LSH(n_bits=8, random_state=0), candidates=10).fit(X)
    res = s.search(np.zeros((1, 3), np.float32), k=6)
    np.testing.assert_array_equal(res.ids, [[0, 1, 2, 3, -1, -1]])
    assert np.isinf(res.distances[0, 4:]).all() and (res.distances[0, 4:] > 0).all()
    np.testing.assert_array_equal(res.counts, [4])
    ip = HashingSearcher(LSH(n_bits=8, random_state=0), metric="ip", candidates=10).fit(X)
    r = ip.search(np.ones((1, 3), np.float32), k=6)
    np.testing.assert_array_equal(r.ids, [[3, 0, 1, 2, -1, -1]])
    assert (r.distances[0, 4:] == -np.inf).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 30), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_boundary_ties_broken_by_id(n_dup, k, seed):
    """Many equidistant candidates: the k returned are the smallest ids among the ties."""
    rng = np.random.default_rng(seed)
    far = rng.normal(size=(10, 4)).astype(np.float32) + 50.0
    X = np.vstack([np.ones((n_dup, 4), np.float32), far])
    order = rng.permutation(X.shape[0])
    s = HashingSearcher(LSH(n_bits=8, random_state=0), candidates=X.shape[0]).fit(X[order])
    res = s.search(np.ones((1, 4), np.float32), k=min(k, X.shape[0]))
    dup_ids = np.sort(np.flatnonzero(order < n_dup))
    got = res.ids[0][: min(k, n_dup)]
    np.testing.assert_array_equal(got, dup_ids[: min(k, n_dup)])
    assert (res.distances[0][: min(k, n_dup)] == 0).all()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=40, unique=True),
       st.integers(0, 2**31 - 1))
def test_add_with_ids_keeps_vectors_aligned(ids, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(30, 6)).astype(np.float32)
    s = HashingSearcher(LSH(n_bits=16, random_state=0), candidates=100).fit(base)
    extra = rng.normal(size=(len(ids), 6)).astype(np.float32)
    new_ids = np.array(ids) + 30
    s.add(extra, ids=new_ids)
    expect = dict(zip(range(30), base))
    expect.update(zip(new_ids.tolist(), extra))
    stored = np.asarray(s.ids)
    assert stored.tolist() == sorted(expect)
    np.testing.assert_array_equal(s.vectors_, np.array([expect[i] for i in stored]))
    # every stored vector is its own nearest neighbour with its own id
    probe = stored[rng.permutation(stored.shape[0])[:10]]
    res = s.search(np.array([expect[i] for i in probe]), k=1, candidates=len(expect))
    assert (res.distances[:, 0] == 0).all()
    gone = probe[:3]
    assert s.remove(gone) == 3
    assert not np.isin(gone, s.ids).any() and s.vectors_.shape[0] == len(s.ids)
    s.add(base[:2])
    assert np.asarray(s.ids)[-2:].tolist() == [max(expect) + 1, max(expect) + 2]


def test_validation(data):
    X, Q = data
    s = HashingSearcher(LSH(n_bits=16, random_state=0), candidates=20)
    with pytest.raises(Exception, match="not fitted"):
        s.search(Q, 1)
    s.fit(X)
    with pytest.raises(ValueError, match="exceeds candidates"):
        s.search(Q, 21)
    with pytest.raises(ValueError, match="k must be >= 1"):
        s.search(Q, 0)
    with pytest.raises(ValueError, match="features"):
        s.search(Q[:, :5], 1)
    bad = Q.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        s.search(bad, 1)
    with pytest.raises(ValueError, match="NaN"):
        HashingSearcher(LSH(n_bits=8)).fit(np.vstack([X[:5], bad[:1]]))
    with pytest.raises(ValueError, match="metric"):
        HashingSearcher(LSH(n_bits=8), metric="cosine").fit(X)
    with pytest.raises(ValueError, match="index"):
        HashingSearcher(LSH(n_bits=8), index="hnsw").fit(X)
    with pytest.raises(ValueError, match="already in the index"):
        s.add(Q[:1], ids=[3])
    assert s.search(Q[:0], 3).ids.shape == (0, 3)


# ------------------------------------------------------------------------ k-NN transformer


def test_transformer_graph_layout(data):
    X, Q = data
    t = HashingKNeighborsTransformer(learner=ITQ(n_bits=32, random_state=0), n_neighbors=4,
                                     candidates=200)
    g = t.fit_transform(X)
    assert isinstance(g, csr_matrix) and g.shape == (X.shape[0], X.shape[0])
    assert (np.diff(g.indptr) == 5).all()
    assert (g[np.arange(X.shape[0]), np.arange(X.shape[0])] == 0).all()  # self at distance 0
    first = g.indices[g.indptr[:-1]]
    np.testing.assert_array_equal(first, np.arange(X.shape[0]))
    gq = t.transform(Q)
    assert gq.shape == (Q.shape[0], X.shape[0])
    conn = HashingKNeighborsTransformer(learner=ITQ(n_bits=32, random_state=0), n_neighbors=4,
                                        mode="connectivity", candidates=200).fit(X).transform(Q)
    assert (np.diff(conn.indptr) == 4).all() and (conn.data == 1.0).all()
    # connectivity keeps the first 4 of the distance graph's 5 neighbours
    np.testing.assert_array_equal(conn.indices.reshape(-1, 4), gq.indices.reshape(-1, 5)[:, :4])
    # same layout as scikit-learn's exact KNeighborsTransformer, and nearly the same neighbours
    exact = KNeighborsTransformer(n_neighbors=4, mode="distance").fit(X).transform(Q)
    assert exact.shape == gq.shape and (np.diff(exact.indptr) == 5).all()
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in
                       zip(gq.indices.reshape(-1, 5), exact.indices.reshape(-1, 5))])
    assert overlap > 0.9
    with pytest.raises(ValueError, match="n_samples_fit"):
        HashingKNeighborsTransformer(n_neighbors=5).fit(X[:5]).transform(X[:5])


def test_transformer_in_precomputed_pipelines(data):
    X, Q = data
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    t = HashingKNeighborsTransformer(learner=ITQ(n_bits=32, random_state=0), n_neighbors=5,
                                     candidates=200)
    clf = make_pipeline(t, KNeighborsClassifier(n_neighbors=5, metric="precomputed")).fit(X, y)
    ref = KNeighborsClassifier(n_neighbors=5).fit(X, y)
    yq = (Q[:, 0] > np.median(X[:, 0])).astype(int)
    assert np.mean(clf.predict(Q) == ref.predict(Q)) > 0.9
    assert clf.score(Q, yq) > 0.8
    roll, _ = make_swiss_roll(400, random_state=0)
    emb = make_pipeline(
        HashingKNeighborsTransformer(learner=LSH(n_bits=32, random_state=0), n_neighbors=10,
                                     candidates=150),
        Isomap(n_neighbors=10, n_components=2, metric="precomputed"),
    ).fit_transform(roll)
    ref = Isomap(n_neighbors=10, n_components=2).fit_transform(roll)
    # the embeddings agree up to sign: each axis strongly correlated with the exact one
    corr = np.abs(np.corrcoef(emb.T, ref.T)[:2, 2:]).max(axis=1)
    assert (corr > 0.9).all()
    assert emb.shape == (400, 2) and np.isfinite(emb).all()


@parametrize_with_checks([HashingKNeighborsTransformer(n_neighbors=2, candidates=20)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------ faiss interop


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 80), st.sampled_from([8, 13, 64, 100]), st.integers(0, 2**31 - 1))
def test_faiss_round_trip(n, n_bits, seed):
    rng = np.random.default_rng(seed)
    codes = pack_bits(rng.integers(0, 2, size=(n, n_bits)))
    ids = rng.choice(10 * n, size=n, replace=False)
    for index in (HammingIndex(n_bits), MultiIndexHashing(n_bits)):
        index.add(codes, ids)
        fx = to_faiss(index)
        assert isinstance(fx, faiss.IndexBinaryIDMap2) and fx.ntotal == n
        back = from_faiss(fx, n_bits=n_bits)
        np.testing.assert_array_equal(back.ids, index.ids)
        np.testing.assert_array_equal(back.reconstruct(back.ids), index.reconstruct(index.ids))
        q = pack_bits(rng.integers(0, 2, size=(5, n_bits)))
        k = min(n, 4)
        mine = index.search(q, k)
        fd, fi = fx.search(q, k)
        np.testing.assert_array_equal(np.sort(fd, 1), mine.distances)
        # same distances per returned id
        np.testing.assert_array_equal(
            np.unpackbits(q[:, None] ^ index.reconstruct(fi.ravel()).reshape(5, k, -1),
                          axis=2).sum(2), fd)
        r = back.search(q, k)
        np.testing.assert_array_equal(r.ids, mine.ids)
        np.testing.assert_array_equal(r.distances, mine.distances)


def test_from_faiss_variants_and_errors():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, size=(50, 4), dtype=np.uint8)
    flat = faiss.IndexBinaryFlat(32)
    flat.add(codes)
    a = from_faiss(flat)
    np.testing.assert_array_equal(a.ids, np.arange(50))
    np.testing.assert_array_equal(a.reconstruct(np.arange(50)), codes)
    idmap = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(32))
    idmap.add_with_ids(codes, np.arange(50, dtype=np.int64)[::-1] * 3)
    b = from_faiss(idmap, backend="faiss")
    np.testing.assert_array_equal(b.reconstruct([147, 0]), codes[[0, 49]])
    assert b.backend == "faiss"
    hnsw = faiss.IndexBinaryHNSW(32)
    with pytest.raises(TypeError, match="IndexBinaryHNSW"):
        from_faiss(hnsw)
    with pytest.raises(TypeError, match="binary index"):
        from_faiss(faiss.IndexFlatL2(8))
    with pytest.raises(TypeError, match="HammingIndex"):
        to_faiss(flat)
    with pytest.raises(ValueError, match="byte"):
        from_faiss(flat, n_bits=8)
