"""Predicted efficiency: the budget planner's optimal split across tasks (from each task's
predicted learning curve, `labelbudget.efficiency.planner`), then a random draw within each task."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from labelbudget.data.records import existing_path
from labelbudget.efficiency.planner import plan_budget
from labelbudget.errors import DataError
from labelbudget.io import atomic_write_text
from labelbudget.selection.base import Candidates, Selection, Selector, register


def write_predicted_auc(path: Path, predicted: Mapping[str, float], n_max: int) -> None:
    atomic_write_text(
        path,
        json.dumps({"n_max": n_max, "tasks": dict(sorted(predicted.items()))}, indent=2) + "\n",
    )


def read_predicted_auc(path: str | Path) -> tuple[dict[str, float], int]:
    """Task -> predicted AUC in (0, 1), and the budget axis's n_max they refer to, as
    `estimate.py mode=coslow` writes them: {"n_max": 5000, "tasks": {"<task>": 0.42, ...}}."""
    file = existing_path(
        path, "predicted AUC file", "write it with: python estimate.py mode=coslow fit=<fit.json>"
    )
    try:
        content = json.loads(file.read_text())
    except ValueError as error:
        raise DataError(str(file), f"is not valid JSON: {error}") from error
    tasks, n_max = (
        (content.get("tasks"), content.get("n_max")) if isinstance(content, dict) else (None, None)
    )
    if not isinstance(tasks, dict) or not tasks:
        raise DataError(
            str(file),
            'must be a JSON object {"n_max": ..., "tasks": {task: predicted AUC}}',
            field="tasks",
        )
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 2:
        raise DataError(
            str(file), f"must be an integer budget of at least 2, got {n_max!r}", field="n_max"
        )
    for task, auc in tasks.items():
        if isinstance(auc, bool) or not isinstance(auc, (int, float)) or not 0 < auc < 1:
            raise DataError(str(file), f"must be a number in (0, 1), got {auc!r}", field=task)
    return {task: float(auc) for task, auc in tasks.items()}, n_max


@register
class PredictedEfficiencySelector(Selector):
    name = "predicted_efficiency"
    needs_scores = False

    def __init__(self, predictions: str):
        self.path = predictions
        self.predicted, self.n_max = read_predicted_auc(predictions)

    def check_budget(self, task_sizes: Mapping[str, int], budget: int) -> None:
        super().check_budget(task_sizes, budget)
        missing = sorted(set(task_sizes) - set(self.predicted))
        if missing:
            raise DataError(self.path, f"has no predicted AUC for the pool's task(s) {missing}")

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        rows = candidates.task_rows()
        counts = plan_budget(
            {t: self.predicted[t] for t in rows},
            {t: len(r) for t, r in rows.items()},
            budget,
            self.n_max,
        )
        picks = [
            candidates.ids[i]
            for task, task_rows in rows.items()
            for i in rng.permutation(task_rows)[: counts[task]]
        ]
        return Selection(ids=picks, allocation={t: float(n) for t, n in counts.items()})
