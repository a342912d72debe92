"""Selectors by family; importing this package registers them all by name."""

from labelbudget.selection import activeit, random_sampling, task_diversity, uncertainty  # noqa: F401
from labelbudget.selection.base import SELECTORS, Candidates, Selection, Selector, make_selector

__all__ = ["SELECTORS", "Candidates", "Selection", "Selector", "make_selector"]
