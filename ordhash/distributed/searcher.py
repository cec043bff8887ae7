"""Hashing search with exact re-ranking on the shards: :class:`ShardedHashingSearcher`."""

from __future__ import annotations

import time

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from .._validation import check_int, check_vectors
from ._merge import merge_knn
from .encode import check_dask_rows, check_learner, encode, fit_sample
from .index import ShardedHammingIndex, ShardUnavailableError, check_n_jobs, resolve_client

__all__ = ["ShardedHashingSearcher"]


class ShardedHashingSearcher(BaseEstimator):
    """Learned binary codes for candidate selection, exact re-ranking, all on dask shards.

    ``fit`` trains a copy of ``learner`` on a random sample, encodes the whole array blockwise
    and builds one shard per block holding the block's codes **and** its vectors. ``search``
    sends each query batch to every shard; a shard takes its ``candidates`` nearest codes in
    Hamming distance (ties by id), computes their exact distances to the query from the vectors
    it holds, and returns its best ``k``; the client merges the shards' answers by
    (distance, id).

    What is exact: the re-ranking distances are exact (float64 accumulation over the stored
    float32 vectors) and the merge is exact, so the result equals running the same procedure
    on each block on one machine and merging -- it is exact k-NN *within each shard's
    Hamming candidates*. Every shard contributes its own ``candidates``, so the pool grows
    with the number of shards and the result depends on how the data are chunked. With
    ``candidates >= `` the largest shard, every vector is re-ranked and the result is the
    exact k-NN of the whole data set.

    Parameters
    ----------
    learner : ordhash learner
        Unfitted hashing learner (e.g. ``ITQ(n_bits=64)``); ``fit`` trains a clone.
    metric : {"l2", "ip"}, default="l2"
        ``"l2"``: squared Euclidean distance, ascending; ``"ip"``: inner product, descending.
    client : distributed.Client or None, default=None
        ``None``: the current default client (looked up by ``fit``).
    n_jobs : int or None, default=1
        Threads per shard for the Hamming scan.
    fast_path : bool, default=True
        Send query batches (codes and vectors up to 1 MiB) to one long-lived shard server
        (dask Actor) per worker instead of one dask task per shard; any failure falls back to
        tasks for that batch (see :class:`ShardedHammingIndex`). Read at each ``search``.

    Attributes
    ----------
    learner_ : fitted learner
    index_ : ShardedHammingIndex
        The shards (codes and vectors); ``index_.last_search_stats`` times the last search.
    n_features_in_ : int

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from ordhash.distributed import ShardedHashingSearcher
    >>> from ordhash.learners import ITQ
    >>> cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
    ...                        dashboard_address=None)
    >>> client = Client(cluster)
    >>> X = da.random.default_rng(0).standard_normal((4_000, 16), chunks=(1_000, 16),
    ...                                               dtype=np.float32)
    >>> searcher = ShardedHashingSearcher(ITQ(n_bits=16, random_state=0), client=client)
    >>> searcher = searcher.fit(X, n_samples=2_000, random_state=0)
    >>> Xq = X[:3].compute()
    >>> res = searcher.search(Xq, k=5, candidates=1_000)   # >= shard size: exact k-NN
    >>> res.ids[:, 0], res.distances[:, 0]
    (array([0, 1, 2]), array([0., 0., 0.]))
    >>> client.close(); cluster.close()
    """

    _parameter_constraints: dict = {
        "learner": [HasMethods(["fit", "transform"])],
        "metric": [StrOptions({"l2", "ip"})],
        "client": "no_validation",
        "n_jobs": [Interval(Integral, None, None, closed="neither"), None],
        "fast_path": ["boolean"],
    }

    def __init__(self, learner, *, metric="l2", client=None, n_jobs=1, fast_path=True):
        self.learner = learner
        self.metric = metric
        self.client = client
        self.n_jobs = n_jobs
        self.fast_path = fast_path

    def _check_params(self):
        self._validate_params()
        check_learner(self.learner)
        check_n_jobs(self.n_jobs)

    def _check_fitted(self):
        if not hasattr(self, "index_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def fit(self, X, y=None, *, n_samples=100_000, random_state=None):
        """Fit the learner on a sample of ``X`` and build the shards.

        Parameters
        ----------
        X : dask.array.Array of shape (n, n_features)
            One shard per row chunk; the ids are the row numbers ``0..n-1``.
        y : None
            Ignored.
        n_samples : int, default=100_000
            Rows sampled (uniformly, without replacement) to fit the learner.
        random_state : int, RandomState instance or None, default=None
            Seed of the row sample.

        Returns
        -------
        self
        """
        self._check_params()
        X = check_dask_rows(X)
        client = resolve_client(self.client)
        learner = fit_sample(clone(self.learner), X, n_samples, random_state)
        index = ShardedHammingIndex(learner.n_bits, client=client, n_jobs=self.n_jobs,
                                    fast_path=self.fast_path)
        self.learner_, self.index_, self.n_features_in_ = learner, index, int(X.shape[1])
        self.add(X)
        return self

    def add(self, X, ids=None):
        """Encode ``X`` blockwise with the fitted learner and add one shard per row chunk.

        Parameters
        ----------
        X : dask.array.Array of shape (n, n_features)
        ids : array-like or dask array of int of shape (n,), optional
            Distinct new ids; default: consecutive from one past the largest id ever added.
        """
        self._check_fitted()
        X = check_dask_rows(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the searcher was fitted on "
                             f"{self.n_features_in_}")
        codes = encode(self.learner_, X)
        builds = self.index_._graph_builds(codes, ids, vectors=X)
        futures = self.index_.client.compute(builds) if builds else []
        self.index_._commit(futures, recoverable=True)

    def remove(self, ids):
        """Remove these ids (codes and vectors); returns the number removed."""
        self._check_fitted()
        return self.index_.remove(ids)

    def __len__(self):
        return self.index_.ntotal if hasattr(self, "index_") else 0

    @property
    def n_shards(self):
        """Number of shards (0 before ``fit``)."""
        return self.index_.n_shards if hasattr(self, "index_") else 0

    def search(self, Xq, k, candidates=None):
        """The ``k`` best vectors of each query after per-shard Hamming filtering and exact
        re-ranking.

        Parameters
        ----------
        Xq : array-like of shape (n_queries, n_features)
            Query vectors (encoded on the client with ``learner_``; sent to every shard).
        k : int
            Neighbours per query, ``>= 1``.
        candidates : int or None, default=None
            Hamming candidates re-ranked **per shard**, ``>= k``; ``None`` means ``10 * k``.

        Returns
        -------
        SearchResult
            ``ids`` int64 and ``distances`` float64 of shape (n_queries, k): squared L2
            ascending (``"l2"``) or inner product descending (``"ip"``), ties by id; padded
            with id ``PAD_ID`` and distance ``+inf`` (``-inf`` for ``"ip"``) when fewer than
            ``k`` candidates exist in total.
        """
        self._check_fitted()
        self._validate_params()
        Xq = check_vectors(Xq, "Xq", n_features=self.n_features_in_, allow_empty=True)
        k = check_int(k, "k", min_value=1)
        candidates = 10 * k if candidates is None else check_int(candidates, "candidates",
                                                                 min_value=k)
        nq = Xq.shape[0]
        size = (self.learner_.n_bits + 7) // 8
        qcodes = self.learner_.transform(Xq) if nq else np.empty((0, size), np.uint8)
        index = self.index_
        t0 = time.perf_counter()
        replies, path = (index._fanout("rerank", qcodes, Xq, k, candidates, self.metric,
                                       fast_path=self.fast_path) if nq else ([], None))
        for s, (n, ids, scores, _) in zip(index._shards, replies):
            want = min(k, candidates, s.n)
            if ids.shape != (nq, want) or scores.shape != (nq, want) or (ids < 0).any():
                raise ShardUnavailableError(
                    f"a shard holding {s.n} vectors returned {ids.shape[1]} neighbours per "
                    f"query instead of {want}; refusing to return a short result"
                )
        descending = self.metric == "ip"
        res = merge_knn(nq, k, [r[1] for r in replies], [r[2] for r in replies],
                        descending=descending, pad=-np.inf if descending else np.inf,
                        dtype=np.float64)
        pool = sum(min(candidates, s.n) for s in index._shards)
        if nq and not (res.counts == min(k, pool)).all():
            raise ShardUnavailableError("the merged result is shorter than expected")
        index._record(t0, replies, path)
        return res
