"""The work behind ``ordhash fit``, ``encode``, ``build``, ``search`` and ``info PATH``.

:mod:`ordhash.cli` parses the command line and calls one ``run_*`` function with the parsed
arguments. Errors a user can fix (missing file, wrong shape, bad option) are raised as
``ValueError``/``TypeError``/``OSError`` with a message naming the file or option; the caller
turns them into one line on stderr and exit code 2.
"""

from __future__ import annotations

import ast
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from . import persist
from ._cli_io import (
    ArrayWriter,
    blocks,
    check_output,
    describe,
    open_array,
    progress,
    read_ids,
)

__all__ = ["run_fit", "run_encode", "run_build", "run_search", "describe_file",
           "parse_params", "resolve_learner"]

CODE_FORMATS = (".npy", ".hdf5", ".h5", ".bvecs", ".u8bin")
KNN_FORMATS = (".npz", ".hdf5", ".h5", ".npy", ".ivecs", ".ibin")
RANGE_FORMATS = (".npz", ".hdf5", ".h5")
DIST_FORMATS = (".npy", ".fvecs", ".fbin")
_SELF_CONTAINED = (".npz", ".hdf5", ".h5")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _echo(message):
    print(message, file=sys.stderr)


# ------------------------------------------------------------------------------------------
# learners and their parameters
# ------------------------------------------------------------------------------------------

def resolve_learner(name):
    """The learner class called ``name`` (case-insensitive) in :data:`ordhash.learners.LEARNERS`."""
    from .learners import LEARNERS

    by_lower = {key.lower(): cls for key, cls in LEARNERS.items()}
    cls = by_lower.get(name.lower())
    if cls is None:
        raise ValueError(f"unknown learner {name!r}; choose one of: {', '.join(LEARNERS)}")
    return cls


def _parse_value(name, text, default):
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if isinstance(default, bool):
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"parameter {name} takes true or false, got {text!r}")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text  # a bare word such as kmeans or auto
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def parse_params(cls, items):
    """Turn ``["n_iter=20", "center=false"]`` into keyword arguments of ``cls``.

    Values are typed after the parameter's default (``true``/``false`` for booleans, numbers
    for numbers, ``none`` for ``None``) or parsed as Python literals; any other text is a
    string. An unknown name is an error that lists the valid ones.
    """
    defaults = cls().get_params(deep=False)
    tunable = sorted(p for p in defaults if p not in ("n_bits", "random_state"))
    params = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param takes NAME=VALUE, got {item!r}")
        if name == "n_bits":
            raise ValueError("set the code length with --bits, not --param n_bits=...")
        if name == "random_state":
            raise ValueError("set the seed with --seed, not --param random_state=...")
        if name not in defaults:
            raise ValueError(f"{cls.__name__} has no parameter {name!r}; its parameters are: "
                             f"{', '.join(tunable)}")
        if name in params:
            raise ValueError(f"parameter {name} is given twice")
        params[name] = _parse_value(name, text, defaults[name])
    return params


# ------------------------------------------------------------------------------------------
# shared helpers
# ------------------------------------------------------------------------------------------

def _check_model_output(spec, what):
    path = Path(spec)
    if path.is_dir():
        raise ValueError(f"{what} path {path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"directory of the {what} file does not exist: {parent}")
    return path


def _load(spec, what, *, mmap=False):
    # register every saveable class (ordhash.index loads its searcher module lazily)
    from . import learners  # noqa: F401
    from .index import flat, mih, searcher  # noqa: F401

    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{what} path {path} is a directory, not a file")
    return persist.load(path, mmap=mmap)


def _load_model(spec):
    from .index import HashingSearcher
    from .learners import BaseHasher

    obj = _load(spec, "model")
    if isinstance(obj, HashingSearcher):
        return obj.learner_
    if not isinstance(obj, BaseHasher):
        raise ValueError(f"{spec} holds a {type(obj).__name__}, not a fitted learner "
                         "(make a model with `ordhash fit`)")
    return obj


def _floats(block, name, start, rows=None):
    """``block`` as float32, refusing NaN/inf; ``start`` (or ``rows``) gives file row numbers."""
    X = np.asarray(block, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        row = start + first if rows is None else int(rows[first])
        raise ValueError(f"{name}: row {row} contains NaN or infinity; vectors must be finite")
    return X


def _check_dim(src, name, model_or_d, role="model"):
    d = model_or_d if isinstance(model_or_d, int) else int(model_or_d.n_features_in_)
    if src.shape[1] != d:
        raise ValueError(f"{name} has vectors of dimension {src.shape[1]}, but the {role} "
                         f"expects dimension {d}")


def _encode(model, src, name, batch, bar, out=None):
    """Codes of every row of ``src``, encoded in blocks of ``batch`` rows."""
    n = src.shape[0]
    codes = np.empty((n, int(model.code_size_)), np.uint8) if out is None else out
    for a, b in blocks(n, batch):
        codes[a:b] = model.transform(_floats(src[a:b], name, a))
        bar.update(b - a)
    return codes


def _read_codes(src, name, n_bits=None, *, code_size=None):
    """Packed codes and their bit count, from ``uint8`` bytes or ``{0,1}`` bool bits."""
    from .codes import pack_bits

    arr = np.asarray(src[...])
    if arr.dtype == bool:
        if n_bits is not None and n_bits != arr.shape[1]:
            raise ValueError(f"{name} holds {arr.shape[1]} bits per row, but {n_bits} bits "
                             "were expected")
        return pack_bits(arr), arr.shape[1]
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} holds {arr.dtype} values, but packed codes are uint8 bytes "
                        "(to encode float vectors, pass the model with -m MODEL)")
    size = arr.shape[1]
    if code_size is not None and size != code_size:
        raise ValueError(f"{name} has {size} bytes per code, but the index holds "
                         f"{code_size}-byte codes")
    if n_bits is None:
        n_bits = 8 * size
    elif not 8 * size - 7 <= n_bits <= 8 * size:
        raise ValueError(f"{n_bits} bits do not fit the {size} bytes per code of {name} "
                         f"(expected {8 * size - 7}..{8 * size} bits)")
    spare = 8 * size - n_bits
    if spare and arr.shape[0] and (arr[:, -1] >> (8 - spare)).any():
        raise ValueError(f"{name} has bits set beyond bit {n_bits - 1}: with {n_bits}-bit "
                         f"codes the {spare} high bits of the last byte must be zero")
    return np.ascontiguousarray(arr), n_bits


def _blas_limit(n):
    if n == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n, user_api="blas")


def set_threads(n):
    """Threads for the numba kernels and faiss (``None``: leave the defaults)."""
    if n is None:
        return
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    import faiss
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    faiss.omp_set_num_threads(n)


# ------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------

def run_fit(args):
    """``ordhash fit``: fit a learner on (a sample of) a vector file and save it."""
    cls = resolve_learner(args.learner)
    params = parse_params(cls, args.param)
    if args.bits is not None:
        params["n_bits"] = args.bits
    params["random_state"] = args.seed
    learner = cls(**params)
    learner._validate_params()
    out = _check_model_output(args.output, "model")
    if args.blas_threads < 0:
        raise ValueError(f"--blas-threads must be >= 0, got {args.blas_threads}")
    if args.sample is not None and args.sample < 2:
        raise ValueError(f"--sample must be >= 2, got {args.sample}")
    with open_array(args.input, "training vectors", default_key="train") as src:
        n, d = src.shape
        if args.sample is not None and args.sample < n:
            rows = np.sort(np.random.default_rng(args.seed).choice(n, args.sample, replace=False))
            X = _floats(src[rows], args.input, 0, rows)
        else:
            X = _floats(src[...], args.input, 0)
    if X.shape[0] < 2:
        raise ValueError(f"{args.input} has {X.shape[0]} rows; fitting needs at least 2")
    t0 = time.perf_counter()
    with _blas_limit(args.blas_threads):
        learner.fit(X)
    elapsed = time.perf_counter() - t0
    persist.save(learner, out)
    _echo(f"ordhash fit: {cls.__name__} with {learner.n_bits} bits on {X.shape[0]} x {d} "
          f"vectors in {elapsed:.2f} s -> {out}")
    return 0


def run_encode(args):
    """``ordhash encode``: encode a vector file block by block into a codes file."""
    set_threads(args.threads)
    _positive(args.batch_size, "--batch-size")
    check_output(args.output, "codes", CODE_FORMATS)
    model = _load_model(args.model)
    with open_array(args.input, "vectors", default_key="train") as src:
        _check_dim(src, args.input, model)
        n = src.shape[0]
        t0 = time.perf_counter()
        bar = progress(n, "encode", not args.no_progress)
        try:
            with ArrayWriter(args.output, "codes") as writer:
                out = writer.create("codes", (n, int(model.code_size_)), np.uint8)
                _encode(model, src, args.input, args.batch_size, bar, out)
        finally:
            bar.close()
    elapsed = time.perf_counter() - t0
    _echo(f"ordhash encode: {n} vectors -> {model.n_bits}-bit codes in {elapsed:.2f} s "
          f"({n / max(elapsed, 1e-9):,.0f} vectors/s) -> {args.output}")
    return 0


def _positive(value, option):
    if value < 1:
        raise ValueError(f"{option} must be >= 1, got {value}")


def _assemble_searcher(model, X, codes, ids, index_kind, metric, candidates, substrings):
    """A fitted :class:`HashingSearcher` from an already fitted learner (no refit): the state
    ``HashingSearcher.fit`` leaves, with the given learner instead of a refitted clone."""
    from sklearn.base import clone

    from .index import HashingSearcher, MultiIndexHashing
    from .index.searcher import _make_index

    searcher = HashingSearcher(clone(model), index=index_kind, metric=metric,
                               candidates=candidates)
    searcher._validate_params()
    if substrings is not None:
        index = MultiIndexHashing(int(model.n_bits), n_substrings=substrings)
    else:
        index = _make_index(index_kind, int(model.n_bits), None)
    searcher._attach(model, X, codes, index, ids)
    if isinstance(index, MultiIndexHashing):
        index.build()
    return searcher


def run_build(args):
    """``ordhash build``: a Hamming index (codes or encoded vectors) or a searcher, saved."""
    from .index import HammingIndex, MultiIndexHashing

    set_threads(args.threads)
    _positive(args.batch_size, "--batch-size")
    if args.substrings is not None and args.index != "mih":
        raise ValueError("--substrings applies to --index mih only")
    if args.searcher and args.model is None:
        raise ValueError("--searcher needs the model that encodes the vectors: -m MODEL")
    if not args.searcher and (args.metric is not None or args.candidates is not None):
        raise ValueError("--metric and --candidates apply to --searcher only")
    if args.model is not None and args.bits is not None:
        raise ValueError("--bits applies to codes input; with -m MODEL the model fixes the bits")
    out = _check_model_output(args.output, "index")
    model = _load_model(args.model) if args.model is not None else None
    what = "vectors" if model is not None else "codes"
    t0 = time.perf_counter()
    with open_array(args.input, what, default_key="train") as src:
        n = src.shape[0]
        ids = read_ids(args.ids, n) if args.ids is not None else None
        if model is None:
            codes, n_bits = _read_codes(src, args.input, args.bits)
        else:
            _check_dim(src, args.input, model)
            n_bits = int(model.n_bits)
            bar = progress(n, "encode", not args.no_progress)
            try:
                if args.searcher:
                    X = _floats(src[...], args.input, 0)
                    codes = _encode(model, X, args.input, args.batch_size, bar)
                else:
                    codes = _encode(model, src, args.input, args.batch_size, bar)
            finally:
                bar.close()
    if args.searcher:
        obj = _assemble_searcher(model, X, codes, ids, args.index, args.metric or "l2",
                                 100 if args.candidates is None else args.candidates,
                                 args.substrings)
    elif args.index == "mih":
        obj = MultiIndexHashing(n_bits, n_substrings=args.substrings)
        obj.add(codes, ids)
        obj.build()
    else:
        obj = HammingIndex(n_bits, backend="faiss" if args.index == "faiss" else "numba")
        obj.add(codes, ids)
    persist.save(obj, out)
    elapsed = time.perf_counter() - t0
    _echo(f"ordhash build: {type(obj).__name__} of {n} {n_bits}-bit codes in {elapsed:.2f} s "
          f"-> {out}")
    return 0


def _read_ground_truth(spec, n_queries, k):
    with open_array(spec, "ground truth", default_key="neighbors") as arr:
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{spec}: ground-truth neighbour ids must be integers, got "
                            f"{arr.dtype}")
        gt = np.asarray(arr[...], dtype=np.int64)
    if gt.shape[0] != n_queries:
        raise ValueError(f"{spec} has ground truth for {gt.shape[0]} queries, but there are "
                         f"{n_queries} queries")
    if gt.shape[1] < k:
        raise ValueError(f"{spec} has {gt.shape[1]} true neighbours per query; recall@{k} "
                         f"needs at least k={k}")
    return gt


def _query_source(obj, args):
    """How the queries are turned into a search: ``(kind, model, expected_dim)``."""
    from .index import HammingIndex, HashingSearcher, MultiIndexHashing

    if isinstance(obj, HashingSearcher):
        if args.model is not None:
            raise ValueError(f"{args.index} is a searcher with its own model; drop -m")
        if args.radius is not None:
            raise ValueError(f"{args.index} is a searcher, which answers k-NN queries only; "
                             "drop --radius (radius search needs a Hamming index)")
        return "searcher", obj.learner_, int(obj.n_features_in_)
    if not isinstance(obj, (HammingIndex, MultiIndexHashing)):
        raise ValueError(f"{args.index} holds a {type(obj).__name__}, not an index "
                         "(make one with `ordhash build`)")
    if args.candidates is not None:
        raise ValueError("--candidates applies to a searcher (built with --searcher)")
    if args.model is None:
        return "codes", None, None
    model = _load_model(args.model)
    if int(model.n_bits) != obj.n_bits:
        raise ValueError(f"model {args.model} makes {model.n_bits}-bit codes, but the index "
                         f"holds {obj.n_bits}-bit codes")
    return "vectors", model, int(model.n_features_in_)


def run_search(args):
    """``ordhash search``: k-NN or radius search of a query file; results and recall."""
    set_threads(args.threads)
    _positive(args.batch_size, "--batch-size")
    radius_mode = args.radius is not None
    k = None if radius_mode else (10 if args.k is None else args.k)
    if k is not None:
        _positive(k, "-k")
    if radius_mode and args.radius < 0:
        raise ValueError(f"--radius must be >= 0, got {args.radius}")
    if radius_mode and args.ground_truth is not None:
        raise ValueError("--ground-truth measures k-NN recall; it does not apply to --radius")
    formats = RANGE_FORMATS if radius_mode else KNN_FORMATS
    _, _, suffix = check_output(args.output, "results", formats,
                                multi=_is_multi(args.output))
    if args.distances is not None:
        if radius_mode or suffix in _SELF_CONTAINED:
            raise ValueError(f"--distances is for ids-only outputs (.npy, .ivecs, .ibin); "
                             f"{args.output} already holds the distances")
        check_output(args.distances, "distances", DIST_FORMATS)
    obj = _load(args.index, "index", mmap=True)
    kind, model, dim = _query_source(obj, args)
    if kind == "searcher":
        candidates = obj.candidates if args.candidates is None else args.candidates
        _positive(candidates, "--candidates")
        if k > candidates:
            raise ValueError(f"-k {k} exceeds --candidates {candidates}: re-ranking returns "
                             "neighbours among the candidates only; raise --candidates")
    with open_array(args.queries, "queries", default_key="test") as src:
        nq = src.shape[0]
        if dim is not None:
            _check_dim(src, args.queries, dim, "index" if kind == "searcher" else "model")
        gt = (_read_ground_truth(args.ground_truth, nq, k)
              if args.ground_truth is not None else None)
        if kind == "codes":
            src_rows, _ = _read_codes(src, args.queries, obj.n_bits, code_size=obj.code_size)
        else:
            src_rows = src

        def run(a, b):
            rows = src_rows[a:b]
            if kind == "searcher":
                return obj.search(_floats(rows, args.queries, a), k, candidates)
            q = model.transform(_floats(rows, args.queries, a)) if kind == "vectors" else rows
            return obj.range_search(q, args.radius) if radius_mode else obj.search(q, k)

        if nq:
            run(0, 1)  # warm up (kernel dispatch, thread pool, MIH tables) before timing
        t0 = time.perf_counter()
        bar = progress(nq, "search", not args.no_progress, unit="queries")
        parts = []
        try:
            for a, b in blocks(nq, args.batch_size):
                parts.append(run(a, b))
                bar.update(b - a)
        finally:
            bar.close()
    elapsed = time.perf_counter() - t0
    if radius_mode:
        _write_range(args.output, parts, nq)
        found = sum(int(p.lims[-1]) for p in parts)
        what = f"radius {args.radius}, {found} matches"
    else:
        ids = _concat([p.ids for p in parts], (0, k), np.int64)
        dist_dtype = np.float32 if kind == "searcher" else np.int32
        dist = _concat([p.distances for p in parts], (0, k), dist_dtype)
        _write_knn(args.output, args.distances, ids, dist)
        what = f"k={k}"
    _echo(f"ordhash search: {nq} queries, {what}, in {elapsed:.3f} s "
          f"({nq / max(elapsed, 1e-9):,.0f} queries/s) -> {args.output}")
    if gt is not None:
        from .metrics import knn_recall_ids

        recall = knn_recall_ids(ids, gt, k) if nq else float("nan")
        _echo(f"ordhash search: recall@{k} = {recall:.4f} (fraction of the {k} true neighbours "
              f"in {args.ground_truth} that were returned)")
    return 0


def _is_multi(spec):
    from ._cli_io import split_spec

    return split_spec(spec)[0].suffix.lower() in _SELF_CONTAINED


def _concat(arrays, empty_shape, dtype):
    if not arrays:
        return np.empty(empty_shape, dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)


def _write_knn(spec, dist_spec, ids, dist):
    with ArrayWriter(spec, "results") as writer:
        writer.write("neighbors", ids)
        if writer.suffix in _SELF_CONTAINED:
            writer.write("distances", dist)
        elif dist_spec is not None:
            with ArrayWriter(dist_spec, "distances") as dwriter:
                dwriter.write("distances", dist)


def _write_range(spec, parts, nq):
    lims = [np.zeros(1, np.int64)]
    offset = 0
    for p in parts:
        lims.append(np.asarray(p.lims[1:], np.int64) + offset)
        offset += int(p.lims[-1])
    with ArrayWriter(spec, "results") as writer:
        writer.write("lims", np.concatenate(lims))
        writer.write("neighbors", _concat([p.ids for p in parts], (0,), np.int64))
        writer.write("distances", _concat([p.distances for p in parts], (0,), np.int32))


# ------------------------------------------------------------------------------------------
# info PATH
# ------------------------------------------------------------------------------------------

def _short(value, limit=100):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_file(spec):
    """Lines describing a saved ordhash object or an array file."""
    path = Path(spec)
    if path.is_file():
        with open(path, "rb") as fh:
            is_ordhash = fh.read(len(persist.MAGIC)) == persist.MAGIC
        if is_ordhash:
            return _describe_saved(path)
    return describe(spec)


def _describe_saved(path):
    kind, version, meta, arrays = persist.read_state(path, mmap=True, verify=False)
    lines = [f"{'file':>14}: {path} (ordhash format {persist.FORMAT_VERSION}, "
             f"{path.stat().st_size:,} bytes)", f"{'kind':>14}: {kind} (version {version})"]
    if "params" in meta and "fitted" in meta:  # a learner
        lines += _learner_lines(meta)
    elif kind in ("ordhash.HammingIndex", "ordhash.MultiIndexHashing"):
        lines += _index_lines(kind, meta, arrays, "")
    elif kind == "ordhash.HashingSearcher":
        p = meta["params"]
        lines.append(f"{'vectors':>14}: {arrays['vectors'].shape[0]} x {meta['n_features_in']} "
                     f"float32")
        lines.append(f"{'metric':>14}: {p['metric']}, candidates={p['candidates']}, "
                     f"index={p['index']}")
        lines.append(f"{'learner':>14}: {meta['learner']['kind']}")
        lines += _learner_lines(meta["learner"]["meta"])
        lines += _index_lines(meta["index"]["kind"], meta["index"]["meta"], arrays, "index.")
    else:
        for name, arr in arrays.items():
            lines.append(f"{name:>14}: {arr.dtype} {arr.shape}")
    return lines


def _learner_lines(meta):
    params, fitted = meta["params"], meta["fitted"]
    lines = [f"{'n_bits':>14}: {params.get('n_bits')}"]
    if "n_features_in_" in fitted:
        lines.append(f"{'n_features':>14}: {fitted['n_features_in_']}")
    rest = {k: v for k, v in sorted(params.items()) if k != "n_bits"}
    lines.append(f"{'params':>14}: " + ", ".join(f"{k}={_short(v, 40)}" for k, v in rest.items()))
    return lines


def _index_lines(kind, meta, arrays, prefix):
    lines = [f"{'index':>14}: {kind.split('.')[-1]}, {meta['n_bits']} bits, "
             f"{arrays[prefix + 'ids'].shape[0]} codes"]
    if "backend" in meta:
        lines.append(f"{'backend':>14}: {meta['backend']}")
    if "n_substrings" in meta:
        tables = "built" if meta.get("tables") else "built on first search"
        lines.append(f"{'substrings':>14}: {meta['n_substrings'] or 'default'}; tables {tables}")
    return lines
