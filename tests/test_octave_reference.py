"""eval/octave_reference.py: skips cleanly without Octave or the reference code; its shims."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[1] / "eval" / "octave_reference.py"


@pytest.fixture()
def module():
    spec = importlib.util.spec_from_file_location("octave_reference", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_missing_reference_dirs_skip_without_writing(module, tmp_path, capsys):
    out = tmp_path / "res.json"
    code = module.main(["--oeh-dir", str(tmp_path / "noOEH"), "--och-dir", str(tmp_path / "noOCH"),
                        "--octave", shutil.which("true") or "/bin/true", "--out", str(out)])
    msg = capsys.readouterr().out
    assert code == 0
    assert "skipped" in msg and "noOEH" in msg and "noOCH" in msg
    assert not out.exists()


def test_incomplete_reference_dir_is_reported(module, tmp_path, capsys):
    (tmp_path / "OEH").mkdir()
    (tmp_path / "OEH" / "trainOEH.m").write_text("% empty\n")
    out = tmp_path / "res.json"
    code = module.main(["--oeh-dir", str(tmp_path / "OEH"), "--learners", "OEH",
                        "--octave", shutil.which("true") or "/bin/true", "--out", str(out)])
    msg = capsys.readouterr().out
    assert code == 0 and "compressOEH.m" in msg and not out.exists()


def test_missing_octave_skips_without_writing(module, tmp_path, capsys):
    out = tmp_path / "res.json"
    code = module.main(["--octave", str(tmp_path / "no-such-octave"), "--out", str(out)])
    assert code == 0
    assert "Octave not found" in capsys.readouterr().out
    assert not out.exists()


def test_compare_statistics(module):
    res = module.compare([0.50, 0.52, 0.51], [0.60, 0.61, 0.62, 0.63])
    assert res["diff"] == pytest.approx(np.mean([0.60, 0.61, 0.62, 0.63]) - 0.51)
    assert res["octave_std"] == pytest.approx(np.std([0.50, 0.52, 0.51], ddof=1))
    assert res["welch_p"] == pytest.approx(stats.ttest_ind(
        [0.60, 0.61, 0.62, 0.63], [0.50, 0.52, 0.51], equal_var=False).pvalue)
    assert 0 < res["mannwhitney_p"] < 0.1
    assert module.compare([0.5], [0.5, 0.6])["welch_p"] is None


@pytest.mark.skipif(shutil.which("octave-cli") is None, reason="GNU Octave not installed")
def test_shims_match_the_toolbox_definitions(module, tmp_path):
    for name, body in module.SHIMS.items():
        (tmp_path / name).write_text(body)
    script = ("x = [0 0.5 1 3]; y = normpdf(x, 0, 0.7); printf('%.15g ', y); printf('\\n');"
              "rand('twister', 1); s = randsample(10, 4); printf('%d ', s); printf('\\n');"
              "printf('%d %d\\n', size(s, 1), size(s, 2));")
    out = subprocess.run(["octave-cli", "-q", "--norc", "--eval", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60).stdout.split("\n")
    got = np.array([float(v) for v in out[0].split()])
    assert np.allclose(got, stats.norm.pdf([0, 0.5, 1, 3], 0, 0.7), rtol=1e-12)
    sample = [int(v) for v in out[1].split()]
    assert len(set(sample)) == 4 and all(1 <= v <= 10 for v in sample)
    assert out[2].split() == ["4", "1"]  # a column, as the toolbox's randsample returns
