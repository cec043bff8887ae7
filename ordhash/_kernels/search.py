"""Exact Hamming k-NN and radius scans over packed codes, fused with bucket selection.

Layout and blocking
-------------------
Database codes are C-contiguous ``uint8`` rows; queries arrive as zero-padded ``uint64`` words,
shape ``(n_queries, n_words)`` with ``n_words = ceil(code_size / 8)``. When
``code_size % 8 == 0`` the database is also passed as a flat ``uint64`` view (``words``).

Queries are processed in blocks of ``qblock``. For each block the database is walked once, tile
by tile; every tile is reused by all queries of the block while it sits in L1/L2 (query
blocking, as ``faiss.IndexBinaryFlat`` does). A tile of multi-word codes is first transposed
into word-major order (``tile[w * T + j]`` = word ``w`` of code ``j``), which turns the distance
loop into unit-stride loads that LLVM vectorises (``vpopcntq`` on AVX-512 VPOPCNTDQ, a
``pshufb`` lookup on AVX2). Codes whose size is not a multiple of 8 bytes are zero-padded into
words while the tile is transposed, so they take the same path. 64-bit codes are read in place.

Popcount is ``llvm.ctpop`` for every width: the SWAR formulation compiles to the same vector
code (LLVM recognises the idiom), measured equal on AVX-512, AVX2 and SSE4.2 targets by
``eval/bench_popcount.py``.

Threads: the kernels release the GIL and process disjoint work units, so the index classes run
them on plain threads (no ``parallel=True`` compilation). Pure helpers are compiled without
NRT (``_nrt=False``): otherwise every call would increment and decrement the reference count of
each array argument atomically, which cost a third of the run time of the MIH probe loop.

Selection
---------
Distances are small integers, so the k smallest are kept with a per-query histogram instead of
a heap: ``hist[d]`` counts the kept candidates at distance ``d``, ``bound`` is the current k-th
smallest distance and a code is kept only if ``d < bound`` (strict: codes arrive in increasing
position, so a later tie never displaces an earlier one). Candidates are appended to a small
buffer that is compacted when full, and the final order, by ``(distance, position)``, is a
counting sort. A whole sub-chunk of codes is skipped when its minimum distance is not below
the bound.

All kernels return *positions* (row numbers in the database); the index maps them to ids.
Padding for missing neighbours is distance ``PAD_DISTANCE`` (``INT32_MAX``) and position -1.
"""

import numpy as np
from numba import njit

from .popcount import popcount

PAD_DISTANCE = np.iinfo(np.int32).max
_SUB = 256  # codes per sub-chunk: the unit of the bound check
_GROUP = 32  # inside a sub-chunk with a candidate, distances are checked by groups
_TILE_BYTES = 32768  # bytes of codes per database tile (per query block)


@njit(cache=True, nogil=True, inline="always")
def _pc(x):
    return np.int32(popcount(x))


# A run of ``n`` codes is handled in one call per tile and query: ``run_minima`` records the
# minimum distance of every sub-chunk of _SUB codes in ``cmin`` and, for 1, 2 and 4 words, does
# not store the distances at all (fewer instructions per code); the selection then recomputes
# the distances of the rare sub-chunks that hold a candidate with ``fill_distances``.
# Hot loops index with unsigned offsets instead of slicing: a slice costs an atomic reference
# count increment and decrement, and a signed index costs a negative-index check that keeps
# LLVM from vectorising; unsigned indices have neither.


@njit(cache=True, nogil=True, inline="always")
def _u(i):
    return np.uintp(i)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _min1(q0, tile, s, n, cmin):
    for c in range((n + _SUB - 1) // _SUB):
        lo = _u(s + c * _SUB)
        mn = np.uint64(PAD_DISTANCE)
        for j in range(min(_SUB, n - c * _SUB)):
            mn = min(mn, popcount(q0 ^ tile[lo + _u(j)]))
        cmin[c] = mn


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _min2(q0, q1, tile, T, s, n, cmin):
    for c in range((n + _SUB - 1) // _SUB):
        lo = _u(s + c * _SUB)
        lo1 = lo + _u(T)
        mn = np.uint64(PAD_DISTANCE)
        for j in range(min(_SUB, n - c * _SUB)):
            u = _u(j)
            mn = min(mn, popcount(q0 ^ tile[lo + u]) + popcount(q1 ^ tile[lo1 + u]))
        cmin[c] = mn


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _min4(q0, q1, q2, q3, tile, T, s, n, cmin):
    for c in range((n + _SUB - 1) // _SUB):
        lo = _u(s + c * _SUB)
        lo1 = lo + _u(T)
        lo2 = lo1 + _u(T)
        lo3 = lo2 + _u(T)
        mn = np.uint64(PAD_DISTANCE)
        for j in range(min(_SUB, n - c * _SUB)):
            u = _u(j)
            mn = min(mn, (popcount(q0 ^ tile[lo + u]) + popcount(q1 ^ tile[lo1 + u]))
                     + (popcount(q2 ^ tile[lo2 + u]) + popcount(q3 ^ tile[lo3 + u])))
        cmin[c] = mn


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _min_i32(a, lo, hi):
    mn = np.int32(PAD_DISTANCE)
    b = _u(lo)
    for j in range(hi - lo):
        mn = min(mn, a[b + _u(j)])
    return mn


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def fill_distances(qwords, qi, tile, T, s, n, dbuf, d0):
    """Distances from query ``qwords[qi]`` to codes ``s .. s+n`` of a word-major array whose
    word rows are ``T`` apart, into ``dbuf[d0:d0 + n]``."""
    nw = qwords.shape[1]
    q0 = qwords[qi, 0]
    lo = _u(s)
    o = _u(d0)
    for j in range(n):
        dbuf[o + _u(j)] = np.int32(popcount(q0 ^ tile[lo + _u(j)]))
    for w in range(1, nw):
        qw = qwords[qi, w]
        lo = _u(w * T + s)
        for j in range(n):
            dbuf[o + _u(j)] += np.int32(popcount(qw ^ tile[lo + _u(j)]))


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def run_minima(qwords, qi, tile, T, s, n, dbuf, cmin):
    """Minimum distance from query ``qwords[qi]`` over each sub-chunk of ``_SUB`` codes of
    ``s .. s+n`` (word-major array, word rows ``T`` apart) into ``cmin``.

    Returns ``(n_sub_chunks, stored)``; when ``stored`` the distances are also in
    ``dbuf[:n]``, otherwise :func:`fill_distances` computes them on demand.
    """
    nw = qwords.shape[1]
    nc = (n + _SUB - 1) // _SUB
    if nw == 1:
        _min1(qwords[qi, 0], tile, s, n, cmin)
    elif nw == 2:
        _min2(qwords[qi, 0], qwords[qi, 1], tile, T, s, n, cmin)
    elif nw == 4:
        _min4(qwords[qi, 0], qwords[qi, 1], qwords[qi, 2], qwords[qi, 3], tile, T, s, n, cmin)
    else:
        fill_distances(qwords, qi, tile, T, s, n, dbuf, 0)
        for c in range(nc):
            cmin[c] = _min_i32(dbuf, c * _SUB, min(n, (c + 1) * _SUB))
        return nc, True
    return nc, False


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _load_tile(words, codes, aligned, t0, n, nw, tile, T):
    """Copy codes ``t0 .. t0+n`` into ``tile`` in word-major order, zero-padding short codes."""
    if aligned:
        src = words[t0 * nw:(t0 + n) * nw]
        for w in range(nw):
            dst = tile[w * T:w * T + n]
            for j in range(n):  # unsigned index: no negative-index wrap-around code
                dst[j] = src[np.uintp(j * nw + w)]
        return
    cs = codes.shape[1]
    for j in range(n):
        row = codes[t0 + j]
        for w in range(nw):
            v = np.uint64(0)
            hi = min(cs, 8 * w + 8)
            for b in range(8 * w, hi):
                v |= np.uint64(row[b]) << np.uint64(8 * (b - 8 * w))
            tile[w * T + j] = v


def tile_codes(nw):
    """Number of codes per database tile for ``nw`` words per code (a multiple of _SUB)."""
    t = _TILE_BYTES // (8 * nw)
    return max(_SUB, (t // _SUB) * _SUB)


_tile_codes = njit(cache=True, nogil=True)(tile_codes)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _keep_strict(qi, d, p, k, bd, bp, nbuf, hist, nle, bound, thr):
    """Append candidate ``(d, p)`` (with ``d < thr[qi]``) and lower the bound if possible."""
    cap = bd.shape[1]
    if nbuf[qi] == cap:  # compact: drop candidates above the bound, keep arrival order
        b = bound[qi]
        m = 0
        for t in range(cap):
            if bd[qi, t] <= b:
                bd[qi, m] = bd[qi, t]
                bp[qi, m] = bp[qi, t]
                m += 1
        nbuf[qi] = m
    m = nbuf[qi]
    bd[qi, m] = d
    bp[qi, m] = p
    nbuf[qi] = m + 1
    hist[qi, d] += 1
    nle[qi] += 1
    if nle[qi] >= k:
        b = bound[qi]
        while nle[qi] - hist[qi, b] >= k:
            nle[qi] -= hist[qi, b]
            hist[qi, b] = 0
            b -= 1
        bound[qi] = b
        thr[qi] = b


@njit(cache=True, nogil=True, boundscheck=False)
def _finalize_strict(qi, k, bd, bp, nbuf, hist, nle, bound, out_d, out_p):
    """Write the k best candidates of query ``qi`` in (distance, position) order, padded."""
    b = bound[qi]
    h = hist[qi]
    offs = np.empty(b + 2, np.int64)
    offs[0] = 0
    for d in range(b + 1):
        offs[d + 1] = offs[d] + h[d]
    need_at_b = h[b] if nle[qi] < k else k - offs[b]
    fill = offs.copy()
    taken_b = 0
    for t in range(nbuf[qi]):
        d = bd[qi, t]
        if d < b:
            out_d[fill[d]] = d
            out_p[fill[d]] = bp[qi, t]
            fill[d] += 1
        elif d == b and taken_b < need_at_b:
            out_d[fill[d]] = d
            out_p[fill[d]] = bp[qi, t]
            fill[d] += 1
            taken_b += 1
    total = min(k, offs[b] + need_at_b)
    for t in range(total, k):
        out_d[t] = PAD_DISTANCE
        out_p[t] = -1


@njit(cache=True, nogil=True, boundscheck=False)
def _knn_block(qwords, q0, q1, words, codes, aligned, lo, hi, k, n_bits, out_d, out_p):
    nw = qwords.shape[1]
    nqb = q1 - q0
    T = _tile_codes(nw)
    cap = 3 * k + 32
    bd = np.empty((nqb, cap), np.int32)
    bp = np.empty((nqb, cap), np.int64)
    nbuf = np.zeros(nqb, np.int64)
    hist = np.zeros((nqb, n_bits + 1), np.int64)
    nle = np.zeros(nqb, np.int64)
    bound = np.full(nqb, n_bits, np.int64)
    thr = np.full(nqb, n_bits + 1, np.int64)
    direct = aligned and nw == 1
    tile = np.empty(0 if direct else nw * T, np.uint64)
    dbuf = np.empty(T, np.int32)
    cmin = np.empty(T // _SUB + 1, np.int32)
    for t0 in range(lo, hi, T):
        n = min(T, hi - t0)
        if not direct:
            _load_tile(words, codes, aligned, t0, n, nw, tile, T)
        src = words if direct else tile
        s0 = t0 if direct else 0
        for qi in range(nqb):
            nc, stored = run_minima(qwords, q0 + qi, src, T, s0, n, dbuf, cmin)
            for c in range(nc):
                if cmin[c] < thr[qi]:
                    c1 = min(n, (c + 1) * _SUB)
                    if not stored:
                        fill_distances(qwords, q0 + qi, src, T, s0 + c * _SUB, c1 - c * _SUB,
                                       dbuf, c * _SUB)
                    for g in range(c * _SUB, c1, _GROUP):
                        g1 = min(c1, g + _GROUP)
                        if _min_i32(dbuf, g, g1) >= thr[qi]:
                            continue
                        for j in range(g, g1):
                            d = dbuf[j]
                            if d < thr[qi]:
                                _keep_strict(qi, d, t0 + j, k, bd, bp, nbuf, hist, nle, bound,
                                             thr)
    for qi in range(nqb):
        _finalize_strict(qi, k, bd, bp, nbuf, hist, nle, bound, out_d[q0 + qi], out_p[q0 + qi])


@njit(cache=True, nogil=True, boundscheck=False)
def _range_block(qwords, q0, q1, words, codes, aligned, radius, base, capacity,
                 out_d, out_p, counts):
    nw = qwords.shape[1]
    nb = codes.shape[0]
    T = _tile_codes(nw)
    direct = aligned and nw == 1
    tile = np.empty(0 if direct else nw * T, np.uint64)
    dbuf = np.empty(T, np.int32)
    cmin = np.empty(T // _SUB + 1, np.int32)
    for t0 in range(0, nb, T):
        n = min(T, nb - t0)
        if not direct:
            _load_tile(words, codes, aligned, t0, n, nw, tile, T)
        src = words if direct else tile
        s0 = t0 if direct else 0
        for qi in range(q0, q1):
            nc, stored = run_minima(qwords, qi, src, T, s0, n, dbuf, cmin)
            c_q = counts[qi]
            cap = capacity[qi]
            at = base[qi]
            for c in range(nc):
                if cmin[c] <= radius:
                    if not stored:
                        fill_distances(qwords, qi, src, T, s0 + c * _SUB,
                                       min(_SUB, n - c * _SUB), dbuf, c * _SUB)
                    for j in range(c * _SUB, min(n, (c + 1) * _SUB)):
                        d = dbuf[j]
                        if d <= radius:
                            if c_q < cap:
                                out_d[at + c_q] = d
                                out_p[at + c_q] = t0 + j
                            c_q += 1
            counts[qi] = c_q


@njit(cache=True, nogil=True, boundscheck=False)
def merge_parts(res_d, res_p):
    """Merge per-part top-k lists; parts cover increasing position ranges, so a stable sort by
    distance of the parts concatenated in order yields (distance, position) order."""
    n_parts, nq, k = res_d.shape
    out_d = np.empty((nq, k), np.int32)
    out_p = np.empty((nq, k), np.int64)
    cd = np.empty(n_parts * k, np.int32)
    cp = np.empty(n_parts * k, np.int64)
    for i in range(nq):
        for part in range(n_parts):
            cd[part * k:(part + 1) * k] = res_d[part, i]
            cp[part * k:(part + 1) * k] = res_p[part, i]
        order = np.argsort(cd, kind="mergesort")
        for t in range(k):
            out_d[i, t] = cd[order[t]]
            out_p[i, t] = cp[order[t]]
    return out_d, out_p


@njit(cache=True, nogil=True, boundscheck=False)
def flat_units(qwords, words, codes, aligned, k, radius, n_bits, qblock, n_parts, u0, u1,
               res_d, res_p, base, capacity, out_d, out_p, counts):
    """Work units ``u0 .. u1`` of a blocked scan: exact k-NN when ``k > 0``, else radius search.

    Unit ``u`` is query block ``u // n_parts`` (``qblock`` queries) against database part
    ``u % n_parts``; units write disjoint outputs, so callers run ranges of units on several
    threads (the kernel releases the GIL).

    k-NN: part ``p`` writes rows of ``res_d[p]`` / ``res_p[p]`` (n_parts, n_queries, k), sorted
    by (distance, position), padded with ``PAD_DISTANCE`` / -1; with several parts, combine
    them with :func:`merge_parts`.

    Radius (``n_parts`` must be 1): every code with distance ``<= radius``, in position order.
    Query ``i`` writes at most ``capacity[i]`` matches to ``out_d/out_p[base[i]:]`` and counts
    all of them in ``counts[i]``, so an overflowing query can be re-run with the right capacity.
    """
    nq = qwords.shape[0]
    nb = codes.shape[0]
    psize = (nb + n_parts - 1) // n_parts
    for u in range(u0, u1):
        b = u // n_parts
        part = u % n_parts
        q0 = b * qblock
        q1 = min(nq, q0 + qblock)
        if k > 0:
            lo = min(nb, part * psize)
            hi = min(nb, lo + psize)
            _knn_block(qwords, q0, q1, words, codes, aligned, lo, hi, k, n_bits,
                       res_d[part], res_p[part])
        else:
            _range_block(qwords, q0, q1, words, codes, aligned, radius, base, capacity,
                         out_d, out_p, counts)


@njit(cache=True, nogil=True, boundscheck=False)
def gather_segments(lims, src_base, src_d, src_p, done, out_d, out_p):
    """Copy query ``i``'s matches from ``src[src_base[i]:]`` to ``out[lims[i]:lims[i+1]]``
    for every query with ``done[i]``."""
    nq = lims.shape[0] - 1
    for i in range(nq):
        if done[i]:
            n = lims[i + 1] - lims[i]
            s = src_base[i]
            o = lims[i]
            for t in range(n):
                out_d[o + t] = src_d[s + t]
                out_p[o + t] = src_p[s + t]


@njit(cache=True, nogil=True, boundscheck=False)
def sort_segments_stable(lims, dist, pos, max_distance):
    """Stable counting sort by distance of every CSR segment (in place).

    Segments that arrive in position order leave in (distance, position) order.
    """
    nq = lims.shape[0] - 1
    for i in range(nq):
        lo = lims[i]
        hi = lims[i + 1]
        if hi - lo < 2:
            continue
        offs = np.zeros(max_distance + 2, np.int64)
        for t in range(lo, hi):
            offs[dist[t] + 1] += 1
        for d in range(max_distance + 1):
            offs[d + 1] += offs[d]
        td = np.empty(hi - lo, np.int32)
        tp = np.empty(hi - lo, np.int64)
        for t in range(lo, hi):
            d = dist[t]
            td[offs[d]] = d
            tp[offs[d]] = pos[t]
            offs[d] += 1
        dist[lo:hi] = td
        pos[lo:hi] = tp


@njit(cache=True, nogil=True, boundscheck=False)
def sort_segments_by_key(lims, dist, pos):
    """Sort every CSR segment by (distance, position) in place, whatever its input order."""
    nq = lims.shape[0] - 1
    for i in range(nq):
        lo = lims[i]
        hi = lims[i + 1]
        if hi - lo < 2:
            continue
        keys = np.empty(hi - lo, np.int64)
        for t in range(lo, hi):
            keys[t - lo] = (np.int64(dist[t]) << 40) | pos[t]
        keys.sort()
        mask = (np.int64(1) << 40) - 1
        for t in range(lo, hi):
            key = keys[t - lo]
            dist[t] = np.int32(key >> 40)
            pos[t] = key & mask
