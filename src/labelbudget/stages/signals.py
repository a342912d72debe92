"""One provider per signal a selector can declare (`Selector.signals()`).

Each provider checks what it can before any model loads, then computes (or reads from its cache)
the value `select` gets in `Candidates.signals`. A selector that reads existing signals needs
nothing here; a new kind of model pass is one provider more.
"""

from __future__ import annotations

from typing import Any, Protocol

from omegaconf import DictConfig

from labelbudget.data.schema import Pool
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.errors import ConfigError
from labelbudget.scoring.prompt_sensitivity import prompt_sensitivity
from labelbudget.selection.base import PREDICTED_AUC, PROMPT_SENSITIVITY, SCORES, Selector
from labelbudget.stages.common import LazyModel, model_identity, pool_scores, predict_trainer


class SignalProvider(Protocol):
    """Checks and computes one signal, given the settings the selector declared for it."""

    def check(self, settings: Any, pool: Pool) -> None:
        """Refuse what can be refused before a model loads (a missing file, a task it lacks)."""

    def provide(self, settings: Any, pool: Pool, cfg: DictConfig, model: LazyModel) -> Any:
        """The signal for `pool`, from the cache where it is there; `model` loads on first use."""


class ScoresProvider:
    """Embeddings and confidences of the scoring pass (`scoring` node), sharded and cached."""

    def check(self, settings: Any, pool: Pool) -> None:
        """The pass takes the run's `scoring` settings, not a selector's own."""
        if settings is not None:
            raise ConfigError(
                f"the scores signal takes the run's scoring settings (the `scoring` node), not "
                f"a selector's own; declare {{SCORES: None}}, got {settings!r}"
            )

    def provide(self, settings: Any, pool: Pool, cfg: DictConfig, model: LazyModel) -> Any:
        """The pool's `Scores`, from the cache or a scoring pass."""
        return pool_scores(cfg, pool, True, model)


class PromptSensitivityProvider:
    """Per-task prompt sensitivity, with the selector's `SensitivitySettings`, cached."""

    def check(self, settings: Any, pool: Pool) -> None:
        """Nothing to check before the pass: its settings were checked when built."""

    def provide(self, settings: Any, pool: Pool, cfg: DictConfig, model: LazyModel) -> Any:
        """Task -> sensitivity, from the cache or a pass with `settings`."""
        identity = model_identity(cfg.model, cfg.paths.cache_dir)
        cache = cfg.paths.score_cache_dir
        return prompt_sensitivity(pool, model, identity, settings, cache, predict_trainer(cfg))


class PredictedAUCProvider:
    """The predicted AUCs file the selector names (`estimate.py mode=coslow` writes it)."""

    def check(self, settings: Any, pool: Pool) -> None:
        """The file `settings` names exists, is valid and covers every task of the pool."""
        PredictedAUC.read(settings).check_covers(pool.tasks)

    def provide(self, settings: Any, pool: Pool, cfg: DictConfig, model: LazyModel) -> Any:
        """The file's `PredictedAUC`."""
        return PredictedAUC.read(settings)


PROVIDERS: dict[str, SignalProvider] = {
    SCORES: ScoresProvider(),
    PROMPT_SENSITIVITY: PromptSensitivityProvider(),
    PREDICTED_AUC: PredictedAUCProvider(),
}


def _providers(selector: Selector) -> dict[str, tuple[SignalProvider, Any]]:
    unknown = sorted(set(selector.signals()) - set(PROVIDERS))
    if unknown:
        raise ConfigError(
            f"selector '{selector.name}' asks for signal(s) {unknown} that no provider computes; "
            f"known: {sorted(PROVIDERS)} (labelbudget.stages.signals.PROVIDERS)"
        )
    return {name: (PROVIDERS[name], settings) for name, settings in selector.signals().items()}


def check_signals(selector: Selector, pool: Pool) -> None:
    """Every provider's checks of what the selector asks for; no model is loaded."""
    for provider, settings in _providers(selector).values():
        provider.check(settings, pool)


def provide_signals(
    selector: Selector, pool: Pool, cfg: DictConfig, model: LazyModel
) -> dict[str, Any]:
    """Every signal the selector asks for, by name, in the order it declares them."""
    return {
        name: provider.provide(settings, pool, cfg, model)
        for name, (provider, settings) in _providers(selector).items()
    }
