"""Recall@10 against queries per second of :class:`~ordhash.index.HashingSearcher`.

Hamming candidates re-ranked by exact L2, for each learner of ``ordhash.learners.LEARNERS``
chosen with ``--learners`` (default ITQ and LSH), at 32, 64 and 128 bits and 100 to 5,000
candidates, beside ``faiss.IndexHNSWFlat`` (M = 32, efConstruction 40, efSearch 16-512) and,
if it is installed, ``hnswlib`` (same M / ef; installed for the benchmark only, never a
dependency of ordhash).

Datasets: SIFT 10k (``load_sift10k``: 9,900 x 128, 100 queries) and MNIST (``load_mnist``:
10,000 x 784, the first 1,000 queries). recall@10 = |returned 10 ∩ true 10| / 10 against the
datasets' exact ground truth. Each timing is the fastest of ``--repeats`` runs of a batch of
at least 1,000 queries (SIFT's 100 queries repeated 10 times); all methods use the same number of threads (numba's and faiss's OpenMP setting).

Usage::

    python eval/bench_searcher.py            # full grid (a few minutes on 2 cores)
    python eval/bench_searcher.py --quick    # one bit width, fewer candidate counts

Writes ``eval/results/bench_searcher[_quick].json`` and ``.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np

from ordhash.datasets import load_mnist, load_sift10k
from ordhash.index import HashingSearcher
from ordhash.learners import LEARNERS

RESULTS = Path(__file__).resolve().parent / "results"


def recall_at(ids, truth, k=10):
    hits = [len(set(a[:k].tolist()) & set(b[:k].tolist())) for a, b in zip(ids, truth)]
    return float(np.mean(hits)) / k


def best_time(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_hashing(ds, Q, Qt, truth, learners, bits, cands, repeats):
    rows = []
    for name in learners:
        for n_bits in bits:
            learner = LEARNERS[name](n_bits=n_bits, random_state=0)
            t0 = time.perf_counter()
            s = HashingSearcher(learner, index="flat", candidates=max(cands)).fit(ds.base)
            build = time.perf_counter() - t0
            s.search(Q[:2], 10, candidates=min(cands))  # JIT warm-up
            for c in cands:
                sec, _ = best_time(lambda: s.search(Qt, 10, candidates=c), repeats)
                res = s.search(Q, 10, candidates=c)
                rows.append({"method": f"{name}-{n_bits}", "family": name, "n_bits": n_bits,
                             "param": c, "recall@10": recall_at(res.ids, truth),
                             "qps": Qt.shape[0] / sec, "build_s": build})
                print(f"  {name:>4} {n_bits:>3} bits  cand {c:>5}: recall@10 "
                      f"{rows[-1]['recall@10']:.3f}  {rows[-1]['qps']:>9.0f} q/s", flush=True)
    return rows


def bench_faiss_hnsw(ds, Q, Qt, truth, efs, repeats):
    import faiss

    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(ds.base.shape[1], 32)
    index.hnsw.efConstruction = 40
    index.add(np.ascontiguousarray(ds.base))
    build = time.perf_counter() - t0
    rows = []
    for ef in efs:
        index.hnsw.efSearch = ef
        index.search(Q[:2], 10)  # warm-up (OpenMP threads)
        sec, _ = best_time(lambda: index.search(Qt, 10), repeats)
        ids = index.search(Q, 10)[1]
        rows.append({"method": "faiss-HNSWFlat", "family": "faiss-HNSW", "n_bits": None,
                     "param": ef, "recall@10": recall_at(ids, truth), "qps": Qt.shape[0] / sec,
                     "build_s": build})
        print(f"  faiss HNSW ef {ef:>4}: recall@10 {rows[-1]['recall@10']:.3f}  "
              f"{rows[-1]['qps']:>9.0f} q/s", flush=True)
    return rows


def bench_hnswlib(ds, Q, Qt, truth, efs, repeats, threads):
    try:
        import hnswlib
    except ImportError:
        print("  hnswlib not installed: skipped")
        return []
    t0 = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=ds.base.shape[1])
    index.init_index(max_elements=ds.base.shape[0], M=32, ef_construction=40, random_seed=0)
    index.add_items(ds.base, np.arange(ds.base.shape[0]), num_threads=threads)
    build = time.perf_counter() - t0
    rows = []
    for ef in efs:
        index.set_ef(max(ef, 10))
        sec, _ = best_time(lambda: index.knn_query(Qt, k=10, num_threads=threads), repeats)
        ids = index.knn_query(Q, k=10, num_threads=threads)[0]
        rows.append({"method": "hnswlib", "family": "hnswlib", "n_bits": None, "param": ef,
                     "recall@10": recall_at(ids, truth), "qps": Qt.shape[0] / sec,
                     "build_s": build})
        print(f"  hnswlib    ef {ef:>4}: recall@10 {rows[-1]['recall@10']:.3f}  "
              f"{rows[-1]['qps']:>9.0f} q/s", flush=True)
    return rows


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = results[name]["rows"]
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["recall@10"], r["qps"]) for r in rows if r["method"] == method]
            style = "s--" if method.startswith(("faiss", "hnswlib")) else "o-"
            ax.plot(*zip(*pts), style, label=method, ms=4)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries / s")
        ax.set_title(f"{name}: {results[name]['n_base']} base, {results[name]['n_queries']} "
                     "queries")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="64 bits, 3 candidate counts")
    ap.add_argument("--learners", default="ITQ,LSH",
                    help="comma-separated names from ordhash.learners.LEARNERS")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--datasets", default="sift10k,mnist")
    args = ap.parse_args(argv)
    learners = [n for n in args.learners.split(",") if n]
    unknown = [n for n in learners if n not in LEARNERS]
    if unknown:
        ap.error(f"unknown learners {unknown}; choose from {list(LEARNERS)}")
    bits = [64] if args.quick else [32, 64, 128]
    cands = [100, 500, 2000] if args.quick else [100, 200, 500, 1000, 2000, 5000]
    efs = [16, 64, 256] if args.quick else [16, 32, 64, 128, 256, 512]
    threads = numba.get_num_threads()
    import faiss

    faiss.omp_set_num_threads(threads)
    loaders = {"sift10k": (load_sift10k, None), "mnist": (load_mnist, 1000)}
    results = {}
    for name in args.datasets.split(","):
        loader, n_queries = loaders[name]
        ds = loader()
        Q = np.ascontiguousarray(ds.queries[:n_queries], dtype=np.float32)
        truth = ds.ground_truth[: Q.shape[0], :10]
        # timings use at least 1,000 queries (SIFT's 100 repeated) so that a batch is long
        # enough to time reliably; recall uses the distinct queries
        Qt = np.tile(Q, (-(-1000 // Q.shape[0]), 1))
        print(f"{name}: base {ds.base.shape}, queries {Q.shape} (timed on {Qt.shape[0]})",
              flush=True)
        rows = bench_hashing(ds, Q, Qt, truth, learners, bits, cands, args.repeats)
        rows += bench_faiss_hnsw(ds, Q, Qt, truth, efs, args.repeats)
        rows += bench_hnswlib(ds, Q, Qt, truth, efs, args.repeats, threads)
        results[name] = {"n_base": int(ds.base.shape[0]), "n_queries": int(Q.shape[0]),
                         "n_timed_queries": int(Qt.shape[0]),
                         "rows": rows}

    print(f"\n{'dataset':<8} {'method':<16} {'param':>6} {'recall@10':>9} {'q/s':>10}")
    for name, res in results.items():
        for r in res["rows"]:
            print(f"{name:<8} {r['method']:<16} {r['param']:>6} {r['recall@10']:>9.3f} "
                  f"{r['qps']:>10.0f}")
    stem = "bench_searcher_quick" if args.quick else "bench_searcher"
    RESULTS.mkdir(exist_ok=True)
    meta = {"command": "python eval/bench_searcher.py" + (" --quick" if args.quick else ""),
            "threads": threads, "repeats": args.repeats, "k": 10,
            "loadavg_1min": os.getloadavg()[0], "python": platform.python_version(),
            "numpy": np.__version__, "faiss": faiss.__version__,
            "machine": platform.machine(), "cpu_count": os.cpu_count()}
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results},
                                                     indent=1))
    plot(results, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / (stem + '.json')} and .png")


if __name__ == "__main__":
    main()
