"""ordhash.datasets: Dataset, exact ground truth, bundled loaders and recommendation logs."""

import dataclasses
import hashlib
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordhash import datasets as D
from ordhash.datasets import loaders as L

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# --------------------------------------------------------------------------------------------
# Dataset and ground truth
# --------------------------------------------------------------------------------------------


def _reference_knn(base, queries, k):
    """Independent exact reference: integer squared distances, stable sort by (dist, id)."""
    d = ((queries[:, None, :].astype(np.int64) - base[None, :, :].astype(np.int64)) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k], np.sqrt(np.sort(d, axis=1)[:, :k])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31))
def test_compute_ground_truth_matches_reference_with_ties(n, d, nq, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 3, size=(n, d))  # few values: many exact ties
    queries = rng.integers(0, 3, size=(nq, d))
    k = int(rng.integers(1, n + 1))
    ids, dist = D.compute_ground_truth(base, queries, k, batch_size=2)
    ref_ids, ref_dist = _reference_knn(base, queries, k)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6)
    assert ids.dtype == np.int64 and dist.dtype == np.float32


def test_compute_ground_truth_angular():
    rng = np.random.default_rng(1)
    base, queries = rng.normal(size=(30, 5)), rng.normal(size=(4, 5))
    ids, dist = D.compute_ground_truth(base, queries * 7.0, 5, metric="angular")
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cos = qn @ bn.T
    np.testing.assert_array_equal(ids, np.argsort(-cos, axis=1)[:, :5])
    np.testing.assert_allclose(dist, 1 - np.take_along_axis(cos, ids, 1), atol=1e-6)
    with pytest.raises(ValueError, match="zero vectors"):
        D.compute_ground_truth(np.zeros((3, 2)), np.ones((1, 2)), 1, metric="angular")
    with pytest.raises(ValueError, match="k must be <= 30"):
        D.compute_ground_truth(base, queries, 31)


def test_dataset_validation_and_frozen():
    ds = D.Dataset("toy", base=np.eye(3, dtype=np.float64), queries=[[1, 1, 1]],
                   ground_truth=np.array([[2, 0]], dtype=np.int32), base_labels=[0, 1, 1])
    assert ds.base.dtype == np.float32 and ds.ground_truth.dtype == np.int64
    assert (ds.n_base, ds.n_queries, ds.dim, ds.k) == (3, 1, 3, 2)
    assert "toy" in repr(ds) and "3x3" in repr(ds)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(ValueError, match="queries has 2 features"):
        D.Dataset("x", base=np.eye(3), queries=np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"ground_truth ids must lie in \[0, 2\]"):
        D.Dataset("x", base=np.eye(3), queries=np.ones((1, 3)), ground_truth=[[3]])
    with pytest.raises(ValueError, match="ground_truth must have shape"):
        D.Dataset("x", base=np.eye(3), queries=np.ones((1, 3)), ground_truth=[[0], [1]])
    with pytest.raises(ValueError, match="base_labels must be a 1-D integer array of length 3"):
        D.Dataset("x", base=np.eye(3), queries=np.ones((1, 3)), base_labels=[0, 1])
    with pytest.raises(ValueError, match="unknown metric"):
        D.Dataset("x", base=np.eye(3), queries=np.ones((1, 3)), metric="cosine")
    with pytest.raises(ValueError, match="without ground_truth"):
        D.Dataset("x", base=np.eye(3), queries=np.ones((1, 3)), ground_truth_distances=[[0.0]])


# --------------------------------------------------------------------------------------------
# Bundled loaders
# --------------------------------------------------------------------------------------------


def _rows_shared(A, B):
    """Number of rows of B that also occur in A (exact byte match)."""
    seen = {r.tobytes() for r in np.ascontiguousarray(A)}
    return sum(r.tobytes() in seen for r in np.ascontiguousarray(B))


@pytest.fixture(scope="module")
def sift():
    return D.load_sift10k()


@pytest.fixture(scope="module")
def mnist():
    return D.load_mnist()


def test_sift10k_held_out_split(sift):
    assert sift.base.shape == (9900, 128) and sift.queries.shape == (100, 128)
    assert sift.base.dtype == sift.queries.dtype == np.float32
    assert sift.ground_truth.shape == (100, 100) and sift.ground_truth.dtype == np.int64
    assert sift.metric == "euclidean" and sift.base_labels is None
    assert _rows_shared(sift.base, sift.queries) == 0  # queries are NOT in the base
    raw = D.read_bvecs(REPO / "datasets" / "sift10k" / "bigann10k_base.bvecs")
    np.testing.assert_array_equal(sift.queries, raw[:100])
    np.testing.assert_array_equal(sift.base, raw[100:])


def test_sift10k_ground_truth_is_exact(sift):
    rows = [0, 17, 99]
    ids, dist = D.compute_ground_truth(sift.base, sift.queries[rows], 100)
    np.testing.assert_array_equal(ids, sift.ground_truth[rows])
    np.testing.assert_allclose(sift.ground_truth_distances[rows], dist, rtol=1e-6)
    assert np.all(np.diff(sift.ground_truth_distances, axis=1) >= 0)


def test_mnist_split_and_ground_truth(mnist):
    assert mnist.base.shape == (10000, 784) and mnist.queries.shape == (5000, 784)
    assert mnist.base.dtype == np.float32 and mnist.base.max() == 255
    assert np.bincount(mnist.query_labels).tolist() == [500] * 10
    assert mnist.base_labels.shape == (10000,) and mnist.k == 100
    assert _rows_shared(mnist.base, mnist.queries) == 0
    rows = [0, 2500, 4999]
    ids, dist = D.compute_ground_truth(mnist.base, mnist.queries[rows], 100)
    np.testing.assert_array_equal(ids, mnist.ground_truth[rows])
    np.testing.assert_allclose(mnist.ground_truth_distances[rows], dist, rtol=1e-6)


def test_digits_split_is_seeded_and_disjoint():
    a = D.load_digits(n_queries=50, k=20, random_state=3)
    b = D.load_digits(n_queries=50, k=20, random_state=3)
    c = D.load_digits(n_queries=50, k=20, random_state=4)
    assert a.base.shape == (1747, 64) and a.queries.shape == (50, 64) and a.k == 20
    np.testing.assert_array_equal(a.queries, b.queries)
    np.testing.assert_array_equal(a.ground_truth, b.ground_truth)
    assert not np.array_equal(a.queries, c.queries)
    from sklearn.datasets import load_digits

    X, _ = load_digits(return_X_y=True)
    q_idx = np.random.default_rng(3).permutation(len(X))[:50]
    np.testing.assert_array_equal(a.queries, X[q_idx])
    np.testing.assert_array_equal(a.base, np.delete(X, q_idx, axis=0))
    ref_ids, _ = _reference_knn(a.base, a.queries, 20)
    np.testing.assert_array_equal(a.ground_truth, ref_ids)
    default = D.load_digits()
    assert default.queries.shape == (300, 64) and default.k == 100
    with pytest.raises(ValueError, match="n_queries"):
        D.load_digits(n_queries=1797)


def _card_sha256(folder):
    text = (REPO / "datasets" / folder / "CARD.md").read_text()
    return dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", text, flags=re.M))


@pytest.mark.parametrize("name", ["sift10k", "mnist"])
def test_cards_record_the_checked_sha256(name):
    bundle = L._BUNDLES[name]
    assert _card_sha256(bundle.folder) == bundle.sha256
    for fn, digest in bundle.sha256.items():
        content = (REPO / "datasets" / bundle.folder / fn).read_bytes()
        assert hashlib.sha256(content).hexdigest() == digest


def test_bundled_search_order_and_missing_message(monkeypatch, tmp_path):
    monkeypatch.setenv("ORDHASH_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(L, "REPO_ROOT", tmp_path / "repo")
    dirs = D.bundled_data_dirs("sift10k")
    assert dirs[0] == tmp_path / "env" / "sift10k"
    assert dirs[-1] == tmp_path / "shared" / "data" / "sift-bigann10k"
    with pytest.raises(FileNotFoundError) as info:
        D.load_sift10k()
    for d in dirs:
        assert str(d) in str(info.value)


def test_bundled_checksum_mismatch(monkeypatch, tmp_path):
    target = tmp_path / "sift10k"
    shutil.copytree(REPO / "datasets" / "sift10k", target)
    monkeypatch.setenv("ORDHASH_DATA", str(tmp_path))
    assert D.load_sift10k().n_base == 9900  # loads from $ORDHASH_DATA
    raw = bytearray((target / "bigann10k_query.bvecs").read_bytes())
    raw[10] ^= 1
    (target / "bigann10k_query.bvecs").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"fails its integrity check.*CARD\.md"):
        D.load_sift10k()


# --------------------------------------------------------------------------------------------
# Recommendation logs (never bundled)
# --------------------------------------------------------------------------------------------


def test_missing_movielens_explains_license(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="may not redistribute") as info:
        D.load_movielens100k(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    monkeypatch.setenv("ORDHASH_SHARED_DATA", str(tmp_path / "shared"))
    monkeypatch.setattr(L, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(sys.modules["ordhash.datasets.recsys"], "REPO_ROOT", tmp_path / "repo")
    with pytest.raises(FileNotFoundError, match="grouplens") as info:
        D.load_movielens100k()
    assert str(tmp_path / "shared" / "movielens-100k") in str(info.value)
    with pytest.raises(FileNotFoundError, match="Tianchi"):
        D.load_taobao_sample()


def test_movielens_parser_on_a_tiny_copy(tmp_path):
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\nDrama|2\n\n")
    (tmp_path / "u.item").write_text(
        "1|A (1995)|01-Jan-1995||http://x|0|1|0\n2|B (1996)|01-Jan-1996||http://y|0|1|1\n",
        encoding="latin-1")
    (tmp_path / "u.data").write_text("1\t2\t5\t881250949\n2\t1\t3\t891717742\n")
    ml = D.load_movielens100k(tmp_path)
    assert ml.genre_names == ("unknown", "Action", "Drama")
    np.testing.assert_array_equal(ml.item_genres, [[0, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(ml.items, [2, 1])
    assert ml.ratings.tolist() == [5, 3] and ml.item_titles == ("A (1995)", "B (1996)")
    with pytest.raises(ValueError, match="unknown ratings_file"):
        D.load_movielens100k(tmp_path, ratings_file="u9.base")


@pytest.mark.skipif(not (SHARED / "movielens-100k" / "u.data").is_file(),
                    reason="no local MovieLens-100K copy")
def test_movielens_real_copy():
    ml = D.load_movielens100k()
    assert ml.ratings.shape == (100000,) and ml.item_genres.shape == (1682, 19)
    assert (ml.n_users, ml.n_items) == (943, 1682)
    assert np.bincount(ml.ratings)[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    assert D.load_movielens100k(ratings_file="ua.test").ratings.shape == (9430,)


def test_taobao_parser(tmp_path):
    csv = tmp_path / "UserBehavior.csv"
    csv.write_text("1,2268318,2520377,pv,1511544070\n1,2333346,2520771,buy,1511561733\n")
    tb = D.load_taobao_sample(tmp_path)
    assert len(tb) == 2 and tb.behavior.tolist() == ["pv", "buy"]
    assert tb.item.dtype == np.int64 and tb.timestamp.tolist() == [1511544070, 1511561733]
    assert len(D.load_taobao_sample(csv, max_rows=1)) == 1
    csv.write_text("1,2,3,click,4\n")
    with pytest.raises(ValueError, match="unknown behaviour"):
        D.load_taobao_sample(csv)


@pytest.mark.skipif(not (SHARED / "taobao-userbehavior-head").is_dir(),
                    reason="no local Taobao sample")
def test_taobao_real_sample():
    tb = D.load_taobao_sample()
    assert len(tb) == 4321 and np.unique(tb.user).size == 43
    assert np.unique(tb.behavior, return_counts=True)[1].tolist() == [77, 190, 128, 3926]



def test_data_locations_point_at_the_bundled_folders(monkeypatch, tmp_path):
    monkeypatch.delenv("ORDHASH_DATA", raising=False)
    monkeypatch.setenv("ORDHASH_DATA_HOME", str(tmp_path / "home"))
    loc = D.data_locations()
    assert loc["sift10k"] == str(REPO / "datasets" / "sift10k")
    assert loc["mnist"] == str(REPO / "datasets" / "mnist")
    assert loc["data home"] == str(tmp_path / "home") and not (tmp_path / "home").exists()
    monkeypatch.setattr(L, "REPO_ROOT", tmp_path / "repo")
    assert D.data_locations()["sift10k"] == "not found"
