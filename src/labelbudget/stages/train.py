"""train.py: select, annotate (simulated or imported), fine-tune with LoRA, evaluate."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from labelbudget.data.annotation import (
    annotated,
    check_responses,
)
from labelbudget.distributed import is_main_process, print_once
from labelbudget.models.loading import LoadedModel
from labelbudget.runs import RunFolder
from labelbudget.stages.common import (
    LazyModel,
    evaluations,
    headline,
    instantiate,
    make_logger,
    model_identity,
    prepare_evaluations,
    run_evaluations,
    run_identity,
    write_metrics,
)
from labelbudget.stages.select import Prepared, choose, prepare
from labelbudget.training.adapters import (
    save_adapter,
)


def run_train(cfg: DictConfig) -> dict[str, float]:
    """Select, annotate, fine-tune with LoRA, evaluate.

    Args:
        cfg: the composed `conf/train.yaml`. Budget 0 evaluates the base model under the run's
            identity (the zero-shot row, a learning curve's first point); `annotations` joins
            real answers to the selection by id, else the pool's own are revealed.

    Returns:
        The evaluations' metrics with the fine-tune's and the selection's, and the run's wall
        time (`run/seconds`), also written to metrics.json in `paths.output_dir` and to the
        tracker; the adapter is in `adapter/`.
    """
    from labelbudget.tracking.loggers import finish_wandb

    started = time.perf_counter()
    prepared = prepare(cfg, zero_allowed=True)
    annotations = prepared.annotations
    if prepared.budget and annotations is None:
        check_responses(prepared.data.pool)
    trained_on = OmegaConf.to_container(cfg.dataset, resolve=True)
    evals = prepare_evaluations(evaluations(cfg), prepared.data, trained_on)
    model = LazyModel(cfg.model)
    identity = run_identity(cfg, prepared.data, prepared.budget, prepared.selector)
    folder = RunFolder(Path(cfg.paths.output_dir))
    logger = make_logger(cfg, identity)
    try:
        if prepared.budget:
            tuned, trained = select_and_fine_tune(cfg, prepared, model, annotations, logger)
        else:  # budget 0: the base model under this run's identity
            tuned, trained = model(), {"train/examples": 0.0}
        metrics, settings = run_evaluations(cfg, evals, tuned)
        metrics.update(trained)
        metrics["run/seconds"] = time.perf_counter() - started
        settings["finetune"] = OmegaConf.to_container(cfg.finetune, resolve=True)
        write_metrics(folder.path, identity, metrics, settings, logger, cfg, prepared.data, evals)
        print_once(f"{headline(evals, metrics)}; wrote {folder.metrics_file}")
        return metrics
    finally:
        finish_wandb()


def select_and_fine_tune(
    cfg: DictConfig, prepared: Prepared, model: LazyModel, annotations, logger
) -> tuple[LoadedModel, dict[str, float]]:
    """Choose, annotate (simulated or imported), fine-tune, save the adapter; the tuned model,
    and the fit and selection metrics."""
    from labelbudget.training.fit import fine_tune

    chosen = choose(cfg, prepared, model, logger)  # never None: the pool's responses are checked
    examples = annotated(prepared.data.pool, chosen.selection.ids, annotations)
    trainer = instantiate(cfg.trainer)
    tuned, fit_stats = fine_tune(model(), examples, cfg.finetune, trainer, logger, int(cfg.seed))
    adapter = RunFolder(Path(cfg.paths.output_dir)).adapter
    save_adapter(
        tuned.model,
        adapter,
        model_identity(cfg.model, cfg.paths.cache_dir),
        OmegaConf.to_container(cfg.dataset, resolve=True),
        is_main_process(),
    )
    return tuned, {**fit_stats, **chosen.metrics}
