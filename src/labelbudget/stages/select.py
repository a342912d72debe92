"""select.py: score the pool (cached), select, and write what to annotate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from labelbudget.data.schema import Pool
from labelbudget.distributed import is_main_process, print_once
from labelbudget.selection.base import Candidates, Selection
from labelbudget.stages.common import (
    LazyModel,
    Prepared,
    pool_scores,
    prepare,
    run_identity,
    task_scores,
    write_metrics,
)
from labelbudget.tracking.selection_report import (
    selection_statistics,
    summary_table,
    task_rows,
    write_selection_outputs,
)


@dataclass
class Chosen:
    selection: Selection
    metrics: dict[str, float]  # task coverage and the selector's own objective


def choose(cfg: DictConfig, prepared: Prepared, model: LazyModel, logger=None) -> Chosen:
    """Score (cached), select, write selection.jsonl, allocation.csv and allocation.png, and give
    the tracker the allocation table and plot; the coverage statistics and the selector's
    objective are returned for the run's metrics."""
    pool = prepared.data.pool
    scores = pool_scores(cfg, pool, prepared.selector.needs_scores, model)
    candidates = Candidates(
        pool.ids, pool.tasks, scores, task_scores(cfg, pool, prepared.selector, model)
    )
    selection = prepared.selector.select(
        candidates, prepared.budget, np.random.default_rng(cfg.seed)
    )
    _check_selection(selection, pool, prepared.budget, prepared.selector.name)
    folder = Path(cfg.paths.output_dir)
    rows = task_rows(pool, selection, scores)
    if is_main_process():  # every rank of a DDP job selects the same prompts; one writes them
        write_selection_outputs(
            folder, rows, pool, selection, prepared.selector.name, prepared.budget
        )
    print_once(summary_table(rows, prepared.selector.name, prepared.budget))
    print_once(f"wrote {folder / 'selection.jsonl'}, allocation.csv and allocation.png")
    metrics = {
        **selection_statistics(rows),
        **{f"selection/{k}": float(v) for k, v in selection.objective.items()},
    }
    if logger is not None:
        log_allocation(logger, rows, folder / "allocation.png")
    return Chosen(selection, metrics)


def log_allocation(logger, rows, plot: Path) -> None:
    """The allocation table and plot, for trackers that take them (W&B)."""
    if hasattr(logger, "log_table"):
        columns = ["task", "pool_size", "mean_confidence", "allocated", "selected"]
        logger.log_table(
            key="selection/allocation",
            columns=columns,
            data=[[getattr(r, c) for c in columns] for r in rows],
        )
    if hasattr(logger, "log_image"):
        logger.log_image(key="selection/allocation_plot", images=[str(plot)])


def _check_selection(selection: Selection, pool: Pool, budget: int, name: str) -> None:
    """A selector bug must never reach annotators: exactly `budget` distinct, known ids."""
    known = set(pool.ids)
    if (
        len(selection.ids) != budget
        or len(set(selection.ids)) != budget
        or not known.issuperset(selection.ids)
    ):
        raise AssertionError(
            f"selector {name} returned {len(selection.ids)} ids, not {budget} distinct pool ids"
        )


def run_select(cfg: DictConfig) -> Selection:
    """Choose the prompts to annotate; metrics.json holds coverage and objective for the report."""
    prepared = prepare(cfg)
    chosen = choose(cfg, prepared, LazyModel(cfg.model))
    write_metrics(
        Path(cfg.paths.output_dir), run_identity(cfg, prepared), chosen.metrics, {}, None, cfg
    )
    return chosen.selection
