"""Retrieval under an arbitrary matching function: NANN beam search, the stock HNSW walk and
exact brute force, behind :class:`GraphWalkIndex`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np

from .. import persist
from .._validation import check_int, check_option
from . import _drivers
from .graph import ProximityGraph
from .matching import ScoringSession, as_scorer, scorer_name

__all__ = ["WalkStats", "WalkResult", "GraphWalkIndex", "beam_search", "hnsw_search",
           "brute_force_topk", "DEFAULT_EF", "DEFAULT_T"]

#: NANN offline defaults (arXiv 2202.10226v2 §5.1.4; ``config.py``), keyed by level.
DEFAULT_EF = {0: 400, 1: 200, 2: 100}
#: NANN offline defaults of the rounds per level; levels not listed get 1.
DEFAULT_T = {0: 3, 1: 1}
_DEFAULT_MEMORY = 256 << 20
_MAX_BLOCK = 256


@dataclass
class WalkStats:
    """Cost of one search call (spec §7).

    Attributes
    ----------
    n_items : int
        Corpus size.
    n_scored : ndarray of shape (n_queries,)
        Items submitted for scoring per query, entry batch included, re-encounters counted
        again (NANN's "num scoring"; ``frac_scored`` is its mean over ``n_items``).
    n_evaluated : ndarray of shape (n_queries,)
        Distinct model evaluations per query (score-cache misses).
    n_calls : ndarray of shape (n_queries,)
        Scorer batches that contained this query.
    n_rounds : ndarray of shape (n_queries,)
        Walk rounds (beam: expansion rounds; best-first: greedy steps + heap pops).
    scorer_calls : int
        Physical scorer invocations of the whole call (a call may hold many queries).
    scorer_seconds, total_seconds : float
        Wall time inside the scorer and for the whole call.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import DotScorer, brute_force_topk
    >>> X = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    >>> stats = brute_force_topk(DotScorer(X), X[:4], 1000, k=5).stats
    >>> stats.frac_scored, stats.n_scored.tolist()
    (1.0, [1000, 1000, 1000, 1000])
    >>> sorted(stats.summary())[:3]
    ['frac_evaluated', 'frac_scored', 'n_calls']
    """

    n_items: int
    n_scored: np.ndarray
    n_evaluated: np.ndarray
    n_calls: np.ndarray
    n_rounds: np.ndarray
    scorer_calls: int = 0
    scorer_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def frac_scored(self):
        """Mean share of the corpus scored per query (``n_scored / n_items``)."""
        return float(self.n_scored.mean() / self.n_items) if self.n_scored.size else 0.0

    @property
    def frac_evaluated(self):
        """Mean share of the corpus evaluated per query (cache misses / ``n_items``)."""
        return float(self.n_evaluated.mean() / self.n_items) if self.n_evaluated.size else 0.0

    @property
    def overhead_fraction(self):
        """Share of the call's wall time spent outside the scorer (walk bookkeeping)."""
        if self.total_seconds <= 0:
            return 0.0
        return max(0.0, 1.0 - self.scorer_seconds / self.total_seconds)

    def summary(self):
        """JSON-able means of every statistic."""
        mean = (lambda a: float(a.mean()) if a.size else 0.0)  # noqa: E731
        return {"n_items": self.n_items, "n_queries": int(self.n_scored.size),
                "frac_scored": self.frac_scored, "frac_evaluated": self.frac_evaluated,
                "n_scored": mean(self.n_scored), "n_evaluated": mean(self.n_evaluated),
                "n_calls": mean(self.n_calls), "n_rounds": mean(self.n_rounds),
                "scorer_calls": self.scorer_calls, "scorer_seconds": self.scorer_seconds,
                "total_seconds": self.total_seconds,
                "overhead_fraction": self.overhead_fraction}


@dataclass
class WalkResult:
    """Top-k items per query, best first.

    Attributes
    ----------
    ids : int64 array of shape (n_queries, k)
        Item ids; ``-1`` pads rows when the walk reached fewer than ``k`` items.
    scores : float32 array of shape (n_queries, k)
        Their scores (``-inf`` at padding).
    stats : WalkStats
        What the search cost.
    method : str
        ``"beam"``, ``"hnsw"`` or ``"exact"``.
    params : dict
        The effective search parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import L2Scorer, brute_force_topk
    >>> X = np.arange(10, dtype=np.float32)[:, None]
    >>> res = brute_force_topk(L2Scorer(X), np.array([[3.2]], np.float32), 10, k=3)
    >>> res.method, res.ids
    ('exact', array([[3, 4, 2]]))
    """

    ids: np.ndarray
    scores: np.ndarray
    stats: WalkStats
    method: str
    params: dict = field(default_factory=dict)


def _per_level(value, name, default, top, *, fill):
    """Normalise an int / dict keyed by level / level-0-first sequence to a list for 0..top."""
    if value is None:
        value = default
    if isinstance(value, (Integral, np.integer)) and not isinstance(value, bool):
        table = {lvl: int(value) for lvl in range(top + 1)}
    elif isinstance(value, dict):
        table = {}
        for key, v in value.items():
            check_int(key, f"{name} level", min_value=0)
            table[int(key)] = check_int(v, f"{name}[{key}]", min_value=1)
    elif isinstance(value, (list, tuple)):
        table = {lvl: check_int(v, f"{name}[{lvl}]", min_value=1) for lvl, v in enumerate(value)}
    else:
        raise TypeError(f"{name} must be an int, a dict keyed by level or a sequence "
                        f"(level 0 first), got {type(value).__name__}")
    out = []
    for lvl in range(top + 1):
        if lvl in table:
            out.append(table[lvl])
        elif fill == "lower":
            lower = [key for key in table if key < lvl]
            if not lower:
                raise ValueError(f"{name} has no value for level {lvl}")
            out.append(table[max(lower)])
        else:
            out.append(fill)
        if out[-1] < 1:
            raise ValueError(f"{name}[{lvl}] must be >= 1, got {out[-1]}")
    return out


def _n_queries(queries):
    if queries is None or isinstance(queries, (str, bytes)):
        raise TypeError(f"queries must be an array or a sequence of query states, got "
                        f"{type(queries).__name__}")
    if isinstance(queries, np.ndarray):
        if queries.ndim == 0:
            raise ValueError("queries must be a sequence of queries, got a scalar")
        return queries.shape[0]
    try:
        return len(queries)
    except TypeError:
        raise TypeError(f"queries must support len(), got {type(queries).__name__}") from None


def _check_k(k, n_items):
    k = check_int(k, "k", min_value=1)
    if k > n_items:
        raise ValueError(f"k={k} exceeds the number of items ({n_items})")
    return k


def _stats(nq, n_items):
    return {key: np.zeros(nq, dtype=np.int64)
            for key in ("n_scored", "n_evaluated", "n_calls", "n_rounds")}


def _result(method, params, nq, k, n_items, stats, session, t0, ids=None, scores=None):
    ws = WalkStats(n_items=n_items, **stats)
    if session is not None:
        ws.scorer_calls = session.n_calls
        ws.scorer_seconds = session.seconds
    ws.total_seconds = time.perf_counter() - t0
    if ids is None:
        ids = np.empty((nq, k), dtype=np.int64)
        scores = np.empty((nq, k), dtype=np.float32)
    return WalkResult(ids=ids, scores=scores, stats=ws, method=method, params=params)


@persist.register("ordhash.GraphWalkIndex")
class GraphWalkIndex:
    """Top-k retrieval under an arbitrary matching function by walking a proximity graph.

    Parameters
    ----------
    graph : ProximityGraph
        Graph over the items (NANN: HNSW on the item-tower embeddings, L2).
    ef : int, dict or sequence, default={0: 400, 1: 200, 2: 100}
        Beam width per level (dict keyed by level, or level-0-first sequence).
    T : int, dict or sequence, default={0: 3, 1: 1}
        Rounds per level (missing levels: 1).
    start_level : int, default=2
        The entry batch is every node whose top layer is >= ``start_level`` (>= 1); lowered
        while that set is smaller than ``ef[start_level]`` (down to 1), the graph's entry point
        if it is empty (e.g. a single-layer graph).
    variant : {"paper", "serving"}, default="paper"
        Frontier rule: ``"paper"`` = new items that entered the beam (NANN Algorithm 2);
        ``"serving"`` = the best ``frontier[t]`` new items, accumulated into a result pool
        (NANN's serving graph, spec §3.4).
    visited_scope : {"level", "query"}, default="level"
        Reset the visited set at every level (Algorithm 2) or keep one per query. A per-query
        score cache guarantees no item is evaluated twice in either case.
    frontier : sequence of int, default=(200, 200, 200)
        Layer-0 frontier sizes of ``variant="serving"`` (one per round).
    ef_search : int, default=200
        Result-set size of the best-first (stock HNSW) walk.
    memory_limit : int, default=256 MiB
        Bound on the walk's workspace (two bitsets, ``n / 4`` bytes per query, for a block of
        ``B`` queries walked in lockstep).

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import DotScorer, GraphWalkIndex, ProximityGraph
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((2000, 16)).astype(np.float32)
    >>> index = GraphWalkIndex(ProximityGraph.from_hnsw(X, M=16, random_state=0))
    >>> res = index.search(DotScorer(X), X[:3], k=10, ef={0: 100, 1: 50, 2: 50})
    >>> res.ids.shape, bool((np.diff(res.scores, axis=1) <= 0).all())
    ((3, 10), True)
    """

    def __init__(self, graph, *, ef=None, T=None, start_level=2, variant="paper",
                 visited_scope="level", frontier=(200, 200, 200), ef_search=200,
                 memory_limit=_DEFAULT_MEMORY):
        if not isinstance(graph, ProximityGraph):
            raise TypeError(f"graph must be a ProximityGraph, got {type(graph).__name__}")
        self.graph = graph
        self.ef = DEFAULT_EF if ef is None else ef
        self.T = DEFAULT_T if T is None else T
        self.start_level = check_int(start_level, "start_level", min_value=1)
        self.variant = check_option(variant, "variant", {"paper", "serving"})
        self.visited_scope = check_option(visited_scope, "visited_scope", {"level", "query"})
        self.frontier = tuple(check_int(f, "frontier size", min_value=1) for f in frontier)
        self.ef_search = check_int(ef_search, "ef_search", min_value=1)
        self.memory_limit = check_int(memory_limit, "memory_limit", min_value=1)
        self._ws = None
        self._lock = threading.Lock()

    @property
    def n_items(self):
        """Number of items (nodes of the graph)."""
        return self.graph.n_items

    # -- public API --------------------------------------------------------------------------
    def search(self, scorer, queries, k, *, method="beam", item_vectors=None, query_batch=None,
               **options):
        """Top-``k`` items for every query under ``scorer``.

        Parameters
        ----------
        scorer : Scorer or callable
            The matching function (see :mod:`ordhash.walk.matching`; coerced by
            :func:`~ordhash.walk.as_scorer` with ``item_vectors``).
        queries : 2-D array or sequence
            One row (or opaque state) per query, passed to ``scorer.prepare``.
        k : int
            Results per query (``k <= ef[0]`` for the beam, ``k <= n_items`` always).
        method : {"beam", "hnsw", "exact"}, default="beam"
            NANN beam retrieval, the stock HNSW best-first walk (SL2G), or brute force.
        query_batch : int, optional
            Queries walked in lockstep (their scorer batches are merged when the scorer
            supports pairs); default: as many as ``memory_limit`` allows, at most 256.
        **options
            Per-call overrides: ``ef``, ``T``, ``start_level``, ``variant``,
            ``visited_scope``, ``frontier``, ``max_scored`` (beam); ``ef_search`` (hnsw);
            ``chunk_size`` (exact).

        Returns
        -------
        WalkResult
        """
        check_option(method, "method", {"beam", "hnsw", "exact"})
        allowed = {"beam": {"ef", "T", "start_level", "variant", "visited_scope", "frontier",
                            "max_scored"},
                   "hnsw": {"ef_search"}, "exact": {"chunk_size"}}[method]
        unknown = set(options) - allowed
        if unknown:
            raise TypeError(f"unexpected option(s) for method={method!r}: {sorted(unknown)}; "
                            f"allowed: {sorted(allowed)}")
        t0 = time.perf_counter()
        scorer = as_scorer(scorer, item_vectors)
        n = self.n_items
        s_items = getattr(scorer, "n_items", None)
        if s_items is not None and s_items != n:
            raise ValueError(f"scorer {scorer_name(scorer)!r} knows {s_items} items but the "
                             f"graph has {n}")
        k = _check_k(k, n)
        nq = _n_queries(queries)
        if method == "exact":
            return _exact(scorer, queries, nq, k, n, options.get("chunk_size"), query_batch, t0)
        if method == "beam":
            params, run = self._beam_params(k, options)
        else:
            ef_search = check_int(options.get("ef_search", self.ef_search), "ef_search",
                                  min_value=1)
            params = {"ef_search": ef_search}

            def run(blk):
                return _drivers.bestfirst_block(self.graph, blk, k, ef_search)

        stats = _stats(nq, n)
        if nq == 0:
            return _result(method, params, 0, k, n, stats, None, t0)
        session = ScoringSession(scorer, queries, nq)
        ids = np.empty((nq, k), dtype=np.int64)
        scores = np.empty((nq, k), dtype=np.float32)
        B = self._block_size(nq, query_batch)
        with self._workspace(B) as ws:
            for s in range(0, nq, B):
                q = np.arange(s, min(nq, s + B), dtype=np.int64)
                blk = _drivers.Block(session, q, ws, stats)
                ids[q], scores[q] = run(blk)
        return _result(method, params, nq, k, n, stats, session, t0, ids, scores)

    def beam_search(self, scorer, queries, k, **options):
        """:meth:`search` with ``method="beam"`` (NANN beam retrieval)."""
        return self.search(scorer, queries, k, method="beam", **options)

    def hnsw_search(self, scorer, queries, k, **options):
        """:meth:`search` with ``method="hnsw"`` (stock HNSW walk; SL2G / NANN-HNSW)."""
        return self.search(scorer, queries, k, method="hnsw", **options)

    def exact_search(self, scorer, queries, k, **options):
        """:meth:`search` with ``method="exact"`` (chunked brute force, the reference)."""
        return self.search(scorer, queries, k, method="exact", **options)

    # -- internals ---------------------------------------------------------------------------
    def _beam_params(self, k, options):
        g = self.graph
        variant = check_option(options.get("variant", self.variant), "variant",
                               {"paper", "serving"})
        scope = check_option(options.get("visited_scope", self.visited_scope),
                             "visited_scope", {"level", "query"})
        start = check_int(options.get("start_level", self.start_level), "start_level",
                          min_value=1)
        # A single-layer graph starts at "level 1" too: its entry batch is the entry point.
        start = max(1, min(start, g.max_level))
        top = max(start, 2)
        ef = _per_level(options.get("ef", self.ef), "ef", DEFAULT_EF, top, fill="lower")
        T = _per_level(options.get("T", self.T), "T", DEFAULT_T, top, fill=1)
        frontier = tuple(check_int(f, "frontier size", min_value=1)
                         for f in options.get("frontier", self.frontier))
        if not frontier:
            raise ValueError("frontier must list at least one layer-0 frontier size")
        max_scored = options.get("max_scored")
        if max_scored is not None:
            max_scored = check_int(max_scored, "max_scored", min_value=1)
        if k > ef[0]:
            raise ValueError(f"k={k} exceeds the layer-0 beam width ef[0]={ef[0]}: the final "
                             "top-k is cut from the beam; raise ef[0] or lower k")
        entry = g.entry_set(start)
        while entry.size < ef[start] and start > 1:
            start -= 1
            entry = g.entry_set(start)
        if entry.size == 0:
            entry = np.array([g.entry_point], dtype=np.int64)
        params = {"ef": {lvl: ef[lvl] for lvl in range(start + 1)},
                  "T": {lvl: T[lvl] for lvl in range(start)}, "start_level": start,
                  "variant": variant, "visited_scope": scope, "max_scored": max_scored,
                  "entry_size": int(entry.size)}
        if variant == "serving":
            params["frontier"] = list(frontier)

        def run(blk):
            return _drivers.beam_block(g, blk, k, ef, T, start, entry, variant, scope,
                                       frontier, max_scored)

        return params, run

    def _block_size(self, nq, query_batch):
        if query_batch is not None:
            return min(nq, check_int(query_batch, "query_batch", min_value=1))
        per = _drivers.Workspace.bytes_per_slot(self.n_items)
        return int(max(1, min(nq, _MAX_BLOCK, self.memory_limit // per)))

    def _workspace(self, B):
        index = self

        class _Ctx:
            def __enter__(self):
                self.owned = index._lock.acquire(blocking=False)
                ws = index._ws if self.owned else None
                if ws is None or ws.n_slots < B:
                    ws = _drivers.Workspace(B, index.n_items)
                    if self.owned:
                        index._ws = ws
                return ws

            def __exit__(self, *exc):
                if self.owned:
                    index._lock.release()

        return _Ctx()

    # -- persistence ---------------------------------------------------------------------------
    def _get_state(self):
        gmeta, arrays = self.graph._get_state()
        ef, T = self.ef, self.T
        meta = {"graph": gmeta,
                "ef": {str(k): v for k, v in ef.items()} if isinstance(ef, dict) else ef,
                "T": {str(k): v for k, v in T.items()} if isinstance(T, dict) else T,
                "start_level": self.start_level, "variant": self.variant,
                "visited_scope": self.visited_scope, "frontier": list(self.frontier),
                "ef_search": self.ef_search, "memory_limit": self.memory_limit}
        return meta, arrays

    @classmethod
    def _from_state(cls, meta, arrays):
        graph = ProximityGraph._from_state(meta["graph"], arrays)

        def levels(v):
            return {int(k): x for k, x in v.items()} if isinstance(v, dict) else v

        return cls(graph, ef=levels(meta["ef"]), T=levels(meta["T"]),
                   start_level=meta["start_level"], variant=meta["variant"],
                   visited_scope=meta["visited_scope"], frontier=tuple(meta["frontier"]),
                   ef_search=meta["ef_search"], memory_limit=meta["memory_limit"])

    def save(self, path):
        """Save the index (graph and default parameters) in ordhash's pickle-free format."""
        return persist.save(self, path)

    @classmethod
    def load(cls, path, mmap=False):
        """Load an index saved by :meth:`save`."""
        return persist.load(path, expected=cls, mmap=mmap)


def _exact(scorer, queries, nq, k, n, chunk_size, query_batch, t0):
    chunk_size = 65536 if chunk_size is None else check_int(chunk_size, "chunk_size",
                                                            min_value=1)
    qb = 16 if query_batch is None else check_int(query_batch, "query_batch", min_value=1)
    stats = _stats(nq, n)
    params = {"chunk_size": chunk_size}
    if nq == 0:
        return _result("exact", params, 0, k, n, stats, None, t0)
    session = ScoringSession(scorer, queries, nq)
    ids = np.empty((nq, k), dtype=np.int64)
    scores = np.empty((nq, k), dtype=np.float32)
    for s in range(0, nq, qb):
        q = np.arange(s, min(nq, s + qb), dtype=np.int64)
        ids[q], scores[q] = _drivers.exact_block(session, q, n, k, chunk_size, stats)
    return _result("exact", params, nq, k, n, stats, session, t0, ids, scores)


def brute_force_topk(scorer, queries, n_items, k, *, chunk_size=65536, query_batch=16,
                     item_vectors=None):
    """Exact top-``k`` under ``scorer`` by scoring all ``n_items`` items in chunks.

    Returns a :class:`WalkResult` with the highest scores first (ties: smaller id first within
    a chunk boundary's selection).

    Parameters
    ----------
    scorer : Scorer or callable
        The matching function (coerced by :func:`as_scorer` with ``item_vectors``).
    queries : 2-D array or sequence
        One row (or opaque state) per query.
    n_items : int
        Items ``0 .. n_items - 1`` are scored.
    k : int
        Results per query, ``<= n_items``.
    chunk_size : int, default=65536
        Items scored per scorer call.
    query_batch : int, default=16
        Queries per ``score_block`` call.
    item_vectors : ndarray, optional
        Passed to :func:`as_scorer`.

    Returns
    -------
    WalkResult

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import DotScorer, brute_force_topk
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    >>> brute_force_topk(DotScorer(X), np.array([[1.0, 0.0]]), 3, k=2).ids
    array([[2, 0]])
    """
    t0 = time.perf_counter()
    scorer = as_scorer(scorer, item_vectors)
    n_items = check_int(n_items, "n_items", min_value=1)
    s_items = getattr(scorer, "n_items", None)
    if s_items is not None and s_items != n_items:
        raise ValueError(f"scorer {scorer_name(scorer)!r} knows {s_items} items, not {n_items}")
    k = _check_k(k, n_items)
    return _exact(scorer, queries, _n_queries(queries), k, n_items, chunk_size, query_batch, t0)


def beam_search(graph, scorer, queries, k, **options):
    """NANN beam retrieval on ``graph`` (see :class:`GraphWalkIndex` for the options).

    Parameters
    ----------
    graph : ProximityGraph
    scorer : Scorer or callable
    queries : 2-D array or sequence
    k : int
        Results per query, ``<= ef[0]``.
    **options
        Constructor arguments and search options of :class:`GraphWalkIndex` (``ef``, ``T``,
        ``start_level``, ``variant``, ``visited_scope``, ``frontier``, ``max_scored``,
        ``item_vectors``, ``query_batch``).

    Returns
    -------
    WalkResult

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import DotScorer, ProximityGraph, beam_search
    >>> X = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    >>> graph = ProximityGraph.from_hnsw(X, M=8, random_state=0)
    >>> res = beam_search(graph, DotScorer(X), X[:2], k=5, ef=50)
    >>> res.ids.shape, res.method
    ((2, 5), 'beam')
    """
    return GraphWalkIndex(graph).search(scorer, queries, k, method="beam", **options)


def hnsw_search(graph, scorer, queries, k, *, ef_search=200, **options):
    """Stock HNSW best-first walk with ``scorer`` as similarity (the SL2G baseline).

    Parameters
    ----------
    graph : ProximityGraph
    scorer : Scorer or callable
    queries : 2-D array or sequence
    k : int
        Results per query.
    ef_search : int, default=200
        Result-set size of the walk (``max(ef_search, k)`` is used).
    **options
        ``item_vectors`` and ``query_batch`` of :meth:`GraphWalkIndex.search`.

    Returns
    -------
    WalkResult

    Examples
    --------
    >>> import numpy as np
    >>> from ordhash.walk import L2Scorer, ProximityGraph, hnsw_search
    >>> X = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    >>> graph = ProximityGraph.from_hnsw(X, M=8, random_state=0)
    >>> res = hnsw_search(graph, L2Scorer(X), X[:2], k=5, ef_search=50)
    >>> res.ids[:, 0]    # each query is an item: its own nearest neighbour
    array([0, 1])
    """
    return GraphWalkIndex(graph).search(scorer, queries, k, method="hnsw",
                                        ef_search=ef_search, **options)
