"""Kernels of the classic hashing learners (anchor graph hashing).

``smallest_k`` selects, row by row, the ``k`` smallest entries of a distance matrix (``k`` is
small: the number of nearest anchors). ``anchor_embedding`` fuses that selection with the
Gaussian weighting of AGH and the product with the spectral projection, so encoding never
materialises the sparse similarity matrix. Ties are broken by the smaller column index.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _select_row(row, k, idx, vals):
    """Fill ``idx``/``vals`` (length ``k``) with the ``k`` smallest entries of ``row``, ascending."""
    filled = 0
    for j in range(row.shape[0]):
        v = row[j]
        if filled == k and v >= vals[k - 1]:
            continue
        pos = filled if filled < k else k - 1
        while pos > 0 and vals[pos - 1] > v:
            vals[pos] = vals[pos - 1]
            idx[pos] = idx[pos - 1]
            pos -= 1
        vals[pos] = v
        idx[pos] = j
        if filled < k:
            filled += 1


@njit(cache=True, parallel=True, nogil=True)
def smallest_k(d2, k):
    """Column indices and values of the ``k`` smallest entries of each row, ascending.

    Parameters
    ----------
    d2 : float64 array of shape (n, m), with ``k <= m``
    k : int

    Returns
    -------
    idx : int64 array of shape (n, k)
    vals : float64 array of shape (n, k)
    """
    n = d2.shape[0]
    idx = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=np.float64)
    for i in prange(n):
        _select_row(d2[i], k, idx[i], vals[i])
    return idx, vals


@njit(cache=True, parallel=True, nogil=True)
def anchor_embedding(d2, k, inv_sigma2, W):
    """AGH scores ``Z(x) W`` from squared anchor distances.

    Row ``i`` of the result is ``sum_t z_t W[j_t]`` over the ``k`` nearest anchors ``j_t`` of
    row ``i`` of ``d2``, with ``z_t = exp(-(d2_t - d2_0) * inv_sigma2)`` normalised to sum to
    one (the shift by the nearest distance ``d2_0`` cancels in the normalisation).

    Parameters
    ----------
    d2 : float64 array of shape (n, m)
        Squared distances to the ``m`` anchors.
    k : int
        Number of nearest anchors, ``1 <= k <= m``.
    inv_sigma2 : float
        ``1 / sigma**2``.
    W : float64 array of shape (m, r)

    Returns
    -------
    scores : float64 array of shape (n, r)
    """
    n = d2.shape[0]
    r = W.shape[1]
    out = np.zeros((n, r), dtype=np.float64)
    for i in prange(n):
        idx = np.empty(k, dtype=np.int64)
        vals = np.empty(k, dtype=np.float64)
        _select_row(d2[i], k, idx, vals)
        total = 0.0
        nearest = vals[0]
        for t in range(k):
            vals[t] = np.exp(-(vals[t] - nearest) * inv_sigma2)
            total += vals[t]
        for t in range(k):
            z = vals[t] / total
            wrow = W[idx[t]]
            for b in range(r):
                out[i, b] += z * wrow[b]
    return out
