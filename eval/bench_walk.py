#!/usr/bin/env python
"""Benchmark: retrieval under a matching function by graph walk (NANN, spec-graph-walk §7).

For every dataset: coverage@M (overlap with the brute-force top-M under the same scorer) and,
with behavioural labels, recall-all / recall-retrieval / recall-Δ, against the share of the
corpus scored per query, for NANN beam retrieval (paper and serving frontier rules), the stock
HNSW best-first walk (SL2G) and brute force. Writes ``eval/results/walk_<dataset>.json`` and
``walk_<dataset>.png`` and prints a table.

Datasets
--------
``synthetic``  clustered 64-d item embeddings (default 1M items) and a random MLP scorer
               ``s(u, v) = u·v + 2·MLP([u, v])`` (spec §9); ``--n-items`` to run smaller.
``movielens``  MovieLens-100K (a local copy; never copied into the repository): NeuralMatcher
               trained with and without the adversarial flatness loss, seen items masked,
               last 10 ratings per user held out.
``taobao``     the Taobao UserBehavior head sample: loader and end-to-end smoke test only.

Usage::

    python eval/bench_walk.py synthetic --n-items 100000
    python eval/bench_walk.py synthetic                      # 1M items (HNSW build: minutes)
    python eval/bench_walk.py movielens [--path /path/to/ml-100k]
    python eval/bench_walk.py taobao [--path /path/to/UserBehavior.csv]
    python eval/bench_walk.py replot                         # redraw PNGs from the JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ordhash import persist
from ordhash.walk import (GraphWalkIndex, MaskedScorer, MLPScorer, NeuralMatcher,
                          ProximityGraph, coverage, recall_at, recall_delta)

RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------
def environment(threads):
    import faiss
    import numba
    import sklearn

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "numpy": np.__version__,
            "faiss": faiss.__version__, "numba": numba.__version__,
            "sklearn": sklearn.__version__, "cpu": cpu, "threads": threads,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def run_config(index, scorer, queries, k, exact_ids, label, method, options, *, repeats,
               relevant=None):
    """One sweep point: the fastest of ``repeats`` passes (results are deterministic)."""
    best = None
    for _ in range(repeats):
        res = index.search(scorer, queries, k, method=method, **options)
        if best is None or res.stats.total_seconds < best.stats.total_seconds:
            best = res
    st = best.stats
    nq = max(1, st.n_scored.size)
    row = {"label": label, "method": method, "params": best.params, **st.summary(),
           "coverage": coverage(best.ids, exact_ids),
           "ms_per_query": 1e3 * st.total_seconds / nq,
           "scorer_ms_per_query": 1e3 * st.scorer_seconds / nq}
    if relevant is not None:
        row["recall"] = recall_at(best.ids, relevant, M=k)
    return row


def interp_at(rows, frac):
    """Coverage of a sweep at ``frac`` scored (linear interpolation, clipped to the sweep)."""
    xs = np.array([r["frac_scored"] for r in rows])
    ys = np.array([r["coverage"] for r in rows])
    order = np.argsort(xs)
    return float(np.interp(frac, xs[order], ys[order]))


def print_table(title, rows, extra=()):
    cols = [("label", "{:<28}"), ("frac_scored", "{:>8.2%}"), ("frac_evaluated", "{:>8.2%}"),
            ("coverage", "{:>7.4f}"), *extra, ("n_calls", "{:>7.1f}"),
            ("scorer_calls", "{:>7d}"), ("ms_per_query", "{:>8.2f}"),
            ("overhead_fraction", "{:>6.1%}")]
    heads = {"frac_scored": "scored", "frac_evaluated": "evald", "coverage": "cover",
             "n_calls": "calls/q", "scorer_calls": "calls", "ms_per_query": "ms/q",
             "overhead_fraction": "walk%", "recall": "recall"}
    print(f"\n== {title}")
    print(" ".join(f"{heads.get(c, c):>{8 if c != 'label' else 28}}" for c, _ in cols))
    for r in rows:
        print(" ".join(f.format(r[c]) for c, f in cols))


def pareto(rows, key="coverage"):
    """Sweep points not dominated by one with less scored and at least as much ``key``."""
    front, best = [], -np.inf
    for r in sorted(rows, key=lambda r: (r["frac_scored"], -r[key])):
        if r[key] > best:
            front.append(r)
            best = r[key]
    return front


def plot(path, title, panels, xlabel="% of corpus scored per query", ylabel="coverage@M",
         key="coverage", hline=None):
    """One panel per ``(panel_title, [(name, rows, colour), ...])``: every sweep point as a
    marker, the Pareto frontier as a line (ann-benchmarks convention)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (sub, series) in zip(axes[0], panels):
        for name, rows, colour in series:
            ax.plot([100 * r["frac_scored"] for r in rows], [r[key] for r in rows], "o",
                    color=colour, alpha=0.35, ms=4)
            front = pareto(rows, key)
            ax.plot([100 * r["frac_scored"] for r in front], [r[key] for r in front], "-o",
                    color=colour, ms=4, label=name)
        if hline is not None:
            ax.axhline(hline, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(sub, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_synthetic(payload):
    n, d, k = payload["n_items"], payload["dim"], payload["k"]
    plot(RESULTS / f"walk_{payload['dataset']}.png",
         f"{n:,} items x {d}-d ({payload['data']}), random MLP scorer",
         [(f"coverage@{k} vs % scored (markers: all sweep points; lines: Pareto frontier)",
           [("NANN beam (paper rule)", payload["beam"], "tab:blue"),
            ("NANN beam (serving rule)", payload["serving"], "tab:orange"),
            ("HNSW best-first (SL2G)", payload["hnsw"], "tab:green")])],
         ylabel=f"coverage@{k}", hline=0.99)


def plot_movielens(payload):
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    k = payload["k"]
    panels = []
    for family, title in (("beam", "NANN beam"), ("hnsw", "HNSW best-first")):
        series = [(("no adv" if float(eps) == 0 else f"adv eps={eps} x RMS"), res[family],
                   colours[i % len(colours)])
                  for i, (eps, res) in enumerate(payload["runs"].items())]
        panels.append((f"{title}: coverage@{k} vs % scored", series))
    plot(RESULTS / "walk_movielens100k.png", "MovieLens-100K, NeuralMatcher (seen items masked)",
         panels, ylabel=f"coverage@{k}")


def replot():
    """Redraw every PNG from the JSON results (no search is run)."""
    for path in sorted(RESULTS.glob("walk_*.json")):
        payload = json.loads(path.read_text())
        if payload.get("dataset", "").startswith("synthetic"):
            plot_synthetic(payload)
        elif payload.get("dataset") == "movielens100k":
            plot_movielens(payload)
        else:
            continue
        print(f"redrew {path.with_suffix('.png')}")


def save_json(name, payload):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"walk_{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=float))
    return path


# ---------------------------------------------------------------------------------------------
# synthetic: 1M x 64-d, random MLP scorer
# ---------------------------------------------------------------------------------------------
def synthetic_corpus(n, d, n_queries, seed, kind="lowrank"):
    """Item embeddings and user vectors drawn from the same Gaussian mixture.

    ``lowrank`` (default): one cluster per 1000 items in a 16-d latent space (centres N(0, I),
    spread 0.5), mapped to ``d`` dimensions by a random linear map plus 0.1 isotropic noise --
    learned embeddings have a low intrinsic dimension. ``separated``: well separated clusters in
    ``d`` dimensions (spread 0.5; an easy case). ``overlap``: overlapping full-rank clusters
    (spread 1.0; a hard case for any proximity graph).
    """
    rng = np.random.default_rng(seed)
    n_clusters = max(16, n // 1000)
    total = n + n_queries
    if kind == "lowrank":
        latent = 16
        centers = rng.standard_normal((n_clusters, latent)).astype(np.float32)
        A = (rng.standard_normal((latent, d)) / np.sqrt(latent)).astype(np.float32)
        spread, noise = 0.5, 0.1
    else:
        centers = rng.standard_normal((n_clusters, d)).astype(np.float32)
        spread, noise = (0.5 if kind == "separated" else 1.0), 0.0
    out = np.empty((total, d), dtype=np.float32)
    for s in range(0, total, 1 << 17):
        e = min(total, s + (1 << 17))
        Z = centers[rng.integers(0, n_clusters, e - s)]
        Z = Z + spread * rng.standard_normal(Z.shape).astype(np.float32)
        if kind == "lowrank":
            Z = Z @ A + noise * rng.standard_normal((e - s, d)).astype(np.float32)
        out[s:e] = Z
    return out[:n], out[n:]


def bench_synthetic(args):
    n, d, k = args.n_items, args.dim, args.k
    print(f"synthetic ({args.data}): {n} items x {d}-d, {args.n_queries} queries, k={k}")
    X, Q = synthetic_corpus(n, d, args.n_queries, args.seed, args.data)
    scorer = MLPScorer.random(X, hidden=(args.hidden,), dot_weight=1.0, mlp_weight=2.0,
                              random_state=args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    cache = RESULTS / (f"walk_graph_{args.data}_n{n}_d{d}_M{args.M}"
                       f"_efc{args.ef_construction}_s{args.seed}.ordhash")
    graph = None
    if cache.is_file() and not args.rebuild:
        try:
            graph = ProximityGraph.load(cache)
            print(f"graph loaded from {cache} (built in {graph.build_seconds:.1f} s)")
        except persist.FormatError as exc:
            print(f"cached graph unusable, rebuilding: {exc}")
    if graph is None:
        t0 = time.perf_counter()
        graph = ProximityGraph.from_hnsw(X, M=args.M, ef_construction=args.ef_construction,
                                         n_threads=args.build_threads, random_state=args.seed)
        print(f"HNSW built in {time.perf_counter() - t0:.1f} s: {graph}")
        graph.save(cache)
    index = GraphWalkIndex(graph)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        exact = index.search(scorer, Q, k, method="exact")
        exact_row = {"label": "brute force", "method": "exact", **exact.stats.summary(),
                     "coverage": 1.0, "ms_per_query": 1e3 * exact.stats.total_seconds / len(Q),
                     "scorer_ms_per_query": 1e3 * exact.stats.scorer_seconds / len(Q)}
        beam_cfgs = [
            ("beam {50,100,200}/{1,1,2}", {"ef": {2: 50, 1: 100, 0: 200}, "T": {1: 1, 0: 2}}),
            ("beam {100,200,400}/{1,1,2}", {"ef": {2: 100, 1: 200, 0: 400}, "T": {1: 1, 0: 2}}),
            ("beam {100,200,400}/{1,1,3}", {}),
            ("beam {100,200,600}/{1,1,3}", {"ef": {2: 100, 1: 200, 0: 600}}),
            ("beam {100,200,800}/{1,1,3}", {"ef": {2: 100, 1: 200, 0: 800}}),
            ("beam {200,500,1000}/{1,1,2}", {"ef": {2: 200, 1: 500, 0: 1000},
                                              "T": {1: 1, 0: 2}}),
            ("beam {200,500,1000}/{1,1,3}", {"ef": {2: 200, 1: 500, 0: 1000}}),
        ]
        serving_cfgs = [
            ("serving [100,200,200x3,100]", {"variant": "serving", "ef": {2: 100, 1: 200, 0: 200},
                                             "frontier": (200, 200, 200)}),
            ("serving [100,200,400x3,100]", {"variant": "serving", "ef": {2: 100, 1: 200, 0: 400},
                                             "frontier": (400, 400, 400)}),
        ]
        hnsw_cfgs = [(f"hnsw ef={e}", {"ef_search": e})
                     for e in (100, 200, 400, 800, 1600, 3200, 6400)]
        rows = {"beam": [], "serving": [], "hnsw": []}
        for family, cfgs, method in (("beam", beam_cfgs, "beam"),
                                     ("serving", serving_cfgs, "beam"),
                                     ("hnsw", hnsw_cfgs, "hnsw")):
            for label, opts in cfgs:
                rows[family].append(run_config(index, scorer, Q, k, exact.ids, label, method,
                                               opts, repeats=args.repeats))
        # Walk overhead without cross-query batching (one query per block).
        per_query = run_config(index, scorer, Q, k, exact.ids, "beam default, 1 query/block",
                               "beam", {"query_batch": 1}, repeats=args.repeats)

    target = [r for r in rows["beam"] if r["frac_scored"] <= 0.02]
    best_beam = max(target, key=lambda r: r["coverage"]) if target else None
    summary = {}
    if best_beam is not None:
        summary = {"beam_label": best_beam["label"], "beam_coverage": best_beam["coverage"],
                   "beam_frac_scored": best_beam["frac_scored"],
                   "hnsw_coverage_same_budget": interp_at(rows["hnsw"],
                                                          best_beam["frac_scored"]),
                   "beam_overhead_fraction": best_beam["overhead_fraction"]}
    print_table(f"synthetic n={n} d={d}: coverage@{k}", rows["beam"] + rows["serving"]
                + rows["hnsw"] + [per_query, exact_row])
    if summary:
        print(f"\nbest beam within 2% scored: {summary['beam_label']}: coverage@{k} "
              f"{summary['beam_coverage']:.4f} at {summary['beam_frac_scored']:.2%}; best-first "
              f"walk at the same budget: {summary['hnsw_coverage_same_budget']:.4f}")
    name = f"synthetic_{args.data}_n{n}"
    payload = {"dataset": name, "data": args.data, "n_items": n, "dim": d, "k": k,
               "n_queries": len(Q),
               "scorer": f"u.v + 2*MLP([u,v]), hidden={args.hidden}, random (seed {args.seed})",
               "graph": {"M": args.M, "ef_construction": args.ef_construction,
                         "build_seconds": graph.build_seconds, "repr": repr(graph)},
               "environment": environment(args.threads), "exact": exact_row,
               "beam": rows["beam"], "serving": rows["serving"], "hnsw": rows["hnsw"],
               "beam_one_query_per_block": per_query, "summary": summary}
    path = save_json(name, payload)
    plot_synthetic(payload)
    print(f"wrote {path} and {path.with_suffix('.png')}")


# ---------------------------------------------------------------------------------------------
# MovieLens-100K
# ---------------------------------------------------------------------------------------------
def load_ml(path):
    try:
        from ordhash.datasets import load_movielens100k
    except ImportError:
        load_movielens100k = None
    if load_movielens100k is not None:
        ml = load_movielens100k(path)
        return (ml.users - 1, ml.items - 1, ml.timestamps, ml.item_genres.astype(np.float32),
                ml.n_items)
    folder = Path(path or "/work/shared/data/movielens-100k")
    if not (folder / "u.data").is_file():
        raise FileNotFoundError(f"MovieLens-100K u.data not found in {folder}")
    t = np.loadtxt(folder / "u.data", dtype=np.int64)
    return t[:, 0] - 1, t[:, 1] - 1, t[:, 3], None, int(t[:, 1].max())


def split_last(users, items, ts, n_test):
    """Per user, the ``n_test`` latest interactions are held out (ties by item id)."""
    order = np.lexsort((items, ts, users))
    u, it = users[order], items[order]
    counts = np.bincount(u)
    ends = np.cumsum(counts)
    rank_from_end = ends[u] - np.arange(u.size)          # 1 = latest
    test = rank_from_end <= n_test
    return (u[~test], it[~test]), (u[test], it[test])


def user_features(train_u, train_i, n_users, n_items, dim, seed):
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import TruncatedSVD

    A = csr_matrix((np.ones(train_u.size, np.float32), (train_u, train_i)),
                   shape=(n_users, n_items))
    A = A.multiply(1.0 / np.sqrt(np.maximum(A.sum(1), 1))).tocsr()
    F = TruncatedSVD(dim, random_state=seed).fit_transform(A).astype(np.float32)
    return F / F.std(axis=0, keepdims=True).clip(1e-6)


def bench_movielens(args):
    try:
        users, items, ts, genres, n_items = load_ml(args.path)
    except FileNotFoundError as exc:
        print(f"movielens: skipped -- {exc}")
        return None
    n_users = int(users.max()) + 1
    (tr_u, tr_i), (te_u, te_i) = split_last(users, items, ts, 10)
    F = user_features(tr_u, tr_i, n_users, n_items, args.query_dim, args.seed)
    seen = [tr_i[tr_u == u] for u in range(n_users)]
    relevant = [te_i[te_u == u] for u in range(n_users)]
    k = 50
    print(f"movielens: {users.size} ratings, {n_users} users, {n_items} items; "
          f"train {tr_u.size}, test {te_u.size}; k={k}")
    results = {}
    for eps in args.eps:
        t0 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            model = NeuralMatcher(embedding_dim=32, hidden=(64, 32), n_negatives=50,
                                  n_epochs=args.epochs, batch_size=256, learning_rate=3e-3,
                                  adv_eps=eps, random_state=args.seed)
            model.fit(F[tr_u], tr_i, item_features=genres, n_items=n_items)
        fit_s = time.perf_counter() - t0
        graph = ProximityGraph.from_hnsw(model.item_embeddings_, M=args.ml_M,
                                         ef_construction=40, random_state=args.seed)
        index = GraphWalkIndex(graph)
        scorer = MaskedScorer(model, seen)
        with threadpool_limits(limits=args.threads, user_api="blas"):
            exact = index.search(scorer, F, k, method="exact")
            r_all = recall_at(exact.ids, relevant, M=k)
            rows = []
            for ef0 in (50, 100, 200):
                for T0 in (2, 3, 4):
                    rows.append(run_config(index, scorer, F, k, exact.ids,
                                           f"beam ef0={ef0} T0={T0}", "beam",
                                           {"ef": {2: 16, 1: 32, 0: ef0}, "T": {1: 1, 0: T0}},
                                           repeats=1, relevant=relevant))
            hrows = [run_config(index, scorer, F, k, exact.ids, f"hnsw ef={e}", "hnsw",
                                {"ef_search": e}, repeats=1, relevant=relevant)
                     for e in (50, 75, 100, 200, 400)]
        for r in rows + hrows:
            r["recall_all"] = r_all
            r["recall_delta"] = recall_delta(r_all, r["recall"])
        print(f"\nNeuralMatcher adv_eps={eps}: fit {fit_s:.1f} s, loss "
              f"{model.loss_curve_[0]:.3f} -> {model.loss_curve_[-1]:.3f}; recall-all@{k} "
              f"{r_all:.4f}; graph {graph}")
        print_table(f"MovieLens-100K, adv_eps={eps}: coverage@{k}, recall@{k}",
                    rows + hrows, extra=[("recall", "{:>7.4f}"), ("recall_delta", "{:>7.2%}")])
        results[str(eps)] = {"adv_eps": eps, "fit_seconds": fit_s,
                             "loss_curve": model.loss_curve_, "aux_curve": model.aux_curve_,
                             "recall_all": r_all, "graph": repr(graph), "beam": rows,
                             "hnsw": hrows}
    payload = {"dataset": "movielens100k", "k": k, "split": "last 10 ratings per user held out",
               "query_features": f"TruncatedSVD({args.query_dim}) of the train user-item matrix",
               "model": "NeuralMatcher(embedding_dim=32, hidden=(64, 32), n_negatives=50, "
                        f"n_epochs={args.epochs}, item_features=genres)",
               "masking": "train items of each user score -inf (exact and walk alike)",
               "environment": environment(args.threads), "runs": results}
    path = save_json("movielens100k", payload)
    plot_movielens(payload)
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return payload


# ---------------------------------------------------------------------------------------------
# Taobao head sample: loader + smoke test
# ---------------------------------------------------------------------------------------------
def bench_taobao(args):
    try:
        from ordhash.datasets import load_taobao_sample

        tb = load_taobao_sample(args.path)
    except (ImportError, FileNotFoundError) as exc:
        print(f"taobao: skipped -- {exc}")
        return None
    _, u = np.unique(tb.user, return_inverse=True)
    item_ids, it = np.unique(tb.item, return_inverse=True)
    (tr_u, tr_i), (te_u, te_i) = split_last(u, it, tb.timestamp, 1)
    n_users, n_items = int(u.max()) + 1, item_ids.size
    F = user_features(tr_u, tr_i, n_users, n_items, min(16, n_users - 1), args.seed)
    model = NeuralMatcher(embedding_dim=16, hidden=(32,), n_negatives=20, n_epochs=2,
                          adv_eps=0.1, random_state=args.seed).fit(F[tr_u], tr_i,
                                                                   n_items=n_items)
    graph = ProximityGraph.from_hnsw(model.item_embeddings_, M=16, random_state=args.seed)
    index = GraphWalkIndex(graph)
    exact = index.search(model, F, 20, method="exact")
    beam = index.search(model, F, 20, ef={2: 16, 1: 32, 0: 100})
    relevant = [te_i[te_u == q] for q in range(n_users)]
    payload = {"dataset": "taobao_head_smoke", "rows": len(tb), "users": n_users,
               "items": n_items, "graph": repr(graph),
               "coverage@20": coverage(beam.ids, exact.ids), **beam.stats.summary(),
               "recall_all@20": recall_at(exact.ids, relevant),
               "recall_retrieval@20": recall_at(beam.ids, relevant),
               "note": "smoke test of loader + training + walk; too small for numbers"}
    print(f"taobao smoke test: {payload}")
    save_json("taobao_smoke", payload)
    return payload


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=["synthetic", "movielens", "taobao", "all", "replot"])
    ap.add_argument("--n-items", type=int, default=1_000_000)
    ap.add_argument("--data", choices=["lowrank", "separated", "overlap"], default="lowrank",
                    help="synthetic embedding distribution (see synthetic_corpus)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--n-queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--M", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads while searching")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true", help="ignore a cached synthetic graph")
    ap.add_argument("--path", default=None, help="dataset location (movielens / taobao)")
    ap.add_argument("--eps", type=float, nargs="+", default=[0.0, 0.03, 0.1, 0.3, 1.0],
                    help="adversarial eps values (relative to embedding RMS) for movielens")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--query-dim", type=int, default=32)
    ap.add_argument("--ml-M", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.dataset == "replot":
        replot()
        return 0
    if args.dataset in ("synthetic", "all"):
        bench_synthetic(args)
    if args.dataset in ("movielens", "all"):
        bench_movielens(args)
    if args.dataset in ("taobao", "all"):
        bench_taobao(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
