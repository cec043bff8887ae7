"""Retrieval under arbitrary matching functions by walking a proximity graph (NANN).

Pieces:

* matching functions (:mod:`~ordhash.walk.matching`, :mod:`~ordhash.walk.scorers`): the
  :class:`Scorer` protocol, adapters for Python callables, numba functions and scikit-learn
  estimators, built-in inner product / negative L2 / MLP scorers;
* :class:`ProximityGraph`: HNSW (faiss), exact k-NN or binary-code graphs as per-level CSR;
* :class:`GraphWalkIndex`: NANN beam retrieval, the stock HNSW best-first walk and brute force;
* :class:`NeuralMatcher`: a numpy MLP matching model with NANN's adversarial flatness loss;
* metrics: :func:`coverage` (recall against exact search under the same scorer),
  :func:`recall_at`, :func:`recall_delta`.

See ``docs/walk.md`` and ``spec-graph-walk.md``.
"""

from .graph import ProximityGraph
from .matching import (CallableScorer, EstimatorScorer, NumbaScorer, Scorer, ScorerError,
                       as_scorer)
from .metrics import coverage, recall_at, recall_delta, recall_vs_exact
from .neural import NeuralMatcher
from .scorers import DotScorer, L2Scorer, MaskedScorer, MLPScorer
from .search import (DEFAULT_EF, DEFAULT_T, GraphWalkIndex, WalkResult, WalkStats, beam_search,
                     brute_force_topk, hnsw_search)

__all__ = [
    "Scorer", "ScorerError", "CallableScorer", "NumbaScorer", "EstimatorScorer", "as_scorer",
    "DotScorer", "L2Scorer", "MLPScorer", "MaskedScorer",
    "ProximityGraph", "GraphWalkIndex", "WalkResult", "WalkStats", "beam_search",
    "hnsw_search", "brute_force_topk", "DEFAULT_EF", "DEFAULT_T",
    "NeuralMatcher",
    "coverage", "recall_vs_exact", "recall_at", "recall_delta",
]
