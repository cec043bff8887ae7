"""A small numpy matching model with NANN's adversarial flatness loss (spec §6).

Model (query features ``x_q``, item id ``v``):

* item tower: ``e_v = emb[v] (+ f_v @ W_f when item features are given)`` -- the vectors the
  proximity graph is built on;
* query projection ``p_q = x_q @ W_p`` and the first layer
  ``a_1 = x_q @ W_1q + e_v @ W_1e + (p_q ⊙ e_v) @ W_1p + b_1`` (the product term lets the
  MLP model interactions), ReLU hidden layers, a linear scalar output ``s(q, v)``.

Training: sampled negatives from the item-frequency distribution (``freq ** sampling_alpha``)
with the log-Q correction ``logit = s - log(n_negatives * Q(v))``; sigmoid cross-entropy (the
official NANN code) or sampled softmax; Adam with decoupled weight decay (lazy, row-sparse on the
embedding table); mini-batches; ``random_state``.

Adversarial flatness (NANN §3.4, code ``train_func``): ``Δ = ε sign(∇_e L)`` on every
candidate's item embedding (the FGSM direction of the official code: the *loss* gradient),
``ẽ = e + Δ`` and ``L_aux = KL(softmax(stop_grad(logits)) ‖ softmax(logits_adv))`` over the
``1 + n_negatives`` candidates of each row, averaged over rows (``adv_kl="softmax"``), or the
per-item Bernoulli KL of the paper (``adv_kl="pointwise"``). ``L = L_base + adv_weight · L_aux``.
``Δ`` is a constant for differentiation (the sign has zero derivative almost everywhere).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import persist
from .matching import Scorer, _as_query_array, _default_prepare

__all__ = ["NeuralMatcher"]

_CHUNK = 2048      # rows per numpy pass when scoring (cache blocking, see MLPScorer)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_softmax(z, mask):
    z = np.where(mask, z, -np.inf)
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
    return np.where(mask, z - lse, -np.inf)


def _n_hidden(params):
    return sum(1 for key in params if key.startswith("W") and key[1:].isdigit())


def _forward(params, xq, E):
    """Scores ``(B, C)`` of candidates ``E`` (``(B, C, de)``) for queries ``xq`` + cache.

    Internally every candidate is one row of 2-D ``(B * C, .)`` arrays, so each layer is a
    single GEMM (3-D ``matmul`` with transposed weights was 3x slower in the backward pass).
    """
    B, C, de = E.shape
    E2 = E.reshape(B * C, de)
    p = xq @ params["Wp"]
    hq = xq @ params["W1q"] + params["b1"]
    PE = np.repeat(p, C, axis=0) * E2
    a = E2 @ params["W1e"] + PE @ params["W1p"]
    a = (a.reshape(B, C, -1) + hq[:, None, :]).reshape(B * C, -1)
    acts = [a]
    h = np.maximum(a, 0.0)
    hs = [h]
    for i in range(2, _n_hidden(params) + 2):
        a = h @ params[f"W{i}"] + params[f"b{i}"]
        acts.append(a)
        h = np.maximum(a, 0.0)
        hs.append(h)
    s = (h @ params["Wo"][:, 0] + params["bo"][0]).reshape(B, C)
    return s, (xq, E2, p, PE, acts, hs, B, C)


def _backward(params, cache, ds):
    """Gradients of ``sum(ds * s)`` w.r.t. the dense parameters and ``E`` (``(B, C, de)``)."""
    xq, E2, p, PE, acts, hs, B, C = cache
    ds = ds.reshape(-1)
    g = {}
    g["Wo"] = (hs[-1].T @ ds)[:, None]
    g["bo"] = np.array([ds.sum()], dtype=ds.dtype)
    dh = np.outer(ds, params["Wo"][:, 0])
    for j in range(len(acts) - 1, 0, -1):
        i = j + 1
        da = dh * (acts[j] > 0)
        g[f"W{i}"] = hs[j - 1].T @ da
        g[f"b{i}"] = da.sum(axis=0)
        dh = da @ params[f"W{i}"].T
    da1 = dh * (acts[0] > 0)
    g["W1e"] = E2.T @ da1
    g["W1p"] = PE.T @ da1
    dhq = da1.reshape(B, C, -1).sum(axis=1)
    g["W1q"] = xq.T @ dhq
    g["b1"] = dhq.sum(axis=0)
    dPE = da1 @ params["W1p"].T
    dE = da1 @ params["W1e"].T + dPE * np.repeat(p, C, axis=0)
    g["Wp"] = xq.T @ (dPE * E2).reshape(B, C, -1).sum(axis=1)
    return g, dE.reshape(B, C, -1)


def _base_loss(z, mask, loss):
    """Sampled loss on logits ``z`` (column 0 = positive) and its gradient."""
    B = z.shape[0]
    if loss == "sigmoid":
        y = np.zeros_like(z)
        y[:, 0] = 1.0
        val = np.where(mask, _softplus(np.where(y > 0, -z, z)), 0.0).sum() / B
        dz = np.where(mask, _sigmoid(z) - y, 0.0) / B
    else:
        logp = _log_softmax(z, mask)
        val = -logp[:, 0].sum() / B
        prob = np.where(mask, np.exp(logp), 0.0)
        dz = prob
        dz[:, 0] -= 1.0
        dz /= B
    return val, dz.astype(z.dtype)


def _aux_loss(z_clean, z_adv, mask, kind):
    """Adversarial KL (clean logits are constants) and its gradient w.r.t. ``z_adv``."""
    B = z_adv.shape[0]
    if kind == "softmax":
        lp = _log_softmax(z_clean, mask)
        lq = _log_softmax(z_adv, mask)
        P = np.where(mask, np.exp(lp), 0.0)
        safe = np.where(mask, lp - np.where(mask, lq, 0.0), 0.0)
        val = (P * safe).sum() / B
        dz = (np.where(mask, np.exp(lq), 0.0) - P) / B
    else:
        p = _sigmoid(z_clean)
        q = _sigmoid(z_adv)
        # KL(Bern(p) || Bern(q)) with log q = -softplus(-z), log(1 - q) = -softplus(z).
        lp, l1p = -_softplus(-z_clean), -_softplus(z_clean)
        lq, l1q = -_softplus(-z_adv), -_softplus(z_adv)
        kl = p * (lp - lq) + (1 - p) * (l1p - l1q)
        val = np.where(mask, kl, 0.0).sum() / B
        dz = np.where(mask, q - p, 0.0) / B
    return val, dz.astype(z_adv.dtype)


@persist.register("ordhash.NeuralMatcher")
class NeuralMatcher(Scorer, BaseEstimator):
    """Numpy MLP matching model trained with sampled negatives and optional adversarial
    flatness loss (NANN); usable directly as a scorer of :class:`GraphWalkIndex`.

    Parameters
    ----------
    embedding_dim : int, default=32
        Item embedding size (the graph's geometry).
    hidden : tuple of int, default=(64,)
        Hidden layer sizes (ReLU).
    n_negatives : int, default=50
        Sampled negatives per positive.
    loss : {"sigmoid", "softmax"}, default="sigmoid"
        Sampled sigmoid cross-entropy (NANN code) or sampled softmax.
    sampling_alpha : float, default=1.0
        Negatives are drawn with probability proportional to ``(count + 1) ** sampling_alpha``.
    learning_rate : float, default=3e-3
    weight_decay : float, default=1e-4
        Decoupled (AdamW) weight decay on weights and embeddings.
    batch_size : int, default=256
    n_epochs : int, default=5
    adv_eps : float, default=0.0
        FGSM step ε; 0 disables the adversarial loss.
    adv_eps_scale : {"rms", "absolute"}, default="rms"
        ``"rms"``: the step is ``adv_eps`` times the RMS of the batch's item embeddings
        (scale-free, spec §6.2 item 3); ``"absolute"``: ``adv_eps`` itself.
    adv_weight : float, default=1.0
    adv_kl : {"softmax", "pointwise"}, default="softmax"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    item_embeddings_ : float32 array of shape (n_items_, embedding_dim)
        Item tower outputs, the vectors to build the graph on.
    params_ : dict of arrays
        All parameters (``emb``, ``Wp``, ``W1q``, ``W1e``, ``W1p``, ``b1``, ``W2``... ``Wo``,
        ``bo`` and ``Wf`` with item features).
    n_items_ : int
    n_features_in_ : int
    loss_curve_ : list of float
        Mean total loss per epoch; ``aux_curve_`` the mean adversarial part.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import NeuralMatcher
    >>> rng = np.random.default_rng(0)
    >>> Xq = rng.standard_normal((500, 8)).astype(np.float32)
    >>> y = (Xq[:, 0] > 0).astype(int) * 10 + rng.integers(0, 10, 500)
    >>> m = NeuralMatcher(embedding_dim=8, hidden=(16,), n_negatives=5, n_epochs=2,
    ...                   random_state=0).fit(Xq, y)
    >>> m.item_embeddings_.shape, m(Xq[0], np.arange(3)).shape
    ((20, 8), (3,))
    """

    supports_pairs = True

    _parameter_constraints: dict = {
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden": [tuple, list],
        "n_negatives": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions({"sigmoid", "softmax"})],
        "sampling_alpha": [Interval(Real, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_epochs": [Interval(Integral, 1, None, closed="left")],
        "adv_eps": [Interval(Real, 0, None, closed="left")],
        "adv_eps_scale": [StrOptions({"rms", "absolute"})],
        "adv_weight": [Interval(Real, 0, None, closed="left")],
        "adv_kl": [StrOptions({"softmax", "pointwise"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, *, embedding_dim=32, hidden=(64,), n_negatives=50, loss="sigmoid",
                 sampling_alpha=1.0, learning_rate=3e-3, weight_decay=1e-4, batch_size=256,
                 n_epochs=5, adv_eps=0.0, adv_eps_scale="rms", adv_weight=1.0,
                 adv_kl="softmax", random_state=None, verbose=0):
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.n_negatives = n_negatives
        self.loss = loss
        self.sampling_alpha = sampling_alpha
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.adv_eps = adv_eps
        self.adv_eps_scale = adv_eps_scale
        self.adv_weight = adv_weight
        self.adv_kl = adv_kl
        self.random_state = random_state
        self.verbose = verbose

    # -- scorer protocol ---------------------------------------------------------------------
    @property
    def n_items(self):
        """Catalogue size learnt by ``fit`` (``None`` before fitting)."""
        return getattr(self, "n_items_", None)

    @property
    def name(self):
        return "NeuralMatcher"

    # -- model -------------------------------------------------------------------------------
    def _init_params(self, d_query, n_items, d_feat, rng, dtype):
        de = self.embedding_dim
        hidden = [int(h) for h in self.hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list at least one positive layer size, got "
                             f"{self.hidden!r}")
        h1 = hidden[0]
        fan1 = d_query + 2 * de
        P = {"emb": rng.standard_normal((n_items, de)) * 0.1,
             "Wp": rng.standard_normal((d_query, de)) / np.sqrt(d_query),
             "W1q": rng.standard_normal((d_query, h1)) * np.sqrt(2.0 / fan1),
             "W1e": rng.standard_normal((de, h1)) * np.sqrt(2.0 / fan1),
             "W1p": rng.standard_normal((de, h1)) * np.sqrt(2.0 / fan1),
             "b1": np.zeros(h1)}
        for i, (a, b) in enumerate(zip(hidden[:-1], hidden[1:]), start=2):
            P[f"W{i}"] = rng.standard_normal((a, b)) * np.sqrt(2.0 / a)
            P[f"b{i}"] = np.zeros(b)
        P["Wo"] = rng.standard_normal((hidden[-1], 1)) / np.sqrt(hidden[-1])
        P["bo"] = np.zeros(1)
        if d_feat:
            P["Wf"] = rng.standard_normal((d_feat, de)) * (0.1 / np.sqrt(d_feat))
        return {k: v.astype(dtype) for k, v in P.items()}

    def _tower(self, params, ids, feats):
        E = params["emb"][ids]
        if feats is not None:
            E = E + feats[ids] @ params["Wf"]
        return E

    def _loss_grad(self, params, xq, ids, logq, mask, feats=None, delta=None, target=None):
        """Loss and gradients on one batch (``ids`` ``(B, C)``, column 0 the positives).

        ``delta`` fixes the adversarial perturbation and ``target`` the clean logits of the KL
        (both are constants of the differentiation: FGSM sign and ``stop_gradient``); by
        default they are computed from this batch, which is what training does. Fixing them
        makes the returned loss a function whose exact gradient is the one returned (used by
        the finite-difference checks). Returns ``(loss, aux, grads, dE, delta, logits)``:
        ``grads`` holds the dense gradients and ``dE`` the gradient w.r.t. the gathered item
        embeddings (``(B, C, de)``).
        """
        E = self._tower(params, ids, feats)
        s, cache = _forward(params, xq, E)
        z = s - logq
        val, dz = _base_loss(z, mask, self.loss)
        grads, dE = _backward(params, cache, dz)
        aux = 0.0
        if self.adv_eps > 0 and self.adv_weight > 0:
            if delta is None:
                eps = self.adv_eps
                if self.adv_eps_scale == "rms":
                    eps = eps * float(np.sqrt(np.mean(E * E)))
                delta = (eps * np.sign(dE)).astype(E.dtype)
            s_adv, cache_adv = _forward(params, xq, E + delta)
            aux, dz_adv = _aux_loss(z if target is None else target, s_adv - logq, mask,
                                    self.adv_kl)
            g_adv, dE_adv = _backward(params, cache_adv, self.adv_weight * dz_adv)
            for key, value in g_adv.items():
                grads[key] = grads[key] + value
            dE = dE + dE_adv
            val = val + self.adv_weight * aux
        if feats is not None:
            grads["Wf"] = feats[ids].reshape(-1, feats.shape[1]).T @ dE.reshape(-1, dE.shape[-1])
        return float(val), float(aux), grads, dE, delta, z

    # -- training -----------------------------------------------------------------------------
    def fit(self, X, y, *, item_features=None, n_items=None):
        """Train on positive (query, item) interactions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_query_features)
            Query features of each interaction.
        y : array-like of int of shape (n_samples,)
            Positive item id of each interaction.
        item_features : array-like of shape (n_items, n_item_features), optional
            Side features fed to the item tower (a linear term added to the embedding).
        n_items : int, optional
            Number of items (default: ``item_features`` rows, else ``max(y) + 1``).

        Returns
        -------
        self : NeuralMatcher
        """
        self._validate_params()
        # The products of one step are small: BLAS threads only add contention (measured
        # 0.05 s vs 4.5 s for one epoch on a loaded 2-core machine).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y, item_features, n_items)

    def _fit(self, X, y, item_features, n_items):
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64], y_numeric=True)
        X = X.astype(np.float32, copy=False)
        if not np.issubdtype(np.asarray(y).dtype, np.integer):
            if not np.all(np.mod(y, 1) == 0):
                raise ValueError("y must hold integer item ids")
        y = np.asarray(y, dtype=np.int64)
        if y.min() < 0:
            raise ValueError(f"y must hold non-negative item ids, got {y.min()}")
        feats = None
        if item_features is not None:
            feats = np.asarray(item_features, dtype=np.float32)
            if feats.ndim != 2 or not np.isfinite(feats).all():
                raise ValueError("item_features must be a finite 2-D array (n_items, d)")
        if n_items is None:
            n_items = feats.shape[0] if feats is not None else int(y.max()) + 1
        if int(y.max()) >= n_items:
            raise ValueError(f"y holds item id {int(y.max())}, outside [0, n_items={n_items})")
        if feats is not None and feats.shape[0] != n_items:
            raise ValueError(f"item_features has {feats.shape[0]} rows for {n_items} items")
        rng = check_random_state(self.random_state)
        P = self._init_params(X.shape[1], n_items, 0 if feats is None else feats.shape[1],
                              rng, np.float32)
        counts = np.bincount(y, minlength=n_items).astype(np.float64) + 1.0
        q = counts ** self.sampling_alpha
        q /= q.sum()
        cdf = np.cumsum(q)
        cdf[-1] = 1.0
        logq_item = np.log(self.n_negatives * q).astype(np.float32)

        m1 = {k: np.zeros_like(v) for k, v in P.items()}
        m2 = {k: np.zeros_like(v) for k, v in P.items()}
        b1, b2, adam_eps = 0.9, 0.999, 1e-8
        lr, wd = self.learning_rate, self.weight_decay
        step = 0
        self.loss_curve_, self.aux_curve_ = [], []
        n = X.shape[0]
        for epoch in range(self.n_epochs):
            order = rng.permutation(n)
            tot = aux_tot = 0.0
            nb = 0
            for s in range(0, n, self.batch_size):
                rows = order[s:s + self.batch_size]
                B = rows.shape[0]
                neg = np.searchsorted(cdf, rng.random_sample((B, self.n_negatives)))
                ids = np.concatenate([y[rows, None], np.minimum(neg, n_items - 1)], axis=1)
                mask = ids != ids[:, :1]
                mask[:, 0] = True
                val, aux, grads, dE, _, _ = self._loss_grad(P, X[rows], ids, logq_item[ids],
                                                         mask, feats)
                step += 1
                c1, c2 = 1 - b1 ** step, 1 - b2 ** step
                for key, g in grads.items():
                    m1[key] = b1 * m1[key] + (1 - b1) * g
                    m2[key] = b2 * m2[key] + (1 - b2) * g * g
                    upd = (m1[key] / c1) / (np.sqrt(m2[key] / c2) + adam_eps)
                    if wd and not key.startswith("b"):
                        upd = upd + wd * P[key]
                    P[key] -= (lr * upd).astype(np.float32)
                # Row-sparse ("lazy") Adam on the embedding table: only touched rows move.
                flat_ids = ids.reshape(-1)
                by_id = np.argsort(flat_ids, kind="stable")
                sorted_ids = flat_ids[by_id]
                starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
                urows = sorted_ids[starts]
                gE = np.add.reduceat(dE.reshape(-1, dE.shape[-1])[by_id], starts, axis=0)
                m1e = b1 * m1["emb"][urows] + (1 - b1) * gE
                m2e = b2 * m2["emb"][urows] + (1 - b2) * gE * gE
                m1["emb"][urows], m2["emb"][urows] = m1e, m2e
                upd = (m1e / c1) / (np.sqrt(m2e / c2) + adam_eps) + wd * P["emb"][urows]
                P["emb"][urows] -= (lr * upd).astype(np.float32)
                tot += val
                aux_tot += aux
                nb += 1
            self.loss_curve_.append(tot / nb)
            self.aux_curve_.append(aux_tot / nb)
            if self.verbose:
                print(f"NeuralMatcher epoch {epoch + 1}/{self.n_epochs}: loss "
                      f"{tot / nb:.4f} (adversarial {aux_tot / nb:.4f})")
        self.params_ = P
        self.n_items_ = int(n_items)
        self.n_iter_ = self.n_epochs
        self.item_embeddings_ = np.ascontiguousarray(
            self._tower(P, np.arange(n_items), feats), dtype=np.float32)
        return self

    # -- scoring -------------------------------------------------------------------------------
    def prepare(self, queries):
        check_is_fitted(self)
        Q = _as_query_array(_default_prepare(queries), "NeuralMatcher")
        if Q.shape[1] != self.n_features_in_:
            raise ValueError(f"queries have {Q.shape[1]} features; NeuralMatcher was fitted "
                             f"with {self.n_features_in_}")
        P = self.params_
        return Q @ P["Wp"], Q @ P["W1q"] + P["b1"]

    def _head(self, a):
        P = self.params_
        h = np.maximum(a, 0.0, out=a)
        for i in range(2, _n_hidden(P) + 2):
            h = np.maximum(h @ P[f"W{i}"] + P[f"b{i}"], 0.0)
        return h @ P["Wo"][:, 0] + P["bo"][0]

    def score(self, state, q, ids):
        p, c = state
        P = self.params_
        M = P["W1e"] + p[q][:, None] * P["W1p"]
        out = np.empty(ids.shape[0], dtype=np.float32)
        for s in range(0, ids.shape[0], _CHUNK):
            sl = slice(s, s + _CHUNK)
            out[sl] = self._head(self.item_embeddings_[ids[sl]] @ M + c[q])
        return out

    def score_pairs(self, state, qidx, ids):
        p, c = state
        P = self.params_
        out = np.empty(ids.shape[0], dtype=np.float32)
        for s in range(0, ids.shape[0], _CHUNK):
            sl = slice(s, s + _CHUNK)
            E = self.item_embeddings_[ids[sl]]
            q = qidx[sl]
            out[sl] = self._head(c[q] + E @ P["W1e"] + (p[q] * E) @ P["W1p"])
        return out

    def score_items(self, X, items=None):
        """Score matrix ``(n_queries, n_items)`` (or against ``items``) for query features X."""
        state = self.prepare(X)
        ids = np.arange(self.n_items_) if items is None else np.asarray(items, dtype=np.int64)
        return self.score_block(state, np.arange(state[0].shape[0]), ids)

    # -- persistence -----------------------------------------------------------------------------
    def _get_state(self):
        params = self.get_params(deep=False)
        if not (params["random_state"] is None or isinstance(params["random_state"], int)):
            raise TypeError("cannot save NeuralMatcher: random_state must be an int or None")
        params["hidden"] = list(params["hidden"])
        meta = {"params": params, "fitted": hasattr(self, "params_")}
        arrays = {}
        if meta["fitted"]:
            meta.update(n_items=self.n_items_, n_features_in=int(self.n_features_in_),
                        loss_curve=list(self.loss_curve_), aux_curve=list(self.aux_curve_))
            arrays = {f"param_{k}": v for k, v in self.params_.items()}
            arrays["item_embeddings"] = self.item_embeddings_
        return meta, arrays

    @classmethod
    def _from_state(cls, meta, arrays):
        params = dict(meta["params"])
        params["hidden"] = tuple(params["hidden"])
        obj = cls(**params)
        if meta["fitted"]:
            obj.params_ = {k[6:]: v for k, v in arrays.items() if k.startswith("param_")}
            obj.item_embeddings_ = arrays["item_embeddings"]
            obj.n_items_ = int(meta["n_items"])
            obj.n_features_in_ = int(meta["n_features_in"])
            obj.n_iter_ = obj.n_epochs
            obj.loss_curve_ = list(meta["loss_curve"])
            obj.aux_curve_ = list(meta["aux_curve"])
        return obj

    def save(self, path):
        """Save the model in ordhash's pickle-free format."""
        return persist.save(self, path)

    @classmethod
    def load(cls, path, mmap=False):
        """Load a model saved by :meth:`save`."""
        return persist.load(path, expected=cls, mmap=mmap)
