"""Private numpy core of the Hamming-ranking metrics in :mod:`ordhash.metrics`.

Everything here takes *validated* arrays: ``d`` is a 2-D integer array of Hamming distances
``(n_queries, n_base)`` with values in ``[0, n_bins)``, ``rel`` a boolean array of the same shape.
The work is done per block of query rows, sized so that no temporary exceeds a few tens of MB.

Two tie rules are implemented:

* ``"expected"`` works on per-query distance histograms (one ``np.bincount`` per block of rows),
  so its cost is one pass over the distances plus O(n_bins) per query;
* ``"index"`` sorts each row stably (a radix sort on ``uint8``/``uint16`` keys), so equal distances
  keep database-index order, as MATLAB ``sort`` does.
"""

from __future__ import annotations

import numpy as np

#: Largest Hamming distance accepted (codes of up to 65,536 bits).
MAX_DISTANCE = 65536
#: Target number of matrix elements processed per block of query rows.
_BLOCK_ELEMS = 1 << 20


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def check_distances(distances, name="distances"):
    """Return Hamming distances as a 2-D integer array, and the number of histogram bins."""
    if distances is None or isinstance(distances, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D integer array, got {type(distances).__name__}")
    d = np.asarray(distances)
    if d.dtype == bool or not np.issubdtype(d.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer Hamming distances, got dtype {d.dtype} "
            "(use ordhash.codes.hamming_distances)"
        )
    if d.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_queries, n_base), got shape {d.shape}")
    if d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {d.shape})")
    lo, hi = int(d.min()), int(d.max())
    if lo < 0:
        raise ValueError(f"{name} must be non-negative Hamming distances, found {lo}")
    if hi > MAX_DISTANCE:
        raise ValueError(
            f"{name} contains {hi}, larger than any Hamming distance this module supports "
            f"(<= {MAX_DISTANCE})"
        )
    # int32 holds every accepted value and keeps index arithmetic in int64 (no uint64 promotion).
    return d.astype(np.int32, copy=False), hi + 1


def check_relevant(relevant, shape, name="relevant"):
    """Return ``relevant`` as a boolean array of the given shape (bool, or numbers 0/1)."""
    if relevant is None or isinstance(relevant, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D boolean array, got {type(relevant).__name__}")
    r = np.asarray(relevant)
    if r.dtype != bool:
        if not (np.issubdtype(r.dtype, np.integer) or np.issubdtype(r.dtype, np.floating)):
            raise TypeError(f"{name} must be boolean or 0/1 numbers, got dtype {r.dtype}")
        if np.issubdtype(r.dtype, np.floating) and np.isnan(r).any():
            raise ValueError(f"{name} contains NaN; it must be boolean or 0/1")
        if ((r != 0) & (r != 1)).any():
            raise ValueError(f"{name} must contain only 0/1 (or booleans)")
        r = r != 0
    if r.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {r.shape}, but distances have shape {tuple(shape)}; "
            "they must agree"
        )
    return r


def check_ks(k, n_base, name="k"):
    """Return ``(ks, scalar)``: the cut-offs as an int64 array and whether ``k`` was a scalar."""
    scalar = np.ndim(k) == 0
    values = [k] if scalar else list(k)
    if not values:
        raise ValueError(f"{name} must be a positive integer or a non-empty sequence of them")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold integers, got {v!r} ({type(v).__name__})")
        if not 1 <= int(v) <= n_base:
            raise ValueError(f"{name} must satisfy 1 <= {name} <= n_base = {n_base}, got {int(v)}")
        out.append(int(v))
    return np.asarray(out, dtype=np.int64), scalar


# --------------------------------------------------------------------------------------------
# blocks and histograms
# --------------------------------------------------------------------------------------------
def row_blocks(n_rows, n_cols, n_bins=1):
    """Yield slices of query rows so that one block holds about ``_BLOCK_ELEMS`` elements."""
    step = max(1, _BLOCK_ELEMS // max(n_cols, 2 * n_bins))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def histograms(d, rel, n_bins):
    """Per-row counts of all items and of relevant items at each distance, int64 (rows, n_bins)."""
    rows = d.shape[0]
    keys = np.arange(rows, dtype=np.int64)[:, None] * n_bins + d
    keys <<= 1
    keys += rel
    h = np.bincount(keys.ravel(), minlength=2 * rows * n_bins).reshape(rows, n_bins, 2)
    return h.sum(axis=2), h[:, :, 1].copy()


def pooled_histograms(d, rel, n_bins):
    """Counts of all pairs and of relevant pairs at each distance, summed over every query."""
    total = np.zeros(n_bins, dtype=np.int64)
    good = np.zeros(n_bins, dtype=np.int64)
    for sl in row_blocks(d.shape[0], d.shape[1]):
        block = d[sl]
        total += np.bincount(block.ravel(), minlength=n_bins)
        good += np.bincount(block[rel[sl]], minlength=n_bins)
    return total, good


def harmonic_numbers(n):
    """``H[i] = sum_{j=1..i} 1/j`` for ``i = 0..n`` (``H[0] = 0``), float64."""
    h = np.empty(n + 1, dtype=np.float64)
    h[0] = 0.0
    np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64), out=h[1:])
    return h


# --------------------------------------------------------------------------------------------
# ties="expected": closed forms on histograms
# --------------------------------------------------------------------------------------------
def expected_ap_sums(counts, relc, at, harmonic):
    """Expected sum over positions ``p <= at`` of ``rel_p * Prec@p`` (``at=None``: all positions).

    For group ``g`` (``n`` items, ``r`` relevant, ``N`` items and ``Rb`` relevant before it) and
    ``m`` slots of the group inside the cut, slot ``t`` contributes
    ``(r/n) (Rb + 1 + (t-1)(r-1)/(n-1)) / (N + t)``; summing ``t = 1..m`` with
    ``S1 = H[N+m] - H[N]`` and ``S2 = m - (N+1) S1`` gives ``(r/n) ((Rb+1) S1 + c S2)``.
    """
    cum = np.cumsum(counts, axis=1)
    before = cum - counts
    rel_before = np.cumsum(relc, axis=1) - relc
    slots = counts if at is None else np.clip(at - before, 0, counts)
    s1 = harmonic[before + slots] - harmonic[before]
    s2 = slots - (before + 1) * s1
    n = counts.astype(np.float64)
    r = relc.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(counts > 0, r / n, 0.0)
        slope = np.where(counts > 1, (r - 1.0) / (n - 1.0), 0.0)
    return (frac * ((rel_before + 1) * s1 + slope * s2)).sum(axis=1)


def expected_hits(counts, relc, ks):
    """Expected number of relevant items in the top ``k``, float64 ``(rows, len(ks))``.

    With position ``k`` inside group ``g``: ``Rb + r_g (k - N_b) / n_g``.
    """
    cum = np.cumsum(counts, axis=1)
    rel_cum = np.cumsum(relc, axis=1)
    out = np.empty((counts.shape[0], len(ks)), dtype=np.float64)
    rows = np.arange(counts.shape[0])
    for j, k in enumerate(ks):
        g = (cum < k).sum(axis=1)
        n_g = counts[rows, g]
        before = cum[rows, g] - n_g
        r_g = relc[rows, g]
        out[:, j] = (rel_cum[rows, g] - r_g) + r_g * (k - before) / n_g
    return out


# --------------------------------------------------------------------------------------------
# ties="index": stable sort
# --------------------------------------------------------------------------------------------
def _sort_key_dtype(n_bins):
    if n_bins <= 256:
        return np.uint8
    if n_bins <= 65536:
        return np.uint16
    return np.uint32


def index_ranking(d, rel, n_bins, depth):
    """Relevance of the first ``depth`` ranked items, ranking by (distance, database index)."""
    key = d.astype(_sort_key_dtype(n_bins), copy=False)
    order = np.argsort(key, axis=1, kind="stable")[:, :depth]
    return np.take_along_axis(rel, order, axis=1)


def index_ap_sums(ranked, at):
    """Sum over positions ``p <= at`` of ``rel_p * Prec@p``, plus the retrieved-relevant count."""
    depth = ranked.shape[1] if at is None else at
    top = ranked[:, :depth]
    hits = np.cumsum(top, axis=1, dtype=np.int64)
    prec = hits / np.arange(1, depth + 1, dtype=np.float64)
    sums = np.where(top, prec, 0.0).sum(axis=1)
    return sums, hits[:, -1]


# --------------------------------------------------------------------------------------------
# per-query statistics, one pass
# --------------------------------------------------------------------------------------------
def ranking_stats(d, rel, n_bins, *, ties, ats=(), norm="relevant", ks=()):
    """Per-query AP for each cut-off in ``ats`` and relevant counts at each ``k`` in ``ks``.

    Returns ``(aps, hits, n_rel)``: ``aps`` float64 ``(n_queries, len(ats))`` (NaN where a query
    has no relevant item), ``hits`` float64 ``(n_queries, len(ks))`` (expected or actual number of
    relevant items among the first ``k``), ``n_rel`` int64 ``(n_queries,)``.
    """
    nq, nb = d.shape
    aps = np.empty((nq, len(ats)), dtype=np.float64)
    hits = np.empty((nq, len(ks)), dtype=np.float64)
    n_rel = np.empty(nq, dtype=np.int64)
    harmonic = harmonic_numbers(nb) if (ties == "expected" and ats) else None
    depth = max([nb if a is None else a for a in ats] + [int(k) for k in ks] + [1])
    for sl in row_blocks(nq, nb, n_bins):
        block_rel = rel[sl]
        r = block_rel.sum(axis=1)
        n_rel[sl] = r
        if ties == "expected":
            counts, relc = histograms(d[sl], block_rel, n_bins)
            for j, at in enumerate(ats):
                sums = expected_ap_sums(counts, relc, at, harmonic)
                aps[sl, j] = _normalise(sums, r, at, None)
            if len(ks):
                hits[sl] = expected_hits(counts, relc, ks)
        else:
            ranked = index_ranking(d[sl], block_rel, n_bins, depth)
            for j, at in enumerate(ats):
                sums, retrieved = index_ap_sums(ranked, at)
                aps[sl, j] = _normalise(sums, r, at, retrieved if norm == "retrieved" else None)
            if len(ks):
                hits[sl] = np.cumsum(ranked, axis=1, dtype=np.int64)[:, np.asarray(ks) - 1]
    return aps, hits, n_rel


def _normalise(sums, n_rel, at, retrieved):
    """Divide AP sums by the normaliser; NaN for queries with no relevant item at all."""
    if retrieved is not None:
        denom = retrieved.astype(np.float64)
    elif at is None:
        denom = n_rel.astype(np.float64)
    else:
        denom = np.minimum(n_rel, at).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, sums / np.maximum(denom, 1.0), 0.0)
    out[n_rel == 0] = np.nan
    return out


def radius_counts(d, rel, radius):
    """Per-query ``(retrieved, good)`` counts inside the inclusive Hamming ball of ``radius``."""
    nq, nb = d.shape
    retrieved = np.empty(nq, dtype=np.int64)
    good = np.empty(nq, dtype=np.int64)
    for sl in row_blocks(nq, nb):
        ball = d[sl] <= radius
        retrieved[sl] = ball.sum(axis=1)
        good[sl] = (ball & rel[sl]).sum(axis=1)
    return retrieved, good
