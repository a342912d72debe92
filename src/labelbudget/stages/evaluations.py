"""The evaluations a stage runs: built from the `eval` node, their inputs loaded and checked
before any model loads (`Evaluation.prepare`), run on a model, and summed up in one line."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from labelbudget.configs import instantiate
from labelbudget.data.schema import TaskData
from labelbudget.distributed import print_once
from labelbudget.errors import ConfigError
from labelbudget.evaluation.base import EvalContext, Evaluation
from labelbudget.models.loading import LoadedModel
from labelbudget.stages.run import Run


def evaluations(cfg: DictConfig) -> list[Evaluation]:
    """The evaluations named in the `eval` node, in order (`eval=[tasks,mmlu,bbh]`).

    Plain keys beside them (`eval.data_dir`, `eval.limit_per_subject`) are shortcuts for the
    settings of the one evaluation chosen: `python evaluate.py eval=mmlu eval.data_dir=...`.
    With several they would be ambiguous, so they are refused there.
    """
    node = cfg.get("eval") or {}
    names = [key for key, value in node.items() if isinstance(value, DictConfig)]
    shortcuts = {
        key: value
        for key, value in node.items()
        if not isinstance(value, DictConfig) and value is not None
    }
    if shortcuts and len(names) != 1:
        key = next(iter(shortcuts))
        raise ConfigError(
            f"eval.{key} is a shortcut for a single evaluation; with {names} set eval.<name>.{key} instead"
        )
    built = [instantiate(node[name], _convert_="all", **shortcuts) for name in names]
    for name, evaluation in zip(names, built):
        if not isinstance(getattr(evaluation, "headline", None), str):
            raise ConfigError(
                f"eval.{name}: {type(evaluation).__name__} names no `headline` metric "
                "(a class attribute, e.g. headline = 'mmlu/micro')"
            )
    return built


def prepare_evaluations(
    evals: list[Evaluation], data: TaskData | None, trained_on: dict[str, Any] | None
) -> list[tuple[Evaluation, Any]]:
    """Each evaluation with its inputs, checked and loaded before any model loads."""
    if not evals:
        raise ConfigError(
            "no evaluation chosen: add eval=tasks, eval=mmlu, eval=bbh or eval=[tasks,mmlu,bbh]"
        )
    return [(evaluation, evaluation.prepare(data, trained_on)) for evaluation in evals]


def run_evaluations(
    run: Run, prepared: list[tuple[Evaluation, Any]], loaded: LoadedModel
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run each evaluation on `loaded`, print its table; all metrics and each one's settings."""
    context = EvalContext(loaded, run.predict_trainer(), run.folder.path)
    metrics: dict[str, float] = {}
    settings: dict[str, Any] = {}
    for evaluation, inputs in prepared:
        result = evaluation.run(context, inputs)
        print_once(f"\n{evaluation.name}\n{result.table}")
        metrics.update(result.metrics)
        settings[evaluation.name] = result.settings
    return metrics, settings


def headline(prepared: list[tuple[Evaluation, Any]], metrics: dict[str, float]) -> str:
    """The one-line summary: each evaluation's headline number."""
    shown = [e.headline for e, _ in prepared if e.headline in metrics]
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in shown) or "no headline metric"
