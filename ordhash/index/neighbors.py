"""A scikit-learn k-NN graph transformer backed by :class:`~ordhash.index.HashingSearcher`."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..learners import LSH
from .searcher import HashingSearcher

__all__ = ["HashingKNeighborsTransformer"]


class HashingKNeighborsTransformer(TransformerMixin, BaseEstimator):
    """Approximate k-NN graph from binary codes, a drop-in for ``KNeighborsTransformer``.

    Follows the convention of scikit-learn's ``KNeighborsTransformer`` and of its example
    "Approximate nearest neighbors in TSNE": ``transform(X)`` returns a sparse
    ``(n_queries, n_samples_fit)`` graph whose row ``i`` holds the neighbours of ``X[i]``
    among the fitted samples. Every sample is its own neighbour when ``X`` is the training
    data, so in ``mode="distance"`` one extra neighbour is computed (``n_neighbors + 1``
    entries per row, the sample itself at distance 0); ``mode="connectivity"`` gives
    ``n_neighbors`` entries of 1.0. Feed the graph to an estimator with
    ``metric="precomputed"`` (``Isomap``, ``TSNE``, ``KNeighborsClassifier``, ``DBSCAN``...).

    Neighbours are found by :class:`HashingSearcher`: the ``candidates`` nearest codes in
    Hamming distance, re-ranked by exact Euclidean distance.

    Parameters
    ----------
    learner : BaseHasher, optional
        Unfitted ordhash learner (cloned). Default: ``LSH(n_bits=64, random_state=0)``.
    n_neighbors : int, default=5
        Neighbours per sample (not counting the extra one of ``mode="distance"``).
    mode : {"distance", "connectivity"}, default="distance"
        Graph values: Euclidean distances or ones.
    candidates : int, default=100
        Hamming candidates re-ranked per query; at least the number of graph entries per row
        is used.
    metric : {"l2"}, default="l2"
        Euclidean distances (the only metric whose values are distances a precomputed-metric
        estimator accepts).

    Attributes
    ----------
    searcher_ : HashingSearcher
        The fitted searcher.
    n_samples_fit_ : int
        Number of fitted samples (the number of graph columns).
    n_features_in_ : int
        Number of features seen during ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.index import HashingKNeighborsTransformer
    >>> X = np.random.default_rng(0).normal(size=(200, 8))
    >>> graph = HashingKNeighborsTransformer(n_neighbors=3).fit_transform(X)
    >>> graph.shape, np.diff(graph.indptr)[:4].tolist()
    ((200, 200), [4, 4, 4, 4])
    >>> float(graph[0, 0])  # each sample is its own nearest neighbour
    0.0
    """

    _parameter_constraints: dict = {
        "learner": [HasMethods(["fit", "transform"]), None],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"distance", "connectivity"})],
        "candidates": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"l2"})],
    }

    def __init__(self, *, learner=None, n_neighbors=5, mode="distance", candidates=100,
                 metric="l2"):
        self.learner = learner
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.candidates = candidates
        self.metric = metric

    def fit(self, X, y=None):
        """Index the training samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : HashingKNeighborsTransformer
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        learner = LSH(n_bits=64, random_state=0) if self.learner is None else clone(self.learner)
        self.searcher_ = HashingSearcher(learner, metric=self.metric,
                                         candidates=self.candidates).fit(X)
        self.n_samples_fit_ = X.shape[0]
        return self

    def transform(self, X):
        """k-NN graph of ``X`` against the fitted samples.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)

        Returns
        -------
        graph : scipy.sparse.csr_matrix of shape (n_queries, n_samples_fit)
            ``n_neighbors + 1`` entries per row in ``mode="distance"`` (Euclidean distances,
            a training sample itself at 0), ``n_neighbors`` ones in ``mode="connectivity"``.
        """
        check_is_fitted(self, "searcher_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        k = self.n_neighbors + (1 if self.mode == "distance" else 0)
        if k > self.n_samples_fit_:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} needs {k} neighbours per row in mode="
                f"{self.mode!r}, but only n_samples_fit={self.n_samples_fit_} samples were fitted"
            )
        res = self.searcher_.search(X, k, candidates=max(k, self.candidates))
        n = X.shape[0]
        if self.mode == "distance":
            data = res.distances.astype(np.float64).ravel()
        else:
            data = np.ones(n * k, dtype=np.float64)
        indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
        return csr_matrix((data, res.ids.ravel(), indptr), shape=(n, self.n_samples_fit_))

    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``: the k-NN graph of the training samples (self included)."""
        return self.fit(X).transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # a sparse float64 graph
        return tags
