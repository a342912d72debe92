"""Predicted efficiency: the budget planner's optimal split across tasks (from each task's
predicted learning curve, `labelbudget.efficiency.planner`), then a random draw within each task."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelbudget.efficiency.planner import plan_budget
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.selection.base import PREDICTED_AUC, Candidates, Selection, Selector, register


@register
class PredictedEfficiencySelector(Selector):
    """`predictions`: the file of predicted AUCs (`python estimate.py mode=coslow`); the run
    reads and checks it against the pool before any model loads."""

    name = "predicted_efficiency"

    def __init__(self, predictions: str):
        self.predictions = predictions

    def signals(self) -> dict[str, Any]:
        return {PREDICTED_AUC: self.predictions}

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        predicted: PredictedAUC = candidates.signal(PREDICTED_AUC, self.name)
        rows = candidates.task_rows()
        predicted.check_covers(rows)
        counts = plan_budget(
            {t: predicted.tasks[t] for t in rows},
            {t: len(r) for t, r in rows.items()},
            budget,
            predicted.n_max,
        )
        picks = [
            candidates.ids[i]
            for task, task_rows in rows.items()
            for i in rng.permutation(task_rows)[: counts[task]]
        ]
        return Selection(ids=picks, allocation={t: float(n) for t, n in counts.items()})
