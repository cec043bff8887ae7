"""Hamming-distance kernels over packed binary codes.

Codes are C-contiguous 2-D arrays of unsigned words: ``uint8`` rows as stored, or the same
memory viewed as ``uint32``/``uint64`` words when the row length allows it (the caller picks the
widest view, see :func:`ordhash.codes.as_words`). All kernels return ``int32`` distances.
"""

import numpy as np
from numba import njit, prange

from .popcount import popcount


@njit(cache=True, nogil=True)
def hamming_one(a, b):
    """Hamming distance between two 1-D word arrays of equal length."""
    d = 0
    for w in range(a.shape[0]):
        d += popcount(a[w] ^ b[w])
    return d


@njit(cache=True, parallel=True, nogil=True)
def pairwise(queries, codes):
    """All distances, shape ``(n_queries, n_codes)``, parallel over queries."""
    nq = queries.shape[0]
    nb = codes.shape[0]
    nw = queries.shape[1]
    out = np.empty((nq, nb), dtype=np.int32)
    for i in prange(nq):
        q = queries[i]
        for j in range(nb):
            d = 0
            for w in range(nw):
                d += popcount(q[w] ^ codes[j, w])
            out[i, j] = d
    return out


@njit(cache=True, nogil=True)
def one_to_many(query, codes):
    """Distances from one 1-D word array to every row of ``codes``."""
    nb = codes.shape[0]
    nw = codes.shape[1]
    out = np.empty(nb, dtype=np.int32)
    for j in range(nb):
        d = 0
        for w in range(nw):
            d += popcount(query[w] ^ codes[j, w])
        out[j] = d
    return out


@njit(cache=True, parallel=True, nogil=True)
def rowwise(a, b):
    """Distances between matching rows of ``a`` and ``b`` (same shape)."""
    n = a.shape[0]
    nw = a.shape[1]
    out = np.empty(n, dtype=np.int32)
    for i in prange(n):
        d = 0
        for w in range(nw):
            d += popcount(a[i, w] ^ b[i, w])
        out[i] = d
    return out
