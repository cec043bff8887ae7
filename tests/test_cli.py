"""The ``ordhash`` command line: fit, encode, build, search, info on real data and files.

Every command runs in-process through ``ordhash.cli.main`` and its results are compared with
the Python API on a subset of the bundled SIFT descriptors; error paths must exit with
status 2, name the problem and leave no output behind.
"""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordhash import cli, persist
from ordhash.datasets import (
    load_sift10k,
    read_bvecs,
    read_fvecs,
    read_ivecs,
    write_bvecs,
    write_fvecs,
    write_ivecs,
)
from ordhash.index import HammingIndex, HashingSearcher, MultiIndexHashing
from ordhash.learners import ITQ, LSH
from ordhash.metrics import knn_recall_ids

N_BASE, N_QUERIES, BITS, K = 2000, 40, 32, 10


def run(*argv):
    """``ordhash ARGV`` in-process; returns the exit code."""
    return cli.main([str(a) for a in argv])


def write_bin(path, arr):
    with open(path, "wb") as fh:
        fh.write(np.asarray(arr.shape, "<u4").tobytes())
        fh.write(np.ascontiguousarray(arr).tobytes())


@pytest.fixture(scope="module")
def sift():
    ds = load_sift10k()
    base = ds.base[:N_BASE]
    queries = ds.queries[:N_QUERIES]
    d2 = ((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
    gt = np.lexsort((np.broadcast_to(np.arange(N_BASE), d2.shape), d2), axis=1)[:, :K]
    return base, queries, gt


@pytest.fixture(scope="module")
def files(sift, tmp_path_factory):
    """The SIFT subset in every input format, and a model fitted through the CLI."""
    base, queries, gt = sift
    d = tmp_path_factory.mktemp("cli")
    write_fvecs(d / "base.fvecs", base)
    write_fvecs(d / "query.fvecs", queries)
    write_bvecs(d / "base.bvecs", base.astype(np.uint8))
    write_ivecs(d / "gt.ivecs", gt)
    np.save(d / "base.npy", base)
    np.save(d / "query.npy", queries)
    write_bin(d / "base.u8bin", base.astype(np.uint8))
    write_bin(d / "base.fbin", base)
    with h5py.File(d / "ann.hdf5", "w") as fh:
        fh["train"] = base
        fh["test"] = queries
        fh["neighbors"] = gt.astype(np.int32)
    assert run("fit", "--learner", "ITQ", "--bits", BITS, d / "base.fvecs",
               "-o", d / "itq.ordhash") == 0
    return d


@pytest.fixture(scope="module")
def model(files):
    return persist.load(files / "itq.ordhash")


def listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


# ------------------------------------------------------------------------------------------
# round trip against the Python API
# ------------------------------------------------------------------------------------------

def test_fit_matches_python_api(sift, model):
    base, queries, _ = sift
    ref = ITQ(n_bits=BITS, random_state=0).fit(base)
    assert isinstance(model, ITQ) and model.n_bits == BITS and model.random_state == 0
    np.testing.assert_array_equal(model.transform(queries), ref.transform(queries))


def test_encode_build_search_round_trip(sift, files, model, tmp_path, capsys):
    base, queries, gt = sift
    codes_path, q_path = tmp_path / "codes.npy", tmp_path / "q.npy"
    assert run("encode", "-m", files / "itq.ordhash", files / "base.fvecs", "-o", codes_path,
               "--batch-size", 333, "--no-progress") == 0
    assert run("encode", "-m", files / "itq.ordhash", files / "query.fvecs", "-o", q_path) == 0
    codes, qcodes = np.load(codes_path), np.load(q_path)
    np.testing.assert_array_equal(codes, model.transform(base))
    np.testing.assert_array_equal(qcodes, model.transform(queries))

    assert run("build", codes_path, "-o", tmp_path / "flat.index") == 0
    capsys.readouterr()
    assert run("search", tmp_path / "flat.index", q_path, "-k", K, "-o", tmp_path / "r.npz",
               "--batch-size", 7, "--ground-truth", files / "gt.ivecs") == 0
    err = capsys.readouterr().err
    ref = HammingIndex(BITS)
    ref.add(model.transform(base))
    expected = ref.search(model.transform(queries), K)
    with np.load(tmp_path / "r.npz") as res:
        np.testing.assert_array_equal(res["neighbors"], expected.ids)
        np.testing.assert_array_equal(res["distances"], expected.distances)
    recall = knn_recall_ids(expected.ids, gt, K)
    assert f"recall@{K} = {recall:.4f}" in err
    assert f"{N_QUERIES} queries" in err

    # vector queries encoded by -m give the same answer
    assert run("search", tmp_path / "flat.index", files / "query.fvecs", "-m",
               files / "itq.ordhash", "-k", K, "-o", tmp_path / "r2.hdf5") == 0
    with h5py.File(tmp_path / "r2.hdf5", "r") as fh:
        np.testing.assert_array_equal(fh["neighbors"][...], expected.ids)
        np.testing.assert_array_equal(fh["distances"][...], expected.distances)


@pytest.mark.parametrize("index, extra", [("mih", ["--substrings", "4"]), ("faiss", [])])
def test_build_from_vectors_other_indexes(sift, files, model, tmp_path, index, extra):
    base, queries, _ = sift
    out = tmp_path / f"{index}.index"
    assert run("build", "-m", files / "itq.ordhash", files / "base.bvecs", "--index", index,
               *extra, "-o", out, "--no-progress") == 0
    loaded = persist.load(out)
    assert isinstance(loaded, MultiIndexHashing if index == "mih" else HammingIndex)
    if index == "mih":
        assert loaded.n_substrings == 4
    ref = HammingIndex(BITS)
    ref.add(model.transform(base))
    assert run("search", out, files / "query.npy", "-m", files / "itq.ordhash", "-k", K,
               "-o", tmp_path / "ids.ivecs", "--distances", tmp_path / "d.npy") == 0
    expected = ref.search(model.transform(queries), K)
    np.testing.assert_array_equal(read_ivecs(tmp_path / "ids.ivecs"), expected.ids)
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), expected.distances)


def test_build_with_ids(sift, files, model, tmp_path):
    base, queries, _ = sift
    ids = np.random.default_rng(1).permutation(np.arange(10, 10 + N_BASE))
    np.save(tmp_path / "ids.npy", ids)
    write_ivecs(tmp_path / "ids.ivecs", ids[:, None])
    ref = HammingIndex(BITS)
    ref.add(model.transform(base), ids)
    expected = ref.search(model.transform(queries), K)
    for ids_file in ("ids.npy", "ids.ivecs"):
        out = tmp_path / f"{ids_file}.index"
        assert run("build", "-m", files / "itq.ordhash", files / "base.npy", "--ids",
                   tmp_path / ids_file, "-o", out) == 0
        assert run("search", out, files / "query.fvecs", "-m", files / "itq.ordhash",
                   "-k", K, "-o", tmp_path / "ids.npy.out.npy") == 0
        np.testing.assert_array_equal(np.load(tmp_path / "ids.npy.out.npy"), expected.ids)


def test_radius_search_writes_csr(sift, files, model, tmp_path):
    base, queries, _ = sift
    ref = HammingIndex(BITS)
    ref.add(model.transform(base))
    expected = ref.range_search(model.transform(queries), 9)
    assert expected.lims[-1] > N_QUERIES  # the radius finds something
    assert run("build", "-m", files / "itq.ordhash", files / "base.fvecs", "-o",
               tmp_path / "f.index") == 0
    for out in ("r.npz", "r.hdf5"):
        assert run("search", tmp_path / "f.index", files / "query.fvecs", "-m",
                   files / "itq.ordhash", "--radius", 9, "--batch-size", 6, "-o",
                   tmp_path / out) == 0
        if out.endswith(".npz"):
            with np.load(tmp_path / out) as fh:
                got = {k: fh[k] for k in fh.files}
        else:
            with h5py.File(tmp_path / out, "r") as fh:
                got = {k: fh[k][...] for k in fh}
        np.testing.assert_array_equal(got["lims"], expected.lims)
        np.testing.assert_array_equal(got["neighbors"], expected.ids)
        np.testing.assert_array_equal(got["distances"], expected.distances)


@pytest.mark.parametrize("index, extra", [("flat", []), ("mih", ["--substrings", 3])])
def test_searcher_matches_python_api(sift, files, tmp_path, capsys, index, extra):
    base, queries, gt = sift
    out = tmp_path / "s.searcher"
    assert run("build", "--searcher", "-m", files / "itq.ordhash", files / "ann.hdf5:train",
               "--candidates", 60, "--index", index, *extra, "-o", out) == 0
    assert persist.load(out).index_.__class__.__name__ == (
        "MultiIndexHashing" if index == "mih" else "HammingIndex")
    ref = HashingSearcher(ITQ(n_bits=BITS, random_state=0), candidates=60,
                          index=index).fit(base)
    for candidates in (None, 150):
        extra = [] if candidates is None else ["--candidates", candidates]
        assert run("search", out, files / "ann.hdf5", "-k", K, "-o", tmp_path / "s.npz",
                   "--ground-truth", files / "ann.hdf5", *extra) == 0
        expected = ref.search(queries, K, candidates)
        with np.load(tmp_path / "s.npz") as res:
            np.testing.assert_array_equal(res["neighbors"], expected.ids)
            np.testing.assert_array_equal(res["distances"], expected.distances)
        err = capsys.readouterr().err
        assert f"recall@{K} = {knn_recall_ids(expected.ids, gt, K):.4f}" in err


def test_searcher_with_ids_and_ip_metric(sift, files, model, tmp_path):
    base, queries, _ = sift
    ids = np.random.default_rng(2).permutation(N_BASE).astype(np.int64) * 3
    np.save(tmp_path / "ids.npy", ids)
    out = tmp_path / "s.searcher"
    assert run("build", "--searcher", "-m", files / "itq.ordhash", files / "base.npy",
               "--ids", tmp_path / "ids.npy", "--metric", "ip", "-o", out) == 0
    searcher = persist.load(out)
    assert searcher.metric == "ip"
    # exact reference: inner products over the Hamming candidates of the API index
    ref_index = HammingIndex(BITS)
    ref_index.add(model.transform(base), ids)
    cand = ref_index.search(model.transform(queries), 100).ids
    row_of = dict(zip(ids.tolist(), range(N_BASE)))
    assert run("search", out, files / "query.npy", "-k", 5, "-o", tmp_path / "r.npz") == 0
    with np.load(tmp_path / "r.npz") as res:
        got_ids, got_d = res["neighbors"], res["distances"]
    for i in range(N_QUERIES):
        scores = base[[row_of[c] for c in cand[i]]] @ queries[i]
        order = np.lexsort((cand[i], -scores))[:5]
        np.testing.assert_array_equal(got_ids[i], cand[i][order])
        np.testing.assert_allclose(got_d[i], scores[order], rtol=1e-5)


# ------------------------------------------------------------------------------------------
# formats
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["base.npy", "base.fvecs", "base.bvecs", "base.u8bin",
                                    "base.fbin", "ann.hdf5:train", "ann.hdf5"])
def test_every_input_format_encodes_the_same(sift, files, model, tmp_path, source):
    base = sift[0]
    assert run("encode", "-m", files / "itq.ordhash", f"{files / source}", "-o",
               tmp_path / "c.npy") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), model.transform(base))


@pytest.mark.parametrize("target", ["c.npy", "c.hdf5", "c.hdf5:mycodes", "c.bvecs", "c.u8bin"])
def test_every_code_format_round_trips(sift, files, model, tmp_path, target):
    base, queries, _ = sift
    assert run("encode", "-m", files / "itq.ordhash", files / "base.fvecs", "-o",
               f"{tmp_path / target}", "--batch-size", 500) == 0
    path = tmp_path / target.split(":")[0]
    if target.endswith(".npy"):
        codes = np.load(path)
    elif ".hdf5" in target:
        with h5py.File(path, "r") as fh:
            codes = fh[target.split(":")[1] if ":" in target else "codes"][...]
    elif target.endswith(".bvecs"):
        codes = read_bvecs(path)
    else:
        header = np.fromfile(path, "<u4", count=2)
        codes = np.fromfile(path, np.uint8, offset=8).reshape(header)
    np.testing.assert_array_equal(codes, model.transform(base))
    # every code format is also an index input
    assert run("build", f"{tmp_path / target}", "-o", tmp_path / "i.index") == 0
    index = persist.load(tmp_path / "i.index")
    assert index.n_bits == BITS and index.ntotal == N_BASE
    assert run("search", tmp_path / "i.index", f"{tmp_path / target}", "-k", 1, "-o",
               tmp_path / "r.ibin", "--distances", tmp_path / "r.fvecs") == 0
    np.testing.assert_array_equal(read_fvecs(tmp_path / "r.fvecs"), 0)


def test_fit_sample_and_params(sift, files, tmp_path):
    base = sift[0]
    assert run("fit", "--learner", "itq", "--bits", 16, "--sample", 500, "--seed", 3,
               "-p", "n_iter=7", files / "base.npy", "-o", tmp_path / "m.ordhash") == 0
    fitted = persist.load(tmp_path / "m.ordhash")
    rows = np.sort(np.random.default_rng(3).choice(N_BASE, 500, replace=False))
    ref = ITQ(n_bits=16, n_iter=7, random_state=3).fit(base[rows])
    assert fitted.n_iter == 7 and fitted.n_features_in_ == base.shape[1]
    np.testing.assert_array_equal(fitted.transform(base), ref.transform(base))

    assert run("fit", "--learner", "LSH", "--param", "center=false", files / "base.npy",
               "-o", tmp_path / "lsh.ordhash") == 0
    lsh = persist.load(tmp_path / "lsh.ordhash")
    assert isinstance(lsh, LSH) and lsh.center is False and lsh.n_bits == LSH().n_bits


# ------------------------------------------------------------------------------------------
# errors: exit 2, a message naming the problem, nothing left behind
# ------------------------------------------------------------------------------------------

def _wrong_dim(tmp):
    write_fvecs(tmp / "q16.fvecs", np.ones((3, 16), np.float32))
    return tmp / "q16.fvecs"


def _corrupt_model(tmp, files):
    raw = bytearray((files / "itq.ordhash").read_bytes())
    raw[-10] ^= 0xFF
    (tmp / "bad.ordhash").write_bytes(bytes(raw))
    return tmp / "bad.ordhash"


def _float_codes(tmp):
    np.save(tmp / "f.npy", np.ones((5, 4), np.float64))
    return tmp / "f.npy"


def _truncated(tmp, files):
    (tmp / "t.fvecs").write_bytes((files / "base.fvecs").read_bytes()[:1000])
    return tmp / "t.fvecs"


def _nan_late(tmp, sift):
    X = sift[0].copy()
    X[1500, 3] = np.nan
    np.save(tmp / "nan.npy", X)
    return tmp / "nan.npy"


def _two_datasets(tmp):
    with h5py.File(tmp / "two.hdf5", "w") as fh:
        fh["a"] = np.zeros((3, 128), np.float32)
        fh["b"] = np.zeros((3, 128), np.float32)
    return tmp / "two.hdf5"


def _full_bytes(tmp):
    np.save(tmp / "ff.npy", np.full((4, 2), 255, np.uint8))
    return tmp / "ff.npy"


ERRORS = [
    ("missing input", lambda t, f, s: ["encode", "-m", f / "itq.ordhash", t / "nope.fvecs",
                                       "-o", t / "out.npy"], "vectors file not found"),
    ("missing model", lambda t, f, s: ["encode", "-m", t / "nope.ordhash", f / "base.fvecs",
                                       "-o", t / "out.npy"], "model file not found"),
    ("wrong dim", lambda t, f, s: ["encode", "-m", f / "itq.ordhash", _wrong_dim(t),
                                   "-o", t / "out.npy"], "dimension 16"),
    ("wrong dim search", lambda t, f, s: ["search", f / "s.searcher", _wrong_dim(t), "-o",
                                          t / "out.npz"], "dimension 16"),
    ("bad k", lambda t, f, s: ["search", f / "s.searcher", f / "query.fvecs", "-k", 0, "-o",
                               t / "out.npz"], "-k must be >= 1"),
    ("k above candidates", lambda t, f, s: ["search", f / "s.searcher", f / "query.fvecs",
                                            "-k", 50, "--candidates", 20, "-o", t / "out.npz"],
     "exceeds --candidates"),
    ("radius on searcher", lambda t, f, s: ["search", f / "s.searcher", f / "query.fvecs",
                                            "--radius", 2, "-o", t / "out.npz"], "radius"),
    ("unknown learner", lambda t, f, s: ["fit", "--learner", "NOPE", f / "base.npy", "-o",
                                         t / "out.ordhash"], "unknown learner 'NOPE'"),
    ("unknown param", lambda t, f, s: ["fit", "--learner", "ITQ", "-p", "n_iters=3",
                                       f / "base.npy", "-o", t / "out.ordhash"],
     "no parameter 'n_iters'; its parameters are: n_iter"),
    ("bad param value", lambda t, f, s: ["fit", "--learner", "ITQ", "-p", "n_iter=-3",
                                         f / "base.npy", "-o", t / "out.ordhash"], "n_iter"),
    ("corrupt model", lambda t, f, s: ["encode", "-m", _corrupt_model(t, f), f / "base.fvecs",
                                       "-o", t / "out.npy"], "checksum mismatch"),
    ("model is an index", lambda t, f, s: ["encode", "-m", f / "s.searcher.index",
                                           f / "base.fvecs", "-o", t / "out.npy"],
     "not a fitted learner"),
    ("float codes", lambda t, f, s: ["build", _float_codes(t), "-o", t / "out.index"],
     "pass the model with -m"),
    ("truncated fvecs", lambda t, f, s: ["fit", "--learner", "PCAH", _truncated(t, f), "-o",
                                         t / "out.ordhash"], "truncated"),
    ("hdf5 without dataset", lambda t, f, s: ["build", f / "ann.hdf5:nope", "-o",
                                              t / "out.index"], "no dataset 'nope'"),
    ("unknown input format", lambda t, f, s: ["encode", "-m", f / "itq.ordhash",
                                              f / "itq.ordhash", "-o", t / "out.npy"],
     "unknown format"),
    ("unsupported output", lambda t, f, s: ["encode", "-m", f / "itq.ordhash", f / "base.fvecs",
                                            "-o", t / "out.txt"], "unsupported format"),
    ("missing output dir", lambda t, f, s: ["encode", "-m", f / "itq.ordhash", f / "base.fvecs",
                                            "-o", t / "no" / "out.npy"], "does not exist"),
    ("nan in a late block", lambda t, f, s: ["encode", "-m", f / "itq.ordhash", _nan_late(t, s),
                                             "--batch-size", 256, "-o", t / "out.npy"],
     "row 1500 contains NaN"),
    ("several hdf5 datasets", lambda t, f, s: ["encode", "-m", f / "itq.ordhash",
                                               _two_datasets(t), "-o", t / "out.npy"],
     "holds several datasets (a, b); pick the vectors with"),
    ("bits set beyond --bits", lambda t, f, s: ["build", _full_bytes(t), "--bits", 12, "-o",
                                                t / "out.index"], "bits set beyond bit 11"),
    ("substrings without mih", lambda t, f, s: ["build", _full_bytes(t), "--substrings", 2,
                                                "-o", t / "out.index"], "--index mih only"),
    ("codes of another length", lambda t, f, s: ["search", f / "s.searcher.index",
                                                 _full_bytes(t), "-o", t / "out.npz"],
     "2 bytes per code, but the index holds 4-byte codes"),
    ("ground truth too short", lambda t, f, s: ["search", f / "s.searcher", f / "query.fvecs",
                                                "-k", 20, "-o", t / "out.npz",
                                                "--ground-truth", f / "gt.ivecs"],
     "needs at least k=20"),
]


@pytest.fixture(scope="module")
def searcher_files(files):
    assert run("build", "--searcher", "-m", files / "itq.ordhash", files / "base.fvecs",
               "-o", files / "s.searcher") == 0
    assert run("build", "-m", files / "itq.ordhash", files / "base.fvecs",
               "-o", files / "s.searcher.index") == 0
    return files


@pytest.mark.parametrize("case, argv, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_exit_2_and_leave_nothing(case, argv, message, searcher_files, sift, tmp_path,
                                         capsys):
    args = [str(a) for a in argv(tmp_path, searcher_files, sift)]
    before = listing(tmp_path)
    files_before = listing(searcher_files)
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ordhash {args[0]}: error: "), err
    assert message in err
    assert len(err.splitlines()) == 1
    assert listing(tmp_path) == before  # no output, no temporary file
    assert listing(searcher_files) == files_before


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["search", "idx", "q.npy", "-k", "ten", "-o", "r.npz"])
    assert exc.value.code == 2
    assert "invalid int value: 'ten'" in capsys.readouterr().err


def test_unexpected_error_exits_1(files, monkeypatch, capsys):
    from ordhash import _cli_commands

    def boom(args):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(_cli_commands, "run_encode", boom)
    argv = ["encode", "-m", str(files / "itq.ordhash"), str(files / "base.fvecs"), "-o", "x.npy"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "unexpected error: RuntimeError: kernel exploded" in err and "--debug" in err
    assert "Traceback" not in err
    assert cli.main(["--debug"] + argv) == 1
    assert "Traceback" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# info, help, entry points
# ------------------------------------------------------------------------------------------

def test_info_describes_files(searcher_files, capsys):
    f = searcher_files
    assert cli.main(["info", str(f / "itq.ordhash")]) == 0
    out = capsys.readouterr().out
    assert "ordhash.ITQ" in out and f"n_bits: {BITS}" in out and "n_features: 128" in out
    assert cli.main(["info", str(f / "s.searcher")]) == 0
    out = capsys.readouterr().out
    assert "HashingSearcher" in out and f"{N_BASE} x 128" in out and f"{N_BASE} codes" in out
    assert cli.main(["info", str(f / "ann.hdf5")]) == 0
    out = capsys.readouterr().out
    assert "train: float32 (2000, 128)" in out and "neighbors: int32 (40, 10)" in out
    assert cli.main(["info", str(f / "base.bvecs")]) == 0
    assert "(2000, 128)" in capsys.readouterr().out
    assert cli.main(["info", str(f / "missing.npy")]) == 2


@pytest.mark.parametrize("command", ["fit", "encode", "build", "search", "info"])
def test_help_has_description_and_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: ordhash {command}" in out and "example:" in out and f"ordhash {command} " in out


def test_console_entry_points_and_cheap_import(tmp_path):
    env = dict(os.environ)
    code = ("import sys, ordhash.cli; "
            "print(sorted(m for m in ('numpy', 'sklearn', 'numba') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.stdout.strip() == "[]", res.stderr
    res = subprocess.run([sys.executable, "-m", "ordhash", "--help"], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0 and "fit" in res.stdout and "search" in res.stdout
    script = Path(sys.executable).with_name("ordhash")  # the installed console script
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ordhash"]
    missing = tmp_path / "none.fvecs"
    res = subprocess.run(command + ["info", str(missing)], capture_output=True, text=True,
                         env=env)
    assert res.returncode == 2
    assert res.stderr.strip() == f"ordhash info: error: file not found: {missing}"


def test_docs_walk_through_runs(tmp_path, monkeypatch, capsys):
    """The commands of the walk-through in docs/cli.md run as written on the bundled data."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    walk = text.split("## Walk-through", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", walk, re.S | re.M)
    prepare = re.search(r"python -c '\n(.*?)'", blocks[0], re.S).group(1)
    commands = [shlex.split(line) for b in blocks[1:] for line in b.splitlines()
                if line.startswith("ordhash ")]
    assert len(commands) >= 9
    monkeypatch.chdir(tmp_path)
    exec(compile(prepare, "docs/cli.md preparation", "exec"), {})  # noqa: S102
    recalls = []
    for argv in commands:
        assert cli.main(argv[1:] + ["--no-progress"] * (argv[1] in ("encode", "build",
                                                                     "search"))) == 0, argv
        err = capsys.readouterr().err
        recalls += [float(r) for r in re.findall(r"recall@10 = ([0-9.]+)", err)]
    hamming, rerank100, rerank1000 = recalls
    assert hamming < rerank100 <= rerank1000 and rerank1000 > 0.9
    with np.load(tmp_path / "ball.npz") as ball:
        assert ball["lims"].shape == (101,) and (ball["distances"] <= 12).all()


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_writer_reader_round_trip(data, tmp_path_factory):
    """Any 2-D array written block by block in any format reads back unchanged."""
    from ordhash._cli_io import ArrayWriter, open_array

    suffix = data.draw(st.sampled_from([".npy", ".npz", ".hdf5", ".bvecs", ".u8bin",
                                        ".fvecs", ".fbin", ".ivecs", ".ibin"]))
    dtype = {".bvecs": np.uint8, ".u8bin": np.uint8, ".fvecs": np.float32,
             ".fbin": np.float32, ".ivecs": np.int32, ".ibin": np.int32}.get(
        suffix, data.draw(st.sampled_from([np.uint8, np.float32, np.int64])))
    arr = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1,
                                                        max_side=40)))
    block = data.draw(st.integers(1, 50))
    path = tmp_path_factory.mktemp("rt") / f"a{suffix}"
    with ArrayWriter(path, "array") as writer:
        out = writer.create("array", arr.shape, arr.dtype)
        for a in range(0, arr.shape[0], block):
            out[a:a + block] = arr[a:a + block]
    with open_array(path, "array") as got:
        np.testing.assert_array_equal(np.asarray(got[...]), arr)
        assert np.asarray(got[...]).dtype == arr.dtype
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_progress_bar_only_on_a_terminal(files, tmp_path, monkeypatch, flag):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert run("encode", "-m", files / "itq.ordhash", files / "base.fvecs", "-o",
               tmp_path / "c.npy", "--batch-size", 500, *flag) == 0
    shown = "encode:" in term.getvalue() and "/2.00k [" in term.getvalue()
    assert shown == (not flag), term.getvalue()
    assert term.getvalue().rstrip().endswith(f"-> {tmp_path / 'c.npy'}")
