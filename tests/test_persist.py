"""The pickle-free file format of ordhash.persist and BaseHasher.save/load."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from ordhash import persist
from ordhash.learners.base import BaseHasher


@persist.register("tests.ToyHasher")
class ToyHasher(BaseHasher):
    def _fit(self, X, random_state):
        self.mean_ = X.mean(axis=0)
        self.projection_ = random_state.standard_normal((X.shape[1], self.n_bits))
        self.n_iter_ = 3
        self.loss_curve_ = [1.0, 0.5, 0.25]

    def _project(self, X):
        return (X - self.mean_) @ self.projection_


@persist.register("tests.Other")
class Other(ToyHasher):
    pass


@pytest.fixture
def fitted(tmp_path):
    X = np.random.default_rng(0).standard_normal((60, 10))
    model = ToyHasher(n_bits=20, random_state=1).fit(X)
    path = tmp_path / "model.ordhash"
    model.save(path)
    return model, X, path


DTYPES = st.sampled_from(["bool", "uint8", "int8", "int32", "int64", "uint64", "float32", "float64"])


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6),
                       DTYPES.flatmap(lambda dt: arrays(dt, array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))),
                       max_size=4),
       st.booleans())
def test_state_round_trip(tmp_path_factory, arrs, mmap):
    path = tmp_path_factory.mktemp("state") / "s.bin"
    meta = {"a": 1, "b": [1.5, None, "x"]}
    persist.write_state(path, "tests.state", meta, arrs)
    kind, version, meta2, out = persist.read_state(path, mmap=mmap)
    assert (kind, version, meta2) == ("tests.state", 1, meta)
    assert set(out) == set(arrs)
    for name, arr in arrs.items():
        assert out[name].dtype == arr.dtype and out[name].shape == arr.shape
        np.testing.assert_array_equal(out[name], arr)


def test_arrays_are_aligned_for_memory_mapping(tmp_path):
    big = np.arange(1 << 16, dtype=np.uint8).reshape(-1, 8)
    persist.write_state(tmp_path / "f", "k", {}, {"codes": big, "ids": np.arange(len(big))})
    _, _, _, out = persist.read_state(tmp_path / "f", mmap=True)
    assert isinstance(out["codes"], np.memmap)
    assert out["codes"].offset % persist.ALIGN == 0
    np.testing.assert_array_equal(out["codes"], big)
    with pytest.raises(ValueError):
        out["codes"][0, 0] = 1  # read-only map


def test_learner_round_trip(fitted):
    model, X, path = fitted
    loaded = ToyHasher.load(path)
    assert loaded.get_params() == model.get_params()
    assert loaded.n_iter_ == 3 and loaded.loss_curve_ == [1.0, 0.5, 0.25]
    assert loaded.n_features_in_ == 10
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    np.testing.assert_array_equal(persist.load(path).transform(X), model.transform(X))


def test_wrong_class_is_rejected(fitted):
    _, _, path = fitted
    with pytest.raises(persist.FormatError, match="holds a 'tests.ToyHasher', not a 'tests.Other'"):
        Other.load(path)


def test_truncated_files_are_rejected(fitted):
    _, _, path = fitted
    raw = path.read_bytes()
    for cut in (0, 7, 20, 40, len(raw) // 2, len(raw) - 1):
        bad = path.with_name(f"cut{cut}")
        bad.write_bytes(raw[:cut])
        with pytest.raises(persist.FormatError, match="truncated|corrupt"):
            ToyHasher.load(bad)


def test_corrupt_bytes_are_detected(fitted):
    _, _, path = fitted
    raw = path.read_bytes()
    rng = np.random.default_rng(0)
    for pos in list(rng.choice(np.arange(24, len(raw)), 25, replace=False)):
        data = bytearray(raw)
        data[pos] ^= 0x10
        bad = path.with_name("flipped")
        bad.write_bytes(bytes(data))
        try:
            loaded = ToyHasher.load(bad)
        except persist.FormatError as exc:
            assert "corrupt" in str(exc) or "truncated" in str(exc)
        else:
            # only padding bytes may be flipped without detection, and then nothing changed
            np.testing.assert_array_equal(loaded.projection_, ToyHasher.load(path).projection_)
            assert all(b == 0 for b in raw[pos:pos + 1])


def test_bad_magic_and_version(fitted, tmp_path):
    _, _, path = fitted
    raw = bytearray(path.read_bytes())
    (tmp_path / "magic").write_bytes(b"NOTMAGIC" + bytes(raw[8:]))
    with pytest.raises(persist.FormatError, match="not an ordhash file"):
        persist.load(tmp_path / "magic")
    raw[8] = 99
    (tmp_path / "version").write_bytes(bytes(raw))
    with pytest.raises(persist.FormatError, match="format version 99 is not supported"):
        persist.load(tmp_path / "version")


def test_pickles_are_refused(tmp_path):
    import pickle

    (tmp_path / "p").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(persist.FormatError):
        persist.load(tmp_path / "p")


def test_save_is_atomic(fitted, monkeypatch):
    model, _, path = fitted
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_unsaveable_values(tmp_path):
    model = ToyHasher(n_bits=4, random_state=np.random.RandomState(0)).fit(np.eye(5))
    with pytest.raises(TypeError, match="random_state"):
        model.save(tmp_path / "x")
    with pytest.raises(TypeError, match="cannot be saved"):
        persist.save(object(), tmp_path / "y")
    with pytest.raises(TypeError, match="dtype"):
        persist.write_state(tmp_path / "z", "k", {}, {"o": np.array([object()])})
    with pytest.raises(FileNotFoundError):
        persist.load(tmp_path / "missing")


def test_saved_file_has_the_default_mode(tmp_path):
    old = os.umask(0o022)
    try:
        persist.write_state(tmp_path / "f", "k", {}, {})
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644


def test_a_fresh_process_loads_every_builtin_kind(tmp_path):
    """``import ordhash`` is lazy: ``load`` must import the module that registers a kind."""
    import json
    import subprocess
    import sys

    import ordhash
    import ordhash.index.searcher  # noqa: F401  (register every built-in kind here)
    import ordhash.learners  # noqa: F401
    import ordhash.walk.graph  # noqa: F401
    import ordhash.walk.neural  # noqa: F401
    import ordhash.walk.search  # noqa: F401
    from ordhash.index import HammingIndex, HashingSearcher, MultiIndexHashing
    from ordhash.learners import ITQ

    kinds = sorted(k for k in persist._REGISTRY if k.startswith("ordhash."))
    assert len(kinds) >= 14  # 8 learners, 3 indexes/searcher, 3 graph-walk classes
    X = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    itq = ITQ(n_bits=8, random_state=0).fit(X)
    flat, mih = HammingIndex(8), MultiIndexHashing(8, n_substrings=2)
    flat.add(itq.transform(X))
    mih.add(itq.transform(X))
    searcher = HashingSearcher(ITQ(n_bits=8, random_state=0)).fit(X)
    paths = {}
    for name, obj in [("itq", itq), ("flat", flat), ("mih", mih), ("searcher", searcher)]:
        paths[name] = str(ordhash.save(obj, tmp_path / f"{name}.ordhash"))
    # One fresh process per file: an earlier load must not register what a later one needs
    # (the searcher holds a learner and an index of their own kinds).
    code = "import sys, ordhash; print(type(ordhash.load(sys.argv[1])).__name__)"
    loaded = {name: subprocess.run([sys.executable, "-c", code, path], capture_output=True,
                                   text=True, check=True).stdout.strip()
              for name, path in paths.items()}
    assert loaded == {"itq": "ITQ", "flat": "HammingIndex", "mih": "MultiIndexHashing",
                      "searcher": "HashingSearcher"}
    code = ("import json, sys; from ordhash import persist; "
            "print(json.dumps([k for k in json.loads(sys.argv[1]) "
            "if persist.registered_class(k) is None]))")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(kinds)], capture_output=True,
                         text=True, check=True)
    assert json.loads(res.stdout) == []
