"""evaluate.py: the base model, or base + a trained adapter, on the chosen evaluations."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from labelbudget.configs import check_settings, differing_keys, instantiate
from labelbudget.data.schema import TaskData
from labelbudget.distributed import check_strategy, print_once
from labelbudget.errors import ConfigError, listing
from labelbudget.models.fingerprint import model_identity
from labelbudget.runs import SAVED_CONFIG, RunFolder, RunIdentity
from labelbudget.stages.evaluations import (
    evaluations,
    headline,
    prepare_evaluations,
    run_evaluations,
)
from labelbudget.stages.run import Run, run_identity
from labelbudget.training.adapters import (
    TRAINED_ON,
    check_adapter,
    load_adapter,
    resolve_adapter,
    trained_dataset,
)

log = logging.getLogger(__name__)


def on_trained_dataset(cfg: DictConfig, adapter: Path, trained_on: dict[str, Any]) -> DictConfig:
    """`cfg` with the dataset the adapter was trained on: its test split is what `eval=tasks`
    grades, since the numbers are filed under the training run's record (dataset, selector,
    budget). Dataset settings of this command that differ are not used, and said so."""
    differences = differing_keys(
        {"dataset": trained_on}, {"dataset": OmegaConf.to_container(cfg.dataset, resolve=True)}
    )
    if differences:
        log.warning(
            "grading %s on the test split of the dataset it was trained on; this command's "
            "dataset settings differ and are not used (there: the training run, now: this command): %s",
            adapter,
            listing(differences, 5, str),
        )
    evaluated = copy.deepcopy(cfg)
    with open_dict(evaluated):
        evaluated.dataset = trained_on
    return evaluated


def dataset_on_command_line() -> bool:
    """Whether this command names a dataset (`dataset=...` or `dataset.<key>=...`)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    return any(
        override.lstrip("+~").split("=")[0].split(".")[0] == "dataset"
        for override in HydraConfig.get().overrides.task
    )


def run_evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate the base model (the zero-shot row) or base + adapter.

    Args:
        cfg: the composed `conf/evaluate.yaml`: `eval` chooses the evaluations, `adapter` a
            train.py run's adapter (its run's identity is recorded, so the report puts the
            numbers on that run's row, and `eval=tasks` grades it on the test split of the
            dataset that run trained on).

    Returns:
        Every evaluation's metrics, also written to metrics.json in `paths.output_dir`.
    """
    check_settings(cfg)
    check_strategy(cfg.trainer)
    chosen = evaluations(cfg)
    needs_dataset = any(e.needs_dataset for e in chosen)
    adapter = resolve_adapter(Path(cfg.adapter)) if cfg.adapter else None
    trained_on = None
    if adapter is not None:
        check_adapter(adapter, model_identity(cfg.model, cfg.paths.cache_dir))
        trained_on = trained_dataset(adapter)
        if needs_dataset and trained_on is not None:
            cfg = on_trained_dataset(cfg, adapter, trained_on)
        elif needs_dataset and not dataset_on_command_line():
            raise ConfigError(
                f"{adapter} does not record the dataset it was trained on (no {TRAINED_ON} in it, "
                f"no {SAVED_CONFIG} beside it): eval=tasks would grade it on the default dataset "
                "and file the numbers under the training run's name. Name the training dataset: "
                "dataset=<its config> and the settings it was trained with"
            )
    data: TaskData | None = instantiate(cfg.dataset) if needs_dataset else None
    evals = prepare_evaluations(chosen, data, trained_on)
    dataset = data.name if data is not None else cfg.dataset.get("name", "-")
    with Run.open(cfg, evaluated_identity(cfg, dataset, adapter)) as run:
        loaded = run.model()
        if adapter is not None:
            loaded = replace(loaded, model=load_adapter(loaded.model, adapter))
        metrics, settings = run_evaluations(run, evals, loaded)
        run.record(metrics, settings, data, evals)
        print_once(f"{headline(evals, metrics)}; wrote {run.folder.metrics_file}")
        return metrics


def evaluated_identity(cfg: DictConfig, dataset: str, adapter: Path | None) -> RunIdentity:
    """The zero-shot row's identity for the base model; for an adapter its training run's, so
    that the report puts the numbers on that run's row (its own row where that is unknown)."""
    identity = run_identity(cfg, dataset)
    if adapter is None:
        return identity
    trained = RunFolder.of_adapter(adapter)
    if trained.finished:
        return trained.read().identity
    log.warning(
        "no metrics.json beside %s: which selection and budget trained it is unknown, so the "
        "report lists it as its own row 'adapter:%s'",
        adapter,
        adapter,
    )
    return replace(identity, selector=f"adapter:{adapter}")
