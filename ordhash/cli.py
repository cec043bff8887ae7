"""The ``ordhash`` command line.

* ``ordhash fit``: learn a hash function (any learner of :data:`ordhash.learners.LEARNERS`)
  from vectors in a file and save it.
* ``ordhash encode``: turn vectors into packed binary codes with a saved model.
* ``ordhash build``: build a Hamming index (or a searcher with exact re-ranking) and save it.
* ``ordhash search``: k-NN or radius search of query files, results to a file, optional recall.
* ``ordhash bench`` runs the retrieval benchmark on the bundled real data (SIFT 10k and MNIST):
  every learner at 16, 32 and 64 bits, with a table on screen, JSON results and PNG plots.
* ``ordhash info`` prints versions, the CPU, the Numba threading layer and where data is read
  from; ``ordhash info PATH`` describes a saved model, index or array file.

Files: ``.npy``, ``.npz``, texmex ``.fvecs/.ivecs/.bvecs``, big-ann ``.fbin/.ibin/.u8bin/
.i8bin`` and HDF5 (``file.hdf5:dataset``), see :mod:`ordhash._cli_io`. Errors a user can fix
print ``ordhash <command>: error: <message>`` and exit with status 2; unexpected failures exit
with status 1 (``--debug`` shows the traceback). See ``docs/cli.md``.

Importing this module is cheap: numpy, scikit-learn, numba and faiss are imported by the
command that needs them.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import traceback


def _csv(kind):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind}")
        if kind == "integers":
            try:
                return tuple(int(t) for t in items)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None
        return tuple(items)

    return parse


def _add_bench(sub, detailed=True):
    if not detailed:  # ``ordhash --help`` and other commands skip the heavy imports
        sub.add_parser("bench", help="run the retrieval benchmark on the bundled real data")
        return
    from .benchmark import DEFAULT_BITS, DEFAULT_DATASETS, DEFAULT_LEARNERS, DATASETS
    from .learners import LEARNERS

    p = sub.add_parser(
        "bench",
        help="run the retrieval benchmark on the bundled real data",
        description=(
            "Fit each learner on each dataset at each code length, then report Hamming-ranking "
            "mAP (top-2% Euclidean ground truth), precision@100, precision within Hamming "
            "radius 2, recall@10 after exact re-ranking of 1,000 Hamming candidates, fit time "
            "and encoding speed. Prints a table, writes OUT/bench.json and PNG plots."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--datasets", type=_csv("names"), default=",".join(DEFAULT_DATASETS),
                   help=f"comma-separated, from: {', '.join(sorted(DATASETS))}")
    p.add_argument("--learners", type=_csv("names"), default=",".join(DEFAULT_LEARNERS),
                   help=f"comma-separated, from: {', '.join(LEARNERS)}")
    p.add_argument("--bits", type=_csv("integers"), default=",".join(map(str, DEFAULT_BITS)),
                   help="comma-separated code lengths")
    p.add_argument("--n-queries", type=int, default=None,
                   help="use a random subset of this many queries (None: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for learners and subsets")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads during fits (0: leave the library default)")
    p.add_argument("--out", default="results", help="output directory")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_bench)


def _run_bench(args):
    from .benchmark import BenchConfig, run

    config = BenchConfig(
        datasets=args.datasets, learners=args.learners, bits=args.bits,
        n_queries=args.n_queries, seed=args.seed, out_dir=args.out,
        blas_threads=args.blas_threads if args.blas_threads > 0 else None,
        plots=not args.no_plots, progress=not args.no_progress,
    )
    run(config)
    return 0


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the paragraphs and examples of descriptions and epilogs as written."""


_VECTOR_FILES = ("vectors: .npy, .fvecs, .bvecs, .fbin/.u8bin/.i8bin, or HDF5 as "
                 "FILE.hdf5:DATASET")
_SHARED_HELP = """
Files: .npy, .npz, texmex .fvecs/.ivecs/.bvecs, big-ann .fbin/.ibin/.u8bin/.i8bin, HDF5
(.hdf5/.h5; pick a dataset with FILE.hdf5:NAME). Outputs are written to a temporary file and
renamed when complete, so a failed command never leaves a partial file.
Exit status: 0 success, 2 bad input or option (one-line message), 1 unexpected error
(rerun with --debug for the traceback)."""


def _debug_flag(p):
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="print the traceback of an error")


def _sub(sub, name, help, description, example):
    p = sub.add_parser(name, help=help, description=description,
                       epilog="example:\n  " + example + "\n" + _SHARED_HELP,
                       formatter_class=_Formatter)
    _debug_flag(p)
    return p


def _add_progress_and_threads(p, batch_help):
    p.add_argument("--batch-size", type=int, default=16384, metavar="N",
                   help=f"{batch_help} (default: 16384)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads of the numba and faiss kernels (default: all cores)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown on stderr only when that is a terminal)")


def _add_fit(sub, detailed=True):
    learners = "ITQ, PCAH, LSH, ..."
    epilog_params = ""
    if detailed:
        from .learners import LEARNERS

        learners = ", ".join(LEARNERS)
        rows = []
        for name, cls in LEARNERS.items():
            params = sorted(p for p in cls().get_params(deep=False)
                            if p not in ("n_bits", "random_state"))
            rows.append(textwrap.fill(f"{name}: {', '.join(params) or '(none)'}", width=88,
                                      initial_indent="  ", subsequent_indent="      "))
        epilog_params = "\n\nparameters of each learner (for --param):\n" + "\n".join(rows)
    p = _sub(
        sub, "fit", "learn a hash function from vectors and save it",
        "Learn a hash function (a scikit-learn style learner from ordhash.learners) on the\n"
        "vectors of INPUT and save the fitted model to -o MODEL (ordhash's pickle-free format).\n"
        "The model maps vectors to --bits-bit binary codes whose Hamming distances preserve\n"
        "neighbourhoods; use it with `ordhash encode`, `build` and `search`. Fitting on a\n"
        "random sample (--sample) is usually enough and much faster on large files."
        + epilog_params,
        "ordhash fit --learner ITQ --bits 64 sift_base.fvecs -o itq64.ordhash",
    )
    p.add_argument("input", metavar="INPUT", help=f"training {_VECTOR_FILES} (default "
                   "dataset of an HDF5 file: train)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="where to save the fitted model (e.g. itq64.ordhash)")
    p.add_argument("--learner", required=True, metavar="NAME",
                   help=f"the learner, one of: {learners} (case-insensitive)")
    p.add_argument("--bits", type=int, default=None, metavar="B",
                   help="code length in bits (default: the learner's default, 32)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a learner parameter, e.g. --param n_iter=20 (repeatable)")
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="fit on N rows drawn at random with --seed (default: every row)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the learner and of --sample (default: 0)")
    p.add_argument("--blas-threads", type=int, default=1, metavar="N",
                   help="BLAS threads during the fit; 0 leaves the library default (default: "
                   "1, which was up to 10x faster than multi-threaded BLAS on a busy machine)")
    p.set_defaults(func=_lazy("run_fit"))


def _add_encode(sub, detailed=True):
    p = _sub(
        sub, "encode", "turn vectors into packed binary codes with a saved model",
        "Encode every vector of INPUT with MODEL (from `ordhash fit`) and write the packed\n"
        "codes: one row of ceil(bits / 8) uint8 bytes per vector, bit j in byte j // 8 at\n"
        "position j % 8 (the faiss binary layout). INPUT is read and encoded in blocks of\n"
        "--batch-size rows and the codes are written as they come, so files larger than\n"
        "memory work with .npy, .fvecs/.bvecs, .u8bin or HDF5 inputs.",
        "ordhash encode -m itq64.ordhash sift_base.fvecs -o base_codes.npy",
    )
    p.add_argument("input", metavar="INPUT", help=f"{_VECTOR_FILES} (default dataset of an "
                   "HDF5 file: train)")
    p.add_argument("-m", "--model", required=True, metavar="MODEL", help="a model saved by fit")
    p.add_argument("-o", "--output", required=True, metavar="CODES",
                   help="codes file: .npy, .bvecs, .u8bin or .hdf5[:NAME] (dataset 'codes' "
                   "by default)")
    _add_progress_and_threads(p, "vectors encoded per block")
    p.set_defaults(func=_lazy("run_encode"))


def _add_build(sub, detailed=True):
    p = _sub(
        sub, "build", "build a Hamming index or a re-ranking searcher and save it",
        "Build an exact Hamming index over binary codes and save it to -o INDEX.\n"
        "INPUT holds packed uint8 codes (from `ordhash encode`), or float vectors when a\n"
        "model is given with -m (they are encoded first). --index flat scans all codes\n"
        "(numba, or faiss with --index faiss); --index mih is multi-index hashing, exact and\n"
        "faster when neighbours are near in Hamming distance.\n"
        "With --searcher (needs -m) the output is a searcher that also keeps the vectors:\n"
        "its search takes --candidates Hamming neighbours and re-ranks them by exact\n"
        "distance, which gives much better neighbours than the codes alone.",
        "ordhash build -m itq64.ordhash --searcher sift_base.fvecs -o sift.searcher",
    )
    p.add_argument("input", metavar="INPUT", help="codes (.npy, .bvecs, .u8bin, HDF5; {0,1} "
                   "bool bits are packed), or vectors with -m")
    p.add_argument("-o", "--output", required=True, metavar="INDEX",
                   help="where to save the index (e.g. sift.index)")
    p.add_argument("-m", "--model", default=None, metavar="MODEL",
                   help="a model from fit: INPUT holds vectors to encode")
    p.add_argument("--index", choices=("flat", "faiss", "mih"), default="flat",
                   help="flat: full scan (numba); faiss: full scan by faiss IndexBinaryFlat; "
                   "mih: multi-index hashing (default: flat)")
    p.add_argument("--substrings", type=int, default=None, metavar="M",
                   help="substrings of --index mih, also with --searcher (default: chosen from the "
                   "number of codes)")
    p.add_argument("--bits", type=int, default=None, metavar="B",
                   help="bits per code of a codes INPUT when less than 8 x bytes")
    p.add_argument("--ids", default=None, metavar="IDS",
                   help="non-negative integer ids of the rows (1-D .npy, .ivecs...; "
                   "default: 0..n-1)")
    p.add_argument("--searcher", action="store_true",
                   help="build a searcher (codes + vectors, exact re-ranking); needs -m")
    p.add_argument("--metric", choices=("l2", "ip"), default=None,
                   help="re-ranking metric of --searcher: l2 distance or inner product "
                   "(default: l2)")
    p.add_argument("--candidates", type=int, default=None, metavar="C",
                   help="default Hamming candidates re-ranked per query by --searcher "
                   "(default: 100)")
    _add_progress_and_threads(p, "vectors encoded per block")
    p.set_defaults(func=_lazy("run_build"))


def _add_search(sub, detailed=True):
    p = _sub(
        sub, "search", "search an index with a file of queries",
        "Find the -k nearest neighbours (or, with --radius R, every code within Hamming\n"
        "distance R, inclusive) of every query of QUERIES in INDEX (from `ordhash build`).\n"
        "For a Hamming index the queries are packed codes, or vectors when -m MODEL is\n"
        "given; for a searcher they are vectors and the results are exact distances after\n"
        "re-ranking --candidates Hamming neighbours. Results are sorted by (distance, id);\n"
        "missing neighbours are id -1. Output: .npz or .hdf5 with 'neighbors' and\n"
        "'distances' (radius search adds 'lims': query i owns entries lims[i]:lims[i+1]);\n"
        ".npy/.ivecs/.ibin hold the ids only (add --distances FILE for the distances).\n"
        "--ground-truth prints recall@k, the fraction of the k true neighbours found.",
        "ordhash search sift.searcher sift_query.fvecs -k 10 -o results.npz "
        "--ground-truth sift_groundtruth.ivecs",
    )
    p.add_argument("index", metavar="INDEX", help="an index or searcher saved by build")
    p.add_argument("queries", metavar="QUERIES", help="query codes or vectors (default "
                   "dataset of an HDF5 file: test)")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS",
                   help="results file: .npz, .hdf5, or ids only in .npy/.ivecs/.ibin")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-k", type=int, default=None, help="neighbours per query (default: 10)")
    mode.add_argument("--radius", type=int, default=None, metavar="R",
                      help="radius search: all codes within Hamming distance R (Hamming "
                      "indexes only; output .npz or .hdf5)")
    p.add_argument("-m", "--model", default=None, metavar="MODEL",
                   help="encode vector queries with this model (Hamming index only)")
    p.add_argument("--candidates", type=int, default=None, metavar="C",
                   help="Hamming candidates re-ranked per query (searcher only; default: the "
                   "searcher's, set at build)")
    p.add_argument("--distances", default=None, metavar="FILE",
                   help="with an ids-only output, also write the distances (.npy, .fvecs, "
                   ".fbin)")
    p.add_argument("--ground-truth", default=None, metavar="GT",
                   help="true neighbour ids (.ivecs, .npy, FILE.hdf5[:neighbors]): print "
                   "recall@k")
    _add_progress_and_threads(p, "queries per block")
    p.set_defaults(func=_lazy("run_search"))


def _lazy(name):
    def run(args):
        from . import _cli_commands

        return getattr(_cli_commands, name)(args)

    run.__name__ = name
    return run


def _add_info(sub, detailed=True):
    p = sub.add_parser(
        "info", help="print versions, CPU, threading and data locations, or describe a file",
        description="Without PATH: versions, CPU, Numba threading and data locations.\n"
        "With PATH: what a saved model, index or searcher holds (kind, bits, sizes,\n"
        "learner parameters), or the shape and dtype of an array file (every dataset of an\n"
        "HDF5 or .npz file).",
        epilog="example:\n  ordhash info itq64.ordhash", formatter_class=_Formatter,
    )
    p.add_argument("path", nargs="?", default=None, metavar="PATH",
                   help="a file to describe (optional)")
    _debug_flag(p)
    p.set_defaults(func=_run_info)


def _run_info(args):
    if getattr(args, "path", None) is not None:
        from ._cli_commands import describe_file

        for line in describe_file(args.path):
            print(line)
        return 0

    import numba

    from .benchmark import environment
    from .datasets import data_locations

    for key, value in environment().items():
        print(f"{key:>14}: {value}")
    numba.config.reload_config()
    print(f"{'numba threads':>14}: {numba.get_num_threads()}")
    print(f"{'numba layer':>14}: {numba.config.THREADING_LAYER}")
    print(f"{'numba cache':>14}: {numba.config.CACHE_DIR or '(next to the package sources)'}")
    for label, path in data_locations().items():
        print(f"{label:>14}: {path}")
    return 0


_COMMANDS = {"fit": _add_fit, "encode": _add_encode, "build": _add_build,
             "search": _add_search, "bench": _add_bench, "info": _add_info}


def build_parser(command=None):
    """The argument parser of the ``ordhash`` command.

    ``command`` names the subcommand about to run: only its parser is built in full (the
    bench and fit parsers import the learners to list them); ``None`` builds every parser.
    """
    parser = argparse.ArgumentParser(
        prog="ordhash",
        description="Approximate nearest-neighbour search with learned binary codes.\n\n"
        "A typical session: fit a hash function on your vectors, build an index, search it:\n"
        "  ordhash fit --learner ITQ --bits 64 base.fvecs -o itq64.ordhash\n"
        "  ordhash build -m itq64.ordhash --searcher base.fvecs -o base.searcher\n"
        "  ordhash search base.searcher queries.fvecs -k 10 -o results.npz\n"
        "Run `ordhash COMMAND --help` for the options of a command.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, add in _COMMANDS.items():
        add(sub, detailed=command is None or command == name)
    return parser


def _command_of(argv):
    for item in argv:
        if not item.startswith("-"):
            return item
    return ""


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv=None):
    """Entry point of the ``ordhash`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"ordhash {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the command line reports every failure
        if args.debug:
            traceback.print_exc()
        print(f"ordhash {args.command}: unexpected error: {type(exc).__name__}: "
              f"{_one_line(exc)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
