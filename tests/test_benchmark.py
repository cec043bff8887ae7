"""The retrieval benchmark (``ordhash bench``) and the command line around it."""

import json

import numpy as np
import pytest

from ordhash import cli
from ordhash.benchmark import BenchConfig, format_table, rerank_recall, run
from ordhash.codes import pack_bits
from ordhash.metrics import exact_knn


def test_rerank_recall_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 6)).astype(np.float32)
    queries = rng.normal(size=(7, 6)).astype(np.float32)
    bits = rng.integers(0, 2, size=(300, 12))
    qbits = rng.integers(0, 2, size=(7, 12))
    true_d, _ = exact_knn(base, queries, 5)
    got = rerank_recall(pack_bits(qbits), pack_bits(bits), queries, base, true_d, 40, 5)
    # direct: candidates = 40 smallest (hamming, index); exact re-rank; tolerance 1e-3
    hd = (qbits[:, None, :] != bits[None]).sum(-1)
    hits = 0
    for i in range(7):
        cand = np.lexsort((np.arange(300), hd[i]))[:40]
        d = np.linalg.norm(base[cand] - queries[i], axis=1)
        top = np.sort(d)[:5]
        hits += (top <= true_d[i, 4] + 1e-3).sum()
    assert got == pytest.approx(hits / 35)
    # all candidates re-ranked exactly: perfect recall
    assert rerank_recall(pack_bits(qbits), pack_bits(bits), queries, base, true_d, 300, 5) == 1.0


def test_run_writes_table_json_and_plots(tmp_path):
    lines = []
    config = BenchConfig(datasets=("digits",), learners=("LSH", "ITQ"), bits=(16, 32),
                         out_dir=str(tmp_path), progress=False)
    records = run(config, echo=lines.append)
    assert len(records) == 4
    out = json.loads((tmp_path / "bench.json").read_text())
    assert out["environment"]["numba"] and len(out["records"]) == 4
    for r in out["records"]:
        for key in ("map", "precision@100", "precision_r2", "recall@10_rerank1000", "area_rp"):
            assert 0.0 <= r[key] <= 1.0
        assert r["fit_s"] >= 0 and r["encode_per_s"] > 0
    by = {(r["learner"], r["n_bits"]): r["map"] for r in records}
    assert by[("ITQ", 32)] > by[("LSH", 32)]  # learned codes beat random projections on digits
    assert "ITQ" in lines[0] or "ITQ" in "\n".join(lines)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["map_vs_bits_digits.png", "pr_digits_16.png", "pr_digits_32.png"]


def test_format_table_markdown():
    md = format_table([{"dataset": "d", "learner": "L", "n_bits": 8, "map": 0.5}], markdown=True)
    assert md.splitlines()[0].startswith("| dataset | learner | n_bits | map")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "--learners", "NOPE"], "unknown learner"),
        (["bench", "--datasets", "imagenet"], "unknown dataset"),
        (["bench", "--bits", "0"], "bits must be positive"),
    ],
)
def test_cli_bad_options(argv, message, capsys, tmp_path):
    assert cli.main(argv + ["--out", str(tmp_path), "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_cli_bits_must_be_integers(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--bits", "16,x"])
    assert exc.value.code == 2
    assert "expected integers" in capsys.readouterr().err


def test_cli_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numba" in out and "faiss" in out
