"""Hash-function learners: scikit-learn estimators that map vectors to packed binary codes.

``LEARNERS`` maps each learner's name to its class, in the order the benchmark reports them.
"""

from .base import BaseHasher
from .classic import AGH, ITQ, LSH, PCAH, SH, SpH
from .och import OCH
from .oeh import OEH

LEARNERS = {
    "LSH": LSH,
    "PCAH": PCAH,
    "ITQ": ITQ,
    "SH": SH,
    "AGH": AGH,
    "SpH": SpH,
    "OEH": OEH,
    "OCH": OCH,
}

__all__ = ["BaseHasher", "LEARNERS", *LEARNERS]
