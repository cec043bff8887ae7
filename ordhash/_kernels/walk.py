"""Bookkeeping kernels of the graph walk (:mod:`ordhash.walk`).

The walk alternates between these kernels and a call to the matching function, which runs in
Python on a whole batch. The kernels never see the scorer: they gather neighbours, keep the
visited sets, probe and fill the per-query score cache, merge beams and maintain heaps.

Conventions
-----------
* A *block* of ``B`` queries is walked in lockstep; query ``b`` of the block owns row ``b`` of
  every 2-D state array ("slot" ``b``).
* Ragged per-slot lists are CSR pairs ``(ptr, ids)``: the items of slot ``b`` are
  ``ids[ptr[b]:ptr[b + 1]]``; ``ptr`` is ``int64`` of length ``B + 1``.
* Visited sets and cache-presence flags are bitsets, ``uint64`` arrays of shape
  ``(B, ceil(n / 64))``; item ``v`` is bit ``v & 63`` of word ``v >> 6``. The caller clears rows
  (``bits[b] = 0``) when a slot starts a new query or a new level. A bitset row is n/8 bytes
  (125 KB for a million items), so the random probes of a walk stay in L2; cached *values* are
  kept only for items of earlier levels, in a small sorted array (see :func:`cache_split`).
* Scores are ``float32``, higher is better; ``-inf`` is a legal score (an excluded item), NaN is
  rejected before it reaches a kernel.
* Selections are stable: among equal scores the earlier position wins, so results are
  deterministic.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_ONE = np.uint64(1)
_SIX = np.uint64(6)
_LOW = np.uint64(63)


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to fetch ``arr[idx]`` into cache (LLVM ``llvm.prefetch``; a no-op for
    correctness). Resolved at compile time, so kernels using it stay ``cache=True``."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read access, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


_PREFETCH = 8      # frontier nodes looked ahead (their adjacency rows are random DRAM reads)


# ------------------------------------------------------------------------------------------
# graph extraction
# ------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def csr_from_padded(neighbors, offsets, levels, lo, hi, level):
    """CSR adjacency of one level of a faiss HNSW graph.

    ``neighbors`` is faiss' flat ``int32`` neighbour table (``-1`` padded), ``offsets`` the
    per-node start (``int64``; faiss stores ``uint64``), ``levels[i]`` is 1 + the top layer of
    node ``i``, and slots ``lo:hi`` of a node's block belong to ``level``. Rows of nodes absent
    from ``level`` are empty; padding entries (``< 0``) are dropped.
    """
    n = levels.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        c = 0
        if levels[i] > level:
            base = offsets[i]
            for s in range(lo, hi):
                if neighbors[base + s] >= 0:
                    c += 1
        indptr[i + 1] = indptr[i] + c
    indices = np.empty(indptr[n], dtype=np.int32)
    for i in range(n):
        if levels[i] > level:
            p = indptr[i]
            base = offsets[i]
            for s in range(lo, hi):
                v = neighbors[base + s]
                if v >= 0:
                    indices[p] = v
                    p += 1
    return indptr, indices


@njit(cache=True, nogil=True)
def csr_from_knn(knn, n):
    """CSR adjacency from a ``(n_rows, k)`` neighbour table; entries ``< 0`` or ``>= n`` and
    self-loops are dropped, duplicates within a row are kept once (first occurrence)."""
    m, k = knn.shape
    indptr = np.zeros(m + 1, dtype=np.int64)
    indices = np.empty(m * k, dtype=np.int32)
    p = 0
    for i in range(m):
        for j in range(k):
            v = knn[i, j]
            if v < 0 or v >= n or v == i:
                continue
            dup = False
            for q in range(indptr[i], p):
                if indices[q] == v:
                    dup = True
                    break
            if not dup:
                indices[p] = v
                p += 1
        indptr[i + 1] = p
    return indptr, indices[:p].copy()


# ------------------------------------------------------------------------------------------
# visited sets and score cache
# ------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def mark_rows(ptr, ids, bits):
    """Set the bit of every item of slot ``b``'s list in row ``b`` of ``bits``."""
    for b in range(ptr.shape[0] - 1):
        row = bits[b]
        for j in range(ptr[b], ptr[b + 1]):
            v = np.uint64(ids[j])
            row[v >> _SIX] |= _ONE << (v & _LOW)


@njit(cache=True, nogil=True)
def gather_probe(indptr, indices, fptr, fids, visited, limit, cached, keys, values, n_items,
                 out, scores, miss_pos, miss_slot):
    """Gather each slot's unvisited frontier neighbours and probe the score cache.

    For every slot: the neighbours of its frontier nodes (``fids[fptr[b]:fptr[b + 1]]``) that
    are not yet visited, marked visited, without duplicates, in gather order (frontier order,
    then adjacency order); ``limit[b] >= 0`` caps their number (a scoring budget), ``-1`` means
    no cap. Each new item is looked up in the cache as in :func:`cache_split`; the cached bit of
    every miss is set (it is scored next), so the caller only writes
    ``scores[miss_pos] = new_scores``.

    Writes into caller-provided buffers (each at least as long as the frontier's total degree;
    reusing them avoids fresh pages every round) and returns ``(optr, n_new, n_miss)``:
    ``out[:n_new]`` the new items, ``scores`` their cached values at hits, and
    ``miss_pos[:n_miss]`` / ``miss_slot[:n_miss]`` the positions and slots to score.
    Adjacency rows of upcoming frontier nodes are prefetched (30-40 % faster on a 1M-node
    graph, where every row is a random DRAM read).
    """
    nslots = fptr.shape[0] - 1
    optr = np.zeros(nslots + 1, dtype=np.int64)
    nk = keys.shape[0]
    nf = fptr[nslots]
    pos = 0
    k = 0
    for j in range(min(2 * _PREFETCH, nf)):
        prefetch(indptr, fids[j])
    for j in range(min(_PREFETCH, nf)):
        prefetch(indices, indptr[fids[j]])
    for b in range(nslots):
        row = visited[b]
        crow = cached[b]
        lim = limit[b]
        cnt = 0
        for j in range(fptr[b], fptr[b + 1]):
            if j + 2 * _PREFETCH < nf:
                prefetch(indptr, fids[j + 2 * _PREFETCH])
            if j + _PREFETCH < nf:
                prefetch(indices, indptr[fids[j + _PREFETCH]])
            if lim >= 0 and cnt >= lim:
                break
            c = fids[j]
            for p in range(indptr[c], indptr[c + 1]):
                v = indices[p]
                uv = np.uint64(v)
                w = uv >> _SIX
                bit = _ONE << (uv & _LOW)
                if row[w] & bit:
                    continue
                row[w] |= bit
                out[pos] = v
                hit = False
                if crow[w] & bit:
                    if nk > 0:
                        key = b * n_items + v
                        q = np.searchsorted(keys, key)
                        if q < nk and keys[q] == key:
                            scores[pos] = values[q]
                            hit = True
                else:
                    crow[w] |= bit
                if not hit:
                    miss_pos[k] = pos
                    miss_slot[k] = b
                    k += 1
                pos += 1
                cnt += 1
                if lim >= 0 and cnt >= lim:
                    break
        optr[b + 1] = pos
    return optr, pos, k


@njit(cache=True, nogil=True)
def cache_split(optr, oids, cached, keys, values, n_items):
    """Look every item up in its slot's score cache.

    ``cached`` has the bit of every item a slot has scored; the scores of items scored on
    *earlier levels* are in ``values``, indexed by the sorted ``keys = slot * n_items + id``.
    (Within a level the visited set prevents re-encounters, so only earlier levels matter; a
    set bit without a key is scored again, never guessed.) Returns
    ``(scores, miss_pos, miss_slot)``: cached values at hits (undefined at misses), positions
    in ``oids`` that must be scored and their slots.
    """
    m = oids.shape[0]
    scores = np.empty(m, dtype=np.float32)
    miss_pos = np.empty(m, dtype=np.int64)
    miss_slot = np.empty(m, dtype=np.int64)
    nk = keys.shape[0]
    k = 0
    for b in range(optr.shape[0] - 1):
        row = cached[b]
        for j in range(optr[b], optr[b + 1]):
            v = oids[j]
            uv = np.uint64(v)
            if nk > 0 and row[uv >> _SIX] & (_ONE << (uv & _LOW)):
                key = b * n_items + v
                p = np.searchsorted(keys, key)
                if p < nk and keys[p] == key:
                    scores[j] = values[p]
                    continue
            miss_pos[k] = j
            miss_slot[k] = b
            k += 1
    return scores, miss_pos[:k].copy(), miss_slot[:k].copy()


@njit(cache=True, nogil=True)
def cache_store(oids, miss_pos, miss_slot, miss_scores, scores, cached):
    """Write freshly computed scores into ``scores`` and set the slots' cached bits."""
    for i in range(miss_pos.shape[0]):
        j = miss_pos[i]
        v = oids[j]
        scores[j] = miss_scores[i]
        uv = np.uint64(v)
        cached[miss_slot[i], uv >> _SIX] |= _ONE << (uv & _LOW)


# ------------------------------------------------------------------------------------------
# selection and beams
# ------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def top_positions(sc, k):
    """Positions of the ``k`` largest values of ``sc``, best first; stable among ties."""
    m = sc.shape[0]
    if k >= m:
        keep = np.arange(m)
    else:
        thr = np.partition(sc.copy(), m - k)[m - k]
        quota = k
        for i in range(m):
            if sc[i] > thr:
                quota -= 1
        # ``quota`` ties at the threshold are admitted, the earliest first.
        keep = np.empty(k, dtype=np.int64)
        c = 0
        for i in range(m):
            s = sc[i]
            if s > thr:
                keep[c] = i
                c += 1
            elif s == thr and quota > 0:
                quota -= 1
                keep[c] = i
                c += 1
    neg = np.empty(keep.shape[0], dtype=np.float32)
    for i in range(keep.shape[0]):
        neg[i] = -sc[keep[i]]
    return keep[np.argsort(neg, kind="mergesort")]


@njit(cache=True, nogil=True)
def beam_merge(w_ids, w_sc, w_n, optr, oids, osc, ef):
    """``W_b = top(ef, W_b ∪ N_b)`` for every slot, in place; returns the frontier.

    ``w_ids``/``w_sc`` (``(B, cap)``, ``cap >= ef``) hold each beam sorted best first with
    ``w_n[b]`` valid entries. The returned CSR ``(fptr, fids)`` lists, per slot, the new items
    (from ``oids``) that entered the beam, best first (NANN's ``W ∩ N``). Old beam members win
    ties against new items.
    """
    nslots = optr.shape[0] - 1
    fptr = np.zeros(nslots + 1, dtype=np.int64)
    fids = np.empty(oids.shape[0], dtype=np.int64)
    fpos = 0
    for b in range(nslots):
        nw = w_n[b]
        s0 = optr[b]
        s1 = optr[b + 1]
        # A full beam only admits new items strictly better than its worst member.
        full = nw >= ef
        thr = w_sc[b, nw - 1] if full and nw > 0 else np.float32(0.0)
        nn = 0
        for i in range(s0, s1):
            if not full or osc[i] > thr:
                nn += 1
        if nn == 0:
            fptr[b + 1] = fpos
            continue
        m = nw + nn
        src = np.empty(m, dtype=np.int64)      # new candidate -> its position in ``oids``
        csc = np.empty(m, dtype=np.float32)
        for i in range(nw):
            csc[i] = w_sc[b, i]
        c = nw
        for i in range(s0, s1):
            if not full or osc[i] > thr:
                src[c] = i
                csc[c] = osc[i]
                c += 1
        keep = top_positions(csc, ef)
        # Old members can move within the row: read them from a copy.
        old_ids = w_ids[b, :nw].copy()
        for i in range(keep.shape[0]):
            p = keep[i]
            if p < nw:
                w_ids[b, i] = old_ids[p]
            else:
                v = oids[src[p]]
                w_ids[b, i] = v
                fids[fpos] = v
                fpos += 1
            w_sc[b, i] = csc[p]
        w_n[b] = keep.shape[0]
        fptr[b + 1] = fpos
    return fptr, fids[:fpos].copy()


@njit(cache=True, nogil=True)
def select_top(optr, oids, osc, k):
    """The ``k`` best items of every slot's list, best first, as CSR ``(ptr, ids, scores)``."""
    nslots = optr.shape[0] - 1
    total = 0
    for b in range(nslots):
        total += min(k, optr[b + 1] - optr[b])
    sptr = np.zeros(nslots + 1, dtype=np.int64)
    sids = np.empty(total, dtype=np.int64)
    ssc = np.empty(total, dtype=np.float32)
    pos = 0
    for b in range(nslots):
        s0 = optr[b]
        keep = top_positions(osc[s0:optr[b + 1]], k)
        for i in range(keep.shape[0]):
            sids[pos] = oids[s0 + keep[i]]
            ssc[pos] = osc[s0 + keep[i]]
            pos += 1
        sptr[b + 1] = pos
    return sptr, sids, ssc


@njit(cache=True, nogil=True)
def rows_top(ids, sc, n, k):
    """Top ``k`` of each row's first ``n[b]`` entries, best first, padded with -1 / -inf."""
    nslots = ids.shape[0]
    out_ids = np.full((nslots, k), -1, dtype=np.int64)
    out_sc = np.full((nslots, k), -np.inf, dtype=np.float32)
    for b in range(nslots):
        keep = top_positions(sc[b, :n[b]], k)
        for i in range(keep.shape[0]):
            out_ids[b, i] = ids[b, keep[i]]
            out_sc[b, i] = sc[b, keep[i]]
    return out_ids, out_sc


# ------------------------------------------------------------------------------------------
# best-first (stock HNSW) walk
# ------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _max_push(ids, sc, n, v, s):
    i = n
    ids[i] = v
    sc[i] = s
    while i > 0:
        p = (i - 1) >> 1
        if sc[p] >= sc[i]:
            break
        ids[p], ids[i] = ids[i], ids[p]
        sc[p], sc[i] = sc[i], sc[p]
        i = p


@njit(cache=True, nogil=True)
def _max_sift_down(ids, sc, n, i):
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        best = left
        if left + 1 < n and sc[left + 1] > sc[left]:
            best = left + 1
        if sc[best] <= sc[i]:
            break
        ids[best], ids[i] = ids[i], ids[best]
        sc[best], sc[i] = sc[i], sc[best]
        i = best


@njit(cache=True, nogil=True)
def _min_push(ids, sc, n, v, s):
    i = n
    ids[i] = v
    sc[i] = s
    while i > 0:
        p = (i - 1) >> 1
        if sc[p] <= sc[i]:
            break
        ids[p], ids[i] = ids[i], ids[p]
        sc[p], sc[i] = sc[i], sc[p]
        i = p


@njit(cache=True, nogil=True)
def _min_sift_down(ids, sc, n, i):
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        best = left
        if left + 1 < n and sc[left + 1] < sc[left]:
            best = left + 1
        if sc[best] >= sc[i]:
            break
        ids[best], ids[i] = ids[i], ids[best]
        sc[best], sc[i] = sc[i], sc[best]
        i = best


@njit(cache=True, nogil=True)
def greedy_gather(indptr, indices, ep, active, visited):
    """One greedy step on an upper layer: unvisited neighbours of each active slot's entry
    point (marked visited). A slot with nothing new to score becomes inactive."""
    nslots = ep.shape[0]
    total = 0
    for b in range(nslots):
        if active[b]:
            total += indptr[ep[b] + 1] - indptr[ep[b]]
    out = np.empty(total, dtype=np.int64)
    optr = np.zeros(nslots + 1, dtype=np.int64)
    pos = 0
    for b in range(nslots):
        if active[b]:
            row = visited[b]
            c = ep[b]
            for p in range(indptr[c], indptr[c + 1]):
                uv = np.uint64(indices[p])
                w = uv >> _SIX
                bit = _ONE << (uv & _LOW)
                if row[w] & bit:
                    continue
                row[w] |= bit
                out[pos] = indices[p]
                pos += 1
            if pos == optr[b]:
                active[b] = False
        optr[b + 1] = pos
    return optr, out[:pos].copy()


@njit(cache=True, nogil=True)
def greedy_update(optr, oids, osc, ep, ep_sc, active):
    """Move each slot's entry point to its best new neighbour if that improves the score;
    otherwise the slot's descent on this layer is finished (inactive)."""
    for b in range(ep.shape[0]):
        if not active[b]:
            continue
        best = -1
        for j in range(optr[b], optr[b + 1]):
            if best < 0 or osc[j] > osc[best]:
                best = j
        if best >= 0 and osc[best] > ep_sc[b]:
            ep[b] = oids[best]
            ep_sc[b] = osc[best]
        else:
            active[b] = False


@njit(cache=True, nogil=True)
def bf_init(ep, ep_sc, cand_ids, cand_sc, cand_n, res_ids, res_sc, res_n, visited):
    """Start the layer-0 best-first search of every slot at its entry point."""
    for b in range(ep.shape[0]):
        cand_ids[b, 0] = ep[b]
        cand_sc[b, 0] = ep_sc[b]
        cand_n[b] = 1
        res_ids[b, 0] = ep[b]
        res_sc[b, 0] = ep_sc[b]
        res_n[b] = 1
        uv = np.uint64(ep[b])
        visited[b, uv >> _SIX] |= _ONE << (uv & _LOW)


@njit(cache=True, nogil=True)
def bf_pop_gather(indptr, indices, cand_ids, cand_sc, cand_n, res_sc, res_n, ef, active,
                  visited, n_pops):
    """HNSW search_layer, first half of one step for every active slot.

    Pops the best candidate; stops the slot when it is worse than the worst of a full result
    set or when no candidate is left; otherwise gathers its unvisited neighbours (marking them).
    Pops whose neighbours are all visited are skipped without a scorer call.
    """
    nslots = cand_n.shape[0]
    chunks = []
    optr = np.zeros(nslots + 1, dtype=np.int64)
    total = 0
    for b in range(nslots):
        buf = np.empty(0, dtype=np.int64)
        while active[b]:
            n = cand_n[b]
            if n == 0:
                active[b] = False
                break
            c = cand_ids[b, 0]
            s = cand_sc[b, 0]
            n -= 1
            cand_ids[b, 0] = cand_ids[b, n]
            cand_sc[b, 0] = cand_sc[b, n]
            cand_n[b] = n
            _max_sift_down(cand_ids[b], cand_sc[b], n, 0)
            if res_n[b] >= ef and s < res_sc[b, 0]:
                active[b] = False
                break
            n_pops[b] += 1
            row = visited[b]
            deg = indptr[c + 1] - indptr[c]
            buf = np.empty(deg, dtype=np.int64)
            k = 0
            for p in range(indptr[c], indptr[c + 1]):
                uv = np.uint64(indices[p])
                w = uv >> _SIX
                bit = _ONE << (uv & _LOW)
                if row[w] & bit:
                    continue
                row[w] |= bit
                buf[k] = indices[p]
                k += 1
            if k > 0:
                buf = buf[:k]
                break
            buf = np.empty(0, dtype=np.int64)
        chunks.append(buf)
        total += buf.shape[0]
        optr[b + 1] = total
    out = np.empty(total, dtype=np.int64)
    for b in range(nslots):
        out[optr[b]:optr[b + 1]] = chunks[b]
    return optr, out


@njit(cache=True, nogil=True)
def bf_push(optr, oids, osc, cand_ids, cand_sc, cand_n, res_ids, res_sc, res_n, ef):
    """HNSW search_layer, second half: push each scored neighbour that beats the worst result
    (or fills a free result slot) into both heaps; trim the results to ``ef``.

    When a candidate heap is full, candidates worse than the current worst result are dropped
    first (popping one would end the search anyway); if that frees nothing, the worst candidate
    is dropped.
    """
    cap = cand_ids.shape[1]
    for b in range(optr.shape[0] - 1):
        for j in range(optr[b], optr[b + 1]):
            v = oids[j]
            s = osc[j]
            if res_n[b] >= ef and not (s > res_sc[b, 0]):
                continue
            if cand_n[b] >= cap:
                _compact_candidates(cand_ids[b], cand_sc[b], cand_n, b, res_sc[b, 0],
                                    res_n[b] >= ef)
            _max_push(cand_ids[b], cand_sc[b], cand_n[b], v, s)
            cand_n[b] += 1
            _min_push(res_ids[b], res_sc[b], res_n[b], v, s)
            res_n[b] += 1
            if res_n[b] > ef:
                n = res_n[b] - 1
                res_ids[b, 0] = res_ids[b, n]
                res_sc[b, 0] = res_sc[b, n]
                res_n[b] = n
                _min_sift_down(res_ids[b], res_sc[b], n, 0)


@njit(cache=True, nogil=True)
def _compact_candidates(ids, sc, cand_n, b, worst, full):
    n = cand_n[b]
    k = 0
    if full:
        for i in range(n):
            if sc[i] >= worst:
                ids[k] = ids[i]
                sc[k] = sc[i]
                k += 1
    else:
        k = n
    if k >= ids.shape[0]:
        # Nothing could be dropped (ties): drop the single worst candidate.
        worst_i = 0
        for i in range(1, k):
            if sc[i] < sc[worst_i]:
                worst_i = i
        k -= 1
        ids[worst_i] = ids[k]
        sc[worst_i] = sc[k]
    # Re-heapify.
    for i in range(k // 2 - 1, -1, -1):
        _max_sift_down(ids, sc, k, i)
    cand_n[b] = k
