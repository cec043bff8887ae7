"""Multi-index hashing kernels (Norouzi, Punjani & Fleet, CVPR 2012 / TPAMI 2014).

Codes are cut into ``m`` contiguous substrings; substring ``j`` covers bits
``starts[j] .. starts[j] + lens[j] - 1`` (``lens[j] <= 64``) and has one hash table.

Tables
------
Table ``j`` is a bucket sort of all codes by their substring-``j`` key. Its entries take as
many 64-bit words as a code (``E``), stored word-major (word ``w`` of entry ``t`` at
``w * n + t``). An entry holds the code's *position* in its top ``pbits`` bits and, below it,
the bits of the code that follow substring ``j`` (cyclically: bits ``starts[j] + lens[j]``
to the end, then from bit 0): all of them when they fit, otherwise the first
``64 * E - pbits``. The substring-``j`` bits themselves are implied by the bucket. So the
tables cost ``8 * E`` bytes per code each, and a bucket is verified by a sequential,
vectorised scan: the query's distance to an entry is the bucket's key distance ``s`` plus the
popcount of the stored bits, exact when every bit fits and a lower bound otherwise. Entries
within the bound (few) are verified against the full code, read from the code store.
A key's bucket is found through a direct-address offset array (``direct[j]``, short
substrings) or a binary search over the sorted distinct keys (long substrings).

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

Query blocks
------------
A block of queries advances through the steps together. The probes of one step (a bucket of
one query each) are collected for the whole block and ordered by their place in the table
(counting sort by key for direct-address tables of up to ``2**_GROUP_KEY_BITS`` buckets, else
by ``bucket start >> _BIN_SHIFT``), so a bucket probed by several queries is read from memory
once, and up to four queries scan it in one pass: the multi-index analogue of the query
blocking of the flat scan. Uniform 64-bit codes at 10M are the hard
case (the 10th neighbour is at distance ~13: ~1,700 buckets, ~250,000 entries per query).

When the probes and the entries of the probed buckets exceed a limit set by the caller (a
probe is counted as ``_PROBE_COST`` entries), the query is handed back to be answered by the
blocked flat scan, so a query never costs much more than a flat scan.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .popcount import popcount
from .mih_select import emit, finalize_loose

_CHUNK = 32  # entries per bound check (minimum over the chunk, vectorised)
_PIECE = 4096  # entries of a bucket whose chunk minima are computed in one call
_BIN_SHIFT = 11  # probes are ordered by bucket start >> _BIN_SHIFT (16 KiB of 1-word entries)
_GROUP_KEY_BITS = 18  # direct tables up to this key length order their probes by key
_PAIRS = 1 << 21  # probes collected before they are sorted and verified
_SURVIVORS = 128  # entries within the bound collected (and prefetched) before verification
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
def _u(i):
    return np.uintp(i)


@njit(cache=True, nogil=True, inline="always")
def _low_mask(length):
    """Mask of the low ``length`` bits, ``1 <= length <= 64``."""
    return _ONES >> np.uint64(64 - length)


@njit(cache=True, nogil=True, boundscheck=False, inline="always", _nrt=False)
def _sub(xw, start, length):
    """Bits ``start .. start + length - 1`` (``1 <= length <= 64``) of a little-endian word
    array with one spare word at the end, as a uint64."""
    w0 = start >> 6
    off = start & 63
    v = xw[w0] >> np.uint64(off)
    if off + length > 64:
        v |= xw[w0 + 1] << np.uint64(64 - off)
    return v & _low_mask(length)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _stream(xw, n_bits, start, length, pbits, n_words, out, o):
    """Entry words of a code (``xw``) for the table of substring ``(start, length)``, without
    the position: the bits after the substring, cyclically, truncated to ``64 * n_words -
    pbits`` bits; written to ``out[o .. o + n_words]``."""
    a = start + length
    keep = min(n_bits - length, 64 * n_words - pbits)
    for w in range(n_words):
        v = np.uint64(0)
        ell = min(64, keep - 64 * w)
        if ell > 0:
            p0 = (a + 64 * w) % n_bits
            l1 = min(ell, n_bits - p0)
            v = _sub(xw, p0, l1)
            if ell > l1:
                v |= _sub(xw, 0, ell - l1) << np.uint64(l1)
        out[o + w] = v


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _load_code(codes, words, aligned, p, xw):
    """Code ``p`` of the store as zero-padded words in ``xw[:n_words]`` (``xw[n_words] = 0``)."""
    nw = xw.shape[0] - 1
    if aligned:
        for w in range(nw):
            xw[w] = words[p * nw + w]
    else:
        cs = codes.shape[1]
        for w in range(nw):
            v = np.uint64(0)
            for b in range(8 * w, min(cs, 8 * w + 8)):
                v |= np.uint64(codes[p, b]) << np.uint64(8 * (b - 8 * w))
            xw[w] = v
    xw[nw] = 0


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
def counting_sort(keys, n_buckets, offsets):
    """Stable bucket sort: fills ``offsets`` (n_buckets + 1); returns ``perm`` with keys[perm]
    sorted."""
    n = keys.shape[0]
    offsets[:] = 0
    for i in range(n):
        offsets[keys[i] + 1] += 1
    for b in range(n_buckets):
        offsets[b + 1] += offsets[b]
    fill = offsets[:-1].astype(np.int64)
    perm = np.empty(n, np.int64)
    for i in range(n):
        key = keys[i]
        perm[fill[key]] = i
        fill[key] += 1
    return perm


@njit(cache=True, nogil=True, boundscheck=False)
def fill_entries(codes, words, aligned, perm, start, length, n_bits, pbits, out):
    """Table entries (word-major, ``out[w * n + t]``) of the codes ``perm`` in bucket order."""
    n = perm.shape[0]
    nw = out.shape[0] // n if n else 0
    xw = np.empty(nw + 1, np.uint64)
    tmp = np.empty(nw, np.uint64)
    shift = np.uint64(64 - pbits)
    for t in range(n):
        p = perm[t]
        _load_code(codes, words, aligned, p, xw)
        _stream(xw, n_bits, start, length, pbits, nw, tmp, 0)
        tmp[nw - 1] |= np.uint64(p) << shift
        for w in range(nw):
            out[w * n + t] = tmp[w]


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
        return np.int64(doffs[o]), np.int64(doffs[o + 1])
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
        return np.int64(soffs[o]), np.int64(soffs[o + 1])
    return np.int64(0), np.int64(0)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _min1(tj, q, lm, lo, n):
    """Minimum of ``popcount((entry ^ q) & lm)`` over entries ``lo .. lo + n`` (1-word)."""
    s0 = _u(lo)
    mn = np.uint64(255)
    for t in range(n):
        mn = min(mn, popcount((tj[s0 + _u(t)] ^ q) & lm))
    return np.int64(mn)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _chunk_min1(tj, q, lm, lo, n, cmin):
    """Minimum of ``popcount((entry ^ q) & lm)`` over every ``_CHUNK`` entries (1-word)."""
    for c in range((n + _CHUNK - 1) // _CHUNK):
        s0 = _u(lo + c * _CHUNK)
        mn = np.uint64(255)
        for t in range(min(_CHUNK, n - c * _CHUNK)):
            mn = min(mn, popcount((tj[s0 + _u(t)] ^ q) & lm))
        cmin[c] = mn


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _entry_dist(tj, qrem, qo, lm, n, nw, t):
    d = np.int64(0)
    for w in range(nw - 1):
        d += np.int64(popcount(tj[w * n + t] ^ qrem[qo + w]))
    return d + np.int64(popcount((tj[(nw - 1) * n + t] ^ qrem[qo + nw - 1]) & lm))


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _verify(qwords, i0, codes, words, aligned, starts, lens, j, s, k, radius, vq, vp, nv,
            xw, sel_d, sel_p, hist, st, base, capacity, out_d, out_p):
    """Full distance (and first-visit rule) of the ``nv`` collected entries ``(vq, vp)``."""
    nw = xw.shape[0] - 1
    for v in range(nv):
        b = vq[v]
        p = vp[v]
        _load_code(codes, words, aligned, p, xw)
        d = np.int64(0)
        for w in range(nw):
            x = qwords[i0 + b, w] ^ xw[w]
            xw[w] = x
            d += np.int64(popcount(x))
        if d <= (st[b, 2] if k > 0 else radius):
            if j < 0 or _first_visit(xw, starts, lens, j, s):
                emit(np.int32(d), p, k, b, sel_d, sel_p, hist, st, out_d, out_p,
                      base[i0 + b], capacity[i0 + b])


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _min4(tj, q0, q1, q2, q3, lm, lo, n):
    """:func:`_min1` for four queries in one pass over the entries."""
    s0 = _u(lo)
    m0 = m1 = m2 = m3 = np.uint64(255)
    for t in range(n):
        x = tj[s0 + _u(t)] & lm
        m0 = min(m0, popcount(x ^ q0))
        m1 = min(m1, popcount(x ^ q1))
        m2 = min(m2, popcount(x ^ q2))
        m3 = min(m3, popcount(x ^ q3))
    return np.int64(m0), np.int64(m1), np.int64(m2), np.int64(m3)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _scan_bucket1(qwords, i0, codes, words, aligned, tj, b, q, lo, cnt, checked, pbits, starts,
                  lens, j, s, k, radius, vq, vp, nv, cmin, xw, sel_d, sel_p, hist, st, base,
                  capacity, out_d, out_p):
    """Entries ``lo .. lo + cnt`` (1-word) of a bucket for query row ``b``; ``checked``: the
    caller already knows that the bucket's minimum is within the bound."""
    lm = _low_mask(64 - pbits)
    shift = np.uint64(64 - pbits)
    for p0 in range(lo, lo + cnt, _PIECE):
        pc = min(_PIECE, lo + cnt - p0)
        thr = (st[b, 2] if k > 0 else radius) - s
        if not checked and _min1(tj, q, lm, p0, pc) > thr:  # usual case: nothing within
            continue
        _chunk_min1(tj, q, lm, p0, pc, cmin)
        for c in range((pc + _CHUNK - 1) // _CHUNK):
            if np.int64(cmin[c]) > thr:
                continue
            for t in range(p0 + c * _CHUNK, p0 + min(pc, (c + 1) * _CHUNK)):
                x = tj[t]
                if np.int64(popcount((x ^ q) & lm)) <= thr:
                    p = np.int64(x >> shift)
                    if aligned:
                        prefetch(words, p)
                    vq[nv] = b
                    vp[nv] = p
                    nv += 1
                    if nv == vq.shape[0]:
                        _verify(qwords, i0, codes, words, aligned, starts, lens, j, s, k,
                                radius, vq, vp, nv, xw, sel_d, sel_p, hist, st, base,
                                capacity, out_d, out_p)
                        nv = 0
    return nv


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _run_pairs(qwords, i0, codes, words, aligned, tj, n, pbits, starts, lens, j, s, k, radius,
               pq, plo, pn, npairs, qrem, vq, vp, nv, cmin, xw, sel_d, sel_p, hist, st,
               base, capacity, out_d, out_p):
    """Scan the probed buckets ``(pq, plo, pn)[:npairs]`` of table ``j`` at step ``s``;
    entries within the bound are collected in ``vq/vp`` (``nv`` so far) and verified in
    batches. Consecutive probes of one bucket by several queries are scanned together (up to
    four per pass). Returns the number still collected."""
    nw = xw.shape[0] - 1
    m = starts.shape[0]
    lm = _low_mask(64 - pbits)
    shift = np.uint64(64 - pbits)
    last = (nw - 1) * n
    e = 0
    while e < npairs:
        lo = plo[e]
        cnt = np.int64(pn[e])
        if nw == 1:
            g = 1
            if cnt <= _PIECE:
                while g < 4 and e + g < npairs and plo[e + g] == lo:
                    g += 1
            if g == 1:
                b = pq[e]
                if (st[b, 2] if k > 0 else radius) - s >= 0:
                    nv = _scan_bucket1(qwords, i0, codes, words, aligned, tj, b, qrem[b * m + j],
                                       lo, cnt, False, pbits, starts, lens, j, s, k, radius, vq,
                                       vp, nv, cmin, xw, sel_d, sel_p, hist, st, base, capacity,
                                       out_d, out_p)
            else:
                q0 = qrem[pq[e] * m + j]
                q1 = qrem[pq[e + 1] * m + j]
                q2 = qrem[pq[e + min(2, g - 1)] * m + j]
                q3 = qrem[pq[e + min(3, g - 1)] * m + j]
                m0, m1, m2, m3 = _min4(tj, q0, q1, q2, q3, lm, lo, cnt)
                for u in range(g):
                    b = pq[e + u]
                    mu = m0 if u == 0 else (m1 if u == 1 else (m2 if u == 2 else m3))
                    if mu <= (st[b, 2] if k > 0 else radius) - s:
                        nv = _scan_bucket1(qwords, i0, codes, words, aligned, tj, b,
                                           qrem[b * m + j], lo, cnt, True, pbits, starts, lens,
                                           j, s, k, radius, vq, vp, nv, cmin, xw, sel_d, sel_p,
                                           hist, st, base, capacity, out_d, out_p)
            e += g
            continue
        b = pq[e]
        e += 1
        thr = (st[b, 2] if k > 0 else radius) - s
        if thr < 0:
            continue
        qo = (b * m + j) * nw
        for t in range(lo, lo + cnt):
            if _entry_dist(tj, qrem, qo, lm, n, nw, t) <= thr:
                p = np.int64(tj[last + t] >> shift)
                if aligned:
                    prefetch(words, p * nw)
                vq[nv] = b
                vp[nv] = p
                nv += 1
                if nv == vq.shape[0]:
                    _verify(qwords, i0, codes, words, aligned, starts, lens, j, s, k,
                            radius, vq, vp, nv, xw, sel_d, sel_p, hist, st, base,
                            capacity, out_d, out_p)
                    nv = 0
    return nv


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _sort_pairs(pq, plo, pn, pg, npairs, n_bins, bins, sq, slo, sn):
    """Order the probes by group ``pg`` (counting sort; groups follow the table order)."""
    for c in range(n_bins + 1):
        bins[c] = 0
    for e in range(npairs):
        bins[pg[e] + 1] += 1
    for c in range(n_bins):
        bins[c + 1] += bins[c]
    for e in range(npairs):
        c = pg[e]
        at = bins[c]
        bins[c] = at + 1
        sq[at] = pq[e]
        slo[at] = plo[e]
        sn[at] = pn[e]


@njit(cache=True, nogil=True, boundscheck=False)
def mih_block(i0, i1, qwords, codes, words, aligned, tent, pbits, starts, lens, direct, doffs,
              dbase, skeys, soffs, sbase, sobase, snum, binom, k, radius, n_bits, limit, base,
              capacity, out_d, out_p, knn_d, knn_p, counts, fell):
    """Queries ``i0 .. i1`` as one block: exact k-NN when ``k > 0``, else radius search.

    A query whose probes and bucket entries would exceed ``limit`` (a probe counts as
    ``_PROBE_COST`` entries) is abandoned with ``fell[i] = 1``: the caller answers it with a
    flat scan, and its outputs here are meaningless.

    Blocks write disjoint outputs, so callers run several blocks on several threads (the
    kernel releases the GIL). k-NN (``k <= n``) writes rows sorted by (distance, position) to
    ``knn_d`` / ``knn_p`` (n_queries, k). Radius search follows the protocol of
    :func:`ordhash._kernels.search.flat_units`: query ``i`` writes at most ``capacity[i]``
    unordered matches from ``out_d/out_p[base[i]]`` and counts all of them in ``counts[i]``.
    """
    m = starts.shape[0]
    nw = qwords.shape[1]
    n = tent.shape[1] // nw
    nb = i1 - i0
    cap_sel = 3 * k + 32 if k > 0 else 1
    sel_d = np.empty((nb, cap_sel), np.int32)
    sel_p = np.empty((nb, cap_sel), np.int64)
    hist = np.zeros((nb, n_bits + 1), np.int64)
    st = np.zeros((nb, 4), np.int64)
    st[:, 2] = n_bits
    xw = np.empty(nw + 1, np.uint64)
    qsub = np.empty((nb, m), np.uint64)
    qrem = np.empty(nb * m * nw, np.uint64)
    for b in range(nb):
        for w in range(nw):
            xw[w] = qwords[i0 + b, w]
        xw[nw] = 0
        for j in range(m):
            qsub[b, j] = _sub(xw, starts[j], lens[j])
            _stream(xw, n_bits, starts[j], lens[j], pbits, nw, qrem, (b * m + j) * nw)
    active = np.ones(nb, np.bool_)
    n_active = nb
    examined = np.zeros(nb, np.int64)
    pcap = min(_PAIRS, max(4096, 2048 * nb))
    pq = np.empty(pcap, np.int32)
    plo = np.empty(pcap, np.int64)
    pn = np.empty(pcap, np.int32)
    sq = np.empty(pcap, np.int32)
    slo = np.empty(pcap, np.int64)
    sn = np.empty(pcap, np.int32)
    n_bins = (n >> _BIN_SHIFT) + 1
    n_groups = n_bins
    for j in range(m):
        if direct[j] and lens[j] <= _GROUP_KEY_BITS:
            n_groups = max(n_groups, np.int64(1) << lens[j])
    bins = np.zeros(n_groups + 1, np.int64)
    pg = np.empty(pcap, np.int64)
    vq = np.empty(_SURVIVORS, np.int32)
    vp = np.empty(_SURVIVORS, np.int64)
    cmin = np.empty(_PIECE // _CHUNK + 1, np.uint64)
    max_len = 0
    for j in range(m):
        max_len = max(max_len, lens[j])
    for s in range(max_len + 1):
        for j in range(m):
            L = lens[j]
            if s <= L and n_active > 0:
                tj = tent[j]
                nmask = binom[L, s]
                by_key = direct[j] and L <= _GROUP_KEY_BITS  # group probes by key: exact
                ng = (np.int64(1) << L) if by_key else n_bins
                npairs = 0
                nv = 0
                for b in range(nb):
                    if not active[b]:
                        continue
                    qstart = npairs
                    mask = np.uint64(0) if s == 0 else _low_mask(s)
                    for it in range(nmask):
                        key = qsub[b, j] ^ mask
                        lo, hi = _lookup(j, key, direct, doffs, dbase, skeys, soffs, sbase,
                                         sobase, snum)
                        examined[b] += hi - lo + _PROBE_COST
                        if examined[b] > limit:  # a flat scan is cheaper: the caller runs it
                            npairs = qstart  # drop this query's probes of the step
                            fell[i0 + b] = 1
                            active[b] = False
                            n_active -= 1
                            break
                        if hi > lo:
                            if npairs == pcap:  # verify what is collected (table order)
                                _sort_pairs(pq, plo, pn, pg, npairs, ng, bins, sq, slo, sn)
                                nv = _run_pairs(qwords, i0, codes, words, aligned, tj, n, pbits,
                                                starts, lens, j, s, k, radius, sq, slo, sn,
                                                npairs, qrem, vq, vp, nv, cmin, xw, sel_d,
                                                sel_p, hist, st, base, capacity, out_d, out_p)
                                npairs = 0
                                qstart = 0
                            pq[npairs] = b
                            plo[npairs] = lo
                            pn[npairs] = hi - lo
                            pg[npairs] = np.int64(key) if by_key else lo >> _BIN_SHIFT
                            npairs += 1
                        if s > 0:  # next mask with s bits set (Gosper)
                            c = mask & (~mask + np.uint64(1))
                            r = mask + c
                            mask = (((r ^ mask) >> np.uint64(2)) >> popcount(c - np.uint64(1))) | r
                if npairs > 0:
                    _sort_pairs(pq, plo, pn, pg, npairs, ng, bins, sq, slo, sn)
                    nv = _run_pairs(qwords, i0, codes, words, aligned, tj, n, pbits, starts,
                                    lens, j, s, k, radius, sq, slo, sn, npairs, qrem, vq, vp, nv,
                                    cmin, xw, sel_d, sel_p, hist, st, base, capacity, out_d,
                                    out_p)
                _verify(qwords, i0, codes, words, aligned, starts, lens, j, s, k, radius, vq,
                        vp, nv, xw, sel_d, sel_p, hist, st, base, capacity, out_d, out_p)
            for b in range(nb):
                if active[b]:
                    if k > 0:
                        if st[b, 1] >= k and st[b, 2] <= s * m + j:
                            active[b] = False
                            n_active -= 1
                    elif s * m + j >= radius:
                        active[b] = False
                        n_active -= 1
        if n_active == 0:
            break
    for b in range(nb):
        counts[i0 + b] = st[b, 3]
        if k > 0:
            finalize_loose(k, sel_d[b], sel_p[b], st[b, 0], st[b, 2], knn_d[i0 + b],
                            knn_p[i0 + b])
