"""What each design choice of the ordinal learners does to Hamming-ranking mAP.

Each row changes one thing with respect to a reference configuration and reports the mean mAP
over seeds (top-2% Euclidean ground truth, expected ties; same data and protocol as
``bench_ordinal.py``) on digits / SIFT10k / MNIST at 32 and 64 bits, together with ITQ
(``ordhash.learners.classic.ITQ``) under the same seeds. The rows feed ``docs/ordinal.md``.

Usage::

    python eval/ablate_ordinal.py                 # all rows, 3 seeds
    python eval/ablate_ordinal.py --rows och_spec och_default --seeds 5
    python eval/ablate_ordinal.py --merge --rows och_default   # recompute one row, keep the rest
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ordinal import RESULTS, environment, load  # noqa: E402

from ordhash.learners.classic import ITQ  # noqa: E402
from ordhash.learners.och import OCH  # noqa: E402
from ordhash.learners.oeh import OEH  # noqa: E402
from ordhash.metrics import evaluate_codes  # noqa: E402

#: name -> (class, keyword arguments, description)
ROWS = {
    "itq": (ITQ, {}, "ITQ (classic), reference"),
    # OCH, landmark triplets (the papers' reduction) ---------------------------------------
    "och_spec": (OCH, dict(triplet_source="landmarks", init="random", batch_size=1, n_epochs=3),
                 "OCH as spec §5.3: landmark triplets, polar(randn) start, 1 anchor/step, 3 ep."),
    "och_spec_itq": (OCH, dict(triplet_source="landmarks", batch_size=1, n_epochs=3),
                     "  + ITQ warm start (1 anchor/step, 3 epochs, eta 0.05)"),
    "och_spec_itq_small_step": (OCH, dict(triplet_source="landmarks", batch_size=1, n_epochs=3,
                                          learning_rate=0.01),
                                "  + ITQ warm start, eta 0.01"),
    "och_landmarks": (OCH, dict(triplet_source="landmarks"),
                      "OCH landmark triplets: ITQ start, full batch, 8 steps of eta 0.05"),
    "och_no_training": (OCH, dict(triplet_source="landmarks", learning_rate=1e-12, n_epochs=1),
                        "  ITQ start only (no ordinal training)"),
    "och_long": (OCH, dict(triplet_source="landmarks", n_epochs=40), "  40 full-batch steps"),
    "och_knn": (OCH, dict(triplet_source="landmarks", triplets="knn"),
                "  k-NN triplets instead of pivots"),
    "och_all": (OCH, dict(triplet_source="landmarks", triplets="all"),
                "  all ordered triplets"),
    "och_affinity": (OCH, dict(triplet_source="landmarks", ordinal_source="affinity"),
                     "  raw affinity (underflow ties)"),
    "och_euclid": (OCH, dict(triplet_source="landmarks", ordinal_source="euclidean"),
                   "  Euclidean order"),
    "och_raw_scale": (OCH, dict(triplet_source="landmarks", input_scale=1.0),
                      "  unscaled inputs (tanh saturates)"),
    "och_pca2r": (OCH, dict(triplet_source="landmarks", pca_dim="2r"), "  pca_dim = 2 n_bits"),
    "och_L1000": (OCH, dict(triplet_source="landmarks", n_landmarks=1000,
                            max_pairs_per_anchor=3000),
                  "  1000 landmarks, <= 3000 sampled triplets per anchor"),
    "och_reg": (OCH, dict(triplet_source="landmarks", balance=1.0, decorrelation=1.0),
                "  + bit balance / decorrelation"),
    "och_cayley": (OCH, dict(triplet_source="landmarks", retraction="cayley"),
                   "  Cayley retraction"),
    # OCH, data triplets (default) ---------------------------------------------------------
    "och_default": (OCH, {}, "OCH default: ITQ start + data triplets (sharpness 3, 6 epochs)"),
    "och_data_sharp1": (OCH, dict(sharpness=1.0), "  sharpness 1 (softer tanh)"),
    "och_data_random": (OCH, dict(init="random"), "  random start instead of ITQ"),
    "och_data_near1pct": (OCH, dict(near_fraction=0.01), "  near set = 1% nearest rows"),
    "och_data_ep10": (OCH, dict(n_epochs=10), "  10 epochs"),
    "och_data_b64": (OCH, dict(batch_size=64), "  64 anchors per step"),
    "och_data_far_anchor": (OCH, dict(far_sampling="anchor"),
                            "  far items drawn per anchor, not shared by the step's anchors"),
    "och_released": (OCH, dict(variant="released"), "OCH released (trainOCH.m)"),
    # OEH ----------------------------------------------------------------------------------
    "oeh_spec": (OEH, dict(triplet_source="landmarks", init="random", batch_size=1, n_epochs=1,
                           kmeans_iter=50),
                 "OEH as spec §4.2: landmark triplets, randn start, 1 anchor/step, 1 epoch"),
    "oeh_spec_itq": (OEH, dict(triplet_source="landmarks", batch_size=1, n_epochs=1,
                               kmeans_iter=50),
                     "  + ITQ warm start"),
    "oeh_landmarks": (OEH, dict(triplet_source="landmarks"),
                      "OEH landmark triplets: ITQ start, full batch, 5 steps of alpha 0.1"),
    "oeh_no_training": (OEH, dict(triplet_source="landmarks", learning_rate=1e-12, n_epochs=1),
                        "  ITQ start only (no ordinal training)"),
    "oeh_long": (OEH, dict(triplet_source="landmarks", n_epochs=40), "  40 full-batch steps"),
    "oeh_kmeans50": (OEH, dict(triplet_source="landmarks", kmeans_iter=50),
                     "  50 K-means iterations (as released)"),
    "oeh_default": (OEH, {}, "OEH default: ITQ start + data triplets (sharpness 3, 6 epochs)"),
    "oeh_data_sharp1": (OEH, dict(sharpness=1.0), "  sharpness 1 (softer tanh)"),
    "oeh_data_random": (OEH, dict(init="random"), "  random start instead of ITQ"),
    "oeh_data_lr03": (OEH, dict(learning_rate=0.3), "  alpha 0.3"),
    "oeh_data_ep10": (OEH, dict(n_epochs=10), "  10 epochs"),
    "oeh_data_b64": (OEH, dict(batch_size=64), "  64 anchors per step"),
    "oeh_data_far_anchor": (OEH, dict(far_sampling="anchor"),
                            "  far items drawn per anchor, not shared by the step's anchors"),
    "oeh_released": (OEH, dict(variant="released"), "OEH released (trainOEH.m)"),
}
CELLS = [(d, b) for d in ("digits", "sift", "mnist") for b in (32, 64)]


def run_row(name, seeds, data):
    cls, kw, _ = ROWS[name]
    out = {}
    for d, b in CELLS:
        base, queries, rel = data[d]
        maps = []
        for seed in range(seeds):
            params = dict(kw)
            if params.get("pca_dim") == "2r":
                params["pca_dim"] = min(2 * b, base.shape[1])
            est = cls(n_bits=b, random_state=seed, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(base)
            res = evaluate_codes(est.transform(queries), est.transform(base), rel, ks=(100,))
            maps.append(res["map"])
        out[f"{d}{b}"] = maps
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "ablate_ordinal.json"))
    ap.add_argument("--merge", action="store_true",
                    help="reuse the rows of an existing --out file that are not in --rows")
    args = ap.parse_args(argv)
    data = {d: load(d) for d in ("digits", "sift", "mnist")}
    previous = {}
    if args.merge and Path(args.out).exists():
        with open(args.out) as fh:
            previous = json.load(fh)["rows"]
    wanted = list(ROWS) if (args.merge or args.rows is None) else args.rows
    rows = ["itq"] + [r for r in wanted if r != "itq"]
    recompute = set(args.rows) if args.rows is not None else set()
    results = {}
    header = "| configuration | " + " | ".join(f"{d} {b}" for d, b in CELLS) + " | mean Δ vs ITQ |"
    print(header)
    print("|" + "---|" * (len(CELLS) + 2))
    for name in rows:
        if name in previous and name not in recompute:
            results[name] = previous[name]["map"]
        else:
            results[name] = run_row(name, args.seeds, data)
        means = [np.mean(results[name][f"{d}{b}"]) for d, b in CELLS]
        ref = [np.mean(results["itq"][f"{d}{b}"]) for d, b in CELLS]
        delta = np.mean(np.array(means) - np.array(ref))
        print(f"| {ROWS[name][2]} | " + " | ".join(f"{m:.4f}" for m in means)
              + f" | {delta:+.4f} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"seeds": args.seeds, "cells": [f"{d}{b}" for d, b in CELLS],
                   "rows": {k: {"description": ROWS[k][2], "kwargs": {
                       kk: vv for kk, vv in ROWS[k][1].items()}, "map": v}
                       for k, v in results.items()},
                   "environment": environment()}, fh, indent=1)
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
