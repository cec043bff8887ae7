"""Built-in matching functions: inner product, negative L2, a numpy MLP, exclusion masks."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from .matching import Scorer, _as_item_vectors, _as_query_array, _default_prepare, scorer_name

__all__ = ["DotScorer", "L2Scorer", "MLPScorer", "MaskedScorer"]


class _VectorScorer(Scorer):
    supports_pairs = True

    def __init__(self, item_vectors):
        self.item_vectors = np.ascontiguousarray(_as_item_vectors(item_vectors),
                                                 dtype=np.float32)
        self.n_items = self.item_vectors.shape[0]

    def prepare(self, queries):
        Q = _as_query_array(_default_prepare(queries), f"scorer {self.name!r}")
        if Q.shape[1] != self.item_vectors.shape[1]:
            raise ValueError(
                f"queries have {Q.shape[1]} features but the items of {self.name} have "
                f"{self.item_vectors.shape[1]}"
            )
        return Q


class DotScorer(_VectorScorer):
    """Inner product ``s(q, v) = <q, x_v>`` (two-sided model; MIPS ground truth).

    Parameters
    ----------
    item_vectors : array-like of shape (n_items, d)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import DotScorer
    >>> s = DotScorer(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> s(np.array([3.0, 1.0]), [0, 1])
    array([3., 2.], dtype=float32)
    """

    def score(self, state, q, ids):
        return self.item_vectors[ids] @ state[q]

    def score_pairs(self, state, qidx, ids):
        return np.einsum("ij,ij->i", self.item_vectors[ids], state[qidx])

    def score_block(self, state, qrows, ids):
        return state[np.asarray(qrows)] @ self.item_vectors[ids].T


class L2Scorer(_VectorScorer):
    """Negative squared Euclidean distance ``s(q, v) = -||q - x_v||²`` (same ranking as -L2).

    Parameters
    ----------
    item_vectors : array-like of shape (n_items, d)

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import L2Scorer
    >>> L2Scorer(np.array([[0.0, 0.0], [3.0, 4.0]]))(np.array([0.0, 0.0]), [0, 1])
    array([ -0., -25.], dtype=float32)
    """

    def score(self, state, q, ids):
        d = self.item_vectors[ids] - state[q]
        return -np.einsum("ij,ij->i", d, d)

    def score_pairs(self, state, qidx, ids):
        d = self.item_vectors[ids] - state[qidx]
        return -np.einsum("ij,ij->i", d, d)

    def score_block(self, state, qrows, ids):
        X = self.item_vectors[ids]
        Q = state[np.asarray(qrows)]
        s = 2.0 * (Q @ X.T) - np.einsum("ij,ij->i", X, X)[None, :]
        s -= np.einsum("ij,ij->i", Q, Q)[:, None]
        return np.minimum(s, 0.0)


class MLPScorer(Scorer):
    """A numpy multi-layer perceptron over ``[q, x_v]``, plus an optional inner-product term.

    ``s(q, v) = dot_weight * <q, x_v> + MLP([q, x_v])`` with ReLU hidden layers and a linear
    scalar output. The query part of the first layer is computed once per query in
    :meth:`prepare`, so a batch costs one ``(m, d) @ (d, H)`` product per layer.

    Parameters
    ----------
    coefs : list of arrays
        ``coefs[0]`` of shape ``(d_query + d_item, H1)``, then ``(H_i, H_{i+1})``, the last of
        shape ``(H_L, 1)`` or ``(H_L,)``.
    intercepts : list of arrays
        Matching biases (the last one a scalar or shape ``(1,)``).
    item_vectors : array-like of shape (n_items, d_item)
    dot_weight : float, default=0.0
        Weight of the inner-product term (needs ``d_query == d_item`` when non-zero).
    chunk_size : int, default=2048
        Rows evaluated per numpy pass inside one call (cache blocking: on a 2-core Zen 3
        machine large passes cost 2-4x more per item than 1-2k-row passes, because the
        gathered rows and activations no longer fit in L2).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import MLPScorer
    >>> X = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    >>> s = MLPScorer.random(X, hidden=(16,), random_state=0)
    >>> s(X[0], np.arange(5)).shape
    (5,)
    """

    supports_pairs = True

    def __init__(self, coefs, intercepts, item_vectors, *, dot_weight=0.0, chunk_size=2048):
        self.item_vectors = np.ascontiguousarray(_as_item_vectors(item_vectors),
                                                 dtype=np.float32)
        self.n_items, d_item = self.item_vectors.shape
        if len(coefs) == 0 or len(coefs) != len(intercepts):
            raise ValueError("coefs and intercepts must be non-empty lists of equal length")
        Ws = [np.asarray(W, dtype=np.float32) for W in coefs]
        bs = [np.asarray(b, dtype=np.float32).reshape(-1) for b in intercepts]
        if Ws[-1].ndim == 1:
            Ws[-1] = Ws[-1][:, None]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            if W.ndim != 2 or b.shape != (W.shape[1],):
                raise ValueError(f"layer {i}: weight {W.shape} and bias {b.shape} do not match")
            if i and W.shape[0] != Ws[i - 1].shape[1]:
                raise ValueError(f"layer {i} takes {W.shape[0]} inputs, the previous layer "
                                 f"gives {Ws[i - 1].shape[1]}")
        if Ws[-1].shape[1] != 1:
            raise ValueError(f"the last layer must output 1 value, got {Ws[-1].shape[1]}")
        self.d_query = Ws[0].shape[0] - d_item
        if self.d_query <= 0:
            raise ValueError(f"coefs[0] has {Ws[0].shape[0]} rows, which does not exceed "
                             f"the item dimension {d_item}")
        self.dot_weight = float(dot_weight)
        if self.dot_weight and self.d_query != d_item:
            raise ValueError("dot_weight needs equal query and item dimensions")
        self.coefs = Ws
        self.intercepts = bs
        self.chunk_size = int(chunk_size)
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self._W1q = np.ascontiguousarray(Ws[0][: self.d_query])
        self._W1x = np.ascontiguousarray(Ws[0][self.d_query:])

    @classmethod
    def random(cls, item_vectors, *, d_query=None, hidden=(64,), dot_weight=1.0,
               mlp_weight=2.0, random_state=None, chunk_size=2048):
        """A random MLP scorer (He-initialised ReLU layers), as in synthetic benchmarks.

        ``s(q, v) = dot_weight * <q, x_v> + mlp_weight * MLP([q, x_v])`` with
        ``d_query = d_item`` by default.
        """
        X = _as_item_vectors(item_vectors)
        rng = check_random_state(random_state)
        d_query = X.shape[1] if d_query is None else int(d_query)
        sizes = [d_query + X.shape[1], *[int(h) for h in hidden], 1]
        coefs, intercepts = [], []
        for i in range(len(sizes) - 1):
            W = rng.standard_normal((sizes[i], sizes[i + 1])) * np.sqrt(2.0 / sizes[i])
            coefs.append(W)
            intercepts.append(rng.standard_normal(sizes[i + 1]) * 0.1)
        coefs[-1] = coefs[-1] * mlp_weight
        intercepts[-1] = intercepts[-1] * mlp_weight
        return cls(coefs, intercepts, X, dot_weight=dot_weight, chunk_size=chunk_size)

    def prepare(self, queries):
        Q = _as_query_array(_default_prepare(queries), f"scorer {self.name!r}")
        if Q.shape[1] != self.d_query:
            raise ValueError(f"queries have {Q.shape[1]} features; {self.name} expects "
                             f"{self.d_query}")
        return Q, Q @ self._W1q + self.intercepts[0]

    def _head(self, a):
        h = np.maximum(a, 0.0, out=a)
        for W, b in zip(self.coefs[1:-1], self.intercepts[1:-1]):
            h = np.maximum(h @ W + b, 0.0)
        return (h @ self.coefs[-1])[..., 0] + self.intercepts[-1][0]

    def score(self, state, q, ids):
        return self.score_pairs(state, np.full(ids.shape[0], q, dtype=np.int64), ids)

    def score_pairs(self, state, qidx, ids):
        Q, c = state
        out = np.empty(ids.shape[0], dtype=np.float32)
        for s in range(0, ids.shape[0], self.chunk_size):
            sl = slice(s, s + self.chunk_size)
            X = self.item_vectors[ids[sl]]
            out[sl] = self._head(X @ self._W1x + c[qidx[sl]])
            if self.dot_weight:
                out[sl] += self.dot_weight * np.einsum("ij,ij->i", X, Q[qidx[sl]])
        return out

    def score_block(self, state, qrows, ids):
        Q, c = state
        out = np.empty((len(qrows), ids.shape[0]), dtype=np.float32)
        for s in range(0, ids.shape[0], self.chunk_size):
            sl = slice(s, s + self.chunk_size)
            X = self.item_vectors[ids[sl]]
            XW = X @ self._W1x
            for r, q in enumerate(qrows):
                out[r, sl] = self._head(XW + c[q])
            if self.dot_weight:
                out[:, sl] += self.dot_weight * (Q[np.asarray(qrows)] @ X.T)
        return out


class MaskedScorer(Scorer):
    """Wrap a scorer so that some items score ``-inf`` for some queries (already-seen items,
    business filters). Exact search and the walk then both rank only the allowed items.

    Parameters
    ----------
    scorer : Scorer
    exclude : sequence of int arrays
        ``exclude[i]`` lists the item ids excluded for query ``i`` of the search call.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import DotScorer, MaskedScorer
    >>> s = MaskedScorer(DotScorer(np.eye(3)), [[1]])
    >>> st = s.prepare(np.ones((1, 3)))
    >>> s.score(st, 0, np.array([0, 1, 2]))
    array([  1., -inf,   1.], dtype=float32)
    """

    def __init__(self, scorer, exclude):
        if not hasattr(scorer, "score"):
            raise TypeError(f"scorer must be a Scorer, got {type(scorer).__name__}")
        self.scorer = scorer
        self.exclude = [np.asarray(e, dtype=np.int64).reshape(-1) for e in exclude]
        self.supports_pairs = bool(getattr(scorer, "supports_pairs", False))
        self.n_items = getattr(scorer, "n_items", None)

    @property
    def name(self):
        return f"Masked({scorer_name(self.scorer)})"

    def prepare(self, queries):
        inner = self.scorer.prepare(queries)
        n = len(queries)
        if n != len(self.exclude):
            raise ValueError(f"{self.name} has exclusion lists for {len(self.exclude)} queries "
                             f"but was given {n}")
        keys = [np.int64(i) << 32 | e for i, e in enumerate(self.exclude)]
        keys = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
        return inner, keys

    @staticmethod
    def _apply(s, keys, qidx, ids):
        s = np.array(s, dtype=np.float32)
        if keys.size:
            k = (qidx.astype(np.int64) << 32) | ids
            pos = np.minimum(np.searchsorted(keys, k), keys.size - 1)
            s[keys[pos] == k] = -np.inf
        return s

    def score(self, state, q, ids):
        inner, keys = state
        return self._apply(self.scorer.score(inner, q, ids), keys,
                           np.full(ids.shape[0], q, dtype=np.int64), ids)

    def score_pairs(self, state, qidx, ids):
        inner, keys = state
        fn = self.scorer.score_pairs if self.supports_pairs else None
        s = fn(inner, qidx, ids) if fn else Scorer.score_pairs(self.scorer, inner, qidx, ids)
        return self._apply(s, keys, qidx, ids)

    def score_block(self, state, qrows, ids):
        inner, keys = state
        fn = getattr(self.scorer, "score_block", None)
        S = fn(inner, qrows, ids) if fn else Scorer.score_block(self.scorer, inner, qrows, ids)
        S = np.array(S, dtype=np.float32)
        qr = np.repeat(np.asarray(qrows, dtype=np.int64), ids.shape[0])
        flat = self._apply(S.reshape(-1), keys, qr, np.tile(ids, len(qrows)))
        return flat.reshape(S.shape)
