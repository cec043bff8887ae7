"""Saving and loading HammingIndex, MultiIndexHashing and HashingSearcher."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordhash import persist
from ordhash.codes import pack_bits
from ordhash.index import HammingIndex, HashingSearcher, MultiIndexHashing
from ordhash.learners import ITQ, LSH
from ordhash.persist import FormatError


def _same_index(a, b, queries, k=5, radius=3):
    assert type(a) is type(b) and a.n_bits == b.n_bits and len(a) == len(b)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.reconstruct(a.ids), b.reconstruct(b.ids))
    ra, rb = a.search(queries, k), b.search(queries, k)
    np.testing.assert_array_equal(ra.ids, rb.ids)
    np.testing.assert_array_equal(ra.distances, rb.distances)
    ga, gb = a.range_search(queries, radius), b.range_search(queries, radius)
    np.testing.assert_array_equal(ga.lims, gb.lims)
    np.testing.assert_array_equal(ga.ids, gb.ids)
    np.testing.assert_array_equal(ga.distances, gb.distances)


FACTORIES = {
    "numba": lambda n_bits: HammingIndex(n_bits, n_jobs=1),
    "faiss": lambda n_bits: HammingIndex(n_bits, backend="faiss"),
    "mih": lambda n_bits: MultiIndexHashing(n_bits),
    "mih-m2": lambda n_bits: MultiIndexHashing(n_bits, n_substrings=2),
}


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(FACTORIES)), n=st.integers(0, 120),
       n_bits=st.sampled_from([8, 12, 64, 100]), built=st.booleans(), mmap=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_index_round_trip(tmp_path_factory, kind, n, n_bits, built, mmap, seed):
    rng = np.random.default_rng(seed)
    index = FACTORIES[kind](n_bits)
    ids = rng.choice(5 * n + 1, size=n, replace=False)
    index.add(pack_bits(rng.integers(0, 2, size=(n, n_bits))), ids)
    queries = pack_bits(rng.integers(0, 2, size=(4, n_bits)))
    if built:
        index.search(queries, 1)  # builds the MIH tables, which are then saved too
    path = tmp_path_factory.mktemp("idx") / "index.ordhash"
    index.save(path)
    back = type(index).load(path, mmap=mmap)
    assert repr(back) == repr(index)
    _same_index(index, back, queries)
    # the loaded index stays fully usable: default ids continue, add and remove work
    extra = pack_bits(rng.integers(0, 2, size=(3, n_bits)))
    index.add(extra)
    back.add(extra)
    gone = np.array(index.ids[::2])  # a copy: .ids is a live view of the store
    assert index.remove(gone) == back.remove(gone)
    _same_index(index, back, queries)


def test_mmap_keeps_codes_mapped(tmp_path):
    rng = np.random.default_rng(0)
    n, n_bits = 20_000, 64  # 160 kB of codes: above the memory-mapping threshold
    codes = pack_bits(rng.integers(0, 2, size=(n, n_bits)))
    queries = codes[:50]
    for index in (HammingIndex(n_bits), MultiIndexHashing(n_bits)):
        index.add(codes)
        index.search(queries, 3)
        path = tmp_path / f"{type(index).__name__}.ordhash"
        index.save(path)
        back = type(index).load(path, mmap=True)
        stored = back._store.codes
        assert not stored.flags.writeable and not stored.flags.owndata  # a read-only mapping
        _same_index(index, back, queries)
        assert back._store.codes.flags.writeable is False  # searching did not copy it
        assert back.remove([0, 1]) == 2  # removal works on a private copy
        assert back._store.codes.flags.writeable
        np.testing.assert_array_equal(type(index).load(path).reconstruct([0]), codes[:1])


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(5)
    return rng.normal(size=(600, 20)).astype(np.float32), rng.normal(size=(15, 20))


@settings(max_examples=10, deadline=None)
@given(index=st.sampled_from(["flat", "faiss", "mih"]), metric=st.sampled_from(["l2", "ip"]),
       learner=st.sampled_from(["ITQ", "LSH"]), mmap=st.booleans(), seed=st.integers(0, 99))
def test_searcher_round_trip(tmp_path_factory, vectors, index, metric, learner, mmap, seed):
    X, Q = vectors
    make = {"ITQ": ITQ, "LSH": LSH}[learner]
    s = HashingSearcher(make(n_bits=16, random_state=seed), index=index, metric=metric,
                        candidates=40).fit(X)
    s.add(X[:5] + 1.0, ids=[1000, 1001, 1002, 1003, 1004])
    s.remove([3, 7])
    path = tmp_path_factory.mktemp("s") / "searcher.ordhash"
    s.save(path)
    back = HashingSearcher.load(path, mmap=mmap)
    assert back.get_params()["index"] == index and back.metric == metric
    assert type(back.learner_) is make and back.learner_.random_state == seed
    np.testing.assert_array_equal(back.vectors_, s.vectors_)
    np.testing.assert_array_equal(back.ids, s.ids)
    a, b = s.search(Q, 10), back.search(Q, 10)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)
    s.add(X[:2])
    back.add(X[:2])
    np.testing.assert_array_equal(back.ids, s.ids)
    np.testing.assert_array_equal(back.search(Q, 3, candidates=5).ids, s.search(Q, 3, candidates=5).ids)


def test_searcher_mmap_vectors(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 32)).astype(np.float32)  # 256 kB of vectors
    s = HashingSearcher(LSH(n_bits=32, random_state=0), candidates=50).fit(X)
    s.save(tmp_path / "s.ordhash")
    back = HashingSearcher.load(tmp_path / "s.ordhash", mmap=True)
    assert not back.vectors_.flags.writeable and not back.vectors_.flags.owndata
    np.testing.assert_array_equal(back.search(X[:20], 5).ids, s.search(X[:20], 5).ids)


def _saved(tmp_path):
    index = HammingIndex(32)
    index.add(pack_bits(np.random.default_rng(0).integers(0, 2, size=(3000, 32))))
    path = tmp_path / "index.ordhash"
    index.save(path)
    return index, path


@pytest.mark.parametrize("mmap", [False, True])
def test_truncated_and_corrupt_files(tmp_path, mmap):
    _, path = _saved(tmp_path)
    raw = path.read_bytes()
    for cut in (10, 100, len(raw) // 2, len(raw) - 1):
        bad = tmp_path / f"cut{cut}.ordhash"
        bad.write_bytes(raw[:cut])
        with pytest.raises(FormatError, match="truncated|corrupt"):
            HammingIndex.load(bad, mmap=mmap)
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF  # inside the ids array
    bad = tmp_path / "flip.ordhash"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(FormatError, match="corrupt"):
        HammingIndex.load(bad, mmap=mmap)
    header = bytearray(raw)
    header[40] ^= 0x01
    bad.write_bytes(bytes(header))
    with pytest.raises(FormatError):
        HammingIndex.load(bad, mmap=mmap)


def test_wrong_class_and_inconsistent_state(tmp_path):
    index, path = _saved(tmp_path)
    with pytest.raises(FormatError, match="HammingIndex"):
        MultiIndexHashing.load(path)
    with pytest.raises(FormatError, match="HammingIndex"):
        HashingSearcher.load(path)
    learner = LSH(n_bits=8, random_state=0).fit(np.random.default_rng(0).normal(size=(20, 3)))
    learner.save(tmp_path / "lsh.ordhash")
    with pytest.raises(FormatError, match="LSH"):
        HammingIndex.load(tmp_path / "lsh.ordhash")
    assert isinstance(persist.load(path), HammingIndex)
    # a well-formed file whose content breaks the index invariants
    meta, arrays = index._get_state()
    for change in (
        {"ids": arrays["ids"][::-1].copy()},
        {"ids": arrays["ids"][:-1].copy()},
        {"codes": np.zeros((len(index), 5), np.uint8)},
    ):
        persist.write_state(tmp_path / "bad.ordhash", "ordhash.HammingIndex", meta,
                            {**arrays, **change})
        with pytest.raises(FormatError):
            HammingIndex.load(tmp_path / "bad.ordhash")


def test_unsaveable_searcher_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="not fitted"):
        HashingSearcher(LSH(n_bits=8)).save(tmp_path / "x.ordhash")
