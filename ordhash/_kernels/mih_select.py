"""Per-query selection state of the multi-index hashing kernels (:mod:`ordhash._kernels.mih`).

The state of the queries of a block lives in rows ``b`` of 2-D arrays: ``sel_d/sel_p``
(buffered candidates), ``hist`` (kept candidates per distance) and ``st`` = [n_buffered,
n_counted, bound, n_range_matches]. k-NN candidates arrive in any order (bucket order, not
position order), so the selection keeps every candidate within the current bound (loose) and
lowers the bound with the histogram; when the buffer fills up with ties at the bound, the k
best by (distance, position) are kept. Radius matches go straight to the caller's output.
"""

import numpy as np
from numba import njit

from .search import PAD_DISTANCE


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _sift_down(sel_d, sel_p, b, root, end):
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and (sel_d[b, child + 1] > sel_d[b, child] or (
                sel_d[b, child + 1] == sel_d[b, child] and sel_p[b, child + 1] > sel_p[b, child])):
            child += 1
        if sel_d[b, root] > sel_d[b, child] or (
                sel_d[b, root] == sel_d[b, child] and sel_p[b, root] >= sel_p[b, child]):
            return
        sel_d[b, root], sel_d[b, child] = sel_d[b, child], sel_d[b, root]
        sel_p[b, root], sel_p[b, child] = sel_p[b, child], sel_p[b, root]
        root = child


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _heapsort_pairs(sel_d, sel_p, b, m):
    """Sort the first ``m`` (distance, position) pairs of row ``b`` in place."""
    for root in range(m // 2 - 1, -1, -1):
        _sift_down(sel_d, sel_p, b, root, m)
    for end in range(m - 1, 0, -1):
        sel_d[b, 0], sel_d[b, end] = sel_d[b, end], sel_d[b, 0]
        sel_p[b, 0], sel_p[b, end] = sel_p[b, end], sel_p[b, 0]
        _sift_down(sel_d, sel_p, b, 0, end)


@njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
def _keep_loose(d, p, k, b, sel_d, sel_p, hist, st):
    """Keep candidate ``(d, p)`` (``d <= bound``, any arrival order) for query row ``b``."""
    cap = sel_d.shape[1]
    if st[b, 0] == cap:
        bound = st[b, 2]
        m = 0
        for t in range(cap):
            if sel_d[b, t] <= bound:
                sel_d[b, m] = sel_d[b, t]
                sel_p[b, m] = sel_p[b, t]
                m += 1
        if m > cap - k - 16:  # many ties at the bound: keep the k best by (distance, position)
            _heapsort_pairs(sel_d, sel_p, b, m)
            m = k
        st[b, 0] = m
    m = st[b, 0]
    sel_d[b, m] = d
    sel_p[b, m] = p
    st[b, 0] = m + 1
    hist[b, d] += 1
    st[b, 1] += 1
    if st[b, 1] >= k:
        bd = st[b, 2]
        while st[b, 1] - hist[b, bd] >= k:
            st[b, 1] -= hist[b, bd]
            hist[b, bd] = 0
            bd -= 1
        st[b, 2] = bd


@njit(cache=True, nogil=True, boundscheck=False)
def finalize_loose(k, sel_d, sel_p, n_buf, bound, out_d, out_p):
    """Write the k best of one query's buffer (rows ``sel_d/sel_p[:n_buf]``), sorted by
    (distance, position) and padded with ``PAD_DISTANCE`` / -1, to ``out_d/out_p``."""
    keys = np.empty(n_buf, np.int64)
    c = 0
    for t in range(n_buf):
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
def emit(d, p, k, b, sel_d, sel_p, hist, st, out_d, out_p, at, cap):
    """Report candidate ``(d, p)`` of query row ``b``: k-NN selection when ``k > 0``, else a
    radius match written at ``at`` if fewer than ``cap`` were written (all are counted)."""
    if k > 0:
        _keep_loose(d, p, k, b, sel_d, sel_p, hist, st)
    else:
        c = st[b, 3]
        if c < cap:
            out_d[at + c] = d
            out_p[at + c] = p
        st[b, 3] = c + 1
