"""Run the authors' released MATLAB code (Lyn-L/OEH, Lyn-L/OCH) under GNU Octave beside ordhash.

For every dataset / code length / seed this script

1. writes the benchmark data of ``eval/bench_ordinal.py`` (``load(name)``: the database rows the
   learners are fitted on, and the queries) as float64 to a ``.mat`` file in a temporary folder;
2. generates a small Octave driver (the string ``DRIVER`` below, written to the same folder) that
   puts the reference folder on the path, seeds Octave's ``rand`` / ``randn`` with the seed,
   calls the authors' ``trainOEH`` / ``trainOCH`` with the parameters of their demo scripts and
   their ``compressOEH`` / ``compressOCH`` on database and queries, and saves the packed codes;
3. scores those codes with ``bench_ordinal.score`` (the benchmark's own metric code:
   ``ordhash.metrics.evaluate_codes``, mAP with expected ties, precision@100, precision within
   Hamming radius 2);
4. fits ``OEH(variant="released")`` / ``OCH(variant="released")`` with the same ``n_bits`` and
   ``random_state=seed`` on the same rows and scores them the same way.

It reports, per dataset / bits / learner, mean ± std of both sides, the difference, Welch's
t-test and the Mann-Whitney U test (two-sided) on the per-seed mAPs, and the fit times. The two
sides do not share random streams (K-means start, ``randn`` start), so only the distributions
over seeds can agree, not single fits.

Identical-input check (``--no-identical-check`` skips it; first dataset, first code length,
seed 0, both learners): the driver ``CHECK_DRIVER`` replays the random draws of the authors'
training function (their ``litekmeans`` landmarks and their ``randn`` start), then runs the real
function; ordhash's ``train_oeh_released`` / ``train_och_released`` is run from those landmarks,
their PCA basis and their initial ``W``, and the relative difference of the trained ``W`` and the
agreement of the database bits are reported. This checks the port against the authors' code
itself, not against a transcription.

Identical input on both sides. The released demos (``test_OEH.m``, ``test_OCH.m``) pass the raw
training rows, unnormalised (``construct_dataset.m`` has the centring / normalisation commented
out), to ``trainOEH`` / ``trainOCH``, which centre them themselves; ``compress*`` subtract the
training mean. ordhash's released variant receives the same raw rows (``OrdinalHasherBase._prepare``
centres them, ``input_scale = 1``). Here both sides are fitted on the benchmark database (at most
10,000 rows, as in ``bench_ordinal.py``), not on the demos' random 10,000 (OEH) / 5,000 (OCH)
subset of a larger database. Parameters, as in the demos and in ordhash's released defaults:

* OEH: ``nbits = b, maxIter = 300, L = 300, beta = 1, lamda = 0.01, alph = 0.1, k = 10,
  dimD = b`` (ordhash: ``pca_dim = min(b, d)``, 50 K-means iterations, 1 pass = L steps);
* OCH: ``nbits = b, maxIter = 300, L = 300, k = 10, dimD = 20`` (``beta``, ``lamda``, ``alph``
  are set by the demo but unused by ``trainOCH.m``; ordhash: ``pca_dim = min(20, d)``,
  10 K-means iterations).

Shims (MATLAB / Statistics-toolbox functions that core Octave 7 lacks; defined as ``.m`` files in
the temporary folder, which is appended to the END of the path so that no file of the reference
folders is shadowed; the reference files are never modified):

* ``normpdf(x, mu, sigma) = exp(-((x - mu) / sigma)^2 / 2) / (sqrt(2 pi) sigma)``, used by
  ``ObtainAffinityMatrix.m`` (Statistics toolbox / Octave ``statistics`` package);
* ``randsample(n, k) = randperm(n, k)'`` (sampling without replacement), used by
  ``litekmeans.m`` to draw the K random starting centres (Statistics toolbox).

Nothing else needed a shim: ``eigs`` (falls back to ``eig`` when ``dimD = d``), ``sparse``,
``spdiags``, ``bitset`` (``compactbit.m``) run unchanged. ``compactbit`` packs bit ``j`` into byte
``j // 8`` at position ``j % 8``, the layout of ``ordhash.codes`` (checked on every run against
the unpacked sign bits the driver also saves).

Defects of the released code watched for (spec section 7): OEH ``cnt = 0`` (division by zero,
``W`` becomes NaN; counted as fits whose final ``W`` has a NaN entry; ordhash's released variant
counts the steps where it applied only the penalty); the OCH Armijo loops and the ``ip < 1e-8``
``continue`` that never increments the counter (an Octave run that exceeds ``--timeout`` is
recorded as a hang); the OCH 11-stall stop (Octave prints ``finished training!``; ordhash stops
with ``n_iter_ < 300``).

Cost (Octave 7.3, one BLAS thread, CPU seconds per fit): ``trainOEH.m`` runs its 2,619-pair
loop interpreted, 26-55 s on digits / SIFT and 150-165 s on MNIST (where ``litekmeans`` in 784
dimensions dominates); ``trainOCH.m`` stops after 11-19 iterations, 7-14 s (53 s on MNIST). The
default grid (3 datasets x 2 code lengths x 5 seeds x 2 learners) is about 52 CPU-minutes of
Octave; ``--jobs`` runs Octave processes in parallel, ``--work-dir`` keeps their outputs so an
interrupted run resumes, and ``--mnist-oeh-seeds`` caps the Octave seeds of OEH on MNIST (default:
no cap). ordhash always runs all ``--seeds``.

Usage::

    python eval/octave_reference.py                      # digits sift mnist, 32 64 bits, 5 seeds
    python eval/octave_reference.py --datasets digits --bits 32 --seeds 2

Writes ``eval/results/octave_reference.json`` (``--out``) and prints a markdown table. Exits 0
without writing anything when Octave or the reference folders are missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import scipy.io
from scipy import stats

EVAL = Path(__file__).resolve().parent
RESULTS = EVAL / "results"
DEFAULT_OEH_DIR = Path("/work/octave_ref/OEH")
DEFAULT_OCH_DIR = Path("/work/octave_ref/OCH")
LEARNERS = ("OEH", "OCH")
#: Files each reference folder must hold (train, compress, and what they call).
REQUIRED = {
    "OEH": ("trainOEH.m", "compressOEH.m", "litekmeans.m", "EuDist2.m",
            "ObtainAffinityMatrix.m", "compactbit.m"),
    "OCH": ("trainOCH.m", "compressOCH.m", "litekmeans.m", "EuDist2.m",
            "ObtainAffinityMatrix.m", "compactbit.m", "f_och.m", "project_stiefel.m", "mySVD.m"),
}

SHIMS = {
    "normpdf.m": (
        "function y = normpdf(x, mu, sigma)\n"
        "  % shim (eval/octave_reference.py): Statistics-toolbox normpdf, missing in core Octave\n"
        "  y = exp(-0.5 * ((x - mu) ./ sigma) .^ 2) ./ (sqrt(2 * pi) .* sigma);\n"
        "end\n"
    ),
    "randsample.m": (
        "function y = randsample(n, k)\n"
        "  % shim (eval/octave_reference.py): Statistics-toolbox randsample(n, k), without\n"
        "  % replacement, missing in core Octave\n"
        "  y = randperm(n, k)';\n"
        "end\n"
    ),
}

#: Start of both drivers: paths (the shims last, so no reference file is shadowed), the data,
#: the seeded random streams.
PRELUDE = """\
page_screen_output(false);
page_output_immediately(true);
addpath('{refdir}');
addpath('{shimdir}', '-end');
load('{datafile}');
rand('twister', {seed});
randn('state', {seed});
"""

#: The demo parameters (``test_OEH.m`` / ``test_OCH.m``), shared by both drivers.
XPARAM = """\
Xparam.nbits = {bits};
Xparam.maxIter = 300;
Xparam.L = 300;
Xparam.beta = 1;
Xparam.lamda = 0.01;
Xparam.alph = 0.1;
Xparam.k = 10;
Xparam.dimD = {dimd};
"""

DRIVER = PRELUDE + XPARAM + """\
t0 = tic;
c0 = cputime;
[R, eigVec, sample_mean] = train{learner}(X, Xparam);
fit_s = toc(t0);
fit_cpu_s = cputime - c0;
B_db = compress{learner}(X, R, eigVec, sample_mean);
B_q = compress{learner}(Q, R, eigVec, sample_mean);
bits_q = double(bsxfun(@minus, Q, sample_mean) * eigVec * R > 0);
n_nan = sum(isnan(R(:)));
save('-v7', '{outfile}', 'B_db', 'B_q', 'bits_q', 'R', 'fit_s', 'fit_cpu_s', 'n_nan');
printf('\\nDRIVER DONE\\n');
"""

#: Identical-input check: the driver first replays the random draws ``train{learner}`` makes
#: (``litekmeans`` from the fresh ``rand`` stream, then ``randn(dimD, nbits)``), saves those
#: landmarks and that initial ``W``, re-seeds, and runs the real ``train{learner}``; ordhash's
#: released training loop is then run from the same landmarks, PCA basis and initial ``W``.
CHECK_DRIVER = PRELUDE + """\
Xc = double(X) - repmat(mean(X, 1), size(X, 1), 1);
[~, landmark] = litekmeans(Xc, 300, 'MaxIter', {kmeans_iter});
W0 = randn({dimd}, {bits});
rand('twister', {seed});
randn('state', {seed});
""" + XPARAM + """\
[R, eigVec, sample_mean] = train{learner}(X, Xparam);
save('-v7', '{outfile}', 'landmark', 'W0', 'R', 'eigVec');
printf('\\nDRIVER DONE\\n');
"""


# -- setup checks ----------------------------------------------------------------------------
def find_octave(path):
    """The Octave executable (``path``, else ``octave-cli`` / ``octave`` on PATH) or None."""
    if path:
        p = Path(path)
        return str(p) if p.is_file() else shutil.which(path)
    return shutil.which("octave-cli") or shutil.which("octave")


def missing_reference(dirs):
    """Problems with the reference folders (empty list when both are usable)."""
    problems = []
    for learner, folder in dirs.items():
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"{learner} reference folder {folder} does not exist")
            continue
        absent = [f for f in REQUIRED[learner] if not (folder / f).is_file()]
        if absent:
            problems.append(f"{learner} reference folder {folder} lacks {', '.join(absent)}")
    return problems


def octave_version(octave):
    out = subprocess.run([octave, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


# -- one Octave run ----------------------------------------------------------------------------
class Precomputed:
    """Stands in for an estimator in ``bench_ordinal.score``: ``transform`` returns given codes."""

    def __init__(self, base, queries, base_codes, query_codes):
        self._codes = {id(base): base_codes, id(queries): query_codes}

    def fit(self, X):
        return self

    def transform(self, X):
        return self._codes[id(X)]


def dim_d(learner, bits, n_features):
    """The demo's ``dimD`` (OEH: the code length; OCH: 20), capped at ``n_features`` as
    ordhash's released variant does."""
    return min(bits if learner == "OEH" else 20, n_features)


def octave_env(workdir):
    return {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
            "HOME": str(workdir)}


def run_octave(octave, learner, refdir, workdir, datafile, bits, seed, n_features, timeout):
    """Train and encode with the authors' code (or reuse the outputs of an earlier run in
    ``workdir``); returns a dict of timings and defect flags. The codes stay in the output
    ``.mat`` file (:func:`octave_codes`)."""
    tag = f"{learner}_{bits}_{seed}_{Path(datafile).stem}"
    outfile = Path(workdir) / f"out_{tag}.mat"
    logfile = Path(workdir) / f"log_{tag}.txt"
    reused = outfile.is_file() and (learner == "OEH" or logfile.is_file())
    if reused:  # an earlier run in the same --work-dir (OCH needs its log: stall flags)
        stdout = logfile.read_text() if logfile.is_file() else "DRIVER DONE"
        stderr, timed_out, wall = "", False, None
    else:
        outfile.unlink(missing_ok=True)
        script = Path(workdir) / f"drv_{tag}.m"
        script.write_text(DRIVER.format(refdir=refdir, shimdir=workdir, datafile=datafile,
                                        seed=int(seed), bits=int(bits), learner=learner,
                                        dimd=dim_d(learner, bits, n_features), outfile=outfile))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([octave, "-q", "--no-gui", "--norc", str(script)],
                                  cwd=workdir, capture_output=True, text=True, timeout=timeout,
                                  env=octave_env(workdir))
            stdout, stderr, timed_out = proc.stdout, proc.stderr, False
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            timed_out = True
        wall = time.perf_counter() - t0
        logfile.write_text(stdout)
    iters = [int(m) for m in re.findall(r"iter (\d+)", stdout)]
    rec = {"wall_s": wall, "timed_out": timed_out, "reused": reused,
           "stall_stop": "finished training!" in stdout if learner == "OCH" else None,
           "last_printed_iter": max(iters) if iters else None}
    if timed_out or "DRIVER DONE" not in stdout or not outfile.is_file():
        tail = (stderr.strip().splitlines() or ["(no output)"])[-3:]
        rec["error"] = "timeout" if timed_out else " | ".join(tail)
        return rec
    m = scipy.io.loadmat(outfile)
    rec.update(fit_s=float(m["fit_s"].squeeze()), fit_cpu_s=float(m["fit_cpu_s"].squeeze()),
               n_nan=int(m["n_nan"].squeeze()), outfile=str(outfile))
    return rec


def octave_codes(outfile):
    """``(query_codes, base_codes)`` of one Octave run, checked against the unpacked bits."""
    m = scipy.io.loadmat(outfile)
    qc = np.ascontiguousarray(m["B_q"], dtype=np.uint8)
    bc = np.ascontiguousarray(m["B_db"], dtype=np.uint8)
    expect = np.packbits(m["bits_q"].astype(bool), axis=1, bitorder="little")
    if not np.array_equal(qc, expect):
        raise RuntimeError("compactbit layout differs from ordhash.codes (bit j at byte j//8, "
                           "position j%8)")
    return qc, bc


def identical_input_check(octave, learner, refdir, workdir, datafile, X, bits, seed, timeout):
    """Run ordhash's released training loop from the authors' own landmarks, PCA basis and
    initial ``W`` (captured under Octave) and compare the trained ``W`` and the codes of ``X``."""
    from ordhash.learners.och import train_och_released
    from ordhash.learners.oeh import train_oeh_released
    from ordhash.learners.ordinal import affinity, polar_truncated

    outfile = Path(workdir) / f"check_{learner}_{bits}_{seed}.mat"
    script = Path(workdir) / f"check_{learner}_{bits}_{seed}.m"
    script.write_text(CHECK_DRIVER.format(
        refdir=refdir, shimdir=workdir, datafile=datafile, seed=int(seed), bits=int(bits),
        learner=learner, dimd=dim_d(learner, bits, X.shape[1]),
        kmeans_iter=50 if learner == "OEH" else 10, outfile=outfile))
    try:
        proc = subprocess.run([octave, "-q", "--no-gui", "--norc", str(script)], cwd=workdir,
                              capture_output=True, text=True, timeout=timeout,
                              env=octave_env(workdir))
    except subprocess.TimeoutExpired:
        return {"learner": learner, "bits": bits, "seed": seed, "error": "timeout"}
    if "DRIVER DONE" not in proc.stdout or not outfile.is_file():
        return {"learner": learner, "bits": bits, "seed": seed,
                "error": " | ".join(proc.stderr.strip().splitlines()[-3:])}
    m = scipy.io.loadmat(outfile)
    C, P, W0, R = (np.asarray(m[k], dtype=np.float64) for k in ("landmark", "eigVec", "W0", "R"))
    Y, S = C @ P, affinity(C)
    if learner == "OEH":
        W, curve, steps = train_oeh_released(Y, S, W0, n_iter=300, beta=1.0, lam=0.01,
                                             learning_rate=0.1)
    else:
        W, curve, steps = train_och_released(Y, S, W0, n_neighbors=10, max_iter=300)
    start = W0 if learner == "OEH" else polar_truncated(W0)
    Xc = np.asarray(X, dtype=np.float64) - np.asarray(X, dtype=np.float64).mean(axis=0)
    ours, theirs = (Xc @ P @ W) > 0, (Xc @ P @ R) > 0
    return {"learner": learner, "bits": bits, "seed": seed, "ordhash_steps": int(steps),
            "relative_error_W": float(np.linalg.norm(W - R) / np.linalg.norm(R)),
            "bit_agreement": float(np.mean(ours == theirs)),
            "octave_moved_from_start": float(np.linalg.norm(R - start) / np.linalg.norm(start)),
            "ordhash_moved_from_start": float(np.linalg.norm(W - start) / np.linalg.norm(start))}


# -- statistics -------------------------------------------------------------------------------
def compare(octave_values, ordhash_values):
    """Means, standard deviations, difference (ordhash - Octave), Welch and Mann-Whitney p."""
    a = np.asarray(octave_values, dtype=float)
    b = np.asarray(ordhash_values, dtype=float)
    out = {"octave_n": int(a.size), "ordhash_n": int(b.size)}
    out["octave_mean"] = float(a.mean()) if a.size else None
    out["octave_std"] = float(a.std(ddof=1)) if a.size > 1 else None
    out["ordhash_mean"] = float(b.mean()) if b.size else None
    out["ordhash_std"] = float(b.std(ddof=1)) if b.size > 1 else None
    out["diff"] = (out["ordhash_mean"] - out["octave_mean"]) if a.size and b.size else None
    welch = mwu = None
    if a.size > 1 and b.size > 1:
        if a.std() > 0 or b.std() > 0:
            welch = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
        mwu = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    out["welch_p"], out["mannwhitney_p"] = welch, mwu
    return out


def fmt(mean, std):
    if mean is None:
        return "n/a"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def fmt_p(p):
    return "n/a" if p is None or not np.isfinite(p) else f"{p:.2f}" if p >= 0.01 else f"{p:.1e}"


# -- main loop ----------------------------------------------------------------------------------
def save_partial(rows, path):
    """Write the runs so far (``<out>.partial.json``; removed when the run completes)."""
    with open(path, "w") as fh:
        json.dump({"partial": True, "runs": rows}, fh)


def run(args, octave, dirs, partial, work):
    """All Octave runs first (``--jobs`` in parallel), then ordhash fits and scoring."""
    sys.path.insert(0, str(EVAL))
    from bench_ordinal import load, score

    from ordhash.learners.och import OCH
    from ordhash.learners.oeh import OEH

    classes = {"OEH": OEH, "OCH": OCH}
    for name, body in SHIMS.items():
        (Path(work) / name).write_text(body)
    data, tasks = {}, {}
    for dataset in args.datasets:
        data[dataset] = load(dataset)
        base, queries, _ = data[dataset]
        datafile = Path(work) / f"{dataset}.mat"
        scipy.io.savemat(datafile, {"X": base.astype(np.float64),
                                    "Q": queries.astype(np.float64)})
        for bits in args.bits:
            for learner in args.learners:
                n_oct = args.seeds
                if dataset == "mnist" and learner == "OEH" and args.mnist_oeh_seeds:
                    n_oct = min(args.seeds, args.mnist_oeh_seeds)
                for seed in range(n_oct):
                    tasks[(dataset, bits, learner, seed)] = (
                        run_octave, octave, learner, dirs[learner], work, datafile, bits, seed,
                        base.shape[1], args.timeout)
        if dataset == args.datasets[0] and args.identical_check:
            for learner in args.learners:
                tasks[("check", learner)] = (
                    identical_input_check, octave, learner, dirs[learner], work, datafile,
                    base, args.bits[0], 0, args.timeout)
    def cost(key):  # longest first: OEH on MNIST, other OEH runs, then OCH
        if key[0] == "check":
            return 1
        return (2 if key[2] == "OEH" else 0) + (1 if key[0] == "mnist" else 0) + key[1] / 1000

    results = {}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(tasks[key][0], *tasks[key][1:]): key
                   for key in sorted(tasks, key=cost, reverse=True)}
        for fut in as_completed(futures):
            key = futures[fut]
            results[key] = fut.result()
            info = results[key]
            msg = info.get("error") or (f"fit {info['fit_s']:.1f} s" if "fit_s" in info
                                        else f"W rel. error {info['relative_error_W']:.1e}")
            print(f"  Octave {key}: {msg}", flush=True)
    checks = [dict(dataset=args.datasets[0], **results[("check", learner)])
              for learner in args.learners if ("check", learner) in results]
    rows = []
    for dataset in args.datasets:
        base, queries, relevant = data[dataset]
        for bits in args.bits:
            for learner in args.learners:
                for seed in range(args.seeds):
                    # ordhash, released variant: the same rows, the same metric code
                    est = classes[learner](n_bits=bits, variant="released", random_state=seed)
                    rec = score(est, base, queries, relevant)
                    row = dict(dataset=dataset, bits=bits, learner=learner, seed=seed,
                               side="ordhash", n_iter=int(est.n_iter_), **rec)
                    if learner == "OEH":  # steps where cnt = 0 (MATLAB: NaN)
                        row["empty_steps"] = int(sum(v == 0.0 for v in est.loss_curve_))
                    else:
                        row["stall_stop"] = bool(est.n_iter_ < 300)
                    rows.append(row)
                    msg = f"ordhash mAP {rec['map']:.4f} fit {rec['fit_s']:.2f} s"
                    out = results.get((dataset, bits, learner, seed))
                    if out is not None:  # the authors' code under Octave
                        row = dict(dataset=dataset, bits=bits, learner=learner, seed=seed,
                                   side="octave", **out)
                        if "error" not in out:
                            qc, bc = octave_codes(out["outfile"])
                            rec = score(Precomputed(base, queries, bc, qc), base, queries,
                                        relevant)
                            rec.pop("fit_s")
                            row.update(rec)
                            msg += f" | Octave mAP {rec['map']:.4f} fit {out['fit_s']:.1f} s"
                        else:
                            msg += f" | Octave FAILED: {out['error']}"
                        row.pop("outfile", None)
                        rows.append(row)
                    save_partial(rows, partial)
                    print(f"  {dataset:6s} {bits:3d} {learner} seed {seed}: {msg}", flush=True)
    return rows, checks


def summarise(rows, args):
    cells = []
    for dataset in args.datasets:
        for bits in args.bits:
            for learner in args.learners:
                sel = [r for r in rows if (r["dataset"], r["bits"], r["learner"])
                       == (dataset, bits, learner)]
                octv = [r for r in sel if r["side"] == "octave"]
                ours = [r for r in sel if r["side"] == "ordhash"]
                ok = [r for r in octv if "error" not in r]
                cell = dict(dataset=dataset, bits=bits, learner=learner)
                for metric in ("map", "precision@100", "precision_r2"):
                    cell[metric] = compare([r[metric] for r in ok], [r[metric] for r in ours])
                cell["octave_fit_s"] = float(np.mean([r["fit_s"] for r in ok])) if ok else None
                cell["octave_fit_cpu_s"] = (float(np.mean([r["fit_cpu_s"] for r in ok]))
                                            if ok else None)
                cell["ordhash_fit_s"] = float(np.mean([r["fit_s"] for r in ours]))
                cell["octave_failed"] = len(octv) - len(ok)
                cell["octave_timeouts"] = sum(r.get("timed_out", False) for r in octv)
                if learner == "OEH":
                    cell["octave_nan_fits"] = sum(r.get("n_nan", 0) > 0 for r in ok)
                    cell["ordhash_fits_with_empty_steps"] = sum(r["empty_steps"] > 0
                                                                for r in ours)
                else:
                    cell["octave_stall_stops"] = sum(r["stall_stop"] for r in ok)
                    cell["ordhash_stall_stops"] = sum(r["stall_stop"] for r in ours)
                    cell["ordhash_mean_iters"] = float(np.mean([r["n_iter"] for r in ours]))
                    printed = [r["last_printed_iter"] or 0 for r in ok]
                    cell["octave_mean_last_printed_iter"] = (float(np.mean(printed))
                                                             if printed else None)
                cells.append(cell)
    return cells


def markdown(cells):
    lines = [
        "| dataset | bits | learner | Octave mAP (n) | ordhash released mAP (n) | Δ (ordhash − Octave) "
        "| Welch p | Mann-Whitney p | fit s: Octave (CPU) / ordhash | defects (Octave / ordhash) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        m = c["map"]
        if c["learner"] == "OEH":
            defects = (f"NaN W {c['octave_nan_fits']}/{m['octave_n']} / "
                       f"cnt = 0 {c['ordhash_fits_with_empty_steps']}/{m['ordhash_n']}")
        else:
            defects = (f"stall stop {c['octave_stall_stops']}/{m['octave_n']} / "
                       f"{c['ordhash_stall_stops']}/{m['ordhash_n']} "
                       f"(ordhash {c['ordhash_mean_iters']:.0f} it.)")
        if c["octave_failed"]:
            defects += f"; Octave failed {c['octave_failed']} (timeouts {c['octave_timeouts']})"
        diff = "n/a" if m["diff"] is None else f"{m['diff']:+.4f}"
        ofit = "n/a" if c["octave_fit_cpu_s"] is None else f"{c['octave_fit_cpu_s']:.1f}"
        lines.append(
            f"| {c['dataset']} | {c['bits']} | {c['learner']} | "
            f"{fmt(m['octave_mean'], m['octave_std'])} ({m['octave_n']}) | "
            f"{fmt(m['ordhash_mean'], m['ordhash_std'])} ({m['ordhash_n']}) | {diff} | "
            f"{fmt_p(m['welch_p'])} | {fmt_p(m['mannwhitney_p'])} | "
            f"{ofit} / {c['ordhash_fit_s']:.2f} | {defects} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--oeh-dir", default=str(DEFAULT_OEH_DIR))
    ap.add_argument("--och-dir", default=str(DEFAULT_OCH_DIR))
    ap.add_argument("--datasets", nargs="+", default=["digits", "sift", "mnist"],
                    choices=["digits", "sift", "mnist"])
    ap.add_argument("--bits", nargs="+", type=int, default=[32, 64])
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. seeds-1 on both sides")
    ap.add_argument("--mnist-oeh-seeds", type=int, default=None,
                    help="cap on the Octave seeds of OEH on MNIST (default: --seeds)")
    ap.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=list(LEARNERS))
    ap.add_argument("--octave", default=None,
                    help="Octave executable (default: octave-cli or octave on PATH)")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds per Octave run; a run that exceeds it is recorded as a hang")
    ap.add_argument("--jobs", type=int, default=1, help="Octave runs in parallel")
    ap.add_argument("--work-dir", default=None,
                    help="keep the Octave inputs/outputs here (default: a temporary folder); "
                         "outputs of an earlier run in the same folder are reused")
    ap.add_argument("--no-identical-check", dest="identical_check", action="store_false",
                    help="skip the identical-input check (first dataset, first bits, seed 0)")
    ap.add_argument("--out", default=str(RESULTS / "octave_reference.json"))
    args = ap.parse_args(argv)

    octave = find_octave(args.octave)
    if octave is None:
        print(f"octave_reference: skipped, GNU Octave not found "
              f"({args.octave or 'octave-cli / octave on PATH'}); nothing written")
        return 0
    dirs = {"OEH": args.oeh_dir, "OCH": args.och_dir}
    problems = missing_reference({k: dirs[k] for k in args.learners})
    if problems:
        print("octave_reference: skipped, " + "; ".join(problems) + ". Extract the authors' "
              "repositories outside the project (github Lyn-L/OEH, Lyn-L/OCH) and pass "
              "--oeh-dir / --och-dir; nothing written")
        return 0

    t0 = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.json")
    if args.work_dir:
        Path(args.work_dir).mkdir(parents=True, exist_ok=True)
        rows, checks = run(args, octave, dirs, partial, str(Path(args.work_dir).resolve()))
    else:
        with tempfile.TemporaryDirectory(prefix="octave_ref_") as work:
            rows, checks = run(args, octave, dirs, partial, work)
    cells = summarise(rows, args)
    table = markdown(cells)
    print("\nmAP (mean ± sample std over seeds; p-values two-sided, per-seed mAPs)\n")
    print(table)
    report = {
        "command": " ".join(["python eval/octave_reference.py"]
                            + (sys.argv[1:] if argv is None else list(argv))),
        "octave": octave_version(octave),
        "reference": {"OEH": "github Lyn-L/OEH 9787362", "OCH": "github Lyn-L/OCH 32a9f94"},
        "ground_truth": "top-2% Euclidean (bench_ordinal.load)",
        "shims": sorted(SHIMS),
        "mnist_oeh_octave_seeds": min(args.seeds, args.mnist_oeh_seeds or args.seeds),
        "total_s": time.perf_counter() - t0,
        "identical_input_check": checks,
        "summary": cells,
        "runs": rows,
        "markdown": table,
    }
    with open(out, "w") as fh:
        json.dump(report, fh, indent=1)
    partial.unlink(missing_ok=True)
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
