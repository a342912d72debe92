"""Selectors by family; importing this package registers them all by name."""

from labelbudget.selection import (  # noqa: F401
    activeit,
    dpp,
    facility_location,
    kcenter,
    predicted_efficiency,
    random_sampling,
    task_diversity,
    uncertainty,
)
from labelbudget.selection.base import SELECTORS, Candidates, Selection, Selector, make_selector

__all__ = ["SELECTORS", "Candidates", "Selection", "Selector", "make_selector"]
