"""Predicted efficiency: the budget planner's split across tasks (from each task's predicted
learning curve, `labelbudget.efficiency.planner`), then a random draw within each task."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from labelbudget.data.records import existing_path
from labelbudget.efficiency.planner import plan_budget
from labelbudget.errors import DataError
from labelbudget.selection.base import Candidates, Selection, Selector, register


def read_predicted_auc(path: str | Path) -> dict[str, float]:
    """A JSON object task -> predicted AUC in (0, 1), as `estimate.py mode=coslow` writes it."""
    file = existing_path(path, "predicted AUC file", "write it with: python estimate.py mode=coslow fit=<fit.json>")
    try:
        content = json.loads(file.read_text())
    except ValueError as error:
        raise DataError(str(file), f"is not valid JSON: {error}") from error
    if not isinstance(content, dict) or not content:
        raise DataError(str(file), "must be a JSON object of task -> predicted AUC")
    for task, auc in content.items():
        if isinstance(auc, bool) or not isinstance(auc, (int, float)) or not 0 < auc < 1:
            raise DataError(str(file), f"must be a number in (0, 1), got {auc!r}", field=task)
    return {task: float(auc) for task, auc in content.items()}


@register
class PredictedEfficiencySelector(Selector):
    name = "predicted_efficiency"
    needs_scores = False

    def __init__(self, predictions: str, n_max: int = 5000, step: int = 10):
        self.path = predictions
        self.predicted = read_predicted_auc(predictions)
        self.n_max, self.step = n_max, step

    def check_budget(self, task_sizes: Mapping[str, int], budget: int) -> None:
        super().check_budget(task_sizes, budget)
        missing = sorted(set(task_sizes) - set(self.predicted))
        if missing:
            raise DataError(self.path, f"has no predicted AUC for the pool's task(s) {missing}")

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        rows = candidates.task_rows()
        counts = plan_budget({t: self.predicted[t] for t in rows}, {t: len(r) for t, r in rows.items()}, budget, self.n_max, self.step)
        picks = [candidates.ids[i] for task, task_rows in rows.items() for i in rng.permutation(task_rows)[: counts[task]]]
        return Selection(ids=picks, allocation={t: float(n) for t, n in counts.items()})
