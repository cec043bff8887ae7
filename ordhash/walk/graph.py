"""Proximity graphs over item vectors or binary codes, stored as per-level CSR arrays.

faiss builds the graph (HNSW on float vectors or packed codes, exact k-NN); ordhash keeps only
the extracted neighbour lists, so a saved graph does not depend on faiss' thread count or
version and the walk never calls back into faiss.
"""

from __future__ import annotations

import time

import numpy as np

from .. import persist
from .._kernels import walk as _kw
from .._validation import check_codes, check_int, check_option, check_vectors
from ..codes import hamming_distances

__all__ = ["ProximityGraph"]


def _faiss():
    import faiss

    return faiss


class _Threads:
    """Temporarily set faiss' OpenMP thread count."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        if self.n is not None:
            faiss = _faiss()
            self.old = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.n is not None:
            _faiss().omp_set_num_threads(self.old)


@persist.register("ordhash.ProximityGraph")
class ProximityGraph:
    """A directed, layered proximity graph in CSR form (the walk's item graph).

    Build one with :meth:`from_hnsw` (faiss HNSW on vectors; NANN's choice),
    :meth:`from_knn` (exact k-NN graph plus a seed layer) or :meth:`from_codes` (packed binary
    codes, Hamming geometry). Layer ``l`` holds the nodes with ``levels > l``; node ``i``'s
    out-neighbours on layer ``l`` are ``indices[l][indptr[l][i]:indptr[l][i + 1]]`` (rows of
    nodes absent from the layer are empty). Edges are directed as built.

    Parameters
    ----------
    levels : array of int of shape (n,)
        ``1 +`` the top layer of each node (faiss semantics; all >= 1).
    indptr, indices : lists of arrays
        Per-layer CSR arrays: ``indptr[l]`` int64 of shape ``(n + 1,)``, ``indices[l]`` int32.
    entry_point : int
        Entry node of the best-first walk (a node on the top layer).
    kind : str, default="custom"
        How it was built (``"hnsw"``, ``"knn"``, ``"binary_hnsw"``, ``"binary_knn"``, ...).
    params : dict, optional
        Build parameters (JSON-able), kept for reference and persistence.

    Attributes
    ----------
    n_items : int
    max_level : int
        Top layer index (``levels.max() - 1``).
    build_seconds : float
        Wall time of the build (0 when constructed directly).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import ProximityGraph
    >>> X = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    >>> g = ProximityGraph.from_hnsw(X, M=8, random_state=0)
    >>> g.n_items, g.neighbors(0).dtype
    (500, dtype('int32'))
    """

    def __init__(self, levels, indptr, indices, entry_point, *, kind="custom", params=None):
        levels = np.ascontiguousarray(levels, dtype=np.int32)
        if levels.ndim != 1 or levels.size == 0:
            raise ValueError(f"levels must be a non-empty 1-D array, got shape {levels.shape}")
        if levels.min() < 1:
            raise ValueError("levels must be >= 1 (1 + top layer of each node)")
        n = levels.shape[0]
        n_layers = int(levels.max())
        if len(indptr) != n_layers or len(indices) != n_layers:
            raise ValueError(f"levels imply {n_layers} layers but {len(indptr)} indptr and "
                             f"{len(indices)} indices arrays were given")
        self.levels = levels
        self.indptr = []
        self.indices = []
        for lvl, (p, ix) in enumerate(zip(indptr, indices)):
            p = np.ascontiguousarray(p, dtype=np.int64)
            ix = np.ascontiguousarray(ix, dtype=np.int32)
            if p.shape != (n + 1,) or p[0] != 0 or p[-1] != ix.shape[0] or (np.diff(p) < 0).any():
                raise ValueError(f"layer {lvl}: indptr is not a valid CSR pointer array for "
                                 f"{n} nodes and {ix.shape[0]} edges")
            if ix.size and (ix.min() < 0 or ix.max() >= n):
                raise ValueError(f"layer {lvl}: neighbour ids must lie in [0, {n})")
            self.indptr.append(p)
            self.indices.append(ix)
        self.entry_point = check_int(entry_point, "entry_point", min_value=0, max_value=n - 1)
        self.kind = str(kind)
        self.params = dict(params or {})
        self.build_seconds = 0.0

    # -- basic properties ------------------------------------------------------------------
    @property
    def n_items(self):
        """Number of nodes (items ``0 .. n_items - 1``)."""
        return int(self.levels.shape[0])

    @property
    def max_level(self):
        """Index of the top layer (``len(indptr) - 1``)."""
        return len(self.indptr) - 1

    def __repr__(self):
        sizes = [int((self.levels > lvl).sum()) for lvl in range(self.max_level + 1)]
        return (f"ProximityGraph(kind={self.kind!r}, n_items={self.n_items}, "
                f"layer_sizes={sizes}, edges={[int(ix.size) for ix in self.indices]})")

    def layer(self, level):
        """CSR arrays ``(indptr, indices)`` of one layer."""
        level = check_int(level, "level", min_value=0, max_value=self.max_level)
        return self.indptr[level], self.indices[level]

    def neighbors(self, node, level=0):
        """Out-neighbours of ``node`` on ``level`` (``int32``; empty if absent there)."""
        node = check_int(node, "node", min_value=0, max_value=self.n_items - 1)
        p, ix = self.layer(level)
        return ix[p[node]:p[node + 1]]

    def layer_nodes(self, level):
        """Ids of the nodes present on ``level`` (``levels > level``)."""
        return np.flatnonzero(self.levels > level)

    def entry_set(self, start_level):
        """Nodes whose top layer is at least ``start_level`` (the beam's entry batch)."""
        start_level = check_int(start_level, "start_level", min_value=0)
        return np.flatnonzero(self.levels > start_level).astype(np.int64)

    def degrees(self, level=0):
        """Out-degree of every node on ``level``."""
        return np.diff(self.layer(level)[0])

    def reciprocity(self, level=0):
        """Fraction of edges ``u -> v`` of ``level`` whose reverse ``v -> u`` also exists."""
        p, ix = self.layer(level)
        if ix.size == 0:
            return float("nan")
        src = np.repeat(np.arange(self.n_items, dtype=np.int64), np.diff(p))
        fwd = src * self.n_items + ix
        rev = np.sort(ix.astype(np.int64) * self.n_items + src)
        pos = np.minimum(np.searchsorted(rev, fwd), rev.size - 1)
        return float((rev[pos] == fwd).mean())

    # -- builders --------------------------------------------------------------------------
    @classmethod
    def from_faiss(cls, index, *, kind=None, params=None):
        """Extract the CSR graph of a built faiss ``IndexHNSW*`` or ``IndexBinaryHNSW``.

        The faiss neighbour table (``MaybeOwnedVectorInt32``, not subscriptable) is read with
        ``faiss.vector_to_array``; offsets are ``uint64`` in faiss and cast to ``int64``;
        ``-1`` padding is dropped. Internal ids are the insertion order.
        """
        faiss = _faiss()
        h = getattr(index, "hnsw", None)
        if h is None:
            raise TypeError(f"index must be a faiss HNSW index, got {type(index).__name__}")
        if index.ntotal == 0:
            raise ValueError("the faiss index is empty")
        nb = faiss.vector_to_array(h.neighbors).astype(np.int32, copy=False)
        off = faiss.vector_to_array(h.offsets).astype(np.int64)
        lv = faiss.vector_to_array(h.levels).astype(np.int32, copy=False)
        cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
        n_layers = int(lv.max())
        indptr, indices = [], []
        for lvl in range(n_layers):
            p, ix = _kw.csr_from_padded(nb, off, lv, int(cum[lvl]), int(cum[lvl + 1]), lvl)
            indptr.append(p)
            indices.append(ix)
        if kind is None:
            kind = "binary_hnsw" if isinstance(index, faiss.IndexBinary) else "hnsw"
        return cls(lv, indptr, indices, int(h.entry_point), kind=kind, params=params)

    @classmethod
    def from_hnsw(cls, vectors, *, M=32, ef_construction=40, metric="l2", n_threads=None,
                  random_state=None):
        """Build an HNSW graph on float vectors with faiss ``IndexHNSWFlat`` and extract it.

        Parameters
        ----------
        vectors : array-like of shape (n_items, d)
            Item vectors (NANN: the item tower outputs ``e_v``); row ``i`` is item ``i``.
        M : int, default=32
            faiss ``M`` (2M links per node on layer 0, M above). NANN uses 32.
        ef_construction : int, default=40
            faiss ``efConstruction`` (NANN: 40, the faiss default).
        metric : {"l2", "ip"}, default="l2"
        n_threads : int, optional
            faiss OpenMP threads during the build (results may differ across thread counts;
            the extracted arrays are what is saved).
        random_state : int, optional
            Seed of faiss' level generator (``hnsw.rng``); default faiss' own (12345).
        """
        X = check_vectors(vectors, "vectors")
        M = check_int(M, "M", min_value=2)
        ef_construction = check_int(ef_construction, "ef_construction", min_value=1)
        check_option(metric, "metric", {"l2", "ip"})
        faiss = _faiss()
        t0 = time.perf_counter()
        mt = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexHNSWFlat(X.shape[1], M, mt)
        index.hnsw.efConstruction = ef_construction
        _seed_levels(index, random_state)
        with _Threads(n_threads):
            index.add(X)
        params = {"M": M, "ef_construction": ef_construction, "metric": metric}
        g = cls.from_faiss(index, kind="hnsw", params=params)
        g.build_seconds = time.perf_counter() - t0
        return g

    @classmethod
    def from_knn(cls, vectors, *, k=32, metric="l2", n_seeds=None, chunk_size=4096,
                 n_threads=None, random_state=None):
        """Exact k-NN graph (faiss flat search, chunked) plus a small seed layer.

        Layer 0 links every item to its ``k`` nearest other items. Layer 1 holds ``n_seeds``
        random items linked to their nearest seeds; the beam search scores the seeds as its
        entry batch and the best-first walk descends from one of them.

        Parameters
        ----------
        vectors : array-like of shape (n_items, d)
        k : int, default=32
        metric : {"l2", "ip"}, default="l2"
        n_seeds : int, optional
            Seed-layer size; default ``min(n, max(64, n // 256))``.
        chunk_size : int, default=4096
            Query rows per faiss search call (bounds memory).
        """
        X = check_vectors(vectors, "vectors")
        n = X.shape[0]
        k = check_int(k, "k", min_value=1)
        check_option(metric, "metric", {"l2", "ip"})
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
        faiss = _faiss()
        t0 = time.perf_counter()
        index = faiss.IndexFlatL2(X.shape[1]) if metric == "l2" else faiss.IndexFlatIP(X.shape[1])
        index.add(X)
        kk = min(k + 1, n)

        def search(rows):
            _, nn = index.search(X[rows], kk)
            return nn

        with _Threads(n_threads):
            g = cls._assemble(n, search, kk, k, n_seeds, chunk_size, random_state,
                              kind="knn", params={"k": k, "metric": metric},
                              seed_search=lambda S, kq: _flat_knn(X[S], metric, kq))
        g.build_seconds = time.perf_counter() - t0
        return g

    @classmethod
    def from_codes(cls, codes, *, method="hnsw", M=32, ef_construction=40, k=32, n_seeds=None,
                   chunk_size=2048, n_threads=None, random_state=None):
        """Graph over packed binary codes (Hamming geometry), e.g. from any ordhash learner.

        Parameters
        ----------
        codes : uint8 array of shape (n_items, code_size)
            Packed codes (``learner.transform(X)``).
        method : {"hnsw", "knn"}, default="hnsw"
            ``"hnsw"``: faiss ``IndexBinaryHNSW``; ``"knn"``: exact Hamming k-NN computed with
            :func:`ordhash.codes.hamming_distances` in chunks (ties broken by smaller id), plus
            a seed layer as in :meth:`from_knn`.
        """
        C = check_codes(codes, "codes")
        check_option(method, "method", {"hnsw", "knn"})
        n = C.shape[0]
        faiss = _faiss()
        t0 = time.perf_counter()
        if method == "hnsw":
            M = check_int(M, "M", min_value=2)
            ef_construction = check_int(ef_construction, "ef_construction", min_value=1)
            index = faiss.IndexBinaryHNSW(C.shape[1] * 8, M)
            index.hnsw.efConstruction = ef_construction
            _seed_levels(index, random_state)
            with _Threads(n_threads):
                index.add(C)
            g = cls.from_faiss(index, kind="binary_hnsw",
                               params={"M": M, "ef_construction": ef_construction})
        else:
            k = check_int(k, "k", min_value=1)
            chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
            kk = min(k + 1, n)
            # Each chunk materialises a (rows, n) distance/key matrix: keep it near 2**24.
            chunk_size = max(1, min(chunk_size, (1 << 24) // n))

            def search(rows):
                return _hamming_knn(C[rows], C, kk)

            g = cls._assemble(n, search, kk, k, n_seeds, chunk_size, random_state,
                              kind="binary_knn", params={"k": k},
                              seed_search=lambda S, kq: _hamming_knn(C[S], C[S], kq))
        g.build_seconds = time.perf_counter() - t0
        return g

    @classmethod
    def _assemble(cls, n, search, kk, k, n_seeds, chunk_size, random_state, *, kind, params,
                  seed_search):
        knn = np.empty((n, kk), dtype=np.int64)
        for s in range(0, n, chunk_size):
            rows = np.arange(s, min(n, s + chunk_size))
            knn[rows] = search(rows)
        # Drop self (wherever ties put it) and keep k neighbours.
        p0, ix0 = _kw.csr_from_knn(knn, n)
        p0, ix0 = _truncate_rows(p0, ix0, k)
        if n_seeds is None:
            n_seeds = min(n, max(64, n // 256))
        n_seeds = check_int(n_seeds, "n_seeds", min_value=1, max_value=n)
        rng = np.random.default_rng(random_state)
        seeds = np.sort(rng.choice(n, size=n_seeds, replace=False))
        levels = np.ones(n, dtype=np.int32)
        if n_seeds < 2:
            return cls(levels, [p0], [ix0], int(seeds[0]), kind=kind,
                       params={**params, "n_seeds": n_seeds})
        levels[seeds] = 2
        kup = min(k, n_seeds - 1)
        local = seed_search(seeds, kup + 1)            # (n_seeds, kup + 1), local indices
        up = np.full((n, local.shape[1]), -1, dtype=np.int64)
        up[seeds] = np.where(local >= 0, seeds[np.maximum(local, 0)], -1)
        p1, ix1 = _kw.csr_from_knn(up, n)
        p1, ix1 = _truncate_rows(p1, ix1, kup)
        return cls(levels, [p0, p1], [ix0, ix1], int(seeds[0]), kind=kind,
                   params={**params, "n_seeds": n_seeds})

    # -- persistence -----------------------------------------------------------------------
    def _get_state(self):
        meta = {"entry_point": self.entry_point, "kind": self.kind, "params": self.params,
                "n_layers": len(self.indptr), "build_seconds": self.build_seconds}
        arrays = {"levels": self.levels}
        for lvl, (p, ix) in enumerate(zip(self.indptr, self.indices)):
            arrays[f"indptr_{lvl}"] = p
            arrays[f"indices_{lvl}"] = ix
        return meta, arrays

    @classmethod
    def _from_state(cls, meta, arrays):
        nl = int(meta["n_layers"])
        g = cls(arrays["levels"], [arrays[f"indptr_{i}"] for i in range(nl)],
                [arrays[f"indices_{i}"] for i in range(nl)], meta["entry_point"],
                kind=meta["kind"], params=meta["params"])
        g.build_seconds = float(meta.get("build_seconds", 0.0))
        return g

    def save(self, path):
        """Save the graph atomically in ordhash's pickle-free format (:mod:`ordhash.persist`)."""
        return persist.save(self, path)

    @classmethod
    def load(cls, path, mmap=False):
        """Load a graph saved by :meth:`save` (``mmap=True`` maps the large arrays)."""
        return persist.load(path, expected=cls, mmap=mmap)


def _seed_levels(index, random_state):
    if random_state is not None:
        seed = check_int(random_state, "random_state", min_value=0) % (2**31)
        index.hnsw.rng = _faiss().RandomGenerator(seed)


def _truncate_rows(indptr, indices, k):
    deg = np.minimum(np.diff(indptr), k)
    new_ptr = np.zeros_like(indptr)
    np.cumsum(deg, out=new_ptr[1:])
    take = np.repeat(indptr[:-1], deg) + (np.arange(new_ptr[-1]) - np.repeat(new_ptr[:-1], deg))
    return new_ptr, indices[take]


def _flat_knn(Y, metric, kq):
    faiss = _faiss()
    index = faiss.IndexFlatL2(Y.shape[1]) if metric == "l2" else faiss.IndexFlatIP(Y.shape[1])
    index.add(Y)
    _, nn = index.search(Y, kq)
    return nn


def _hamming_knn(Q, C, kk):
    """``kk`` nearest rows of ``C`` for each row of ``Q`` by Hamming distance, ties by id."""
    D = hamming_distances(Q, C).astype(np.int64)
    nb = C.shape[0]
    if kk < nb:
        # distance * nb + id is a total order that breaks ties by smaller id.
        key = D * nb + np.arange(nb)[None, :]
        part = np.argpartition(key, kk - 1, axis=1)[:, :kk]
        order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1)
        return np.take_along_axis(part, order, axis=1)
    key = D * nb + np.arange(nb)[None, :]
    return np.argsort(key, axis=1)
