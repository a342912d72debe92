"""ActiveIT: whole tasks, the most uncertain first, until the budget is spent.

Two task rankings, named apart: `activeit` (the task-diversity paper's version) by mean
confidence, lowest first; `activeit_prompt` (Kung et al. 2023, the original) by prompt
sensitivity, highest first, computed beforehand by labelbudget.scoring.prompt_sensitivity.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from labelbudget.selection.base import (
    PROMPT_SENSITIVITY,
    SCORES,
    Candidates,
    Selection,
    Selector,
    register,
    shuffled_task_rows,
)
from labelbudget.selection.uncertainty import checked_confidence, most_uncertain_first

if TYPE_CHECKING:
    from labelbudget.scoring.prompt_sensitivity import SensitivitySettings


class WholeTaskSelector(Selector):
    """Takes tasks whole in order of uncertainty (ties by seed); the task that does not fit is
    sampled uniformly at random. Ids come task by task in that order."""

    @abstractmethod
    def task_uncertainty(
        self, candidates: Candidates, tasks: list[str], groups: list[np.ndarray]
    ) -> np.ndarray:
        """One value per task (tasks as given), higher = more uncertain."""

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """Every row of each task, most uncertain task first, cut at the budget (the cut
        task's rows in seeded order); the allocation counts what each task got."""
        tasks, groups = shuffled_task_rows(candidates, rng)
        order = most_uncertain_first(self.task_uncertainty(candidates, tasks, groups), rng)
        rows = np.concatenate([groups[t] for t in order])[:budget]
        task_of_row = np.repeat(order, [len(groups[t]) for t in order])[:budget]
        taken = np.bincount(task_of_row, minlength=len(tasks))
        return Selection(
            ids=[candidates.ids[i] for i in rows],
            allocation={t: float(n) for t, n in zip(tasks, taken)},
            objective={"tasks_covered": float((taken > 0).sum())},
        )


@register
class ActiveITSelector(WholeTaskSelector):
    """The paper's ActiveIT: tasks by mean confidence conf_t, lowest first. `confidence`:
    'sequence' (the paper's product) or 'token_geomean' (free of the length bias)."""

    name = "activeit"

    def __init__(self, confidence: str = "sequence"):
        self.confidence = checked_confidence(confidence)

    def task_uncertainty(
        self, candidates: Candidates, tasks: list[str], groups: list[np.ndarray]
    ) -> np.ndarray:
        """Minus each task's mean confidence, in log space: the least confident first."""
        scores = candidates.signal(SCORES, self.name)
        return -scores.task_log_confidence(dict(zip(tasks, groups)), self.confidence)


@register
class ActiveITPromptSelector(WholeTaskSelector):
    """The original ActiveIT (Kung et al. 2023): tasks by prompt sensitivity, highest first.

    Holds the settings of the sensitivity pass the run makes before `select` (the selector
    itself reads the result from its `PROMPT_SENSITIVITY` signal and never calls the model).
    """

    name = "activeit_prompt"

    def __init__(self, sensitivity: SensitivitySettings | None = None):
        if sensitivity is None:
            # torch: only when needed
            from labelbudget.scoring.prompt_sensitivity import (
                SensitivitySettings,
            )

            sensitivity = SensitivitySettings()
        self.sensitivity = sensitivity

    def signals(self) -> dict[str, Any]:
        """Prompt sensitivity, with this selector's settings; no scoring pass."""
        return {PROMPT_SENSITIVITY: self.sensitivity}

    def task_uncertainty(
        self, candidates: Candidates, tasks: list[str], groups: list[np.ndarray]
    ) -> np.ndarray:
        """Each task's prompt sensitivity."""
        sensitivity = candidates.signal(PROMPT_SENSITIVITY, self.name)
        return np.array([sensitivity[t] for t in tasks])
