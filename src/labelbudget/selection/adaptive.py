"""Adaptive: a two-round allocator that learns from its own first labels.

Round 1 spends `first_round` of the budget as Task Diversity (even spreading). The run then
fine-tunes on round 1's labels less a held-out part of each task, grades that part against the
base model's zero-shot answers, and fits each task's curve in the planner's family, y = x(n)^p,
through (0, 0) and (n, y): n the task's labels trained on, y its held-out gain normalised by
what was left to gain (`ROUND_GAINS`). Round 2 gives the rest of the budget to the largest
predicted gains with predicted_efficiency's planner, every task starting from the labels it
holds. Everything is trained on at the end; no label outside the budget is used.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from labelbudget.errors import ConfigError
from labelbudget.selection.base import (
    FIRST_ROUND,
    ROUND_GAINS,
    Candidates,
    FirstRound,
    Selection,
    Selector,
    register,
)
from labelbudget.selection.predicted_efficiency import planned_selection
from labelbudget.selection.task_diversity import TaskDiversitySelector

FITTED = 3  # round-1 labels a task needs for a fitted curve: two to train on, one to grade


@register
class AdaptiveSelector(Selector):
    """Two rounds: an even spread, then the planner on curves fitted to what it gained.

    `first_round`: the share of the budget spent evenly before anything is learned. `holdout`:
    the share of each task's round-1 labels graded, not trained on, in the extra fine-tune (at
    least one where a task has two). `n_max`: the budget axis of the fitted curves (x(n) =
    log2 n / log2 n_max). `max_new_tokens`: the greedy answers graded.
    """

    name = "adaptive"

    def __init__(
        self,
        first_round: float = 0.5,
        holdout: float = 0.34,
        n_max: int = 5000,
        max_new_tokens: int = 32,
    ):
        if not 0 < first_round < 1:
            raise ConfigError(
                f"first_round must be a share of the budget in (0, 1), got {first_round!r}"
            )
        if not 0 < holdout < 1:
            raise ConfigError(f"holdout must be a share in (0, 1), got {holdout!r}")
        if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 2:
            raise ConfigError(f"n_max must be an integer budget of at least 2, got {n_max!r}")
        self.first_round_share, self.holdout = first_round, holdout
        self.n_max, self.max_new_tokens = n_max, max_new_tokens

    def signals(self) -> dict[str, Any]:
        """None: round 1 is an even spread and needs no scoring pass."""
        return {}  # round 1 is an even spread: no scoring pass

    def learns(self) -> dict[str, Any]:
        """The round gains, with the holdout, budget axis and answer length of the fine-tune
        that measures them."""
        return {
            ROUND_GAINS: {
                "holdout": self.holdout,
                "n_max": self.n_max,
                "max_new_tokens": self.max_new_tokens,
            }
        }

    def round_one_budget(self, budget: int) -> int:
        """`first_round` of the budget, rounded half up, leaving round 2 at least one label."""
        return max(1, min(budget - 1, math.floor(self.first_round_share * budget + 0.5)))

    def check_budget(self, task_sizes: Mapping[str, int], budget: int) -> None:
        """Round 1 must give some task the FITTED labels a curve needs (two trained on, one
        graded); the refusal says the least budget that does."""
        super().check_budget(task_sizes, budget)
        if budget < 2:
            raise ConfigError(
                f"adaptive spends its budget in two rounds: it needs at least 2, got {budget}"
            )
        if max(task_sizes.values()) < FITTED:
            raise ConfigError(
                f"adaptive fits a task's curve from {FITTED} of its round-1 labels, and no task "
                f"of this pool holds {FITTED} prompts"
            )
        # Task Diversity's round robin gives every task min(size, 2) before any task a third
        needed = sum(min(n, FITTED - 1) for n in task_sizes.values()) + 1
        if self.round_one_budget(budget) < needed:
            least = next(
                b
                for b in itertools.count(max(2, int(needed / self.first_round_share) - 2))
                if self.round_one_budget(b) >= needed
            )
            raise ConfigError(
                f"adaptive's round 1 ({self.first_round_share:g} of {budget} = "
                f"{self.round_one_budget(budget)} labels, spread evenly) gives no task the "
                f"{FITTED} labels a fitted curve needs (two trained on, one graded): raise the "
                f"budget to at least {least}, or selector.first_round"
            )

    def first_round(
        self, candidates: Candidates, budget: int, rng: np.random.Generator
    ) -> FirstRound:
        """Task Diversity's even spread of round 1's share of the budget."""
        spread = TaskDiversitySelector().select(candidates, self.round_one_budget(budget), rng)
        return FirstRound(ids=spread.ids, counted=True)

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """Round 1's labels first, then the planner's split of the rest on the curves fitted to
        them."""
        first = candidates.signal(FIRST_ROUND, self.name)
        selection = planned_selection(
            candidates, budget, rng, candidates.signal(ROUND_GAINS, self.name), list(first.ids)
        )
        return Selection(
            ids=selection.ids,
            allocation=selection.allocation,
            objective={"round1_labels": float(len(first.ids))},
        )
