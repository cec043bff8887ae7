"""Numba kernels of the ordinal learners (OEH, OCH).

Everything here takes arrays and returns arrays; the estimators in
:mod:`ordhash.learners.oeh` and :mod:`ordhash.learners.och` own parameters and state.
Notation follows ``spec-ordinal-hashing.md``: ``Y`` (L x d') projected landmarks,
``H = tanh(Y W)`` (L x r) relaxed codes, ``T_qm = h_q . h_m`` relaxed similarities.

A triplet ``(q, n, f)`` (anchor, near, far) with margin ``beta`` has
``z = beta + T_qf - T_qn``; it is *active* when ``z > 0`` and then contributes
``sigma(z)`` to the loss and ``0.5 * sigma'(z) * (dT_qf/dW - dT_qn/dW)`` to the gradient
(both released MATLAB codes use the 1/2; it is absorbed by the step size). The gradient
returned by every kernel is therefore exactly one half of the gradient of the returned loss.

The per-anchor gradient of spec section 3.2 is computed through per-anchor coefficient
vectors ``c`` (``c[f] += a``, ``c[n] -= a`` for each active pair, ``a = sigma'(z) / 2``):

    G_q = outer(y_q, g_q * (H^T c)) + Y^T (c[:, None] * G_all * h_q[None, :])

The coefficient loops run in parallel over anchors (``prange``), each anchor independently;
the sum of the per-anchor gradients over a batch ``B`` is then assembled with two matrix
products, ``Y_B^T (G_B * (C H)) + Y^T (G_all * (C^T H_B))``, which is the same sum.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def rank_orders(omega):
    """Per-row rankings of an ordinal matrix, most similar first, the row's own index removed.

    Parameters
    ----------
    omega : float64 array (L, L)
        ``omega[q, m]``: larger means landmark ``m`` is more similar to anchor ``q``.

    Returns
    -------
    order : int64 array (L, L - 1)
        ``order[q]`` lists the landmarks other than ``q`` by decreasing ``omega[q, :]``,
        ties in increasing index order (a stable sort).
    next_lower : int64 array (L, L - 1)
        ``next_lower[q, a]`` is the first position ``b > a`` whose value is strictly smaller
        than the value at position ``a`` (``L - 1`` if there is none). The landmarks strictly
        less similar than ``order[q, a]`` are exactly ``order[q, next_lower[q, a]:]``.
    """
    L = omega.shape[0]
    m = L - 1
    order = np.empty((L, m), dtype=np.int64)
    next_lower = np.empty((L, m), dtype=np.int64)
    for q in prange(L):
        idx = np.argsort(-omega[q], kind="mergesort")
        pos = 0
        for i in range(L):
            if idx[i] != q:
                order[q, pos] = idx[i]
                pos += 1
        if m > 0:
            next_lower[q, m - 1] = m
        for a in range(m - 2, -1, -1):
            if omega[q, order[q, a + 1]] < omega[q, order[q, a]]:
                next_lower[q, a] = a + 1
            else:
                next_lower[q, a] = next_lower[q, a + 1]
    return order, next_lower


@njit(cache=True)
def assemble_gradient(Y, H, anchors, C):
    """Sum over the batch of the per-anchor gradients defined by coefficient rows ``C``.

    ``C[b]`` is the coefficient vector of anchor ``anchors[b]`` (length L). Returns the
    d' x r matrix ``sum_b outer-product form of spec section 3.2``.
    """
    HB = np.ascontiguousarray(H[anchors])
    YB = np.ascontiguousarray(Y[anchors])
    GB = 1.0 - HB * HB
    G_all = 1.0 - H * H
    CH = C @ H
    CtHB = np.ascontiguousarray(C.T) @ HB
    return np.ascontiguousarray(YB.T) @ (GB * CH) + np.ascontiguousarray(Y.T) @ (G_all * CtHB)


@njit(cache=True)
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@njit(cache=True)
def _anchor_ranked(t, q, order, next_lower, near_row, far_lo, u_rows, beta, average, c):
    """Coefficients of one anchor (ranked rules); fills ``c`` in place, returns loss, active."""
    stop = order.shape[1]
    m = u_rows.shape[1]
    loss = 0.0
    active = 0.0
    for ii in range(near_row.shape[0]):
        a = near_row[ii]
        n = order[q, a]
        start = next_lower[q, a]
        if start < far_lo:
            start = far_lo
        length = stop - start
        if length <= 0:
            continue
        tn = t[n]
        if m == 0 or length <= m:
            for p in range(start, stop):
                f = order[q, p]
                z = beta + t[f] - tn
                if z > 0.0:
                    sg = _sigmoid(z)
                    w = 0.5 * sg * (1.0 - sg)
                    c[f] += w
                    c[n] -= w
                    loss += sg
                    active += 1.0
        else:
            weight = length / m
            for u in range(m):
                p = start + int(u_rows[ii, u] * length)
                if p >= stop:
                    p = stop - 1
                f = order[q, p]
                z = beta + t[f] - tn
                if z > 0.0:
                    sg = _sigmoid(z)
                    w = 0.5 * sg * (1.0 - sg) * weight
                    c[f] += w
                    c[n] -= w
                    loss += sg * weight
                    active += weight
    if average and active > 0.0:
        for i in range(c.shape[0]):
            c[i] /= active
        loss /= active
    return loss, active


@njit(cache=True, parallel=True)
def ranked_pair_coefficients(T, anchors, order, next_lower, near_pos, far_lo, far_u, beta,
                             average):
    """Coefficients, losses and active counts of ranked triplets, parallel over anchors.

    For anchor ``q = anchors[b]`` and each near position ``a = near_pos[b, i]`` (a position in
    ``order[q]``), the near landmark is ``n = order[q, a]`` and the far landmarks are
    ``order[q, p]`` for ``p`` in ``[max(next_lower[q, a], far_lo), L - 1)``: every landmark
    strictly less similar than ``n`` (and, with ``far_lo = k - 1``, outside the top ``k - 1``).

    Parameters
    ----------
    T : float64 (B, L)
        Relaxed similarities ``T[b, m] = h_{anchors[b]} . h_m``.
    anchors : int64 (B,)
    order, next_lower : int64 (L, L - 1), from :func:`rank_orders`
    near_pos : int64 (B, n_near)
    far_lo : int
        Smallest far position (``k - 1`` for the k-NN rule, ``0`` otherwise).
    far_u : float64 (B, n_near, m)
        With ``m = 0``: every far landmark is used. With ``m > 0``: a near landmark whose
        far range is longer than ``m`` uses ``m`` far positions drawn with replacement as
        ``start + floor(u * length)``, each weighted ``length / m`` (an unbiased estimate
        of the full sums).
    beta : float
    average : bool
        Divide each anchor's coefficients and loss by its (weighted) active count.

    Returns
    -------
    C : float64 (B, L)
    loss : float64 (B,)
        ``sum sigma(z)`` over active triplets (divided by the active count if ``average``).
    active : float64 (B,)
        Number (weighted count) of active triplets.
    """
    B, L = T.shape
    C = np.zeros((B, L))
    loss = np.zeros(B)
    active = np.zeros(B)
    for b in prange(B):
        loss[b], active[b] = _anchor_ranked(T[b], anchors[b], order, next_lower, near_pos[b],
                                            far_lo, far_u[b], beta, average, C[b])
    return C, loss, active


@njit(cache=True)
def ranked_pair_coefficients_serial(T, anchors, order, next_lower, near_pos, far_lo, far_u,
                                    beta, average):
    """Single-threaded twin of :func:`ranked_pair_coefficients` (no thread start-up cost,
    for one or a few anchors per step)."""
    B, L = T.shape
    C = np.zeros((B, L))
    loss = np.zeros(B)
    active = np.zeros(B)
    for b in range(B):
        loss[b], active[b] = _anchor_ranked(T[b], anchors[b], order, next_lower, near_pos[b],
                                            far_lo, far_u[b], beta, average, C[b])
    return C, loss, active


@njit(cache=True)
def listed_pair_coefficients(T, pair_ptr, near, far, beta, average):
    """Like :func:`ranked_pair_coefficients` for explicit triplet lists.

    The triplets of batch row ``b`` are ``(near[p], far[p])`` for
    ``p in range(pair_ptr[b], pair_ptr[b + 1])``, with ``T[b]`` the relaxed similarities of
    its anchor. Self-triplets (``near`` or ``far`` equal to the anchor) are allowed: the
    gradient assembly differentiates ``h_q . h_q`` correctly.
    """
    B, L = T.shape
    C = np.zeros((B, L))
    loss = np.zeros(B)
    active = np.zeros(B)
    for b in range(B):
        for p in range(pair_ptr[b], pair_ptr[b + 1]):
            n = near[p]
            f = far[p]
            z = beta + T[b, f] - T[b, n]
            if z > 0.0:
                sg = _sigmoid(z)
                w = 0.5 * sg * (1.0 - sg)
                C[b, f] += w
                C[b, n] -= w
                loss[b] += sg
                active[b] += 1.0
        if average and active[b] > 0.0:
            for i in range(L):
                C[b, i] /= active[b]
            loss[b] /= active[b]
    return C, loss, active


@njit(cache=True, error_model="numpy")
def released_och_pairs(S, q, k):
    """Triplets of one anchor in the released ``trainOCH.m`` (spec section 7.3).

    For landmark ids ``i = 1 .. k-1`` (fixed ids, no sorting) and ``j = i .. L-1``, the
    triplet is kept when ``S[q, i] / S[q, j] < 1`` (IEEE division: ``x / 0`` and ``0 / 0``
    are never ``< 1``); ``i`` is then the far element and ``j`` the near one.

    Returns
    -------
    near, far : int64 arrays
    """
    L = S.shape[0]
    kk = min(k, L)
    cap = 0
    for i in range(1, kk):
        cap += L - i
    near = np.empty(cap, dtype=np.int64)
    far = np.empty(cap, dtype=np.int64)
    cnt = 0
    for i in range(1, kk):
        for j in range(i, L):
            if S[q, i] / S[q, j] < 1.0:
                near[cnt] = j
                far[cnt] = i
                cnt += 1
    return near[:cnt], far[:cnt]


@njit(cache=True)
def released_oeh_gradient(Y, H, ind, beta):
    """Gradient of one step of the released ``trainOEH.m`` (spec section 7.1), k = 10.

    The MATLAB double loop visits positions ``i = 1 .. 9`` and ``j = 9 .. L-1``; the codes are
    the rows ``H[0]``, ``H[i]``, ``H[j]`` of the *unsorted* matrix while the feature rows
    follow the ascending sort ``ind`` (defects E1-E4). The pair loop is explicit, as in the
    MATLAB code; the d' x r outer products of the active pairs are accumulated in factored
    form (three sums instead of 4 outer products per pair), which is the same sum.

    Returns
    -------
    G : float64 (d', r)
        ``sum over active pairs of 0.5 sigma'(z) (d1 - d2)``.
    count : int
        Number of active pairs (MATLAB ``cout``).
    loss : float
        Sum of ``sigma(z)`` over the active pairs.
    """
    k = 10
    L = H.shape[0]
    r = H.shape[1]
    d = Y.shape[1]
    h0 = H[0]
    sum_diff = np.zeros(r)
    sum_gj = np.zeros(r)
    coef_i = np.zeros(k)
    count = 0
    loss = 0.0
    for i in range(1, min(k, L)):
        tij = 0.0
        for c in range(r):
            tij += h0[c] * H[i, c]
        for j in range(k - 1, L):
            tik = 0.0
            for c in range(r):
                tik += h0[c] * H[j, c]
            ytmp = 1.0 / (1.0 + np.exp(-(beta + tij - tik)))
            y = ytmp * (1.0 - ytmp)
            if beta + tij > tik:
                a = 0.5 * y
                coef_i[i] += a
                for c in range(r):
                    sum_diff[c] += a * (H[i, c] - H[j, c])
                    sum_gj[c] += a * (1.0 - H[j, c] * H[j, c])
                count += 1
                loss += ytmp
    G = np.zeros((d, r))
    y0 = Y[ind[0]]
    for a in range(d):
        for c in range(r):
            G[a, c] = y0[a] * (1.0 - h0[c] * h0[c]) * sum_diff[c]
    for i in range(1, min(k, L)):
        if coef_i[i] != 0.0:
            yi = Y[ind[i]]
            for a in range(d):
                for c in range(r):
                    G[a, c] += coef_i[i] * yi[a] * (1.0 - H[i, c] * H[i, c]) * h0[c]
    if L >= k:
        yk = Y[ind[k - 1]]
        for a in range(d):
            for c in range(r):
                G[a, c] -= yk[a] * sum_gj[c] * h0[c]
    return G, count, loss


@njit(cache=True)
def _anchor_sampled(tn, tf, beta, average, cn, cf):
    """One anchor of :func:`sampled_pair_coefficients`; fills ``cn``, ``cf`` in place."""
    loss = 0.0
    active = 0.0
    for i in range(tn.shape[0]):
        for j in range(tf.shape[0]):
            z = beta + tf[j] - tn[i]
            if z > 0.0:
                sg = _sigmoid(z)
                w = 0.5 * sg * (1.0 - sg)
                cn[i] -= w
                cf[j] += w
                loss += sg
                active += 1.0
    if average and active > 0.0:
        for i in range(cn.shape[0]):
            cn[i] /= active
        for j in range(cf.shape[0]):
            cf[j] /= active
        loss /= active
    return loss, active


@njit(cache=True, parallel=True)
def sampled_pair_coefficients(tn, tf, beta, average):
    """Coefficients of sampled data triplets, parallel over anchors.

    Anchor ``b`` has ``n_near`` near items with relaxed similarities ``tn[b]`` and ``n_far``
    far items ``tf[b]``; every (near, far) combination is a triplet with
    ``z = beta + tf[b, f] - tn[b, n]`` (a far similarity of ``-inf`` marks a discarded draw).

    Returns
    -------
    cn : float64 (B, n_near)
        ``-sum_f sigma'(z) / 2`` over active triplets (the coefficient of each near item).
    cf : float64 (B, n_far)
        ``+sum_n sigma'(z) / 2`` (the coefficient of each far item).
    loss, active : float64 (B,)
        As in :func:`ranked_pair_coefficients` (divided by the active count if ``average``).
    """
    B = tn.shape[0]
    cn = np.zeros(tn.shape)
    cf = np.zeros(tf.shape)
    loss = np.zeros(B)
    active = np.zeros(B)
    for b in prange(B):
        loss[b], active[b] = _anchor_sampled(tn[b], tf[b], beta, average, cn[b], cf[b])
    return cn, cf, loss, active


@njit(cache=True)
def sampled_pair_coefficients_serial(tn, tf, beta, average):
    """Single-threaded twin of :func:`sampled_pair_coefficients`."""
    B = tn.shape[0]
    cn = np.zeros(tn.shape)
    cf = np.zeros(tf.shape)
    loss = np.zeros(B)
    active = np.zeros(B)
    for b in range(B):
        loss[b], active[b] = _anchor_sampled(tn[b], tf[b], beta, average, cn[b], cf[b])
    return cn, cf, loss, active
