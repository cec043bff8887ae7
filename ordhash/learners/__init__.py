"""Hash-function learners: scikit-learn estimators that map vectors to packed binary codes."""

from .base import BaseHasher

__all__ = ["BaseHasher"]
