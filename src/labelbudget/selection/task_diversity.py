"""Task Diversity and Weighted Task Diversity (the paper's method): allocate, then round robin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from labelbudget.errors import ConfigError
from labelbudget.selection.allocation import (
    base_allocation,
    round_robin,
    water_filling,
    weighted_allocation,
)
from labelbudget.selection.base import (
    SCORES,
    Candidates,
    Selection,
    Selector,
    register,
    shuffled_task_rows,
)
from labelbudget.selection.uncertainty import checked_confidence


def _spend(
    candidates: Candidates,
    tasks: list[str],
    groups: list[np.ndarray],
    allocation: np.ndarray,
    budget: int,
) -> Selection:
    rows = round_robin(groups, allocation, budget)
    return Selection(
        ids=[candidates.ids[i] for i in rows],
        allocation={t: float(a) for t, a in zip(tasks, allocation)},
    )


@register
class TaskDiversitySelector(Selector):
    """Equal shares across tasks (min-max water-filling); small tasks are taken whole."""

    name = "task_diversity"

    def signals(self) -> dict[str, Any]:
        """None: an even spread needs no scoring pass."""
        return {}

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """Water-filled equal shares, spent round robin over each task's rows in seeded
        order."""
        tasks, groups = shuffled_task_rows(candidates, rng)
        allocation = water_filling(np.array([len(g) for g in groups]), budget)
        return _spend(candidates, tasks, groups, allocation, budget)


@register
class WeightedTaskDiversitySelector(Selector):
    """Weighted Task Diversity: a base per task, the rest in proportion to 1 / conf_t.

    `confidence`: 'sequence' is the paper's product of token probabilities; 'token_geomean'
    (per-token geometric mean) removes its length bias. `base_per_task`: the paper's 5.
    """

    name = "weighted_task"

    def __init__(self, base_per_task: int = 5, confidence: str = "sequence"):
        if base_per_task < 0:
            raise ConfigError(f"base_per_task must be >= 0, got {base_per_task}")
        self.base_per_task = base_per_task
        self.confidence = checked_confidence(confidence)

    def check_budget(self, task_sizes: Mapping[str, int], budget: int) -> None:
        """A budget below the base cannot cover every task, so it is refused rather than
        silently dropping tasks: lower `base_per_task` or raise the budget. Nor can one below
        the number of tasks, even with a base of 0: ceil(C / conf_t) gives every task at least
        one label, so which tasks go without would be decided by name, not confidence."""
        super().check_budget(task_sizes, budget)
        floor = int(base_allocation(np.array(list(task_sizes.values())), self.base_per_task).sum())
        if budget < floor:
            raise ConfigError(
                f"budget {budget} is smaller than the base allocation {floor} "
                f"(min({self.base_per_task}, task size) over {len(task_sizes)} tasks); "
                f"raise the budget to at least {floor} or lower selector.base_per_task"
            )
        tasks = sum(size > 0 for size in task_sizes.values())
        if budget < tasks:
            raise ConfigError(
                f"budget {budget} is smaller than the number of tasks {tasks}: weighted_task gives "
                "every task at least one label (ceil(C / conf_t) >= 1); raise the budget to at "
                f"least {tasks}, or choose fewer tasks"
            )

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """A base per task plus shares in proportion to 1 / conf_t, spent round robin over
        each task's rows in seeded order."""
        scores = candidates.signal(SCORES, self.name)
        tasks, groups = shuffled_task_rows(candidates, rng)
        log_conf = scores.task_log_confidence(dict(zip(tasks, groups)), self.confidence)
        allocation = weighted_allocation(
            np.array([len(g) for g in groups]), log_conf, budget, self.base_per_task
        )
        return _spend(candidates, tasks, groups, allocation, budget)
