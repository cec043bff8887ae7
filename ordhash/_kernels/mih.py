"""Multi-index hashing kernels (Norouzi, Punjani & Fleet, CVPR 2012 / TPAMI 2014).

Codes are cut into ``m`` contiguous substrings; substring ``j`` covers bits
``starts[j] .. starts[j] + lens[j] - 1`` (``lens[j] <= 64``) and has one hash table.

Tables
------
Table ``j`` is a bucket sort of all codes by their substring-``j`` key: ``tpos[j]`` holds the
positions in bucket order and ``tcodes[j]`` the codes themselves, copied in that order and stored
word-major (word ``w`` of entry ``t`` at ``w * n + t``). Verifying a bucket is therefore a
sequential, vectorised scan (the same distance loops as the flat scan) instead of one random
access per candidate; the next buckets are prefetched while the current one is scanned.
A key's bucket is found through a direct-address offset array (``direct[j]``, short substrings)
or a binary search over the sorted distinct keys (long substrings).

Search
------
Exact k-NN grows the radius (the paper's incremental search). Step ``(s, j)`` probes every key
at Hamming distance exactly ``s`` from the query's substring ``j`` (bit-flip masks enumerated
with Gosper's hack). Steps run in lexicographic order, and after step ``(s, j)`` every code
within distance ``s * m + j`` has been seen (pigeonhole: if ``||h - g|| <= s*m + j`` then some
substring ``j' <= j`` is within ``s`` or some ``j' > j`` is within ``s - 1``). The search stops
when the k-th smallest distance seen is ``<= s * m + j``, which also guarantees that every tie
at the k-th distance has been seen, so results are exact with ties broken by position.

A code is met once per substring close enough to the query; it is counted only at its first
step: the visit ``(s, j)`` is the first iff no ``j' < j`` has substring distance ``<= s`` and no
``j' > j`` has substring distance ``< s``. This replaces a visited-marker array (no per-thread
O(n) memory, nothing to reset). Radius search runs the steps up to ``(R // m, R % m)``.

When the probes and the codes in the probed buckets would cost more than verifying every code
(a probe is counted as ``_PROBE_COST`` codes), the query falls back to one linear scan of table
0, so a query never costs much more than a flat scan.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .popcount import popcount
from .search import _SUB, PAD_DISTANCE, _u, fill_distances, run_minima

_PIECE = 1024  # codes of a bucket whose distances are computed in one call
_KEY_BATCH = 256  # keys enumerated and looked up ahead of scanning
_AHEAD = 4  # buckets prefetched ahead
_LINES = 32  # cache lines prefetched per bucket (per word row)
_SMALL = 32  # buckets up to this size are verified inline, without the vectorised scan
_PROBE_COST = 16  # a key probe costs about as much as verifying this many codes
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to load ``arr[idx]`` into cache (``llvm.prefetch``: read, high locality)."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                       wraparound=False, boundscheck=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _low_mask(length):
    return _ONES >> np.uint64(64 - length)


@njit(cache=True, nogil=True, boundscheck=False, inline="always", _nrt=False)
def _sub(xw, start, length):
    """Bits ``start .. start + length - 1`` of a little-endian word array, as a uint64."""
    w0 = start >> 6
    off = start & 63
    v = xw[w0] >> np.uint64(off)
    if off + length > 64:
        v |= xw[w0 + 1] << np.uint64(64 - off)
    return v & _low_mask(length)


# --------------------------------------------------------------------------------- building


@njit(cache=True, nogil=True, boundscheck=False)
def extract_keys(codes, start, length):
    """Substring keys (bits ``start .. start + length - 1``) of packed ``uint8`` rows."""
    n = codes.shape[0]
    out = np.empty(n, np.uint64)
    b0 = start // 8
    b1 = (start + length - 1) // 8
    mask = _low_mask(length)
    for i in range(n):
        v = np.uint64(0)
        for b in range(b0, b1 + 1):
            sh = 8 * b - start
            x = np.uint64(codes[i, b])
            if sh >= 0:
                v |= x << np.uint64(sh)
            else:
                v |= x >> np.uint64(-sh)
        out[i] = v & mask
    return out


@njit(cache=True, nogil=True, boundscheck=False)
def counting_sort(keys, n_buckets):
    """Stable bucket sort: ``offsets`` (n_buckets + 1) and ``perm`` with keys[perm] sorted."""
    n = keys.shape[0]
    offsets = np.zeros(n_buckets + 1, np.int64)
    for i in range(n):
        offsets[keys[i] + 1] += 1
    for b in range(n_buckets):
        offsets[b + 1] += offsets[b]
    fill = offsets[:-1].copy()
    perm = np.empty(n, np.int64)
    for i in range(n):
        key = keys[i]
        perm[fill[key]] = i
        fill[key] += 1
    return offsets, perm


@njit(cache=True, nogil=True, boundscheck=False)
def gather_word_major(codes, words, aligned, perm, out):
    """``out[w * n + t]`` = word ``w`` (zero-padded) of code ``perm[t]``."""
    n = perm.shape[0]
    nw = out.shape[0] // n if n else 0
    cs = codes.shape[1]
    for t in range(n):
        p = perm[t]
        for w in range(nw):
            if aligned:
                v = words[p * nw + w]
            else:
                v = np.uint64(0)
                for b in range(8 * w, min(cs, 8 * w + 8)):
                    v |= np.uint64(codes[p, b]) << np.uint64(8 * (b - 8 * w))
            out[w * n + t] = v


# --------------------------------------------------------------------------------- selection


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _sift_down(sel_d, sel_p, root, end):
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and (sel_d[child + 1] > sel_d[child] or (
                sel_d[child + 1] == sel_d[child] and sel_p[child + 1] > sel_p[child])):
            child += 1
        if sel_d[root] > sel_d[child] or (sel_d[root] == sel_d[child] and sel_p[root] >= sel_p[child]):
            return
        sel_d[root], sel_d[child] = sel_d[child], sel_d[root]
        sel_p[root], sel_p[child] = sel_p[child], sel_p[root]
        root = child


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _heapsort_pairs(sel_d, sel_p, m):
    """Sort the first ``m`` (distance, position) pairs in place (heapsort, no allocation)."""
    for root in range(m // 2 - 1, -1, -1):
        _sift_down(sel_d, sel_p, root, m)
    for end in range(m - 1, 0, -1):
        sel_d[0], sel_d[end] = sel_d[end], sel_d[0]
        sel_p[0], sel_p[end] = sel_p[end], sel_p[0]
        _sift_down(sel_d, sel_p, 0, end)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _keep_loose(d, p, k, sel_d, sel_p, hist, state):
    """Keep candidate ``(d, p)`` (``d <= bound``, any arrival order); lower the bound.

    ``state`` = [n_buffered, n_counted, bound, n_range_matches].
    """
    cap = sel_d.shape[0]
    if state[0] == cap:
        bound = state[2]
        m = 0
        for t in range(cap):
            if sel_d[t] <= bound:
                sel_d[m] = sel_d[t]
                sel_p[m] = sel_p[t]
                m += 1
        if m > cap - k - 16:  # many ties at the bound: keep the k best by (distance, position)
            _heapsort_pairs(sel_d, sel_p, m)
            m = k
        state[0] = m
    m = state[0]
    sel_d[m] = d
    sel_p[m] = p
    state[0] = m + 1
    hist[d] += 1
    state[1] += 1
    if state[1] >= k:
        b = state[2]
        while state[1] - hist[b] >= k:
            state[1] -= hist[b]
            hist[b] = 0
            b -= 1
        state[2] = b


@njit(cache=True, nogil=True, boundscheck=False)
def _finalize_loose(k, sel_d, sel_p, state, out_d, out_p):
    bound = state[2]
    keys = np.empty(state[0], np.int64)
    c = 0
    for t in range(state[0]):
        if sel_d[t] <= bound:
            keys[c] = (np.int64(sel_d[t]) << 40) | sel_p[t]
            c += 1
    keys = np.sort(keys[:c])
    low = (np.int64(1) << 40) - 1
    for t in range(min(k, c)):
        out_d[t] = np.int32(keys[t] >> 40)
        out_p[t] = keys[t] & low
    for t in range(min(k, c), k):
        out_d[t] = PAD_DISTANCE
        out_p[t] = -1


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _emit(d, p, k, sel_d, sel_p, hist, state, out_d, out_p, at, cap):
    if k > 0:
        _keep_loose(d, p, k, sel_d, sel_p, hist, state)
    else:
        c = state[3]
        if c < cap:
            out_d[at + c] = d
            out_p[at + c] = p
        state[3] = c + 1


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _first_visit(xw, starts, lens, j, s):
    for jj in range(starts.shape[0]):
        if jj != j:
            ds = np.int64(popcount(_sub(xw, starts[jj], lens[jj])))
            if ds < s or (jj < j and ds == s):
                return False
    return True


# --------------------------------------------------------------------------------- search


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _lookup(j, key, direct, doffs, dbase, skeys, soffs, sbase, sobase, snum):
    if direct[j]:
        o = dbase[j] + np.int64(key)
        return doffs[o], doffs[o + 1]
    lo = sbase[j]
    hi = lo + snum[j]
    while lo < hi:
        mid = (lo + hi) >> 1
        if skeys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < sbase[j] + snum[j] and skeys[lo] == key:
        o = sobase[j] + (lo - sbase[j])
        return soffs[o], soffs[o + 1]
    return 0, 0


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _scan_range(qwords, i, tj, pj, n, lo, hi, j, s, starts, lens, k, radius, dbuf, cmin, xw,
                sel_d, sel_p, hist, state, out_d, out_p, at, cap):
    """Verify entries ``lo .. hi`` of table ``j`` (``j < 0``: no first-visit rule)."""
    nw = qwords.shape[1]
    for s0 in range(lo, hi, _PIECE):
        nn = min(_PIECE, hi - s0)
        nc, stored = run_minima(qwords, i, tj, n, s0, nn, dbuf, cmin)
        for c in range(nc):
            if cmin[c] > (state[2] if k > 0 else radius):
                continue
            c1 = min(nn, (c + 1) * _SUB)
            if not stored:
                fill_distances(qwords, i, tj, n, s0 + c * _SUB, c1 - c * _SUB, dbuf, c * _SUB)
            for u in range(c * _SUB, c1):
                d = dbuf[u]
                if d > (state[2] if k > 0 else radius):
                    continue
                t = s0 + u
                if j >= 0:
                    for w in range(nw):
                        xw[w] = qwords[i, w] ^ tj[_u(w * n + t)]
                    if not _first_visit(xw, starts, lens, j, s):
                        continue
                _emit(d, pj[t], k, sel_d, sel_p, hist, state, out_d, out_p, at, cap)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _mih_query(qwords, i, tcodes, tpos, starts, lens, direct, doffs, dbase, skeys, soffs,
               sbase, sobase, snum, binom, k, radius, n_bits, sel_d, sel_p, hist, state,
               out_d, out_p, at, cap, dbuf, cmin, xw, qsub, keys, los, his):
    """One query: k-NN when ``k > 0`` (selection state), else all codes within ``radius``."""
    m = starts.shape[0]
    n = tpos.shape[1]
    nw = qwords.shape[1]
    for w in range(nw):
        xw[w] = qwords[i, w]
    for j in range(m):
        qsub[j] = _sub(xw, starts[j], lens[j])
    max_len = 0
    for j in range(m):
        max_len = max(max_len, lens[j])
    examined = 0
    for s in range(max_len + 1):
        for j in range(m):
            L = lens[j]
            if s <= L:
                tj = tcodes[j]
                pj = tpos[j]
                nmask = binom[L, s]
                mask = np.uint64(0) if s == 0 else _low_mask(s)
                for b0 in range(0, nmask, _KEY_BATCH):
                    nk = min(_KEY_BATCH, nmask - b0)
                    for it in range(nk):
                        keys[it] = qsub[j] ^ mask
                        if s > 0:  # next mask with s bits set (Gosper)
                            c = mask & (~mask + np.uint64(1))
                            r = mask + c
                            mask = (((r ^ mask) >> np.uint64(2)) >> popcount(c - np.uint64(1))) | r
                    for it in range(nk):
                        lo, hi = _lookup(j, keys[it], direct, doffs, dbase, skeys, soffs,
                                         sbase, sobase, snum)
                        los[it] = lo
                        his[it] = hi
                        examined += hi - lo + _PROBE_COST
                    if examined > n:  # cheaper to verify every code once
                        state[0] = 0
                        state[1] = 0
                        state[2] = n_bits
                        state[3] = 0
                        hist[:] = 0
                        zero = np.int64(0)
                        _scan_range(qwords, i, tcodes[0], tpos[0], n, zero, np.int64(n),
                                    np.int64(-1), zero, starts, lens, k, radius, dbuf, cmin, xw,
                                    sel_d, sel_p, hist, state, out_d, out_p, at, cap)
                        return
                    for it in range(nk):
                        if it + _AHEAD < nk:
                            plo = los[it + _AHEAD]
                            phi = min(his[it + _AHEAD], plo + 8 * _LINES)
                            for w in range(nw):
                                for pp in range(w * n + plo, w * n + phi, 8):
                                    prefetch(tj, pp)
                        lo = los[it]
                        hi = his[it]
                        if hi - lo > _SMALL:
                            _scan_range(qwords, i, tj, pj, n, lo, hi, np.int64(j), np.int64(s),
                                        starts, lens, k, radius, dbuf, cmin, xw, sel_d, sel_p,
                                        hist, state, out_d, out_p, at, cap)
                            continue
                        for t in range(lo, hi):  # small bucket: plain loop, no call
                            d = 0
                            for w in range(nw):
                                x = qwords[i, w] ^ tj[_u(w * n + t)]
                                xw[w] = x
                                d += popcount(x)
                            if d <= (state[2] if k > 0 else radius):
                                if _first_visit(xw, starts, lens, j, s):
                                    _emit(np.int32(d), pj[t], k, sel_d, sel_p, hist, state,
                                          out_d, out_p, at, cap)
            if k > 0:
                if state[1] >= k and state[2] <= s * m + j:
                    return
            elif s * m + j >= radius:
                return


@njit(cache=True, nogil=True, boundscheck=False)
def mih_queries(i0, i1, qwords, tcodes, tpos, starts, lens, direct, doffs, dbase, skeys, soffs,
                sbase, sobase, snum, binom, k, radius, n_bits, base, capacity, out_d, out_p,
                knn_d, knn_p, counts):
    """Queries ``i0 .. i1``: exact k-NN when ``k > 0``, else radius search (one kernel for both).

    Queries write disjoint outputs, so callers run ranges of queries on several threads (the
    kernel releases the GIL). k-NN (``k <= n``) writes rows sorted by (distance, position) to
    ``knn_d`` / ``knn_p`` (n_queries, k). Radius search follows the protocol of
    :func:`ordhash._kernels.search.flat_units`: query ``i`` writes at most ``capacity[i]``
    unordered matches from ``out_d/out_p[base[i]]`` and counts all of them in ``counts[i]``.
    """
    m = starts.shape[0]
    nw = qwords.shape[1]
    cap_sel = 3 * k + 32 if k > 0 else 0
    sel_d = np.empty(cap_sel, np.int32)
    sel_p = np.empty(cap_sel, np.int64)
    hist = np.zeros(n_bits + 1, np.int64)
    state = np.zeros(4, np.int64)
    dbuf = np.empty(_PIECE, np.int32)
    cmin = np.empty(_PIECE // _SUB + 1, np.int32)
    xw = np.empty(nw + 1, np.uint64)
    qsub = np.empty(m, np.uint64)
    keys = np.empty(_KEY_BATCH, np.uint64)
    los = np.empty(_KEY_BATCH, np.int64)
    his = np.empty(_KEY_BATCH, np.int64)
    for i in range(i0, i1):
        hist[:] = 0
        state[:] = 0
        state[2] = n_bits
        _mih_query(qwords, i, tcodes, tpos, starts, lens, direct, doffs, dbase, skeys, soffs,
                   sbase, sobase, snum, binom, k, radius, n_bits, sel_d, sel_p, hist, state,
                   out_d, out_p, base[i], capacity[i], dbuf, cmin, xw, qsub, keys, los, his)
        counts[i] = state[3]
        if k > 0:
            _finalize_loose(k, sel_d, sel_p, state, knn_d[i], knn_p[i])
