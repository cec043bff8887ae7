"""Why landmark triplets do not improve on ITQ and data triplets do: three diagnostics.

1. ``trajectory``: OCH with landmark triplets (the papers' reduction) from the ITQ warm start,
   one anchor per step (eta 0.02). After each epoch: database mAP (top-2% ground truth), the
   relaxed landmark loss being minimised and the fraction of violated landmark triplets in
   Hamming space (pivots rule, ties count 1/2). If the landmark objective were a good proxy,
   mAP would rise as both losses fall.
2. ``data``: the same loss, relaxation and Stiefel steps on triplets sampled from the training
   rows (``triplet_source="data"``, the default), after 0, 2, 5 and 10 epochs, with the default
   sharper relaxation (``sharpness=3``) and with ``sharpness=1``.
3. ``rbf``: the CIFAR-demo kernel map (300 random anchors, RBF) followed by ITQ or OCH, to see
   whether the ordinal objective helps when the representation is not ITQ-friendly.

Usage::

    python eval/diagnose_ordinal.py                      # all three, SIFT and MNIST, 32 bits
    python eval/diagnose_ordinal.py --only data --datasets sift
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ordinal import RESULTS, load  # noqa: E402

from ordhash.learners.classic import ITQ  # noqa: E402
from ordhash.learners.och import OCH  # noqa: E402
from ordhash.learners.ordinal import ordinal_matrix  # noqa: E402
from ordhash.metrics import evaluate_codes  # noqa: E402


def _map(codes_q, codes_b, rel):
    return evaluate_codes(codes_q, codes_b, rel, ks=(100,))["map"]


def landmark_violation(est, k=10):
    """Fraction of violated pivot triplets among the fitted landmarks, in Hamming space."""
    C = est.landmarks_ - est.mean_
    omega = ordinal_matrix(C, "log_affinity")
    B = np.where(C @ est.components_ @ est.projection_ > 0, 1.0, -1.0)
    D = (B.shape[1] - B @ B.T) / 2
    bad = total = 0.0
    for q in range(C.shape[0]):
        rank = [m for m in np.argsort(-omega[q], kind="stable") if m != q]
        for a, p in enumerate(rank[: k - 1]):
            far = np.array(rank[a + 1:])
            bad += np.sum(D[q, p] > D[q, far]) + 0.5 * np.sum(D[q, p] == D[q, far])
            total += far.size
    return bad / total


def trajectory(name, bits, epochs, seed=0):
    base, queries, rel = load(name)
    rows = []
    for e in range(epochs + 1):
        kw = dict(learning_rate=1e-12, n_epochs=1) if e == 0 else dict(n_epochs=e)
        est = OCH(n_bits=bits, triplet_source="landmarks", batch_size=1, random_state=seed,
                  **{"learning_rate": 0.02, **kw}).fit(base)
        rows.append(dict(epoch=e, map=_map(est.transform(queries), est.transform(base), rel),
                         relaxed_loss=est.loss_curve_[-1] if e else None,
                         landmark_violation=landmark_violation(est)))
        print(f"  {name} {bits} epoch {e}: mAP {rows[-1]['map']:.4f}  landmark violation "
              f"{rows[-1]['landmark_violation']:.4f}  relaxed loss {rows[-1]['relaxed_loss']}",
              flush=True)
    return rows


def data_trajectory(name, bits, seed=0, epochs=(2, 5, 10)):
    base, queries, rel = load(name)
    out = {}
    for sharp in (3.0, 1.0):
        start = OCH(n_bits=bits, learning_rate=1e-12, n_epochs=1, random_state=seed).fit(base)
        maps = [_map(start.transform(queries), start.transform(base), rel)]
        for e in epochs:
            est = OCH(n_bits=bits, n_epochs=e, sharpness=sharp, random_state=seed).fit(base)
            maps.append(_map(est.transform(queries), est.transform(base), rel))
        out[str(sharp)] = dict(zip(["0"] + [str(e) for e in epochs], maps))
        print(f"  {name} {bits} data triplets, sharpness {sharp}: mAP after epochs "
              + ", ".join(f"{k}: {v:.4f}" for k, v in out[str(sharp)].items()), flush=True)
    return out


def rbf(name, bits, m=300, seed=0):
    base, queries, rel = load(name)
    rng = np.random.RandomState(seed)
    A = base[rng.choice(base.shape[0], m, replace=False)].astype(np.float64)

    def d2(X):
        X = X.astype(np.float64)
        return np.maximum((X * X).sum(1)[:, None] + (A * A).sum(1)[None, :] - 2 * X @ A.T, 0)

    Db = d2(base)
    s = np.sqrt(Db.min(1)).mean()
    fb, fq = np.exp(-Db / (2 * s * s)), np.exp(-d2(queries) / (2 * s * s))
    out = {}
    for label, est in (("ITQ", ITQ(n_bits=bits, random_state=seed)),
                       ("OCH landmarks", OCH(n_bits=bits, triplet_source="landmarks",
                                             random_state=seed)),
                       ("OCH landmarks, random start",
                        OCH(n_bits=bits, triplet_source="landmarks", init="random",
                            random_state=seed)),
                       ("OCH data triplets", OCH(n_bits=bits, random_state=seed))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(fb)
        out[label] = _map(est.transform(fq), est.transform(fb), rel)
    raw = ITQ(n_bits=bits, random_state=seed).fit(base)
    out["ITQ on raw features"] = _map(raw.transform(queries), raw.transform(base), rel)
    print(f"  {name} {bits} RBF features: " + ", ".join(f"{k} {v:.4f}" for k, v in out.items()),
          flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["sift", "mnist"])
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--only", choices=["trajectory", "data", "rbf"])
    ap.add_argument("--out", default=str(RESULTS / "diagnose_ordinal.json"))
    args = ap.parse_args(argv)
    report = {}
    for name in args.datasets:
        if args.only in (None, "trajectory"):
            report.setdefault(name, {})["trajectory"] = trajectory(name, args.bits, args.epochs)
        if args.only in (None, "data"):
            report.setdefault(name, {})["data"] = data_trajectory(name, args.bits)
        if args.only in (None, "rbf"):
            report.setdefault(name, {})["rbf"] = {str(b): rbf(name, b) for b in (32, 64)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
