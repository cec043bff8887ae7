#!/usr/bin/env python
"""Benchmark: Dask scale-out (ordhash.distributed) against the single-process path.

Measures, on a local cluster (default 2 worker processes x 1 thread):

1. encoding throughput: ``encode(learner, X)`` over the whole array on the workers, against
   ``learner.transform`` block by block in this process (codes are checked identical);
2. sharded search QPS: :class:`ShardedHammingIndex` (one shard per block) against one
   :class:`HammingIndex` holding every code in this process (results checked identical);
3. fan-out overhead per query batch: a sharded search over trivially small shards, minus the
   shards' own compute (target < 5 ms on loopback), on the fast path (shard servers, dask
   Actors) and on the task path, interleaved, next to dask's own no-op round trips.

The data are float32 Gaussian vectors generated per block on the workers by
``dask.array.random.default_rng(seed)``, so this process never holds the whole array (only
one block at a time for the single-process encoding, plus the packed codes, 8 bytes/row at
64 bits). Prints a table and writes ``eval/results/distributed_n<N>.json`` with the machine
load (``os.getloadavg()``) before and after.

Usage::

    python eval/bench_distributed.py --n 1000000         # quick
    python eval/bench_distributed.py                     # 10M x 64-d (about 2.5 GB on the workers)
    python eval/bench_distributed.py --only-fanout       # part 3 only (both paths), seconds
    python eval/bench_distributed.py --only-fanout --paths actor --overhead-batches 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def environment():
    import dask
    import distributed
    import numba
    from threadpoolctl import threadpool_info

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = [(p.get("internal_api"), p.get("num_threads")) for p in threadpool_info()
            if p.get("user_api") == "blas"]
    return {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "dask": dask.__version__,
            "distributed": distributed.__version__, "cpu": cpu, "cores": os.cpu_count(),
            "numba_threads_client": numba.get_num_threads(), "blas_client": blas,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def timed(fn, repeats):
    """``(median seconds, last result)`` of ``repeats`` calls."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _noop(block, queries):
    return 0


def _ms(values):
    """``(median, p90)`` of seconds, in milliseconds."""
    return 1e3 * float(np.median(values)), 1e3 * float(np.percentile(values, 90))


def fanout_overhead(client, n_bits, n_shards_list, batch, batches, seed, paths=("actor", "tasks"),
                    block=10):
    """Per-batch wall time of a sharded search over tiny shards, minus the shards' compute.

    Times each path in ``paths`` (``"actor"``: the fast path through the shard servers;
    ``"tasks"``: one dask task per shard) and two floors:

    - dask's no-op task round trip (``client.map`` of a no-op over the same number of
      in-memory blocks, then ``client.gather``), the floor under the task path;
    - a no-op call to every shard server (``run`` over zero shards), the floor under the
      fast path.

    The four are interleaved in blocks of ``block`` consecutive batches (round robin until
    each has ``batches`` timed batches), so that all see the same background load. Between
    blocks there is a 0.2 s pause, so that the clean-up a task-path batch leaves on the
    scheduler and workers (releasing its tasks' keys) does not land inside the next
    fast-path batch, then one untimed batch: every timed batch follows a batch of its own
    kind, as in a steady stream of queries. ``block=1`` interleaves batch by batch without
    pauses, the worst case for the fast path. Every search of every path is checked
    identical to the first path's answer.
    """
    import dask.array as da

    from ordhash.distributed import ShardedHammingIndex
    from ordhash.distributed._server import server_pool

    rng = np.random.default_rng(seed)
    size = (n_bits + 7) // 8
    rows = []
    for n_shards in n_shards_list:
        codes = rng.integers(0, 256, size=(100 * n_shards, size), dtype=np.uint8)
        index = ShardedHammingIndex(n_bits, client=client)
        index.add(da.from_array(codes, chunks=(100, size)))
        blocks = da.from_array(codes, chunks=(100, size)).to_delayed().ravel().tolist()
        blocks = client.compute(blocks)
        queries = rng.integers(0, 256, size=(batch, size), dtype=np.uint8)
        pool = server_pool(client)

        fallbacks = {p: [] for p in paths}

        def search(path):
            index.fast_path = path == "actor"
            res = index.search(queries, 10)
            stats = index.last_search_stats
            if stats["path"] != path:  # a fast-path batch answered by tasks: kept, counted
                fallbacks[path].append(stats["fallback"])
            return res, stats

        def noop_tasks():
            client.gather(client.map(_noop, blocks, queries=queries, pure=False))

        def noop_servers():
            pool.call(client, [(addr, ("knn", [], (queries, 10))) for addr in pool.addresses])

        floors = {"dask_noop_map": noop_tasks, "server_noop_call": noop_servers}
        for _ in range(5):  # warm-up: kernels loaded, servers started, connections open
            reference = [search(p)[0] for p in paths][0]
            for fn in floors.values():
                fn()
        for p in paths:
            fallbacks[p].clear()
        load_before = os.getloadavg()
        pause = 0.2 if block > 1 else 0.0
        walls = {p: [] for p in paths}
        overheads = {p: [] for p in paths}
        computes = {p: [] for p in paths}
        floor_times = {name: [] for name in floors}
        for start in range(0, batches, block):
            n = min(block, batches - start)
            for p in paths:
                if pause:
                    time.sleep(pause)
                    search(p)  # untimed: every timed batch follows a batch of its kind
                for _ in range(n):
                    res, st = search(p)
                    if not (np.array_equal(res.ids, reference.ids)
                            and np.array_equal(res.distances, reference.distances)):
                        raise RuntimeError(f"the {p} path returned a different result")
                    walls[p].append(st["wall_seconds"])
                    computes[p].append(sum(st["shard_seconds"]))
                    # conservative: subtract only the longest shard (the compute on the
                    # critical path when each worker runs one shard; less than it otherwise)
                    overheads[p].append(st["wall_seconds"] - max(st["shard_seconds"]))
            for name, fn in floors.items():
                if pause:
                    time.sleep(pause)
                    fn()
                for _ in range(n):
                    t0 = time.perf_counter()
                    fn()
                    floor_times[name].append(time.perf_counter() - t0)
        row = {"n_shards": n_shards, "rows_per_shard": 100, "batch": batch, "batches": batches,
               "block": block, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
               "paths": {}}
        for p in paths:
            wall, wall90 = _ms(walls[p])
            over, over90 = _ms(overheads[p])
            row["paths"][p] = {"wall_ms_median": wall, "wall_ms_p90": wall90,
                               "shard_compute_ms_median": _ms(computes[p])[0],
                               "overhead_ms_median": over, "overhead_ms_p90": over90,
                               "fallbacks": fallbacks[p]}
        for name, values in floor_times.items():
            med, p90 = _ms(values)
            row[f"{name}_ms_median"], row[f"{name}_ms_p90"] = med, p90
        rows.append(row)
        index.reset()
        del blocks
    return rows


def print_overhead(rows):
    print(f"fan-out: batches of 100 queries, {rows[0]['batches']} per path, in blocks of "
          f"{rows[0]['block']}")
    print(f"{'fan-out overhead, batch of 100':<32}{'path':>7}{'wall ms':>9}{'p90':>7}"
          f"{'compute ms':>12}{'overhead ms':>13}{'p90':>7}{'fallbacks':>11}   load")
    for row in rows:
        label = f"{row['n_shards']} shards x {row['rows_per_shard']} codes"
        load = f"{row['loadavg_before'][0]:.2f}->{row['loadavg_after'][0]:.2f}"
        for p, r in row["paths"].items():
            print(f"{label:<32}{p:>7}{r['wall_ms_median']:>9.2f}{r['wall_ms_p90']:>7.2f}"
                  f"{r['shard_compute_ms_median']:>12.2f}"
                  f"{r['overhead_ms_median']:>13.2f}{r['overhead_ms_p90']:>7.2f}"
                  f"{len(r['fallbacks']):>11}   {load}")
        print(f"{'':<32}{'floors':>7}  dask no-op map+gather {row['dask_noop_map_ms_median']:.2f}"
              f" ms (p90 {row['dask_noop_map_ms_p90']:.2f}); no-op shard-server call "
              f"{row['server_noop_call_ms_median']:.2f} ms (p90 "
              f"{row['server_noop_call_ms_p90']:.2f})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="rows (default 10M)")
    ap.add_argument("--d", type=int, default=64, help="dimensions (default 64)")
    ap.add_argument("--n-bits", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=500_000, help="rows per block = per shard")
    ap.add_argument("--n-samples", type=int, default=100_000, help="rows sampled to fit ITQ")
    ap.add_argument("--n-queries", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed encodings and search batches (median)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--overhead-batches", type=int, default=50)
    ap.add_argument("--overhead-shards", type=int, nargs="+", default=None,
                    help="shard counts of the fan-out part (default: --workers and 16)")
    ap.add_argument("--paths", choices=["both", "actor", "tasks"], default="both",
                    help="search paths timed in the fan-out part (default both, interleaved)")
    ap.add_argument("--overhead-block", type=int, default=10,
                    help="consecutive batches per path in the fan-out part (1: alternate "
                         "every batch)")
    ap.add_argument("--only-fanout", action="store_true",
                    help="run only the fan-out overhead part (no data, seconds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON path")
    args = ap.parse_args(argv)
    paths = ("actor", "tasks") if args.paths == "both" else (args.paths,)
    shard_counts = args.overhead_shards or [args.workers, 16]

    import dask.array as da
    from distributed import Client, LocalCluster, wait
    from threadpoolctl import threadpool_limits

    from ordhash.distributed import ShardedHammingIndex, encode, fit_sample
    from ordhash.index import HammingIndex
    from ordhash.learners import ITQ

    load_before = os.getloadavg()
    result = {"command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "environment": environment(), "loadavg_before": load_before}
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
          f" on {os.cpu_count()} cores")

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                           processes=True, dashboard_address=None)
    client = Client(cluster)
    if args.only_fanout:
        try:
            overhead = fanout_overhead(client, args.n_bits, shard_counts, 100,
                                       args.overhead_batches, args.seed, paths,
                                       args.overhead_block)
        finally:
            client.close()
            cluster.close()
        result.update({"fanout_overhead": overhead, "loadavg_after": os.getloadavg()})
        print()
        print_overhead(overhead)
        out = args.out or RESULTS / "distributed_fanout.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
        return result
    try:
        n, d = args.n, args.d
        X = da.random.default_rng(args.seed).standard_normal((n, d), chunks=(args.chunk, d),
                                                             dtype=np.float32)
        t0 = time.perf_counter()
        X = X.persist()
        wait(X)
        t_gen = time.perf_counter() - t0

        # one BLAS thread for the fit: on a busy 2-core machine multi-threaded OpenBLAS made
        # ITQ's many small products about 10x slower (56 s instead of 6 s for 100k x 64)
        t0 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            learner = fit_sample(ITQ(n_bits=args.n_bits, random_state=args.seed), X,
                                 n_samples=args.n_samples, random_state=args.seed)
        t_fit = time.perf_counter() - t0

        encode(learner, X[: 2 * args.chunk]).compute()  # warm-up on the workers
        enc_times = []
        for r in range(args.repeats):
            if r:
                del codes  # release the previous codes before encoding again
            t0 = time.perf_counter()
            codes = encode(learner, X).persist()
            wait(codes)
            enc_times.append(time.perf_counter() - t0)
        t_enc = float(np.median(enc_times))

        # single process: the same blocks, one at a time, transform timed alone
        t_single_enc, parts = 0.0, []
        learner.transform(X.blocks[0].compute()[:1000])
        for i in range(X.numblocks[0]):
            block = X.blocks[i].compute()
            t, out = timed(lambda: learner.transform(block), min(3, args.repeats))
            parts.append(out)
            t_single_enc += t
            del block
        single_codes = np.concatenate(parts)
        del parts
        codes_equal = bool(np.array_equal(single_codes, codes.compute()))

        t0 = time.perf_counter()
        index = ShardedHammingIndex(args.n_bits, client=client)
        index.add(codes)
        t_build = time.perf_counter() - t0
        del codes
        del X

        rng = np.random.default_rng(args.seed + 1)
        queries = learner.transform(rng.standard_normal((args.n_queries, d)).astype(np.float32))
        single = HammingIndex(args.n_bits)
        single.add(single_codes)
        index.search(queries[:10], args.k)  # warm-up on the workers
        single.search(queries[:10], args.k)  # warm-up (JIT / cache load)
        # interleaved, so that both paths see the same background load (shared machine)
        t_sharded, t_single, shard_compute = [], [], []
        for _ in range(args.repeats):
            t, res_sharded = timed(lambda: index.search(queries, args.k), 1)
            t_sharded.append(t)
            shard_compute.append(sum(index.last_search_stats["shard_seconds"]))
            t, res_single = timed(lambda: single.search(queries, args.k), 1)
            t_single.append(t)
        t_sharded, t_single = float(np.median(t_sharded)), float(np.median(t_single))
        shard_compute = float(np.median(shard_compute))
        same = bool(np.array_equal(res_sharded.ids, res_single.ids)
                    and np.array_equal(res_sharded.distances, res_single.distances))
        n_shards = index.n_shards
        index.reset()
        del single, single_codes

        overhead = fanout_overhead(client, args.n_bits, shard_counts, 100,
                                   args.overhead_batches, args.seed, paths, args.overhead_block)
    finally:
        client.close()
        cluster.close()

    load_after = os.getloadavg()
    result.update({
        "generate_seconds": t_gen,
        "fit_sample_seconds": t_fit,
        "encode": {"distributed_seconds": t_enc, "distributed_seconds_all": enc_times,
                   "distributed_rows_per_s": n / t_enc,
                   "single_process_seconds": t_single_enc,
                   "single_process_rows_per_s": n / t_single_enc,
                   "speedup": t_single_enc / t_enc, "codes_identical": codes_equal},
        "search": {"n_shards": n_shards, "build_seconds": t_build, "n_queries": args.n_queries,
                   "k": args.k, "sharded_seconds": t_sharded,
                   "sharded_qps": args.n_queries / t_sharded,
                   "sharded_shard_compute_seconds_sum": shard_compute,
                   "single_seconds": t_single, "single_qps": args.n_queries / t_single,
                   "speedup": t_single / t_sharded, "results_identical": same},
        "fanout_overhead": overhead,
        "loadavg_after": load_after,
    })

    w = args.workers
    print()
    print(f"n={n:,} d={d} n_bits={args.n_bits} chunk={args.chunk:,} "
          f"cluster={w}x{args.threads_per_worker} thread(s)")
    print(f"generate on workers {t_gen:6.2f} s   fit_sample({args.n_samples:,}) {t_fit:6.2f} s")
    print()
    print(f"{'task':<34}{'distributed':>16}{'single process':>18}{'speedup':>10}")
    e, s = result["encode"], result["search"]
    print(f"{'encode rows/s':<34}{e['distributed_rows_per_s']:>16,.0f}"
          f"{e['single_process_rows_per_s']:>18,.0f}{e['speedup']:>10.2f}")
    print(f"{f'search QPS (nq={args.n_queries}, k={args.k})':<34}{s['sharded_qps']:>16,.0f}"
          f"{s['single_qps']:>18,.0f}{s['speedup']:>10.2f}")
    print(f"codes identical: {e['codes_identical']}   search results identical: "
          f"{s['results_identical']}   shards: {s['n_shards']}")
    print()
    print_overhead(overhead)
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")

    out = args.out or RESULTS / f"distributed_n{n}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
