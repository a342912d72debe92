"""The one selector interface, in the spirit of scikit-learn and apricot.

A selector is built from config, holds only its settings, and maps (candidates, budget, rng) to
an ordered list of pool ids. It is pure: no model calls, no I/O, the same inputs and seed give
the same output. What it needs from a model or a file it declares by name in `signals()`; the
run computes each signal beforehand (one provider per signal, `labelbudget.stages.signals`,
cached) and hands it over in `Candidates.signals`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from labelbudget.errors import ConfigError

# The signals a selector can ask for, and what `Candidates.signals` then holds under the name:
SCORES = "scores"  # labelbudget.scoring.scores.Scores: embeddings and confidences, in pool order
PROMPT_SENSITIVITY = "prompt_sensitivity"  # task -> sensitivity (Kung et al. 2023)
PREDICTED_AUC = "predicted_auc"  # labelbudget.efficiency.predicted_auc.PredictedAUC: from CoS-Low
# learned from a two-round selector's own first round (`FirstRound.learn`), once it is labelled:
PROBE_AUC = "probe_auc"  # PredictedAUC: CoS-Low on the probe's labels and the model's shipped fit
ROUND_GAINS = "round_gains"  # PredictedAUC: curves fitted to what a fine-tune on round 1 gained
TASK_KEYED = (PROMPT_SENSITIVITY,)  # one value for each of the pool's tasks, no other


@dataclass(frozen=True)
class Candidates:
    """The pool as selectors see it.

    Attributes:
        ids: pool ids, in pool order.
        tasks: each id's task label.
        signals: what the selector declared in `signals()`, by name (`SCORES`, ...).
    """

    ids: list[str]
    tasks: list[str]
    signals: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse signals that do not line up with the ids or the tasks."""
        if len(self.ids) != len(self.tasks):
            raise ValueError("ids and tasks differ in length")
        scores = self.signals.get(SCORES)
        if scores is not None and scores.ids != self.ids:
            raise ValueError("scores are not in the pool's order")
        for name in TASK_KEYED:
            if name in self.signals and set(self.signals[name]) != set(self.tasks):
                raise ValueError(f"{name} does not cover exactly the pool's tasks")

    def task_rows(self) -> dict[str, np.ndarray]:
        """Row indices of each task, tasks sorted by name, rows in pool order."""
        tasks = np.asarray(self.tasks)
        return {t: np.flatnonzero(tasks == t) for t in sorted(set(self.tasks))}

    def signal(self, name: str, who: str) -> Any:
        """The signal `name`, or a ConfigError naming the selector `who` that needs it."""
        if self.signals.get(name) is None:
            raise ConfigError(f"selector '{who}' needs the signal '{name}', but it was not given")
        return self.signals[name]


@dataclass(frozen=True)
class Selection:
    """What a selector returns: pool ids in pick order (rank 1 first), and what explains them."""

    ids: list[str]
    allocation: dict[str, float] | None = None  # per task, for selectors that allocate budgets
    objective: dict[str, float] = field(default_factory=dict)  # e.g. coverage radius, log det


@dataclass(frozen=True)
class FirstRound:
    """What a two-round selector has labelled before it chooses the rest.

    Attributes:
        ids: the first round's pool ids, in pick order.
        counted: whether they are labels spent from the budget and part of the selection; False
            where the model's own greedy answers stand in for labels (no label is spent).
    """

    ids: list[str]
    counted: bool


FIRST_ROUND = (
    "first_round"  # in Candidates.signals of a two-round selector's `select`: its FirstRound
)


class Selector(ABC):
    """Base of all selectors: settings in, pool ids out, no model calls and no I/O.

    Subclasses set `name` (the registry key and the config name), implement `select`, and may
    refine `signals` and `check_budget`. Register them with `@register`.
    """

    name: ClassVar[str]

    def signals(self) -> dict[str, Any]:
        """The signals `select` reads from `Candidates`, each with its provider's settings.

        Returns:
            Signal name (`SCORES`, `PROMPT_SENSITIVITY`, `PREDICTED_AUC`) -> the settings the
            provider needs, or None where the run's own apply (the `scoring` node for
            `SCORES`). The default: the scoring pass's scores. A selector that reads none
            returns {}.
        """
        return {SCORES: None}

    def check_budget(self, task_sizes: Mapping[str, int], budget: int) -> None:
        """Reject a budget this selector cannot spend; runs before any model is loaded.

        Args:
            task_sizes: prompts per task in the pool.
            budget: the number of prompts to select.

        Raises:
            ConfigError: the budget cannot be spent, saying why.
        """
        pool_size = sum(task_sizes.values())
        if not 0 < budget <= pool_size:
            raise ConfigError(
                f"budget must be between 1 and the pool size {pool_size}, got {budget}"
            )

    def learns(self) -> dict[str, Any]:
        """The signals learned from the labelled `first_round`, with their providers' settings.

        Keys such as `PROBE_AUC`; {} (the default) for a selector of one round.
        """
        return {}

    def first_round(
        self, candidates: Candidates, budget: int, rng: np.random.Generator
    ) -> FirstRound | None:
        """The prompts to label before `select` runs, for a selector that `learns` from them.

        A probe, a first allocation round; None, the default, for a selector of one round.

        The run labels them (the pool's responses in simulation, else the annotations file, else
        it writes them out to be annotated and stops), computes what `learns` names from them,
        and calls `select` with the round under `FIRST_ROUND` in `Candidates.signals` and the
        same `rng`, so that both rounds follow from one seed.
        """
        return None

    @abstractmethod
    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """Choose exactly `budget` distinct ids.

        Args:
            candidates: the pool, with the scores the selector needs.
            budget: how many ids to choose (already checked by `check_budget`).
            rng: the only source of randomness: the same seed gives the same selection.

        Returns:
            The ids in pick order, with what explains them (allocation, objective).
        """


SELECTORS: dict[str, type[Selector]] = {}
# a named variant: a registered selector with settings of its own (the config of the same name)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {}


def register(cls: type[Selector]) -> type[Selector]:
    """Class decorator: make a selector available by its `name`."""
    SELECTORS[cls.name] = cls
    return cls


def register_variant(name: str, selector: str, **settings: Any) -> None:
    """`make_selector(name)` builds `selector` with `settings`, as `conf/selector/<name>.yaml` does."""
    VARIANTS[name] = (selector, settings)


def make_selector(name: str, **settings) -> Selector:
    """Build a selector by name, for use from Python without Hydra.

    The same selector, with the same defaults, as `selector=<name>` (a test checks every
    conf/selector/*.yaml); `settings` override the defaults.
    """
    import labelbudget.selection  # noqa: F401  (importing the package registers every selector)

    base, preset = VARIANTS.get(name, (name, {}))
    if base not in SELECTORS:
        raise ConfigError(
            f"unknown selector {name!r}; available: {', '.join(sorted([*SELECTORS, *VARIANTS]))}"
        )
    return SELECTORS[base](**{**preset, **settings})


def shuffled_task_rows(
    candidates: Candidates, rng: np.random.Generator
) -> tuple[list[str], list[np.ndarray]]:
    """Each task's rows in a seeded random order (tasks by name), for uniform within-task picks."""
    rows = candidates.task_rows()
    return list(rows), [rng.permutation(r) for r in rows.values()]
