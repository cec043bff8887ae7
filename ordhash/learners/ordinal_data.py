"""Ordinal triplets sampled from the training rows themselves (``triplet_source="data"``) [D].

The papers reduce the n-point ordinal graph to landmarks only to make it tractable
(spec sections 4.1 and 5.1). This module samples the original triplets instead: an anchor is a
training row ``a`` (from a fixed random pool), a *near* item is drawn from its exact
``K = near_fraction * n`` nearest training rows (Euclidean, computed once with faiss), and a
*far* item is a uniformly drawn training row that is neither the anchor nor one of those K. The loss and its
relaxation are those of the landmark version (hinge-gated sigmoid of
``beta + T_af - T_an`` with ``T = tanh(.)^T tanh(.)``), so a step costs
O(B (n_near + n_far) d' r) whatever n is.
"""

from __future__ import annotations

import numpy as np

from .._kernels import ordinal as _ok
from .ordinal import PARALLEL_MIN_PAIRS

__all__ = ["exact_neighbors", "DataTripletObjective"]


def exact_neighbors(Xc, rows, k):
    """The ``k`` nearest training rows of ``Xc[rows]`` (itself excluded), nearest first.

    Exact squared-Euclidean search with ``faiss.IndexFlatL2`` in float32.

    Returns
    -------
    ids : int64 array (len(rows), k)
    kth : float64 array (len(rows),)
        Squared distance of the k-th neighbour.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal_data import exact_neighbors
    >>> X = np.arange(10.0)[:, None]
    >>> ids, kth = exact_neighbors(X, np.array([0, 5]), 2)
    >>> ids.tolist(), kth.tolist()
    ([[1, 2], [4, 6]], [4.0, 1.0])
    """
    import faiss

    X32 = np.ascontiguousarray(Xc, dtype=np.float32)
    index = faiss.IndexFlatL2(X32.shape[1])
    index.add(X32)
    k_eff = min(k + 1, X32.shape[0])
    dist, ids = index.search(X32[rows], k_eff)
    out = np.empty((len(rows), k_eff - 1), dtype=np.int64)
    kth = np.empty(len(rows))
    for i, row in enumerate(rows):
        keep = ids[i] != row
        sel = ids[i][keep][: k_eff - 1]
        d = dist[i][keep][: k_eff - 1]
        out[i] = sel
        kth[i] = d[-1] if d.size else 0.0
    return out, kth


class DataTripletObjective:
    """Relaxed triplet loss on sampled data triplets, with its gradient.

    Parameters
    ----------
    V : ndarray (n, d')
        Projected (and rescaled) training rows.
    anchors : int array (m,)
        Row ids of the anchor pool.
    neighbors : int array (m, K)
        Exact K nearest rows of each anchor (the anchor itself excluded).
    beta : float
    average : bool
        Divide each anchor's loss and gradient by its active count (OEH) or sum them (OCH).
    n_near, n_far : int
        Near items (drawn with replacement among the K neighbours) and far items (drawn
        uniformly from all rows; draws that are the anchor or one of its K neighbours are
        discarded) per anchor.
    dtype : numpy dtype, default=np.float64
        Precision of the per-step products (the estimators use float32, which halves the
        cost of a step; the returned gradient is float64).
    far_sampling : {"anchor", "batch"}, default="anchor"
        ``"anchor"``: every anchor draws its own ``n_far`` far items. ``"batch"``: one draw of
        ``n_far`` items is shared by the anchors of a step (each anchor still discards the
        draws that are its own neighbours). Both give the same expected gradient; the shared
        draw projects ``n_far`` rows per step instead of ``len(batch) * n_far``, which makes
        a step several times cheaper.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.learners.ordinal_data import DataTripletObjective, exact_neighbors
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 5)); V = X[:, :3]
    >>> pool = np.arange(20); nn, _ = exact_neighbors(X, pool, 8)
    >>> obj = DataTripletObjective(V, pool, nn, beta=0.0, average=False)
    >>> G, loss, active = obj.gradient(np.eye(3), np.array([0, 1, 2]), rng)
    >>> G.shape
    (3, 3)
    """

    def __init__(self, V, anchors, neighbors, *, beta=0.0, average=False, n_near=20,
                 n_far=200, dtype=np.float64, far_sampling="anchor"):
        if far_sampling not in ("anchor", "batch"):
            raise ValueError(
                f"far_sampling must be 'anchor' or 'batch', got {far_sampling!r}"
            )
        self.far_sampling = far_sampling
        self.V = np.ascontiguousarray(V, dtype=dtype)
        self.anchors = np.asarray(anchors, dtype=np.int64)
        self.neighbors = np.asarray(neighbors, dtype=np.int64)
        self.beta = float(beta)
        self.average = bool(average)
        self.n_near = int(n_near)
        self.n_far = int(n_far)
        self.n_anchors = self.anchors.shape[0]
        self.reg_rows = self.V[self.anchors]
        # bit set over (pool position, row): set for the anchor itself and its K neighbours
        n = self.V.shape[0]
        pos = np.arange(self.n_anchors, dtype=np.int64)[:, None]
        excluded = np.hstack([self.neighbors, self.anchors[:, None]])
        flags = np.zeros(self.n_anchors * n, dtype=bool)
        flags[(pos * n + excluded).ravel()] = True
        self._excluded = np.packbits(flags, bitorder="little")

    def sample(self, batch, rng):
        """Row ids ``(A, near, far)`` and the validity mask ``(len(batch), n_far)`` of the far
        draws; ``far`` is ``(len(batch), n_far)``, or ``(n_far,)`` with ``far_sampling="batch"``."""
        B = batch.shape[0]
        n = self.V.shape[0]
        A = self.anchors[batch]
        K = self.neighbors.shape[1]
        near = self.neighbors[batch[:, None], rng.randint(0, K, (B, self.n_near))]
        if self.far_sampling == "batch":
            far = rng.randint(0, n, self.n_far)
            key = batch[:, None] * n + far[None, :]
        else:
            far = rng.randint(0, n, (B, self.n_far))
            key = batch[:, None] * n + far
        valid = ((self._excluded[key >> 3] >> (key & 7).astype(np.uint8)) & 1) == 0
        return A, near, far, valid

    def gradient(self, W, batch, rng):
        """Sum over the batch of the per-anchor gradients.

        Returns
        -------
        G : ndarray (d', r)
            Half the gradient of ``sum(loss)``.
        loss, active : ndarray (len(batch),)
        """
        batch = np.asarray(batch, dtype=np.int64)
        A, near, far, valid = self.sample(batch, rng)
        V = self.V
        r = W.shape[1]
        W = W.astype(V.dtype, copy=False)
        shared = far.ndim == 1
        VA = V[A]
        HA = np.tanh(VA @ W)
        Vn = V[near.ravel()]
        Vf = V[far.ravel()]
        Hn = np.tanh(Vn @ W).reshape(near.shape + (r,))
        Hf = np.tanh(Vf @ W)
        tn = np.matmul(Hn, HA[:, :, None])[:, :, 0].astype(np.float64)
        if shared:
            tf = (HA @ Hf.T).astype(np.float64)
        else:
            Hf = Hf.reshape(far.shape + (r,))
            tf = np.matmul(Hf, HA[:, :, None])[:, :, 0].astype(np.float64)
        tf[~valid] = -np.inf
        kernel = (_ok.sampled_pair_coefficients if tn.size * tf.shape[1] >= PARALLEL_MIN_PAIRS
                  else _ok.sampled_pair_coefficients_serial)
        cn, cf, loss, active = kernel(tn, tf, self.beta, self.average)
        cn = cn.astype(V.dtype)
        cf = cf.astype(V.dtype)
        inner = np.matmul(cn[:, None, :], Hn)[:, 0, :]
        if shared:
            inner += cf @ Hf
        else:
            inner += np.matmul(cf[:, None, :], Hf)[:, 0, :]
        G = VA.T @ ((1.0 - HA * HA) * inner)
        G += Vn.T @ _item_factor(Hn, cn, HA).reshape(-1, r)
        if shared:
            G += Vf.T @ ((1.0 - Hf * Hf) * (cf.T @ HA))
        else:
            G += Vf.T @ _item_factor(Hf, cf, HA).reshape(-1, r)
        return G.astype(np.float64), loss, active


def _item_factor(H, c, HA):
    """``(1 - H^2) * c[..., None] * HA[:, None, :]``, computed in place in ``H``."""
    np.multiply(H, H, out=H)
    np.subtract(1.0, H, out=H)
    H *= c[:, :, None]
    H *= HA[:, None, :]
    return H
