"""Hash-function learners: scikit-learn estimators that map vectors to packed binary codes.

``LEARNERS`` maps each learner's name to its class, in the order the benchmark reports them.
"""

from .base import BaseHasher
from .classic import AGH, ITQ, LSH, PCAH, SH, SpH

LEARNERS = {
    "LSH": LSH,
    "PCAH": PCAH,
    "ITQ": ITQ,
    "SH": SH,
    "AGH": AGH,
    "SpH": SpH,
}

__all__ = ["BaseHasher", "LEARNERS", *LEARNERS]
