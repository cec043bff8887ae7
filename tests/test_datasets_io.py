"""ordhash.datasets file formats: texmex vecs, IDX, ann-benchmarks HDF5, MATLAB."""

import gzip
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ordhash import datasets as D

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------
# texmex vecs
# --------------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 7), st.integers(1, 9))
VECS = {
    "fvecs": (D.write_fvecs, D.read_fvecs,
              arrays(np.float32, shapes, elements=st.floats(-1e6, 1e6, width=32))),
    "ivecs": (D.write_ivecs, D.read_ivecs, arrays(np.int32, shapes)),
    "bvecs": (D.write_bvecs, D.read_bvecs, arrays(np.uint8, shapes)),
}


@pytest.mark.parametrize("kind", sorted(VECS))
def test_vecs_round_trip_property(kind, tmp_path):
    write, read, strategy = VECS[kind]

    @settings(max_examples=25, deadline=None)
    @given(strategy, st.data())
    def check(X, data):
        path = tmp_path / f"x.{kind}"
        write(path, X)
        assert path.stat().st_size == X.shape[0] * (4 + X.shape[1] * X.dtype.itemsize)
        got = read(path)
        assert got.dtype == X.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, X)
        offset = data.draw(st.integers(0, X.shape[0]))
        count = data.draw(st.integers(0, X.shape[0] - offset))
        np.testing.assert_array_equal(read(path, offset=offset, count=count),
                                      X[offset:offset + count])
        np.testing.assert_array_equal(read(path, offset=offset, mmap=True), X[offset:])

    check()


def test_vecs_mmap_is_read_only_view(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    D.write_fvecs(tmp_path / "x.fvecs", X)
    view = D.read_fvecs(tmp_path / "x.fvecs", mmap=True, offset=1, count=2)
    np.testing.assert_array_equal(view, X[1:3])
    with pytest.raises(ValueError):
        view[0, 0] = 1.0


@pytest.mark.parametrize("kind", sorted(VECS))
def test_truncated_vecs_file_names_path(kind, tmp_path):
    write, read, _ = VECS[kind]
    path = tmp_path / f"cut.{kind}"
    write(path, np.ones((3, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"truncated or corrupt") as info:
        read(path)
    assert str(path) in str(info.value)


def test_inconsistent_row_dimension_is_reported(tmp_path):
    path = tmp_path / "mixed.ivecs"
    D.write_ivecs(path, np.zeros((4, 3), dtype=np.int32))
    raw = bytearray(path.read_bytes())
    raw[2 * 16:2 * 16 + 4] = np.int32(7).tobytes()  # row 2 now claims dimension 7
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"row 2 declares dimension 7"):
        D.read_ivecs(path)
    # Rows before the bad one still read fine.
    assert D.read_ivecs(path, count=2).shape == (2, 3)


def test_vecs_header_and_argument_errors(tmp_path):
    empty = tmp_path / "empty.fvecs"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        D.read_fvecs(empty)
    bad = tmp_path / "neg.fvecs"
    bad.write_bytes(np.array([-3, 0, 0], dtype="<i4").tobytes())
    with pytest.raises(ValueError, match="dimension -3"):
        D.read_fvecs(bad)
    with pytest.raises(FileNotFoundError, match="missing.fvecs"):
        D.read_fvecs(tmp_path / "missing.fvecs")
    ok = tmp_path / "ok.fvecs"
    D.write_fvecs(ok, np.ones((2, 2)))
    with pytest.raises(ValueError, match="exceeds the 2 rows"):
        D.read_fvecs(ok, offset=1, count=2)
    with pytest.raises(ValueError, match="offset=3"):
        D.read_fvecs(ok, offset=3)
    with pytest.raises(ValueError, match="count must be >= 0"):
        D.read_fvecs(ok, count=-1)
    with pytest.raises(TypeError, match="path"):
        D.read_fvecs(3)


def test_vecs_writer_validation(tmp_path):
    with pytest.raises(ValueError, match=r"outside the range \[0, 255\]"):
        D.write_bvecs(tmp_path / "x.bvecs", [[0, 256]])
    with pytest.raises(TypeError, match="integer dtype"):
        D.write_ivecs(tmp_path / "x.ivecs", np.ones((2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        D.write_fvecs(tmp_path / "x.fvecs", np.ones(3))
    with pytest.raises(ValueError, match="0 rows"):
        D.write_fvecs(tmp_path / "x.fvecs", np.ones((0, 3)))
    with pytest.raises(ValueError, match="too large for float32"):
        D.write_fvecs(tmp_path / "x.fvecs", np.array([[1e300]]))
    with pytest.raises(ValueError, match=r"outside the range \[-2147483648, 2147483647\]"):
        D.write_ivecs(tmp_path / "x.ivecs", np.array([[2**40]]))


# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.booleans(),
    st.data(),
)
def test_idx_round_trip_property(dtype, shape, compress, data):
    X = data.draw(arrays(dtype, tuple(shape)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("x.idx.gz" if compress else "x.idx")
        D.write_idx(path, X)
        assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
        got = D.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.shape == X.shape
    np.testing.assert_array_equal(got, X)


def test_idx_errors(tmp_path):
    good = tmp_path / "good-idx1-ubyte"
    D.write_idx(good, np.arange(5, dtype=np.uint8))
    raw = good.read_bytes()
    cases = {
        "magic.idx": (b"\x01\x00" + raw[2:], r"bad magic number"),
        "code.idx": (raw[:2] + b"\x07" + raw[3:], r"bad magic number"),
        "short.idx": (raw[:-1], r"truncated"),
        "long.idx": (raw + b"\x00", r"trailing bytes"),
        "tiny.idx": (raw[:2], r"only 2 bytes"),
    }
    for name, (content, pattern) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=pattern) as info:
            D.read_idx(tmp_path / name)
        assert name in str(info.value)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(raw)[:-6])
    with pytest.raises(ValueError, match="gzip"):
        D.read_idx(tmp_path / "broken.gz")
    with pytest.raises(TypeError, match="int64"):
        D.write_idx(tmp_path / "x.idx", np.arange(3, dtype=np.int64))


def test_read_idx_on_bundled_mnist_headers():
    folder = REPO / "datasets" / "mnist"
    images = D.read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = D.read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


# --------------------------------------------------------------------------------------------
# HDF5 and MAT
# --------------------------------------------------------------------------------------------


def test_ann_hdf5_round_trip(tmp_path):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 6)).astype(np.float32)
    test = rng.normal(size=(4, 6)).astype(np.float32)
    ids, dist = D.compute_ground_truth(train, test, 10)
    path = tmp_path / "toy-6-euclidean.hdf5"
    D.write_ann_hdf5(path, train, test, ids, dist)
    data = D.read_ann_hdf5(path)
    np.testing.assert_array_equal(data.train, train)
    np.testing.assert_array_equal(data.test, test)
    np.testing.assert_array_equal(data.neighbors, ids)
    np.testing.assert_array_equal(data.distances, dist)
    assert (data.distance, data.dimension, data.point_type) == ("euclidean", 6, "float")

    bits = rng.integers(0, 2, size=(20, 16))
    D.write_ann_hdf5(path, bits, bits[:3], ids[:3, :5] % 20, np.zeros((3, 5)),
                     distance="hamming", point_type="bit")
    data = D.read_ann_hdf5(path)
    assert data.train.dtype == bool and data.point_type == "bit"
    np.testing.assert_array_equal(data.train, bits.astype(bool))


def test_ann_hdf5_validation(tmp_path):
    h5py = pytest.importorskip("h5py")
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="unknown distance"):
        D.write_ann_hdf5(tmp_path / "a.hdf5", X, X, [[0]] * 3, [[0.0]] * 3, distance="cosine")
    with pytest.raises(ValueError, match="outside"):
        D.write_ann_hdf5(tmp_path / "a.hdf5", X, X, [[3]] * 3, [[0.0]] * 3)
    with pytest.raises(ValueError, match="must both have shape"):
        D.write_ann_hdf5(tmp_path / "a.hdf5", X, X, [[0]] * 2, [[0.0]] * 2)
    with pytest.raises(ValueError, match="0/1"):
        D.write_ann_hdf5(tmp_path / "a.hdf5", X * 2, X, [[0]] * 3, [[0]] * 3, point_type="bit")
    with h5py.File(tmp_path / "bad.hdf5", "w") as fh:
        fh["train"] = X
    with pytest.raises(ValueError, match="no 'test' dataset"):
        D.read_ann_hdf5(tmp_path / "bad.hdf5")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        D.read_ann_hdf5(tmp_path / "text.hdf5")


def test_hdf5_missing_h5py_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install ordhash\[hdf5\]"):
        D.read_ann_hdf5(tmp_path / "x.hdf5")


def test_mat_round_trip_and_errors(tmp_path):
    import scipy.io

    path = tmp_path / "toy.mat"
    X = np.arange(6.0).reshape(2, 3)
    scipy.io.savemat(path, {"X": X, "labels": np.array([[1, 2]])})
    np.testing.assert_array_equal(D.read_mat(path, "X"), X)
    assert set(D.read_mat(path)) == {"X", "labels"}
    with pytest.raises(KeyError, match=r"no variable 'Y'.*\['X', 'labels'\]"):
        D.read_mat(path, "Y")
    (tmp_path / "junk.mat").write_bytes(b"hello world" * 20)
    with pytest.raises(ValueError, match="not a MATLAB"):
        D.read_mat(tmp_path / "junk.mat")


def test_mat_v73_points_to_h5py(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as fh:
        fh["X"] = np.eye(2)
    header = b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))
    with pytest.raises(ValueError, match=r"v7\.3.*h5py"):
        D.read_mat(path)
