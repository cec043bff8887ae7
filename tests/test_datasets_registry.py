"""ordhash.datasets registry: fetch (file:// URLs, checksums, offline) and load_dataset."""

import dataclasses
import hashlib
import re
import tarfile
import urllib.error

import numpy as np
import pytest

from ordhash import datasets as D
from ordhash.datasets import registry as R
from ordhash.datasets import remote as RM

# --------------------------------------------------------------------------------------------
# Registry and fetch
# --------------------------------------------------------------------------------------------


def test_registry_entries_are_well_formed():
    names = D.list_datasets()
    for required in ("sift1m", "gist1m", "fashion-mnist", "glove-100-angular",
                     "deep-image-96-angular", "mnist-784-euclidean"):
        assert required in names
    hex_len = {"md5": 32, "sha256": 64, "sha512": 128}
    for name in names:
        entry = D.get_dataset_info(name)
        assert entry.metric in ("euclidean", "angular") and entry.files
        for f in entry.files:
            assert f.urls and all(re.match(r"^(https?|ftp)://", u) for u in f.urls)
            assert f.checksum_source
            if f.checksum is not None:
                algo, _, digest = f.checksum.partition(":")
                assert re.fullmatch(f"[0-9a-f]{{{hex_len[algo]}}}", digest)
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        D.get_dataset_info("nope")


def _toy_entry(tmp_path, payload=b"ordhash toy payload\n" * 100, checksum="sha256", size=True,
               name="toy"):
    src = tmp_path / "src" / "toy.bin"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(payload)
    if checksum in ("sha256", "md5"):
        checksum = f"{checksum}:{hashlib.new(checksum, payload).hexdigest()}"
    rf = D.RemoteFile("toy.bin", (src.as_uri(),), checksum, len(payload) if size else None,
                      "test")
    return D.RegisteredDataset(name, (rf,), "ann-hdf5", "euclidean", "toy", "none", "none"), src


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


def test_fetch_file_url_verifies_and_reuses(monkeypatch, tmp_path):
    entry, src = _toy_entry(tmp_path, checksum="md5")
    monkeypatch.setitem(R._REGISTRY, "toy", entry)
    home = tmp_path / "home"
    path = D.fetch("toy", data_home=home, progress=False)
    assert path == home / "toy" / "toy.bin" and path.read_bytes() == src.read_bytes()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    assert D.fetch("toy", data_home=home) == path  # present and verified: no download
    monkeypatch.setenv("ORDHASH_DATA_HOME", str(home))
    assert D.fetch("toy") == path


def test_fetch_checksum_and_size_mismatch(monkeypatch, tmp_path):
    entry, _ = _toy_entry(tmp_path, checksum="sha256:" + "0" * 64)
    monkeypatch.setitem(R._REGISTRY, "toy", entry)
    with pytest.raises(D.ChecksumMismatchError, match=r"has sha256 [0-9a-f]{64}, but 0{64}"):
        D.fetch("toy", data_home=tmp_path / "home", progress=False)
    assert list((tmp_path / "home" / "toy").iterdir()) == []  # nothing kept
    good, _ = _toy_entry(tmp_path)
    bad_size = dataclasses.replace(
        good, files=(dataclasses.replace(good.files[0], size=good.files[0].size + 1),))
    monkeypatch.setitem(R._REGISTRY, "toy", bad_size)
    with pytest.raises(D.ChecksumMismatchError, match="bytes, but"):
        D.fetch("toy", data_home=tmp_path / "home", progress=False)


def test_fetch_manually_placed_file(monkeypatch, tmp_path):
    entry, src = _toy_entry(tmp_path)
    monkeypatch.setitem(R._REGISTRY, "toy", entry)
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    folder = tmp_path / "home" / "toy"
    folder.mkdir(parents=True)
    (folder / "toy.bin").write_bytes(src.read_bytes()[:-1] + b"?")
    with pytest.raises(D.ChecksumMismatchError, match="delete"):
        D.fetch("toy", data_home=tmp_path / "home")
    (folder / "toy.bin").write_bytes(src.read_bytes())
    assert D.fetch("toy", data_home=tmp_path / "home") == folder / "toy.bin"


def test_fetch_without_checksum_warns_and_prints_sha256(monkeypatch, tmp_path, capsys):
    entry, src = _toy_entry(tmp_path, checksum=None, size=False)
    monkeypatch.setitem(R._REGISTRY, "toy", entry)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.warns(UserWarning, match=f"could not be verified.*{digest}"):
        path = D.fetch("toy", data_home=tmp_path / "home", progress=False)
    assert digest in capsys.readouterr().err
    assert path.read_bytes() == src.read_bytes()


def test_fetch_offline_raises_connection_error(monkeypatch, tmp_path):
    entry, src = _toy_entry(tmp_path)
    monkeypatch.setitem(R._REGISTRY, "toy", entry)
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    with pytest.raises(ConnectionError) as info:
        D.fetch("toy", data_home=tmp_path / "home")
    msg = str(info.value)
    dest = tmp_path / "home" / "toy" / "toy.bin"
    assert "'toy'" in msg and src.as_uri() in msg and str(dest) in msg
    assert "network is unreachable" in msg and not dest.exists()
    # The real registry entries give the same guidance.
    with pytest.raises(ConnectionError, match=r"sift1m.*ftp\.irisa\.fr.*place it at"):
        D.fetch("sift1m", data_home=tmp_path / "home")


def test_fetch_multi_file_returns_folder(monkeypatch, tmp_path):
    files = []
    for i in range(2):
        src = tmp_path / f"f{i}.bin"
        src.write_bytes(bytes([i]) * 10)
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        files.append(D.RemoteFile(src.name, (src.as_uri(),), "sha256:" + digest, 10, "t"))
    entry = D.RegisteredDataset("pair", tuple(files), "idx-gz", "euclidean", "", "", "")
    monkeypatch.setitem(R._REGISTRY, "pair", entry)
    folder = D.fetch("pair", data_home=tmp_path / "home", progress=False)
    assert folder == tmp_path / "home" / "pair"
    assert sorted(p.name for p in folder.glob("*.bin")) == ["f0.bin", "f1.bin"]


# --------------------------------------------------------------------------------------------
# load_dataset on registered formats (toy files behind file:// URLs)
# --------------------------------------------------------------------------------------------


def _register(monkeypatch, name, fmt, paths):
    files = tuple(
        D.RemoteFile(p.name, (p.as_uri(),),
                     "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest(), None, "test")
        for p in paths
    )
    monkeypatch.setitem(R._REGISTRY, name,
                        D.RegisteredDataset(name, files, fmt, "euclidean", "toy", "none", "x"))


def test_load_dataset_ann_hdf5(monkeypatch, tmp_path):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(40, 4)), rng.normal(size=(3, 4))
    ids, dist = D.compute_ground_truth(train, test, 5)
    src = tmp_path / "toy-4-euclidean.hdf5"
    D.write_ann_hdf5(src, train, test, ids, dist)
    _register(monkeypatch, "toy-4-euclidean", "ann-hdf5", [src])
    ds = D.load_dataset("toy-4-euclidean", data_home=tmp_path / "home", progress=False)
    np.testing.assert_array_equal(ds.ground_truth, ids)
    np.testing.assert_allclose(ds.base, train.astype(np.float32))
    assert ds.metric == "euclidean" and ds.n_queries == 3


def test_load_dataset_texmex_tarball(monkeypatch, tmp_path):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(30, 8)).astype(np.float32)
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    ids, dist = D.compute_ground_truth(base, queries, 6)
    src_dir = tmp_path / "build" / "toy"
    src_dir.mkdir(parents=True)
    D.write_fvecs(src_dir / "toy_base.fvecs", base)
    D.write_fvecs(src_dir / "toy_query.fvecs", queries)
    D.write_ivecs(src_dir / "toy_groundtruth.ivecs", ids)
    tarball = tmp_path / "toy.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src_dir, arcname="toy")
    _register(monkeypatch, "toy1m", "texmex-tar", [tarball])
    monkeypatch.setitem(RM._TEXMEX_PREFIX, "toy1m", "toy")
    ds = D.load_dataset("toy1m", data_home=tmp_path / "home", progress=False)
    np.testing.assert_array_equal(ds.base, base)
    np.testing.assert_array_equal(ds.ground_truth, ids)
    np.testing.assert_allclose(ds.ground_truth_distances, dist, rtol=1e-5)
    again = D.load_dataset("toy1m", data_home=tmp_path / "home", download=False)
    np.testing.assert_array_equal(again.queries, queries)


def test_load_dataset_idx_and_errors(monkeypatch, tmp_path):
    rng = np.random.default_rng(4)
    parts = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 12, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    for fn, arr in parts.items():
        D.write_idx(tmp_path / fn, arr)
    _register(monkeypatch, "fashion-mnist", "idx-gz", [tmp_path / fn for fn in parts])
    with pytest.raises(FileNotFoundError, match="fetch"):
        D.load_dataset("fashion-mnist", data_home=tmp_path / "home", download=False)
    ds = D.load_dataset("fashion-mnist", data_home=tmp_path / "home", progress=False)
    assert ds.base.shape == (12, 784) and ds.queries.shape == (3, 784) and ds.k is None
    np.testing.assert_array_equal(ds.query_labels, parts["t10k-labels-idx1-ubyte.gz"])
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        D.load_dataset("nope")
    assert D.load_dataset("sift10k").name == "sift10k"
