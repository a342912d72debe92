"""Predicted efficiency: the budget planner's optimal split across tasks (from each task's
predicted learning curve, `labelbudget.efficiency.planner`), then a random draw within each task.

The predicted curves come from a file (`predictions`, CoS-Low measured beforehand, its labels
outside the budget), or from a probe the selector pays for (`probe`): k low-confidence prompts
per task are labelled first, counted in the budget and trained on; CoS-Low on them, through the
model's fit, predicts each task's curve, and the planner splits what remains with every task
starting from the k labels it holds. `probe_targets=self` takes the model's own greedy answers
in place of labels: no label is spent, and the plan starts from nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from labelbudget.efficiency.coslow import low_confidence_sample
from labelbudget.efficiency.planner import plan_budget
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.errors import ConfigError
from labelbudget.selection.base import (
    FIRST_ROUND,
    PREDICTED_AUC,
    PROBE_AUC,
    SCORES,
    Candidates,
    FirstRound,
    Selection,
    Selector,
    register,
)

PROBE_TARGETS = ("labels", "self")
# the probe's gradients: estimate.py's CoS-Low settings (conf/mode/coslow.yaml)
PROBE_COSLOW = {
    "rank": 64,
    "alpha": 32,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "aggregate": "median",
    "batch_size": 8,
    "max_length": 512,
}


@register
class PredictedEfficiencySelector(Selector):
    """`predictions`: the file of predicted AUCs (`python estimate.py mode=coslow`), read and
    checked against the pool before any model loads. Or `probe`: labels per task spent on the
    selector's own CoS-Low probe, drawn from each task's lowest `probe_fraction` by confidence;
    `coslow` holds the gradient settings and `fit` the AUC ~ CoS-Low line (None: the one shipped
    for the model)."""

    name = "predicted_efficiency"

    def __init__(
        self,
        predictions: str | None = None,
        probe: int | None = None,
        probe_targets: str = "labels",
        probe_fraction: float = 0.1,
        coslow: Mapping[str, Any] | None = None,
        fit: str | None = None,
    ):
        if (predictions is None) == (probe is None):
            raise ConfigError(
                "predicted_efficiency needs its curves from one place: predictions=<predicted_auc.json> "
                f"or probe=<labels per task>, got predictions={predictions!r} and probe={probe!r}"
            )
        if probe is not None and (
            isinstance(probe, bool) or not isinstance(probe, int) or probe < 2
        ):
            raise ConfigError(
                f"probe must be an integer >= 2 (CoS-Low compares pairs), got {probe!r}"
            )
        if (
            isinstance(probe_fraction, bool)
            or not isinstance(probe_fraction, (int, float))
            or not 0 < probe_fraction <= 1
        ):
            raise ConfigError(f"probe_fraction must be a share in (0, 1], got {probe_fraction!r}")
        if probe_targets not in PROBE_TARGETS:
            raise ConfigError(
                f"probe_targets must be one of {PROBE_TARGETS}, got {probe_targets!r}"
            )
        self.predictions, self.probe = predictions, probe
        self.probe_targets, self.probe_fraction = probe_targets, probe_fraction
        self.coslow, self.fit = dict(PROBE_COSLOW if coslow is None else coslow), fit

    def signals(self) -> dict[str, Any]:
        """The predictions file; or, with a probe, the scores whose confidences choose
        it."""
        if self.probe is None:
            return {PREDICTED_AUC: self.predictions}
        return {SCORES: None}  # the probe's confidences, and the model's own answers for `self`

    def learns(self) -> dict[str, Any]:
        """With a probe: its CoS-Low AUCs, with their targets, gradient settings and
        fit; else nothing."""
        if self.probe is None:
            return {}
        return {PROBE_AUC: {"targets": self.probe_targets, "coslow": self.coslow, "fit": self.fit}}

    def probe_sizes(self, task_sizes: Mapping[str, int]) -> dict[str, int]:
        """Probe labels per task: `probe`, or the whole task where it holds fewer."""
        return {task: min(self.probe, size) for task, size in task_sizes.items()}

    def check_budget(self, task_sizes: Mapping[str, int], budget: int) -> None:
        """With a probe, every task must hold 2 prompts, and a probe of labels must fit in
        the budget."""
        super().check_budget(task_sizes, budget)
        if self.probe is None:
            return
        tiny = {task: size for task, size in task_sizes.items() if size < 2}
        if tiny:
            raise ConfigError(
                f"the probe measures CoS-Low on at least 2 prompts per task; these tasks hold fewer: {tiny}"
            )
        needed = sum(self.probe_sizes(task_sizes).values())
        if self.probe_targets == "labels" and budget < needed:
            raise ConfigError(
                f"budget {budget} is below the probe's {needed} labels (probe={self.probe} per "
                f"task over {len(task_sizes)} tasks, fewer where a task holds fewer): the "
                f"minimum budget is {needed}"
            )

    def first_round(
        self, candidates: Candidates, budget: int, rng: np.random.Generator
    ) -> FirstRound | None:
        """The probe: in each task, `probe` prompts drawn from its least confident
        `probe_fraction` (CoS-Low's sample), tasks by name."""
        if self.probe is None:
            return None
        confidence = candidates.signal(SCORES, self.name).mean_prob
        rows = candidates.task_rows()
        sizes = self.probe_sizes({task: len(r) for task, r in rows.items()})
        picks = [
            candidates.ids[task_rows[i]]
            for task, task_rows in rows.items()
            for i in low_confidence_sample(
                confidence[task_rows], self.probe_fraction, sizes[task], rng
            )
        ]
        return FirstRound(ids=picks, counted=self.probe_targets == "labels")

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """The planner's split on the predicted curves; a probe of labels comes first and counts
        in the budget."""
        if self.probe is None:
            predicted = candidates.signal(PREDICTED_AUC, self.name)
            return planned_selection(candidates, budget, rng, predicted, [])
        first = candidates.signal(FIRST_ROUND, self.name)
        selection = planned_selection(
            candidates,
            budget,
            rng,
            candidates.signal(PROBE_AUC, self.name),
            list(first.ids) if first.counted else [],
        )
        return replace(selection, objective={"probe_labels": float(len(first.ids) * first.counted)})


def planned_selection(
    candidates: Candidates,
    budget: int,
    rng: np.random.Generator,
    predicted: PredictedAUC,
    held: list[str],
) -> Selection:
    """The planner's split of `budget` on the predicted curves, each task starting from the
    labels `held` gives it; `held` first, then a random draw of each task's other prompts."""
    rows = candidates.task_rows()
    predicted.check_covers(rows)
    position = {id_: i for i, id_ in enumerate(candidates.ids)}
    start = Counter(candidates.tasks[position[i]] for i in held)
    counts = plan_budget(
        {t: predicted.tasks[t] for t in rows},
        {t: len(r) for t, r in rows.items()},
        budget,
        predicted.n_max,
        start,
    )
    taken = set(held)
    rest = [
        candidates.ids[i]
        for task, task_rows in rows.items()
        for i in rng.permutation([r for r in task_rows if candidates.ids[r] not in taken])[
            : counts[task] - start[task]
        ]
    ]
    return Selection(ids=held + rest, allocation={t: float(n) for t, n in counts.items()})
