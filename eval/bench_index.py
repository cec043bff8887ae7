"""Benchmark of the exact Hamming indexes against faiss (public API only).

Sections (``protocol-and-anchors.md`` §4.1, §5.1-§5.3):

- ``flat``: :class:`~ordhash.index.HammingIndex` k-NN on 1M uniform random codes (64 and 128
  bits), 1,000 queries, k = 10 and 100, 1 and 2 threads, against ``faiss.IndexBinaryFlat`` in
  the same run (``faiss.omp_set_num_threads``); QPS, ratio and an exactness check (distances
  equal, ids equal after ordering faiss's rows by (distance, id)).
- ``range``: ``range_search`` (inclusive radius) against faiss ``range_search(q, r + 1)``.
- ``mih``: :class:`~ordhash.index.MultiIndexHashing` against the flat scan on 10M uniform
  64-bit codes, k = 1, 10, 100 and radius 2 and 4 (results checked identical), against
  ``faiss.IndexBinaryFlat`` and ``faiss.IndexBinaryMultiHash`` (4 x 16 bits, nflip 0-2, on
  every 10th query; tie-aware recall@k: a returned code counts if its distance is <= the true
  k-th distance), the paper's rule for the number of substrings against the default, the work
  per 10-NN query (probes, bucket entries scanned) and bytes per code.
- ``mih_learned``: the same comparisons on learned codes: ITQ 64-bit codes of SIFT 10k
  (``load_sift10k``, ITQ fitted on the 9,900 base vectors), the base replicated to ``--learned-n``
  rows (1M and 10M) with Gaussian noise (sd = ``--noise`` x the mean per-dimension sd, about one
  bit of 64 changed per replica) added to the float vectors before encoding; queries = the 100
  held-out SIFT queries, each with 10 noise draws (1,000 queries). Also faiss MultiHash and
  (1M only) HNSW recall / QPS on the same data.
- ``hnsw``: ``faiss.IndexBinaryHNSW`` (M = 16, efSearch 16-256) against MIH and the flat scan on
  ``--hnsw-n`` codes (building HNSW over 10M codes takes far longer than the rest of the run).
- ``memory``: bytes per code of every index (faiss indexes: serialised size).
- ``cold``: import time and first-query latency in a fresh process, with an empty numba cache
  (``NUMBA_CACHE_DIR`` = new temporary directory: includes JIT compilation) and a warm one.

Every timing is the fastest of ``--repeats`` (>= 3) runs; the 1-minute load average is recorded
with each section because the machine may be shared.

Usage::

    python eval/bench_index.py                 # full run (several minutes)
    python eval/bench_index.py --quick         # smaller sizes, smoke test
    python eval/bench_index.py --sections flat,range
    python eval/bench_index.py --sections mih --update   # re-measure one section in place
    python eval/bench_index.py --sections mih_learned --learned-n 1000000,10000000

Writes ``eval/results/bench_index[_quick].json`` (with the load average before and after every
section) and ``.png`` and prints a table.
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
from math import log2
from pathlib import Path

import faiss
import numpy as np

import ordhash
from ordhash.index import HammingIndex, MultiIndexHashing

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ["flat", "range", "mih", "mih_learned", "hnsw", "memory", "cold"]


def load():
    return round(os.getloadavg()[0], 2)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fastest(fn, repeats):
    """``(seconds, result)`` of the fastest of ``repeats`` calls."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def mih_vs_flat_knn(flat, mih, queries, k, repeats):
    """Time one k-NN pass of the flat index and of MIH (after a warm-up); both results and
    whether they are identical."""
    flat.search(queries[:8], k)
    mih.search(queries[:8], k)
    t_flat, ref = fastest(lambda: flat.search(queries, k), repeats)
    t_mih, res = fastest(lambda: mih.search(queries, k), repeats)
    exact = bool((res.ids == ref.ids).all() and (res.distances == ref.distances).all())
    return t_flat, ref, t_mih, res, exact


def mih_vs_flat_range(label, flat_idx, mih_idx, queries, radii, threads, repeats, log):
    """Rows of radius search, MIH against the flat index, for each radius and thread count."""
    nq, rows = len(queries), []
    for radius in radii:
        for t in threads:
            t_flat, ref = fastest(lambda: flat_idx[t].range_search(queries, radius), repeats)
            t_mih, res = fastest(lambda: mih_idx[t].range_search(queries, radius), repeats)
            exact = bool((res.lims == ref.lims).all() and (res.ids == ref.ids).all())
            r = dict(radius=radius, threads=t, qps_mih=nq / t_mih, qps_flat=nq / t_flat,
                     speedup_vs_flat=t_flat / t_mih, mean_matches=float(ref.lims[-1] / nq),
                     identical=exact, load=load())
            rows.append(r)
            log(f"{label} r<={radius:<3d} threads={t}  MIH {r['qps_mih']:8.0f} q/s  flat "
                f"{r['qps_flat']:7.0f} q/s  MIH/flat {r['speedup_vs_flat']:6.1f}x  "
                f"matches/q {r['mean_matches']:.1f}  identical={exact}")
    return rows


def uniform_codes(rng, n, n_bits, chunk=1 << 22):
    out = np.empty((n, n_bits // 8), dtype=np.uint8)
    for s in range(0, n, chunk):
        out[s:s + chunk] = rng.integers(0, 256, size=(min(chunk, n - s), n_bits // 8), dtype=np.uint8)
    return out


def faiss_sorted(dist, ids):
    order = np.lexsort((ids, dist), axis=1)
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ids, order, axis=1)


def tie_aware_recall(dist, ids, true_kth):
    """Mean fraction of the k returned codes whose distance is <= the true k-th distance."""
    k = dist.shape[1]
    good = (ids >= 0) & (dist <= true_kth[:, None])
    return float(good.sum(axis=1).mean() / k)


# -- sections ------------------------------------------------------------------------------
def bench_flat(args, rng, log):
    rows = []
    for n_bits in args.flat_bits:
        codes = uniform_codes(rng, args.flat_n, n_bits)
        queries = uniform_codes(rng, args.nq, n_bits)
        flat = faiss.IndexBinaryFlat(n_bits)
        flat.add(codes)
        for threads in args.threads:
            ours = HammingIndex(n_bits, n_jobs=threads)
            ours.add(codes)
            faiss.omp_set_num_threads(threads)
            for k in args.ks_flat:
                ours.search(queries[:8], k)
                flat.search(queries[:8], k)
                t_ours, res = fastest(lambda: ours.search(queries, k), args.repeats)
                t_faiss, (fd, fi) = fastest(lambda: flat.search(queries, k), args.repeats)
                fd, fi = faiss_sorted(fd, fi)
                exact = bool((fd == res.distances).all() and (fi == res.ids).all())
                row = dict(n=args.flat_n, n_bits=n_bits, k=k, threads=threads, nq=args.nq,
                           qps_ordhash=args.nq / t_ours, qps_faiss=args.nq / t_faiss,
                           ratio=t_faiss / t_ours, identical=exact, load=load())
                rows.append(row)
                log(f"flat  {n_bits:4d} bits k={k:<4d} threads={threads}  ordhash {row['qps_ordhash']:9.0f} "
                    f"q/s  faiss {row['qps_faiss']:8.0f} q/s  ratio {row['ratio']:5.2f}  identical={exact}")
            del ours
    return rows


def bench_range(args, rng, log):
    rows = []
    for n_bits, radii in ((64, (8, 12)), (128, (36, 44))):
        if n_bits not in args.flat_bits:
            continue
        codes = uniform_codes(rng, args.flat_n, n_bits)
        queries = np.concatenate([codes[:args.nq // 10], uniform_codes(rng, args.nq - args.nq // 10, n_bits)])
        flat = faiss.IndexBinaryFlat(n_bits)
        flat.add(codes)
        for threads in args.threads:
            ours = HammingIndex(n_bits, n_jobs=threads)
            ours.add(codes)
            faiss.omp_set_num_threads(threads)
            for radius in radii:
                ours.range_search(queries[:8], radius)
                t_ours, res = fastest(lambda: ours.range_search(queries, radius), args.repeats)
                t_faiss, (lims, _, _) = fastest(lambda: flat.range_search(queries, radius + 1), args.repeats)
                same = bool((lims.astype(np.int64) == res.lims).all())
                row = dict(n=args.flat_n, n_bits=n_bits, radius=radius, threads=threads, nq=len(queries),
                           mean_matches=float(res.lims[-1] / len(queries)),
                           qps_ordhash=len(queries) / t_ours, qps_faiss=len(queries) / t_faiss,
                           ratio=t_faiss / t_ours, same_counts=same, load=load())
                rows.append(row)
                log(f"range {n_bits:4d} bits r<={radius:<3d} threads={threads}  ordhash {row['qps_ordhash']:9.0f} "
                    f"q/s  faiss(r+1) {row['qps_faiss']:8.0f} q/s  ratio {row['ratio']:5.2f}  "
                    f"matches/q {row['mean_matches']:.1f}  same={same}")
    return rows


def bench_mih(args, rng, log):
    n, n_bits = args.mih_n, 64
    codes = uniform_codes(rng, n, n_bits)
    queries = uniform_codes(rng, args.nq, n_bits)
    out = dict(n=n, n_bits=n_bits, nq=args.nq, knn=[], range=[], multihash=[], substrings=[])
    mih = MultiIndexHashing(n_bits, n_jobs=1)
    mih.add(codes)
    t_build, _ = fastest(lambda: mih.build(), 1)
    out["mih_build_s"] = t_build
    out["mih_substrings"] = mih.substrings
    flat_idx = {t: HammingIndex(n_bits, n_jobs=t) for t in args.threads}
    mih_idx = {1: mih}
    for t in args.threads:
        flat_idx[t].add(codes)
        if t != 1:
            mih_idx[t] = MultiIndexHashing(n_bits, n_jobs=t)
            mih_idx[t].add(codes)
            mih_idx[t].build()
    fflat = faiss.IndexBinaryFlat(n_bits)
    fflat.add(codes)
    nq_faiss = max(20, args.nq // 10)
    truth = {}
    for k in args.ks_mih:
        for t in args.threads:
            t_flat, ref, t_mih, res, exact = mih_vs_flat_knn(flat_idx[t], mih_idx[t], queries, k,
                                                             args.repeats)
            truth[k] = ref
            faiss.omp_set_num_threads(t)
            t_ff, _ = fastest(lambda: fflat.search(queries[:nq_faiss], k), args.repeats)
            row = dict(k=k, threads=t, qps_mih=args.nq / t_mih, qps_flat=args.nq / t_flat,
                       qps_faiss_flat=nq_faiss / t_ff, speedup_vs_flat=t_flat / t_mih,
                       speedup_vs_faiss_flat=(t_ff / nq_faiss) / (t_mih / args.nq),
                       identical=exact, load=load())
            out["knn"].append(row)
            log(f"mih   n={n:.0e} k={k:<4d} threads={t}  MIH {row['qps_mih']:8.0f} q/s  flat {row['qps_flat']:7.0f} "
                f"q/s  faiss flat {row['qps_faiss_flat']:6.0f} q/s  MIH/flat {row['speedup_vs_flat']:5.2f}x  "
                f"MIH/faiss {row['speedup_vs_faiss_flat']:6.1f}x  identical={exact}")
    out["range"] = mih_vs_flat_range(f"mih   n={n:.0e}", flat_idx, mih_idx, queries,
                                     args.radii_mih, args.threads, args.repeats, log)
    # faiss MultiHash (approximate), one thread
    faiss.omp_set_num_threads(1)
    mh = faiss.IndexBinaryMultiHash(n_bits, 4, 16)
    t_b, _ = fastest(lambda: mh.add(codes), 1)
    out["multihash_build_s"] = t_b
    sub = slice(None, None, 10)  # every 10th query: nflip=2 runs at tens of queries/s on 10M codes
    for nflip in (0, 1, 2):
        mh.nflip = nflip
        for k in args.ks_mih:
            true_kth = truth[k].distances[sub, -1].astype(np.int64)
            t_mh, (d, i) = fastest(lambda: mh.search(queries[sub], k), args.repeats)
            row = dict(nflip=nflip, k=k, qps=len(true_kth) / t_mh, nq=len(true_kth),
                       recall=tie_aware_recall(d, i, true_kth), load=load())
            out["multihash"].append(row)
            log(f"faiss MultiHash 4x16 nflip={nflip} k={k:<4d} {row['qps']:8.0f} q/s  recall {row['recall']:.3f}")
    del mh
    # number of substrings: the paper's rule against the default
    paper = max(1, round(n_bits / log2(n)))
    default = len(mih.substrings)
    for m in sorted({paper, default, default + 1}):
        idx = MultiIndexHashing(n_bits, n_substrings=m, n_jobs=1)
        idx.add(codes)
        idx.build()
        idx.search(queries[:8], 10)
        t_m, _ = fastest(lambda: idx.search(queries, 10), args.repeats)
        row = dict(n_substrings=m, paper_rule=m == paper, default=m == default,
                   qps_k10=args.nq / t_m, bytes_per_code=idx.nbytes / n, load=load())
        out["substrings"].append(row)
        log(f"mih   m={m} ({'paper rule' if row['paper_rule'] else 'default' if row['default'] else 'other'}) "
            f"k=10  {row['qps_k10']:8.0f} q/s  {row['bytes_per_code']:.1f} B/code")
        del idx
    out["work_k10"] = mih_work(mih, queries[:100], truth[10].distances[:100, -1])
    w = out["work_k10"]
    log(f"mih   n={n:.0e} k=10 work per query: {w['probes_per_query']:.0f} probes, "
        f"{w['entries_per_query']:.0f} bucket entries ({100 * w['entry_fraction']:.2f}% of n, "
        f"{8 * w['entries_per_query'] / 1e6:.2f} MB of 8-byte entries)")
    out["memory"] = dict(ordhash_flat=flat_idx[args.threads[0]].nbytes / n, ordhash_mih=mih.nbytes / n,
                         faiss_flat=n_bits / 8)
    log(f"mih   n={n:.0e} bytes/code: flat {out['memory']['ordhash_flat']:.1f}, MIH "
        f"{out['memory']['ordhash_mih']:.1f} (m = {len(mih.substrings)}; target 3 x 16 = 48)")
    return out


def mih_work(index, queries, kth):
    """Mean probes and bucket entries scanned per query of an exact MIH k-NN search
    whose k-th distance is ``kth`` (per query): the step schedule of the kernel (``(s, j)`` up
    to ``kth = s * m + j``), computed from the public bucket layout with numpy."""
    subs = index.substrings
    m = len(subs)
    words = np.ascontiguousarray(index.reconstruct(index.ids)).view(np.uint64).ravel()  # 64-bit codes
    qwords = np.ascontiguousarray(queries).view(np.uint64).ravel()
    probes = entries = 0.0
    for j, (a, L) in enumerate(subs):
        mask = np.uint64((1 << L) - 1)
        keys = ((words >> np.uint64(a)) & mask).astype(np.int64)
        qkeys = ((qwords >> np.uint64(a)) & mask).astype(np.int64)
        sizes = np.bincount(keys, minlength=1 << L)
        all_keys = np.arange(1 << L, dtype=np.int64)
        for qk, r in zip(qkeys, kth):
            s_max = (r - j) // m if r >= j else -1  # probes of table j: s <= (r - j) // m
            if s_max < 0:
                continue
            dist = np.bitwise_count(all_keys ^ qk)
            sel = dist <= s_max
            probes += float(sel.sum())
            entries += float(sizes[sel].sum())
    nq = queries.shape[0]
    return dict(probes_per_query=probes / nq, entries_per_query=entries / nq,
                entry_fraction=entries / nq / index.ntotal)


def itq_replicated(n, noise, rng):
    """ITQ 64-bit codes of SIFT 10k replicated to ``n`` rows with noise, and 1,000 queries."""
    from ordhash.datasets import load_sift10k
    from ordhash.learners import ITQ

    ds = load_sift10k()
    base = np.asarray(ds.base, np.float32)
    itq = ITQ(n_bits=64, random_state=0).fit(base)
    sd = float(base.std(axis=0).mean()) * noise
    codes = np.empty((n, 8), np.uint8)
    for s in range(0, n, base.shape[0]):
        e = min(n, s + base.shape[0])
        x = base[: e - s] + rng.normal(scale=sd, size=(e - s, base.shape[1])).astype(np.float32)
        codes[s:e] = itq.transform(x)
    qx = np.repeat(np.asarray(ds.queries, np.float32), 10, axis=0)
    qx += rng.normal(scale=sd, size=qx.shape).astype(np.float32)
    return codes, itq.transform(qx)


def bench_mih_learned(args, rng, log):
    out = []
    for n in args.learned_n:
        codes, queries = itq_replicated(n, args.noise, rng)
        nq = queries.shape[0]
        row = dict(n=n, n_bits=64, nq=nq, noise=args.noise, knn=[], range=[], multihash=[], hnsw=[])
        flat_idx, mih_idx = {}, {}
        for t in args.threads:
            flat_idx[t] = HammingIndex(64, n_jobs=t)
            flat_idx[t].add(codes)
            mih_idx[t] = MultiIndexHashing(64, n_jobs=t)
            mih_idx[t].add(codes)
            t_build, _ = fastest(lambda: mih_idx[t].build(), 1)
            row.setdefault("mih_build_s", {})[t] = t_build
        row["mih_substrings"] = mih_idx[args.threads[0]].substrings
        truth = {}
        for k in args.ks_mih:
            for t in args.threads:
                t_flat, ref, t_mih, res, exact = mih_vs_flat_knn(flat_idx[t], mih_idx[t], queries,
                                                                 k, args.repeats)
                truth[k] = ref
                r = dict(k=k, threads=t, qps_mih=nq / t_mih, qps_flat=nq / t_flat,
                         speedup_vs_flat=t_flat / t_mih, mean_kth=float(ref.distances[:, -1].mean()),
                         identical=exact, load=load())
                row["knn"].append(r)
                log(f"learned n={n:.0e} k={k:<4d} threads={t}  MIH {r['qps_mih']:8.0f} q/s  flat "
                    f"{r['qps_flat']:7.0f} q/s  MIH/flat {r['speedup_vs_flat']:5.2f}x  "
                    f"k-th dist {r['mean_kth']:.1f}  identical={exact}")
        row["range"] = mih_vs_flat_range(f"learned n={n:.0e}", flat_idx, mih_idx, queries,
                                         args.radii_mih, args.threads, args.repeats, log)
        row["work_k10"] = mih_work(mih_idx[args.threads[0]], queries[:100],
                                   truth[10].distances[:100, -1])
        log(f"learned n={n:.0e} k=10 work per query: {row['work_k10']['probes_per_query']:.0f} probes, "
            f"{row['work_k10']['entries_per_query']:.0f} entries ({100 * row['work_k10']['entry_fraction']:.2f}% of n)")
        row["bytes_per_code"] = dict(flat=flat_idx[args.threads[0]].nbytes / n,
                                     mih=mih_idx[args.threads[0]].nbytes / n)
        log(f"learned n={n:.0e} bytes/code: flat {row['bytes_per_code']['flat']:.1f}, MIH "
            f"{row['bytes_per_code']['mih']:.1f} (m = {len(row['mih_substrings'])})")
        del flat_idx, mih_idx
        faiss.omp_set_num_threads(1)
        mh = faiss.IndexBinaryMultiHash(64, 4, 16)
        mh.add(codes)
        sub = slice(None, None, 10)  # the 100 distinct held-out queries, one noise draw each
        for nflip in (0, 1, 2):
            mh.nflip = nflip
            for k in args.ks_mih:
                true_kth = truth[k].distances[sub, -1].astype(np.int64)
                t_mh, (d, i) = fastest(lambda: mh.search(queries[sub], k), args.repeats)
                r = dict(nflip=nflip, k=k, qps=len(true_kth) / t_mh, nq=len(true_kth),
                         recall=tie_aware_recall(d, i, true_kth), load=load())
                row["multihash"].append(r)
                log(f"learned n={n:.0e} faiss MultiHash 4x16 nflip={nflip} k={k:<4d} {r['qps']:8.0f} q/s  "
                    f"recall {r['recall']:.3f}")
        del mh
        if n <= args.hnsw_n:
            faiss.omp_set_num_threads(max(args.threads))
            hnsw = faiss.IndexBinaryHNSW(64, 16)
            t_b, _ = fastest(lambda: hnsw.add(codes), 1)
            row["hnsw_build_s"] = t_b
            row["hnsw_bytes_per_code"] = faiss.serialize_index_binary(hnsw).nbytes / n
            faiss.omp_set_num_threads(1)
            true_kth = truth[10].distances[:, -1].astype(np.int64)
            for ef in (16, 64, 256):
                hnsw.hnsw.efSearch = ef
                t_h, (d, i) = fastest(lambda: hnsw.search(queries, 10), args.repeats)
                r = dict(efSearch=ef, k=10, qps=nq / t_h, recall=tie_aware_recall(d, i, true_kth),
                         load=load())
                row["hnsw"].append(r)
                log(f"learned n={n:.0e} faiss HNSW M16 ef={ef:<4d} k=10 {r['qps']:8.0f} q/s  "
                    f"recall {r['recall']:.3f}  (build {t_b:.1f} s)")
            del hnsw
        out.append(row)
    return out


def bench_hnsw(args, rng, log):
    n, n_bits = args.hnsw_n, 64
    codes = uniform_codes(rng, n, n_bits)
    queries = uniform_codes(rng, args.nq, n_bits)
    k = 10
    flat = HammingIndex(n_bits, n_jobs=1)
    flat.add(codes)
    t_flat, truth = fastest(lambda: flat.search(queries, k), args.repeats)
    mih = MultiIndexHashing(n_bits, n_jobs=1)
    mih.add(codes)
    mih.build()
    t_mih, _ = fastest(lambda: mih.search(queries, k), args.repeats)
    true_kth = truth.distances[:, -1].astype(np.int64)
    out = dict(n=n, n_bits=n_bits, k=k, qps_flat=args.nq / t_flat, qps_mih=args.nq / t_mih, hnsw=[])
    faiss.omp_set_num_threads(max(args.threads))
    hnsw = faiss.IndexBinaryHNSW(n_bits, 16)
    t_b, _ = fastest(lambda: hnsw.add(codes), 1)
    out["hnsw_build_s"] = t_b
    out["hnsw_build_threads"] = max(args.threads)
    out["hnsw_bytes_per_code"] = faiss.serialize_index_binary(hnsw).nbytes / n
    faiss.omp_set_num_threads(1)
    log(f"hnsw  n={n:.0e} k={k}  flat {out['qps_flat']:.0f} q/s (exact)  MIH {out['qps_mih']:.0f} q/s (exact)  "
        f"HNSW build {t_b:.1f} s on {max(args.threads)} threads")
    for ef in (16, 64, 256):
        hnsw.hnsw.efSearch = ef
        t_h, (d, i) = fastest(lambda: hnsw.search(queries, k), args.repeats)
        row = dict(efSearch=ef, qps=args.nq / t_h, recall=tie_aware_recall(d, i, true_kth), load=load())
        out["hnsw"].append(row)
        log(f"faiss HNSW M16 ef={ef:<4d} {row['qps']:8.0f} q/s  recall {row['recall']:.3f}")
    return out


def bench_memory(args, rng, log):
    n = args.memory_n
    out = {}
    for n_bits in (64, 128):
        codes = uniform_codes(rng, n, n_bits)
        row = {}
        for name, idx in (("HammingIndex(numba)", HammingIndex(n_bits)),
                          ("HammingIndex(faiss)", HammingIndex(n_bits, backend="faiss")),
                          ("MultiIndexHashing", MultiIndexHashing(n_bits))):
            idx.add(codes)
            if isinstance(idx, MultiIndexHashing):
                idx.build()
            row[name] = idx.nbytes / n
        fl = faiss.IndexBinaryFlat(n_bits)
        fl.add(codes)
        row["faiss IndexBinaryFlat"] = faiss.serialize_index_binary(fl).nbytes / n
        mh = faiss.IndexBinaryMultiHash(n_bits, 4 if n_bits == 64 else 8, 16)
        mh.add(codes)
        row["faiss IndexBinaryMultiHash"] = faiss.serialize_index_binary(mh).nbytes / n
        out[n_bits] = row
        log(f"memory {n_bits:3d} bits, n={n:.0e}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items())
            + " bytes/code")
    return out


_COLD = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
from ordhash.index import HammingIndex, MultiIndexHashing
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
codes = rng.integers(0, 256, size=(20000, 8), dtype=np.uint8)
out = [t_import]
for cls in (HammingIndex, MultiIndexHashing):
    idx = cls(64)
    idx.add(codes)
    t0 = time.perf_counter(); idx.search(codes[:10], 10); out.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); idx.range_search(codes[:10], 4); out.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); idx.search(codes[10:20], 10); out.append(time.perf_counter() - t0)
print(" ".join(f"{v:.6f}" for v in out))
"""


def bench_cold(args, rng, log):
    keys = ["import_s", "flat_first_knn_s", "flat_first_range_s", "flat_second_knn_s",
            "mih_first_knn_s", "mih_first_range_s", "mih_second_knn_s"]

    def run(cache_dir):
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        out = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True, check=True)
        return dict(zip(keys, map(float, out.stdout.split())))

    with tempfile.TemporaryDirectory() as cache:
        cold = run(cache)  # empty cache: JIT compilation
        warm = [run(cache) for _ in range(args.repeats)]
    warm_best = {key: min(w[key] for w in warm) for key in keys}
    for name, d in (("empty numba cache", cold), ("warm numba cache", warm_best)):
        log(f"cold  {name:18s} import {d['import_s']:.2f} s  first flat k-NN {d['flat_first_knn_s']:.2f} s, "
            f"range {d['flat_first_range_s']:.2f} s  first MIH k-NN {d['mih_first_knn_s']:.2f} s, "
            f"range {d['mih_first_range_s']:.2f} s  (second flat k-NN {d['flat_second_knn_s'] * 1e3:.2f} ms)")
    return dict(empty_cache=cold, warm_cache=warm_best, load=load())


# -- output --------------------------------------------------------------------------------
def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    if "flat" in results:
        rows = results["flat"]
        labels = [f"{r['n_bits']}b k{r['k']} t{r['threads']}" for r in rows]
        x = np.arange(len(rows))
        axes[0].bar(x - 0.2, [r["qps_ordhash"] for r in rows], 0.4, label="ordhash HammingIndex")
        axes[0].bar(x + 0.2, [r["qps_faiss"] for r in rows], 0.4, label="faiss IndexBinaryFlat")
        axes[0].set_xticks(x, labels, rotation=60, fontsize=7)
        axes[0].set_yscale("log")
        axes[0].set_ylabel("queries / s")
        axes[0].set_title(f"flat k-NN, n = {rows[0]['n']:.0e} uniform codes")
        axes[0].legend(fontsize=8)
    if "mih" in results:
        m = results["mih"]
        one = [r for r in m["knn"] if r["threads"] == 1]
        ks = [r["k"] for r in one]
        for key, name in (("qps_mih", "ordhash MIH (exact)"), ("qps_flat", "ordhash flat (exact)"),
                          ("qps_faiss_flat", "faiss flat (exact)")):
            axes[1].plot(ks, [r[key] for r in one], "o-", label=name)
        for nflip in (0, 1, 2):
            pts = [r for r in m["multihash"] if r["nflip"] == nflip]
            axes[1].plot([r["k"] for r in pts], [r["qps"] for r in pts], "x--",
                         label=f"faiss MultiHash nflip={nflip} (recall {min(r['recall'] for r in pts):.2f}+)")
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
        axes[1].set_xlabel("k")
        axes[1].set_ylabel("queries / s (1 thread)")
        axes[1].set_title(f"k-NN on {m['n']:.0e} uniform 64-bit codes")
        axes[1].legend(fontsize=7)
    if "hnsw" in results:
        h = results["hnsw"]
        axes[2].plot([r["recall"] for r in h["hnsw"]], [r["qps"] for r in h["hnsw"]], "s-",
                     label="faiss HNSW M16 (ef 16/64/256)")
        axes[2].plot([1.0], [h["qps_mih"]], "o", label="ordhash MIH")
        axes[2].plot([1.0], [h["qps_flat"]], "^", label="ordhash flat")
        axes[2].set_yscale("log")
        axes[2].set_xlabel("tie-aware recall@10")
        axes[2].set_ylabel("queries / s (1 thread)")
        axes[2].set_title(f"recall vs speed, n = {h['n']:.0e} uniform 64-bit codes")
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nq", type=int, default=None, help="queries (default 1000, quick 200)")
    ap.add_argument("--flat-n", type=int, default=None, help="codes for flat/range (1M, quick 100k)")
    ap.add_argument("--mih-n", type=int, default=None, help="codes for MIH (10M, quick 1M)")
    ap.add_argument("--hnsw-n", type=int, default=None, help="codes for HNSW (1M, quick 50k)")
    ap.add_argument("--learned-n", default=None,
                    help="comma list of replicated ITQ-SIFT sizes (default 1000000,10000000; quick 100000)")
    ap.add_argument("--noise", type=float, default=0.1,
                    help="replica noise sd, as a fraction of the mean per-dimension sd of SIFT")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output stem (default eval/results/bench_index[_quick])")
    ap.add_argument("--update", action="store_true",
                    help="replace only the sections run in an existing JSON (rerun a section "
                         "measured while the machine was busy)")
    args = ap.parse_args(argv)
    if args.repeats < 3:
        ap.error("--repeats must be >= 3")
    q = args.quick
    args.nq = args.nq or (200 if q else 1000)
    args.flat_n = args.flat_n or (100_000 if q else 1_000_000)
    args.mih_n = args.mih_n or (1_000_000 if q else 10_000_000)
    args.hnsw_n = args.hnsw_n or (50_000 if q else 1_000_000)
    args.memory_n = 100_000 if q else 1_000_000
    args.learned_n = ([int(float(v)) for v in args.learned_n.split(",")] if args.learned_n
                      else [100_000] if q else [1_000_000, 10_000_000])
    args.threads = [int(t) for t in args.threads.split(",")]
    args.flat_bits = [64, 128]
    args.ks_flat = [10, 100]
    args.ks_mih = [1, 10, 100]
    args.radii_mih = [2, 4]
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}")
    stem = Path(args.out) if args.out else RESULTS / ("bench_index_quick" if q else "bench_index")
    stem.parent.mkdir(parents=True, exist_ok=True)

    lines = {}
    current = [None]

    def log(msg):
        print(msg, flush=True)
        lines.setdefault(current[0], []).append(msg)

    prev_faiss = faiss.omp_get_max_threads()
    env = dict(python=platform.python_version(), numpy=np.__version__, faiss=faiss.__version__,
               numba=__import__("numba").__version__, ordhash=getattr(ordhash, "__version__", "dev"),
               cpu=cpu_model(), n_cpus=os.cpu_count(),
               load_start=load())
    results, section_env = {}, {}
    rng = np.random.default_rng(args.seed)
    funcs = dict(flat=bench_flat, range=bench_range, mih=bench_mih, mih_learned=bench_mih_learned,
                 hnsw=bench_hnsw,
                 memory=bench_memory, cold=bench_cold)
    t0 = time.perf_counter()
    try:
        for name in sections:
            current[0] = name
            load_before = load()
            results[name] = funcs[name](args, rng, log)
            section_env[name] = dict(load_start=load_before, load_end=load(),
                                     finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    finally:
        faiss.omp_set_num_threads(prev_faiss)
    env["load_end"] = load()
    env["wall_s"] = time.perf_counter() - t0
    command = "python eval/bench_index.py " + " ".join(sys.argv[1:] if argv is None else argv)
    record = dict(command=command, environment=env,
                  settings=dict(nq=args.nq, flat_n=args.flat_n, mih_n=args.mih_n, hnsw_n=args.hnsw_n,
                                learned_n=args.learned_n, noise=args.noise,
                                threads=args.threads, repeats=args.repeats, seed=args.seed),
                  sections=section_env, results=results, table=lines)
    json_path = stem.with_suffix(".json")
    if args.update and json_path.exists():
        old = json.loads(json_path.read_text())
        for key in ("sections", "results", "table"):
            old.setdefault(key, {}).update(record[key])
        old.setdefault("updates", []).append(dict(command=command, environment=env))
        record = old
        results = record["results"]
    json_path.write_text(json.dumps(record, indent=1, default=str))
    plot(results, stem.with_suffix(".png"))
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
