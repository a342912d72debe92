"""One provider per signal a selector can declare (`Selector.signals()`).

Each provider checks what it can before any model loads, then computes (or reads from its cache)
the value `select` gets in `Candidates.signals`. A selector that reads existing signals needs
nothing here; a new kind of model pass is one provider more.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Protocol

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from labelbudget.data.schema import Example, Pool
from labelbudget.efficiency.coslow import gradient_signals, task_gradients
from labelbudget.efficiency.curves import log_budget
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.efficiency.predictor import choose_fit
from labelbudget.errors import ConfigError
from labelbudget.models.loading import LazyModel
from labelbudget.scoring.prompt_sensitivity import prompt_sensitivity
from labelbudget.selection.base import (
    PREDICTED_AUC,
    PROBE_AUC,
    PROMPT_SENSITIVITY,
    ROUND_GAINS,
    SCORES,
    Selector,
)
from labelbudget.stages.run import Run

log = logging.getLogger(__name__)


class SignalProvider(Protocol):
    """Checks and computes one signal, given the settings the selector declared for it."""

    def check(self, settings: Any, pool: Pool) -> None:
        """Refuse what can be refused before a model loads (a missing file, a task it lacks)."""

    def provide(self, settings: Any, pool: Pool, run: Run) -> Any:
        """The signal for `pool`, from the cache where it is there; `run.model` loads on first use."""


class ScoresProvider:
    """Embeddings and confidences of the scoring pass (`scoring` node), sharded and cached."""

    def check(self, settings: Any, pool: Pool) -> None:
        """The pass takes the run's `scoring` settings, not a selector's own."""
        if settings is not None:
            raise ConfigError(
                f"the scores signal takes the run's scoring settings (the `scoring` node), not "
                f"a selector's own; declare {{SCORES: None}}, got {settings!r}"
            )

    def provide(self, settings: Any, pool: Pool, run: Run) -> Any:
        """The pool's `Scores`, from the cache or a scoring pass."""
        return run.scores(pool, required=True)


class PromptSensitivityProvider:
    """Per-task prompt sensitivity, with the selector's `SensitivitySettings`, cached."""

    def check(self, settings: Any, pool: Pool) -> None:
        """Nothing to check before the pass: its settings were checked when built."""

    def provide(self, settings: Any, pool: Pool, run: Run) -> Any:
        """Task -> sensitivity, from the cache or a pass with `settings`."""
        return prompt_sensitivity(
            pool,
            run.model,
            run.model_identity,
            settings,
            run.cfg.paths.score_cache_dir,
            run.predict_trainer(),
        )


class PredictedAUCProvider:
    """The predicted AUCs file the selector names (`estimate.py mode=coslow` writes it)."""

    def check(self, settings: Any, pool: Pool) -> None:
        """The file `settings` names exists, is valid and covers every task of the pool."""
        PredictedAUC.read(settings).check_covers(pool.tasks)

    def provide(self, settings: Any, pool: Pool, run: Run) -> Any:
        """The file's `PredictedAUC`."""
        return PredictedAUC.read(settings)


class LearnedSignalProvider(Protocol):
    """Checks and computes one signal learned from a two-round selector's labelled first round."""

    def check(self, settings: Any, cfg: DictConfig) -> None:
        """Refuse what can be refused before a model loads."""

    def provide(self, settings: Any, examples: list[Example], run: Run) -> Any:
        """The signal from the first round's `examples`, their responses the labels."""


class ProbeAUCProvider:
    """Each task's predicted AUC from a labelled probe, through the model's AUC ~ CoS-Low fit.

    CoS-Low is the median cosine of the LoRA gradients of the task's probe prompts.
    """

    def check(self, settings: Any, cfg: DictConfig) -> None:
        """A fit for the model exists: given, or shipped."""
        if choose_fit(settings["fit"], cfg.model.name) is None:
            raise ConfigError(
                f"selector.fit: no CoS-Low fit is shipped for model {cfg.model.name!r}; measure "
                "one (estimate.py mode=fit, README) and pass selector.fit=<fit.json>"
            )

    def provide(self, settings: Any, examples: list[Example], run: Run) -> PredictedAUC:
        """Task -> predicted AUC, on the fit's budget axis."""
        fit = choose_fit(settings["fit"], run.cfg.model.name)
        coslow = OmegaConf.create(settings["coslow"])
        by_task: dict[str, list[Example]] = {}
        for example in examples:
            by_task.setdefault(example.task, []).append(example)
        loaded = run.model()
        predicted = {
            task: fit.predict(
                gradient_signals(
                    task_gradients(loaded, labelled, coslow, run.seed), coslow.aggregate
                ).cosine
            )
            for task, labelled in tqdm(sorted(by_task.items()), desc="probe CoS-Low", unit="task")
        }
        return PredictedAUC(predicted, fit.n_max, "the probe's CoS-Low")


PROVIDERS: dict[str, SignalProvider] = {
    SCORES: ScoresProvider(),
    PROMPT_SENSITIVITY: PromptSensitivityProvider(),
    PREDICTED_AUC: PredictedAUCProvider(),
}


class RoundGainsProvider:
    """Each task's curve from what a fine-tune on the first round gained.

    A fresh copy of the model is fine-tuned on round 1 less a held-out part of each task, that
    part is graded (the test split's rules) before and after, and y = x(n)^p is fitted through
    (0, 0) and (n, y) (`fitted_auc`). Tasks too small to hold one out take the others' median.
    """

    def check(self, settings: Any, cfg: DictConfig) -> None:
        """The extra fine-tune takes the run's `finetune` settings: select.py must choose them."""
        if cfg.get("finetune") is None:
            raise ConfigError(
                "selector=adaptive fine-tunes on its first round with the run's finetune "
                "settings, and this run has none: add finetune=lora (train.py has it)"
            )

    def provide(self, settings: Any, examples: list[Example], run: Run) -> PredictedAUC:
        """Task -> the AUC of its fitted curve, on the budget axis up to settings' n_max."""
        from labelbudget.evaluation.tasks import TaskEvaluation, generate_answers, grade
        from labelbudget.training.fit import fine_tune

        trained, graded = held_out_split(examples, settings["holdout"])
        counts = Counter(e.task for e in trained)
        if max(counts.values()) >= settings["n_max"]:
            raise ConfigError(
                f"selector.n_max={settings['n_max']} must exceed every task's round-1 labels "
                f"(up to {max(counts.values())} here): raise it"
            )
        held_out = Pool(graded, "adaptive round 1 (held out)")
        answering = TaskEvaluation(max_new_tokens=settings["max_new_tokens"])

        def accuracy(loaded) -> dict[str, float]:
            answers = generate_answers(loaded, held_out, answering, run.predict_trainer())
            per_task, _ = grade(held_out, answers)
            return {t: per_task[f"tasks/{t}"] for t in held_out.task_sizes()}

        # its own copy: fine-tuning puts adapters in its modules
        fresh = LazyModel(run.cfg.model)()
        before = accuracy(fresh)
        tuned, _ = fine_tune(fresh, trained, run.cfg.finetune, run.fit_trainer(), None, run.seed)
        after = accuracy(tuned)
        fitted = {
            task: fitted_auc(counts[task], before.get(task), after.get(task), settings["n_max"])
            for task in sorted({e.task for e in examples})
        }
        known = [auc for auc in fitted.values() if auc is not None]
        prior = float(np.median(known)) if known else 0.5
        unfitted = sorted(task for task, auc in fitted.items() if auc is None)
        if unfitted:
            log.warning(
                "adaptive: %d of %d tasks had too few round-1 labels for a curve (3: two trained "
                "on, one graded) and take the fitted ones' median AUC %.3f: %s",
                len(unfitted),
                len(fitted),
                prior,
                ", ".join(unfitted[:10]) + (" ..." if len(unfitted) > 10 else ""),
            )
        return PredictedAUC(
            {task: prior if auc is None else auc for task, auc in fitted.items()},
            settings["n_max"],
            "adaptive round 1",
        )


def held_out_split(examples: list[Example], share: float) -> tuple[list[Example], list[Example]]:
    """Each task's labels split into (trained on, held out), in the order given.

    A task with n >= 2 labels holds out its last share * n (rounded half up), at least one and
    keeping at least one to train on; a task with one label trains on it.
    """
    by_task: dict[str, list[Example]] = {}
    for example in examples:
        by_task.setdefault(example.task, []).append(example)
    trained, held = [], []
    for task_examples in by_task.values():
        n = len(task_examples)
        k = min(n - 1, max(1, math.floor(share * n + 0.5))) if n >= 2 else 0
        trained += task_examples[: n - k]
        held += task_examples[n - k :]
    return trained, held


def fitted_auc(n: int, before: float | None, after: float | None, n_max: int) -> float | None:
    """The AUC, 1 / (1 + p), of the curve y = x(n)^p through the point (n, y).

    y = (after - before) / (1 - before) is the held-out gain as a share of what was left to
    gain, clipped into [0.001, 0.999]. None where nothing was held out, or n < 2 (x(n) = 0: no
    curve passes through it).
    """
    if before is None or after is None or n < 2:
        return None
    left = 1.0 - before
    gain = (after - before) / left if left > 0 else 0.0
    y = float(np.clip(gain, 1e-3, 1 - 1e-3))
    p = math.log(y) / math.log(log_budget(n, n_max))
    return 1.0 / (1.0 + p)


LEARNED_PROVIDERS: dict[str, LearnedSignalProvider] = {
    PROBE_AUC: ProbeAUCProvider(),
    ROUND_GAINS: RoundGainsProvider(),
}


def _learned(selector: Selector) -> dict[str, tuple[LearnedSignalProvider, Any]]:
    return _chosen(selector, selector.learns(), LEARNED_PROVIDERS, "LEARNED_PROVIDERS")


def check_learned(selector: Selector, cfg: DictConfig) -> None:
    """Every learned signal's checks; no model is loaded."""
    for provider, settings in _learned(selector).values():
        provider.check(settings, cfg)


def provide_learned(selector: Selector, examples: list[Example], run: Run) -> dict[str, Any]:
    """Every signal the selector learns from its labelled first round (`examples`), by name."""
    return {
        name: provider.provide(settings, examples, run)
        for name, (provider, settings) in _learned(selector).items()
    }


def _providers(selector: Selector) -> dict[str, tuple[SignalProvider, Any]]:
    return _chosen(selector, selector.signals(), PROVIDERS, "PROVIDERS")


def _chosen(
    selector: Selector, asked: dict[str, Any], registry: dict[str, Any], registry_name: str
) -> dict[str, tuple[Any, Any]]:
    """The provider of each signal the selector asks for, with its settings.

    An unknown signal is refused, naming the registry where a provider for it would go.
    """
    unknown = sorted(set(asked) - set(registry))
    if unknown:
        raise ConfigError(
            f"selector '{selector.name}' asks for signal(s) {unknown} that no provider computes; "
            f"known: {sorted(registry)} (labelbudget.stages.signals.{registry_name})"
        )
    return {name: (registry[name], settings) for name, settings in asked.items()}


def check_signals(selector: Selector, pool: Pool) -> None:
    """Every provider's checks of what the selector asks for; no model is loaded."""
    for provider, settings in _providers(selector).values():
        provider.check(settings, pool)


def provide_signals(selector: Selector, pool: Pool, run: Run) -> dict[str, Any]:
    """Every signal the selector asks for, by name, in the order it declares them."""
    return {
        name: provider.provide(settings, pool, run)
        for name, (provider, settings) in _providers(selector).items()
    }
