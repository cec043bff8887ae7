"""Hashing retrieval benchmark: the script behind ``ordhash bench``.

Usage (from the repository root; same options as ``ordhash bench --help``)::

    python eval/bench_hashing.py --datasets sift10k,mnist --bits 16,32,64 --out eval/results/hashing

Prints a table, writes ``bench.json`` and PNG plots (mAP vs bits, PR curves) to ``--out``.
"""

import sys

from ordhash.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
