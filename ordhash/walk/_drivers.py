"""Lockstep drivers of the walks: Python loops that alternate numba kernels and scorer calls.

A block of ``B`` queries walks together: each round gathers the new items of every query of
the block and probes the per-query score caches (one fused kernel), sends all cache misses of
the block to the scorer in **one** call (pairs ``(query, item)``) and updates the beams or
heaps (one kernel). The best-first walk and the entry batch use separate probe and store
kernels (``cache_split`` / ``cache_store``).
"""

from __future__ import annotations

import numpy as np

from .._kernels import walk as _kw


class Workspace:
    """Per-slot visited and cache-presence bitsets for ``B`` slots (``n / 4`` bytes a slot)."""

    def __init__(self, n_slots, n_items):
        words = (n_items + 63) // 64
        self.n_slots = n_slots
        self.n_items = n_items
        self.visited = np.zeros((n_slots, words), dtype=np.uint64)
        self.cached = np.zeros((n_slots, words), dtype=np.uint64)

    @staticmethod
    def bytes_per_slot(n_items):
        return 2 * 8 * ((n_items + 63) // 64)


class Block:
    """One block of queries: scorer session, slot views of the workspace, statistics.

    The score cache of a slot is its ``cached`` bitset plus, for items scored on earlier
    levels, a sorted ``(slot * n + id) -> score`` table rebuilt by :meth:`new_level`.
    """

    def __init__(self, session, qglobal, ws, stats):
        self.session = session
        self.q = qglobal
        self.B = qglobal.shape[0]
        self.n = ws.n_items
        self.visited = ws.visited[: self.B]
        self.cached = ws.cached[: self.B]
        self.cached[:] = 0
        self.visited[:] = 0
        self.stats = stats
        self.keys = np.empty(0, dtype=np.int64)
        self.values = np.empty(0, dtype=np.float32)
        self._log = []
        self._buf = None

    def new_level(self):
        """Make everything scored so far available to cache lookups on the next level."""
        if not self._log:
            return
        keys = np.concatenate([self.keys] + [k for k, _ in self._log])
        values = np.concatenate([self.values] + [v for _, v in self._log])
        order = np.argsort(keys)            # keys are unique: no item is scored twice
        self.keys, self.values = keys[order], values[order]
        self._log = []

    def score(self, optr, oids):
        """Scores of every slot's list, through the cache; one scorer call for all misses."""
        scores, miss_pos, miss_slot = _kw.cache_split(optr, oids, self.cached, self.keys,
                                                      self.values, self.n)
        if miss_pos.size:
            ids = oids[miss_pos]
            ms = self.session.score(self.q[miss_slot], ids)
            _kw.cache_store(oids, miss_pos, miss_slot, ms, scores, self.cached)
            self._account(miss_slot, ids, ms)
        self.stats["n_scored"][self.q] += np.diff(optr)
        return scores

    def gather_score(self, indptr, indices, fptr, fids, limit, *, last_level=False):
        """Gather the unvisited neighbours of each slot's frontier and score them (one fused
        gather + cache-probe kernel, one scorer call). Returns ``(optr, oids, scores)``; the
        arrays may be views of reused buffers, valid until the next call.

        On the ``last_level`` nothing scored can be met again, so nothing is logged for the
        cache."""
        bound = int((indptr[fids + 1] - indptr[fids]).sum())
        if self._buf is None or self._buf[0].shape[0] < bound:
            size = max(bound, 1024, 0 if self._buf is None else 2 * self._buf[0].shape[0])
            self._buf = (np.empty(size, np.int64), np.empty(size, np.float32),
                         np.empty(size, np.int64), np.empty(size, np.int64))
        out, scores, miss_pos, miss_slot = self._buf
        optr, n_new, n_miss = _kw.gather_probe(
            indptr, indices, fptr, fids, self.visited, limit, self.cached, self.keys,
            self.values, self.n, out, scores, miss_pos, miss_slot)
        oids, scores = out[:n_new], scores[:n_new]
        if n_miss:
            miss_pos, miss_slot = miss_pos[:n_miss], miss_slot[:n_miss]
            ids = oids if n_miss == n_new else oids[miss_pos]
            ms = self.session.score(self.q[miss_slot], ids)
            if n_miss == n_new:
                scores = ms
            else:
                scores[miss_pos] = ms
            self._account(miss_slot, ids, ms, log=not last_level)
        self.stats["n_scored"][self.q] += np.diff(optr)
        return optr, oids, scores

    def _account(self, miss_slot, ids, ms, log=True):
        if log:
            self._log.append((miss_slot * self.n + ids, ms))
        misses = np.bincount(miss_slot, minlength=self.B)
        self.stats["n_evaluated"][self.q] += misses
        self.stats["n_calls"][self.q] += misses > 0

    def count_round(self, optr):
        self.stats["n_rounds"][self.q] += np.diff(optr) > 0


def _rows_csr(ids, n):
    ptr = np.zeros(n.shape[0] + 1, dtype=np.int64)
    np.cumsum(n, out=ptr[1:])
    mask = np.arange(ids.shape[1])[None, :] < n[:, None]
    return ptr, ids[mask]


def beam_block(graph, blk, k, ef, T, start_level, entry, variant, visited_scope, frontier,
               max_scored):
    """NANN beam retrieval (Algorithms 1-2, spec §3.5) for one block; returns (ids, scores)."""
    B = blk.B
    caps = [ef[lvl] for lvl in range(start_level + 1)] + [k]
    if variant == "serving":
        caps.append(ef[min(1, start_level)] + int(sum(frontier)))
    cap = int(max(caps))
    w_ids = np.empty((B, cap), dtype=np.int64)
    w_sc = np.empty((B, cap), dtype=np.float32)
    w_n = np.zeros(B, dtype=np.int64)

    def limits():
        if max_scored is None:
            return np.full(B, -1, dtype=np.int64)
        return np.maximum(max_scored - blk.stats["n_scored"][blk.q], 0).astype(np.int64)

    optr = np.arange(B + 1, dtype=np.int64) * entry.shape[0]
    oids = np.tile(entry, B)
    sc = blk.score(optr, oids)
    if visited_scope == "query":
        _kw.mark_rows(optr, oids, blk.visited)
    _kw.beam_merge(w_ids, w_sc, w_n, optr, oids, sc, ef[start_level])

    for lvl in range(start_level - 1, -1, -1):
        indptr, indices = graph.indptr[lvl], graph.indices[lvl]
        blk.new_level()
        if visited_scope == "level":
            blk.visited[:] = 0
        fptr, fids = _rows_csr(w_ids, w_n)
        _kw.mark_rows(fptr, fids, blk.visited)
        serving = variant == "serving" and lvl == 0
        rounds = frontier if serving else [ef[lvl]] * T[lvl]
        for width in rounds:
            lim = limits()
            if max_scored is not None and not lim.any():
                break
            optr, oids, sc = blk.gather_score(indptr, indices, fptr, fids, lim,
                                              last_level=lvl == 0)
            if oids.size == 0:
                break
            blk.count_round(optr)
            if serving:
                # Frontier = the best ``width`` new items; only they join the result pool.
                fptr, fids, fsc = _kw.select_top(optr, oids, sc, width)
                _kw.beam_merge(w_ids, w_sc, w_n, fptr, fids, fsc, cap)
            else:
                fptr, fids = _kw.beam_merge(w_ids, w_sc, w_n, optr, oids, sc, width)
    return _kw.rows_top(w_ids, w_sc, w_n, k)


def bestfirst_block(graph, blk, k, ef_search):
    """Stock HNSW search with the scorer as similarity (spec §4), lockstep over the block."""
    B = blk.B
    ef = max(ef_search, k)
    ep = np.full(B, graph.entry_point, dtype=np.int64)
    optr = np.arange(B + 1, dtype=np.int64)
    ep_sc = blk.score(optr, ep).copy()
    for lvl in range(graph.max_level, 0, -1):
        indptr, indices = graph.indptr[lvl], graph.indices[lvl]
        blk.new_level()
        blk.visited[:] = 0
        _kw.mark_rows(optr, ep, blk.visited)
        active = np.ones(B, dtype=np.bool_)
        while True:
            gptr, gids = _kw.greedy_gather(indptr, indices, ep, active, blk.visited)
            if gids.size == 0:
                break
            blk.count_round(gptr)
            sc = blk.score(gptr, gids)
            _kw.greedy_update(gptr, gids, sc, ep, ep_sc, active)

    indptr, indices = graph.indptr[0], graph.indices[0]
    blk.new_level()
    blk.visited[:] = 0
    max_deg = int(np.diff(indptr).max()) if indptr.size > 1 else 0
    cap_c = 2 * ef + max_deg + 8
    cand_ids = np.empty((B, cap_c), dtype=np.int64)
    cand_sc = np.empty((B, cap_c), dtype=np.float32)
    cand_n = np.zeros(B, dtype=np.int64)
    res_ids = np.empty((B, ef + 1), dtype=np.int64)
    res_sc = np.empty((B, ef + 1), dtype=np.float32)
    res_n = np.zeros(B, dtype=np.int64)
    _kw.bf_init(ep, ep_sc, cand_ids, cand_sc, cand_n, res_ids, res_sc, res_n, blk.visited)
    active = np.ones(B, dtype=np.bool_)
    pops = np.zeros(B, dtype=np.int64)
    while True:
        gptr, gids = _kw.bf_pop_gather(indptr, indices, cand_ids, cand_sc, cand_n, res_sc,
                                       res_n, ef, active, blk.visited, pops)
        if gids.size == 0:
            break
        sc = blk.score(gptr, gids)
        _kw.bf_push(gptr, gids, sc, cand_ids, cand_sc, cand_n, res_ids, res_sc, res_n, ef)
    blk.stats["n_rounds"][blk.q] += pops
    return _kw.rows_top(res_ids, res_sc, res_n, k)


def exact_block(session, qrows, n_items, k, chunk_size, stats):
    """Brute force: score every item in chunks, keep a running top-k (highest first)."""
    nq = qrows.shape[0]
    best_ids = np.full((nq, k), -1, dtype=np.int64)
    best_sc = np.full((nq, k), -np.inf, dtype=np.float32)
    filled = 0
    for start in range(0, n_items, chunk_size):
        ids = np.arange(start, min(n_items, start + chunk_size), dtype=np.int64)
        S = session.score_block(qrows, ids)
        stats["n_calls"][qrows] += 1
        cat_sc = np.concatenate([best_sc[:, :filled], S], axis=1)
        cat_ids = np.concatenate([best_ids[:, :filled],
                                  np.broadcast_to(ids, (nq, ids.shape[0]))], axis=1)
        kk = min(k, cat_sc.shape[1])
        if kk < cat_sc.shape[1]:
            part = np.argpartition(-cat_sc, kk - 1, axis=1)[:, :kk]
            part.sort(axis=1)                       # position order: earlier ids win ties
        else:
            part = np.broadcast_to(np.arange(kk), (nq, kk))
        psc = np.take_along_axis(cat_sc, part, axis=1)
        order = np.argsort(-psc, axis=1, kind="stable")
        best_sc[:, :kk] = np.take_along_axis(psc, order, axis=1)
        best_ids[:, :kk] = np.take_along_axis(np.take_along_axis(cat_ids, part, axis=1),
                                              order, axis=1)
        filled = kk
    stats["n_scored"][qrows] += n_items
    stats["n_evaluated"][qrows] += n_items
    return best_ids, best_sc
