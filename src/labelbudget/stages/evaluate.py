"""evaluate.py: the base model, or base + a trained adapter, on the chosen evaluations."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from labelbudget.configs import check_settings, differing_keys
from labelbudget.data.schema import TaskData
from labelbudget.distributed import check_strategy, print_once
from labelbudget.errors import ConfigError, listing
from labelbudget.runs import SAVED_CONFIG, RunFolder, RunIdentity
from labelbudget.stages.common import (
    LazyModel,
    evaluations,
    headline,
    instantiate,
    model_identity,
    prepare_evaluations,
    run_evaluations,
    write_metrics,
)
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
    identity = RunIdentity(dataset, "zero-shot", {}, 0, int(cfg.seed), cfg.model.name)
    if adapter is not None:  # the training run's identity, so the report puts it on its row
        trained = RunFolder.of_adapter(adapter)
        if trained.finished:
            identity = trained.read().identity
        else:
            log.warning(
                "no metrics.json beside %s: which selection and budget trained it is unknown, so the report lists "
                "it as its own row 'adapter:%s'",
                adapter,
                adapter,
            )
            identity = replace(identity, selector=f"adapter:{adapter}")
    loaded = LazyModel(cfg.model)()
    if adapter is not None:
        loaded = replace(loaded, model=load_adapter(loaded.model, adapter))
    metrics, settings = run_evaluations(cfg, evals, loaded)
    folder = RunFolder(Path(cfg.paths.output_dir))
    write_metrics(folder.path, identity, metrics, settings, None, cfg, data, evals)
    print_once(f"{headline(evals, metrics)}; wrote {folder.metrics_file}")
    return metrics
