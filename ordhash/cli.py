"""The ``ordhash`` command line.

``ordhash bench`` runs the retrieval benchmark on the bundled real data (SIFT 10k and MNIST):
every learner at 16, 32 and 64 bits, with a table on screen, JSON results and PNG plots.
``ordhash info`` prints versions, the CPU, the Numba threading layer and where data is read from.
"""

from __future__ import annotations

import argparse
import sys


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


def _add_bench(sub):
    from .benchmark import DEFAULT_BITS, DEFAULT_DATASETS, DEFAULT_LEARNERS, DATASETS
    from .learners import LEARNERS

    p = sub.add_parser(
        "bench",
        help="run the retrieval benchmark on the bundled real data",
        description=(
            "Fit each learner on each dataset at each code length, then report Hamming-ranking "
            "mAP (top-2%% Euclidean ground truth), precision@100, precision within Hamming "
            "radius 2, recall@10 after exact re-ranking of 1,000 Hamming candidates, fit time "
            "and encoding speed. Prints a table, writes OUT/bench.json and PNG plots."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--datasets", type=_csv("names"), default=DEFAULT_DATASETS,
                   help=f"comma-separated, from: {', '.join(sorted(DATASETS))}")
    p.add_argument("--learners", type=_csv("names"), default=DEFAULT_LEARNERS,
                   help=f"comma-separated, from: {', '.join(LEARNERS)}")
    p.add_argument("--bits", type=_csv("integers"), default=DEFAULT_BITS,
                   help="comma-separated code lengths")
    p.add_argument("--n-queries", type=int, default=None,
                   help="use a random subset of this many queries (default: all)")
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


def _add_info(sub):
    p = sub.add_parser("info", help="print versions, CPU, threading and data locations")
    p.set_defaults(func=_run_info)


def _run_info(args):
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


def build_parser():
    """The argument parser of the ``ordhash`` command."""
    parser = argparse.ArgumentParser(
        prog="ordhash",
        description="Approximate nearest-neighbour search with learned binary codes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_bench(sub)
    _add_info(sub)
    return parser


def main(argv=None):
    """Entry point of the ``ordhash`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"ordhash {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
