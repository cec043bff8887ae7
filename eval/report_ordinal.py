"""Markdown tables for ``docs/ordinal.md`` from the JSON files the ordinal benchmarks write.

Usage::

    python eval/report_ordinal.py            # reads eval/results/{bench,ablate,diagnose}_ordinal*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ttest_ind

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ordinal import METHODS, RESULTS  # noqa: E402  (row order of the tables)


def _load(name):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def accuracy_tables(bench, metrics=("map", "precision@100", "precision_r2")):
    rows = bench["accuracy"]
    bits = sorted({r["bits"] for r in rows})
    seen = list(dict.fromkeys(r["method"] for r in rows))
    methods = [m for m in METHODS if m in seen] + [m for m in seen if m not in METHODS]
    out = []
    for metric in metrics:
        for data in dict.fromkeys(r["dataset"] for r in rows):
            out.append(f"\n**{data}, {metric}** (mean ± std over seeds)\n")
            out.append("| method | " + " | ".join(f"{b} bits" for b in bits) + " |")
            out.append("|---|" + "---|" * len(bits))
            for m in methods:
                cells = []
                for b in bits:
                    vals = [r[metric] for r in rows if r["dataset"] == data and r["method"] == m
                            and r["bits"] == b and "error" not in r]
                    cells.append(f"{np.mean(vals):.4f} ± {np.std(vals):.4f}" if vals else "n/a")
                out.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def versus_itq(bench, methods=("OEH", "OCH"), bits=(32, 64)):
    rows = bench["accuracy"]
    out = ["| dataset | bits | ITQ | " + " | ".join(methods) + " |",
           "|---|---|---|" + "---|" * len(methods)]
    for data in dict.fromkeys(r["dataset"] for r in rows):
        for b in bits:
            def vals(m):
                return [r["map"] for r in rows if r["dataset"] == data and r["method"] == m
                        and r["bits"] == b and "error" not in r]
            ref = vals("ITQ")
            cells = []
            for m in methods:
                v = vals(m)
                if not v or not ref:
                    cells.append("n/a")
                    continue
                wins = sum(x > max(ref) for x in v)
                p = ttest_ind(v, ref, equal_var=False, alternative="greater").pvalue
                cells.append(f"{np.mean(v):.4f} ({np.mean(v) - np.mean(ref):+.4f}; "
                             f"{wins}/{len(v)} seeds above every ITQ seed; Welch p = {p:.3f})")
            out.append(f"| {data} | {b} | {np.mean(ref):.4f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def ablation_table(ablate):
    cells = ablate["cells"]
    out = ["| configuration | " + " | ".join(c.replace("digits", "digits ").replace(
        "sift", "sift ").replace("mnist", "mnist ") for c in cells) + " | mean Δ vs ITQ |",
        "|---|" + "---|" * (len(cells) + 1)]
    ref = np.array([np.mean(ablate["rows"]["itq"]["map"][c]) for c in cells])
    for name, row in ablate["rows"].items():
        means = np.array([np.mean(row["map"][c]) for c in cells])
        desc = row["description"]
        desc = ("↳ " + desc.strip()) if desc.startswith(" ") else desc
        out.append(f"| {desc} | " + " | ".join(f"{m:.4f}" for m in means)
                   + f" | {np.mean(means - ref):+.4f} |")
    return "\n".join(out)


def main():
    bench = _load("bench_ordinal.json")
    if bench and "accuracy" in bench:
        print("## mAP of OEH / OCH against ITQ\n")
        print(versus_itq(bench))
        print(accuracy_tables(bench))
    ablate = _load("ablate_ordinal.json")
    if ablate:
        print("\n## Ablation\n")
        print(ablation_table(ablate))
    timing = _load("bench_ordinal_timing.json")
    if timing:
        print("\n## Timing\n")
        print("```\n" + json.dumps(timing.get("timing", timing), indent=1) + "\n```")


if __name__ == "__main__":
    main()
