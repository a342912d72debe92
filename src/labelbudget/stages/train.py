"""train.py: select, annotate (simulated or imported), fine-tune with LoRA, evaluate."""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf

from labelbudget.data.annotation import annotated, check_responses
from labelbudget.distributed import is_main_process, print_once
from labelbudget.models.loading import LoadedModel
from labelbudget.stages.evaluations import (
    evaluations,
    headline,
    prepare_evaluations,
    run_evaluations,
)
from labelbudget.stages.run import Run
from labelbudget.stages.select import SelectionInputs, choose, selection_inputs
from labelbudget.training.adapters import save_adapter


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
    started = time.perf_counter()
    inputs = selection_inputs(cfg, zero_allowed=True)
    if inputs.budget and inputs.annotations is None:
        check_responses(inputs.data.pool)
    trained_on = OmegaConf.to_container(cfg.dataset, resolve=True)
    evals = prepare_evaluations(evaluations(cfg), inputs.data, trained_on)
    with Run.open(cfg, inputs.identity(cfg)) as run:
        if inputs.budget:
            tuned, trained = select_and_fine_tune(run, inputs, trained_on)
        else:  # budget 0: the base model under this run's identity
            tuned, trained = run.model(), {"train/examples": 0.0}
        metrics, settings = run_evaluations(run, evals, tuned)
        metrics.update(trained)
        metrics["run/seconds"] = time.perf_counter() - started
        settings["finetune"] = OmegaConf.to_container(cfg.finetune, resolve=True)
        run.record(metrics, settings, inputs.data, evals)
        print_once(f"{headline(evals, metrics)}; wrote {run.folder.metrics_file}")
        return metrics


def select_and_fine_tune(
    run: Run, inputs: SelectionInputs, trained_on: dict
) -> tuple[LoadedModel, dict[str, float]]:
    """Choose, annotate (simulated or imported), fine-tune, save the adapter with the dataset it
    was `trained_on`; the tuned model, and the fit and selection metrics."""
    from labelbudget.training.fit import fine_tune

    chosen = choose(run, inputs)  # never None: the pool's responses are checked
    examples = annotated(inputs.data.pool, chosen.selection.ids, inputs.annotations)
    tuned, fit_stats = fine_tune(
        run.model(), examples, run.cfg.finetune, run.fit_trainer(), run.logger, run.seed
    )
    save_adapter(tuned.model, run.folder.adapter, run.model_identity, trained_on, is_main_process())
    return tuned, {**fit_stats, **chosen.metrics}
