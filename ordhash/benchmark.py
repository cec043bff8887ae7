"""The retrieval benchmark: learners x code lengths x datasets, on the bundled real data.

This is the library's main job (``ordhash bench``). For every dataset, learner and code
length it fits the learner on the database, encodes database and queries, and measures
(``protocol-and-anchors.md`` §1):

- ``map``: Hamming-ranking mAP against the top-2% Euclidean ground truth, ties expected;
- ``map_index_ties``: the same with ties broken by database index (MATLAB ``sort``);
- ``precision@100`` and ``precision_r2`` (precision within Hamming radius 2, empty ball = 0),
  ``recall_r2`` and ``empty_r2`` (fraction of queries whose radius-2 ball is empty);
- ``area_rp``: the area under the radius-swept PR curve that the OEH/OCH demos print as
  "mAP" (reported for reproduction only, under its own name);
- ``recall@10_rerank1000``: recall@10 (ann-benchmarks tolerance 1e-3) after re-ranking the
  1,000 nearest Hamming candidates (ties by index at the cut) by exact Euclidean distance;
- ``fit_s`` (wall seconds of ``fit``) and ``encode_per_s`` (vectors encoded per second).

Results go to a JSON file (one record per run, with versions, CPU and seeds), and two PNG
plots per dataset: mAP against bits and PR curves over Hamming radius.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import datasets as _datasets
from . import metrics as M
from .codes import hamming_distances
from .learners import LEARNERS

#: Loader of every dataset the benchmark knows, by name.
DATASETS = {
    "sift10k": _datasets.load_sift10k,
    "mnist": _datasets.load_mnist,
    "digits": _datasets.load_digits,
}
#: Datasets of a plain ``ordhash bench``.
DEFAULT_DATASETS = ("sift10k", "mnist")
#: Learners of a plain ``ordhash bench``, in report order.
DEFAULT_LEARNERS = ("LSH", "PCAH", "ITQ", "SH", "AGH", "SpH", "OEH", "OCH")
#: Code lengths of a plain ``ordhash bench``.
DEFAULT_BITS = (16, 32, 64)


@dataclass
class BenchConfig:
    """What to run. Every field has the default that ``ordhash bench`` uses.

    Parameters
    ----------
    datasets : tuple of str, default=("sift10k", "mnist")
        Keys of :data:`DATASETS`.
    learners : tuple of str, default=all eight learners
        Keys of :data:`ordhash.learners.LEARNERS`.
    bits : tuple of int, default=(16, 32, 64)
        Code lengths.
    gt_fraction : float, default=0.02
        Relevant set of a query: its exact top ``gt_fraction`` Euclidean neighbours.
    n_queries : int or None, default=None
        Evaluate a random subset of this many queries (``None``: all of them).
    n_train : int, default=10000
        Fit every learner on a random subset of this many database vectors.
    candidates : int, default=1000
        Hamming candidates re-ranked for ``recall@k_rerank<candidates>``.
    k : int, default=10
        ``k`` of that recall.
    radius : int, default=2
        Hamming radius of ``precision_r<radius>``, ``recall_r<radius>``, ``empty_r<radius>``.
    seed : int, default=0
        ``random_state`` of every learner and seed of the subsets.
    blas_threads : int or None, default=1
        BLAS threads during the runs (``None`` keeps the library default).
    out_dir : str, default="results"
        Folder of ``bench.json`` and the plots.
    plots : bool, default=True
        Write the PNG plots (needs matplotlib).
    progress : bool, default=True
        Show a progress bar (needs tqdm).
    learner_params : dict, default={}
        Extra constructor arguments per learner name, e.g. ``{"AGH": {"n_anchors": 500}}``.

    Examples
    --------
    >>> from ordhash.benchmark import BenchConfig
    >>> config = BenchConfig(datasets=("digits",), learners=("LSH", "ITQ"), bits=(16,))
    >>> config.gt_fraction, config.candidates
    (0.02, 1000)
    """

    datasets: tuple = DEFAULT_DATASETS
    learners: tuple = DEFAULT_LEARNERS
    bits: tuple = DEFAULT_BITS
    gt_fraction: float = 0.02
    n_queries: int | None = None
    n_train: int = 10_000
    candidates: int = 1000
    k: int = 10
    radius: int = 2
    seed: int = 0
    blas_threads: int | None = 1
    out_dir: str = "results"
    plots: bool = True
    progress: bool = True
    learner_params: dict = field(default_factory=dict)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment():
    """Library versions, CPU model and core count, recorded with every benchmark.

    Returns
    -------
    dict
        ``{"ordhash", "python", "numpy", "scipy", "scikit-learn", "numba", "faiss", "cpu",
        "cores"}``.

    Examples
    --------
    >>> from ordhash.benchmark import environment
    >>> env = environment()
    >>> sorted(env)[:3]
    ['cores', 'cpu', 'faiss']
    """
    import faiss
    import numba
    import scipy
    import sklearn

    from . import __version__

    return {
        "ordhash": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "numba": numba.__version__,
        "faiss": faiss.__version__,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }


def _progress(iterable, enabled, **kw):
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is an optional extra
            return iterable
        return tqdm(iterable, **kw)
    return iterable


@dataclass
class _Prepared:
    name: str
    base: np.ndarray
    queries: np.ndarray
    train: np.ndarray
    relevant: np.ndarray
    true_knn_dist: np.ndarray


def prepare(name, config):
    """Load a dataset and build its ground truth: top-p% relevance and exact k-NN distances.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    config : BenchConfig
        Uses ``seed``, ``n_queries``, ``n_train``, ``gt_fraction`` and ``k``.

    Returns
    -------
    prepared
        An object with ``name``, ``base``, ``queries``, ``train`` (the learners' training
        subset), ``relevant`` (boolean ``(n_queries, n_base)``) and ``true_knn_dist`` (exact
        ``k``-NN Euclidean distances), the input of :func:`run_one`.

    Examples
    --------
    >>> from ordhash.benchmark import BenchConfig, prepare
    >>> prep = prepare("digits", BenchConfig(n_queries=50))
    >>> prep.queries.shape[0], prep.relevant.shape == (50, prep.base.shape[0])
    (50, True)
    """
    data = DATASETS[name]()
    base, queries = data.base, data.queries
    rng = np.random.default_rng(config.seed)
    if config.n_queries is not None and config.n_queries < len(queries):
        queries = queries[np.sort(rng.choice(len(queries), config.n_queries, replace=False))]
    if config.n_train < len(base):
        train = base[np.sort(rng.choice(len(base), config.n_train, replace=False))]
    else:
        train = base
    relevant = M.relevance_top_fraction(base, queries, config.gt_fraction)
    true_dist, _ = M.exact_knn(base, queries, config.k)
    return _Prepared(name, base, queries, train, relevant, true_dist)


def rerank_recall(query_codes, base_codes, queries, base, true_knn_dist, candidates, k,
                  distances=None):
    """Recall@k after exact Euclidean re-ranking of the top ``candidates`` Hamming neighbours.

    Candidates are the ``candidates`` smallest Hamming distances, ties broken by database index;
    they are re-ranked by exact Euclidean distance and the best ``k`` are scored with the
    ann-benchmarks tolerance (:func:`ordhash.metrics.knn_recall`).

    Parameters
    ----------
    query_codes : ndarray of shape (n_queries, code_size), dtype uint8
    base_codes : ndarray of shape (n_base, code_size), dtype uint8
    queries : ndarray of shape (n_queries, d)
    base : ndarray of shape (n_base, d)
    true_knn_dist : ndarray of shape (n_queries, >= k)
        Exact Euclidean distances of each query's nearest neighbours, ascending.
    candidates : int
        Hamming candidates per query (capped at ``n_base``).
    k : int
        Neighbours returned and scored.
    distances : ndarray of shape (n_queries, n_base), optional
        Precomputed Hamming distances between ``query_codes`` and ``base_codes``.

    Returns
    -------
    float
        Mean recall@k over the queries.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.benchmark import rerank_recall
    >>> from ordhash.learners import LSH
    >>> from ordhash.metrics import exact_knn
    >>> rng = np.random.default_rng(0)
    >>> base = rng.standard_normal((500, 16)).astype(np.float32)
    >>> queries = rng.standard_normal((5, 16)).astype(np.float32)
    >>> lsh = LSH(n_bits=16, random_state=0).fit(base)
    >>> true_dist, _ = exact_knn(base, queries, 10)
    >>> rerank_recall(lsh.transform(queries), lsh.transform(base), queries, base, true_dist,
    ...               candidates=500, k=10)   # every vector re-ranked: exact
    1.0
    """
    if distances is None:
        distances = hamming_distances(query_codes, base_codes)
    n = base.shape[0]
    c = min(candidates, n)
    base64 = base.astype(np.float64, copy=False)
    base_sq = np.einsum("ij,ij->i", base64, base64)
    returned = np.empty((queries.shape[0], k), dtype=np.float64)
    # bound the gathered (queries, candidates, dim) block to about 64 MB
    step = max(1, (64 << 20) // (8 * c * base.shape[1]))
    for lo in range(0, queries.shape[0], step):
        hi = min(lo + step, queries.shape[0])
        # stable order by (distance, index): partition on the key distance * n + index
        key = distances[lo:hi].astype(np.int64) * n + np.arange(n)
        cand = np.argpartition(key, c - 1, axis=1)[:, :c]
        q = queries[lo:hi].astype(np.float64)
        dots = np.einsum("qcd,qd->qc", base64[cand], q)
        sq = base_sq[cand] - 2.0 * dots + np.einsum("qd,qd->q", q, q)[:, None]
        exact = np.sqrt(np.maximum(sq, 0.0))
        returned[lo:hi] = np.sort(exact, axis=1)[:, :k]
    return M.knn_recall(returned, true_knn_dist, k)


def run_one(prep, learner_name, n_bits, config):
    """Fit, encode and evaluate one learner at one code length on a prepared dataset.

    Parameters
    ----------
    prep : object returned by :func:`prepare`
    learner_name : str
        A key of :data:`ordhash.learners.LEARNERS`.
    n_bits : int
        Code length.
    config : BenchConfig
        Uses ``seed``, ``learner_params``, ``radius``, ``candidates``, ``k`` and
        ``gt_fraction``.

    Returns
    -------
    dict
        One JSON-able record: the learner's parameters, sizes, timings, every metric listed
        in the module docstring and the PR curve over Hamming radius.

    Examples
    --------
    >>> from ordhash.benchmark import BenchConfig, prepare, run_one
    >>> config = BenchConfig(n_queries=50)
    >>> record = run_one(prepare("digits", config), "LSH", 16, config)
    >>> record["learner"], record["n_bits"], 0.0 <= record["map"] <= 1.0
    ('LSH', 16, True)
    """
    params = dict(config.learner_params.get(learner_name, {}))
    learner = LEARNERS[learner_name](n_bits=n_bits, random_state=config.seed, **params)
    t0 = time.perf_counter()
    learner.fit(prep.train)
    fit_s = time.perf_counter() - t0
    encode_s = float("inf")
    for _ in range(3):  # encoding is fast: keep the best of three passes
        t0 = time.perf_counter()
        base_codes = learner.transform(prep.base)
        encode_s = min(encode_s, time.perf_counter() - t0)
    query_codes = learner.transform(prep.queries)

    distances = hamming_distances(query_codes, base_codes)
    stats = M.radius_stats(distances, prep.relevant, config.radius)
    precision, recall, radii = M.pr_curve_hamming(distances, prep.relevant)
    record = {
        "dataset": prep.name,
        "learner": learner_name,
        "n_bits": n_bits,
        "params": {k: v for k, v in learner.get_params().items() if _jsonable(v)},
        "n_base": int(prep.base.shape[0]),
        "n_queries": int(prep.queries.shape[0]),
        "n_train": int(prep.train.shape[0]),
        "ground_truth": f"top{config.gt_fraction:g} euclidean",
        "seed": config.seed,
        "fit_s": fit_s,
        "encode_per_s": prep.base.shape[0] / encode_s if encode_s > 0 else float("inf"),
        "map": float(M.map_hamming_ranking(distances, prep.relevant, ties="expected")),
        "map_index_ties": float(M.map_hamming_ranking(distances, prep.relevant, ties="index")),
        "precision@100": float(M.precision_at_k(distances, prep.relevant, 100)),
        f"precision_r{config.radius}": float(stats.precision),
        f"recall_r{config.radius}": float(stats.recall),
        f"empty_r{config.radius}": float(stats.empty_fraction),
        "area_rp": float(M.area_rp_hamming(distances, prep.relevant)),
        f"recall@{config.k}_rerank{config.candidates}": float(
            rerank_recall(query_codes, base_codes, prep.queries, prep.base, prep.true_knn_dist,
                          config.candidates, config.k, distances=distances)
        ),
        "pr_curve": {"radius": radii.tolist(), "precision": precision.tolist(),
                     "recall": recall.tolist()},
    }
    return record


def _jsonable(v):
    return v is None or isinstance(v, (bool, int, float, str))


#: Columns (record key, format) of the printed table, see :func:`format_table`.
TABLE_COLUMNS = (
    ("dataset", "{}"), ("learner", "{}"), ("n_bits", "{}"), ("map", "{:.4f}"),
    ("precision@100", "{:.4f}"), ("precision_r2", "{:.4f}"), ("recall@10_rerank1000", "{:.4f}"),
    ("fit_s", "{:.2f}"), ("encode_per_s", "{:,.0f}"),
)


def format_table(records, columns=TABLE_COLUMNS, markdown=False):
    """Render records as an aligned text table (or a Markdown table).

    Parameters
    ----------
    records : list of dict
        Benchmark records (missing keys are shown as ``nan``).
    columns : sequence of (key, format) pairs, default=TABLE_COLUMNS
        Columns and their ``str.format`` patterns.
    markdown : bool, default=False
        Render a Markdown table instead of right-aligned text.

    Returns
    -------
    str

    Examples
    --------
    >>> from ordhash.benchmark import format_table
    >>> records = [{"learner": "ITQ", "n_bits": 32, "map": 0.4356}]
    >>> print(format_table(records, columns=[("learner", "{}"), ("n_bits", "{}"),
    ...                                      ("map", "{:.3f}")], markdown=True))
    | learner | n_bits | map |
    |---|---|---|
    | ITQ | 32 | 0.436 |
    """
    header = [c for c, _ in columns]
    rows = [[fmt.format(r.get(c, float("nan"))) for c, fmt in columns] for r in records]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def plot(records, out_dir):
    """Write ``map_vs_bits_<dataset>.png`` and ``pr_<dataset>_<bits>.png``; returns the paths.

    Parameters
    ----------
    records : list of dict
        Records of :func:`run_one` (they need ``dataset``, ``learner``, ``n_bits``, ``map``
        and ``pr_curve``).
    out_dir : str or Path
        Existing folder the PNG files are written to.

    Returns
    -------
    list of Path

    Examples
    --------
    >>> import tempfile
    >>> from ordhash.benchmark import plot
    >>> records = [{"dataset": "toy", "learner": name, "n_bits": 32, "map": m,
    ...             "pr_curve": {"recall": [0.1, 1.0], "precision": [0.9, 0.1]}}
    ...            for name, m in [("LSH", 0.2), ("ITQ", 0.4)]]
    >>> with tempfile.TemporaryDirectory() as out:
    ...     print(sorted(p.name for p in plot(records, out)))
    ['map_vs_bits_toy.png', 'pr_toy_32.png']
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for ds in sorted({r["dataset"] for r in records}):
        recs = [r for r in records if r["dataset"] == ds]
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in dict.fromkeys(r["learner"] for r in recs):
            rs = sorted((r for r in recs if r["learner"] == name), key=lambda r: r["n_bits"])
            ax.plot([r["n_bits"] for r in rs], [r["map"] for r in rs], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ticks = sorted({r["n_bits"] for r in recs})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("bits")
        ax.set_ylabel("mAP (Hamming ranking, top-2% GT)")
        ax.set_title(f"{ds}: mAP vs code length")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        path = Path(out_dir) / f"map_vs_bits_{ds}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
        for bits in sorted({r["n_bits"] for r in recs}):
            fig, ax = plt.subplots(figsize=(5, 4))
            for r in (r for r in recs if r["n_bits"] == bits):
                ax.plot(r["pr_curve"]["recall"], r["pr_curve"]["precision"], marker=".",
                        label=r["learner"])
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
            ax.set_title(f"{ds}, {bits} bits: PR over Hamming radius")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            path = Path(out_dir) / f"pr_{ds}_{bits}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
    return paths


def run(config=None, *, echo=print):
    """Run the benchmark, print the table, write JSON and plots. Returns the records.

    Parameters
    ----------
    config : BenchConfig, optional
        What to run; the default is the full ``ordhash bench``.
    echo : callable, default=print
        Receives the table and the progress messages.

    Returns
    -------
    list of dict
        One record per (dataset, learner, bits), as written to ``<out_dir>/bench.json``.

    Raises
    ------
    ValueError
        For an unknown learner or dataset name, or a code length that is not a positive int.

    Examples
    --------
    >>> import tempfile
    >>> from ordhash.benchmark import BenchConfig, run
    >>> with tempfile.TemporaryDirectory() as out:
    ...     config = BenchConfig(datasets=("digits",), learners=("LSH", "PCAH"), bits=(16,),
    ...                          n_queries=50, out_dir=out, plots=False, progress=False)
    ...     records = run(config, echo=lambda *args: None)
    >>> [(r["learner"], r["n_bits"]) for r in records]
    [('LSH', 16), ('PCAH', 16)]
    """
    config = config or BenchConfig()
    unknown = [n for n in config.learners if n not in LEARNERS]
    if unknown:
        raise ValueError(f"unknown learner(s) {unknown}; choose from {sorted(LEARNERS)}")
    unknown = [d for d in config.datasets if d not in DATASETS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {sorted(DATASETS)}")
    bad = [b for b in config.bits if not isinstance(b, (int, np.integer)) or b < 1]
    if bad:
        raise ValueError(f"bits must be positive integers, got {bad}")
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    records = []
    jobs = [(d, l, b) for d in config.datasets for l in config.learners for b in config.bits]
    prepared = {}
    # Small fits run BLAS single-threaded by default: multi-threaded OpenBLAS on a 2-core
    # machine with any other load (or Numba's spinning OpenMP workers) was measured 10-15x
    # slower on ITQ/PCA fits than one thread. ``blas_threads=None`` keeps the library default.
    limit = (threadpool_limits(config.blas_threads, user_api="blas")
             if config.blas_threads is not None else contextlib.nullcontext())
    with limit:
        for ds, learner, bits in _progress(jobs, config.progress, desc="ordhash bench",
                                           unit="run"):
            if ds not in prepared:
                prepared = {ds: prepare(ds, config)}  # one dataset in memory at a time
            records.append(run_one(prepared[ds], learner, bits, config))
    total_s = time.perf_counter() - t_start
    echo(format_table(records))
    echo(f"\n{len(records)} runs in {total_s:.1f} s")
    result = {"environment": environment(), "config": _config_json(config),
              "total_s": total_s, "records": records}
    json_path = out_dir / "bench.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, json_path)
    echo(f"wrote {json_path}")
    if config.plots:
        try:
            paths = plot(records, out_dir)
        except ImportError:
            echo("matplotlib is not installed: no plots (pip install 'ordhash[bench]')")
        else:
            echo(f"wrote {len(paths)} plots to {out_dir}/")
    return records


def _config_json(config):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()}
