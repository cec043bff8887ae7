"""eval/bench_walk.py runs end to end on small inputs (results go to a temporary folder)."""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "eval" / "bench_walk.py"


@pytest.fixture()
def bench(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_walk", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def test_split_last_holds_out_latest_per_user(bench):
    users = np.array([0, 0, 0, 1, 1, 1, 1])
    items = np.array([5, 6, 7, 1, 2, 3, 4])
    ts = np.array([30, 10, 20, 4, 3, 2, 1])
    (tr_u, tr_i), (te_u, te_i) = bench.split_last(users, items, ts, 2)
    assert sorted(zip(te_u.tolist(), te_i.tolist())) == [(0, 5), (0, 7), (1, 1), (1, 2)]
    assert sorted(zip(tr_u.tolist(), tr_i.tolist())) == [(0, 6), (1, 3), (1, 4)]


def test_synthetic_benchmark_small(bench, tmp_path, capsys):
    bench.main(["synthetic", "--n-items", "3000", "--n-queries", "8", "--k", "20",
                "--M", "8", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "coverage@20" in out and "brute force" in out
    data = json.loads((tmp_path / "walk_synthetic_lowrank_n3000.json").read_text())
    assert data["exact"]["frac_scored"] == 1.0
    for family in ("beam", "serving", "hnsw"):
        assert data[family] and all(0.0 <= r["coverage"] <= 1.0 for r in data[family])
    # More budget never covers less along the best-first sweep.
    cov = [r["coverage"] for r in data["hnsw"]]
    assert cov[-1] >= cov[0]
    assert (tmp_path / "walk_synthetic_lowrank_n3000.png").stat().st_size > 1000


def test_movielens_skips_cleanly_when_absent(bench, tmp_path, capsys):
    args = argparse.Namespace(path=str(tmp_path / "nowhere"), query_dim=8, seed=0, eps=[0.0],
                              epochs=1, threads=1, ml_M=8)
    assert bench.bench_movielens(args) is None
    assert "movielens: skipped" in capsys.readouterr().out


def test_taobao_smoke(bench, tmp_path):
    try:
        from ordhash.datasets import load_taobao_sample

        load_taobao_sample()
    except (ImportError, FileNotFoundError):
        pytest.skip("Taobao UserBehavior sample not available")
    args = argparse.Namespace(path=None, seed=0)
    payload = bench.bench_taobao(args)
    assert payload["rows"] > 1000 and payload["users"] > 10
    assert 0.5 <= payload["coverage@20"] <= 1.0
    assert (tmp_path / "walk_taobao_smoke.json").is_file()
