"""select.py: score the pool (cached), select, and write what to annotate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from labelbudget.configs import check_settings
from labelbudget.data.schema import Pool, TaskData
from labelbudget.distributed import check_strategy, is_main_process, print_once
from labelbudget.errors import ConfigError
from labelbudget.selection.base import SCORES, Candidates, Selection, Selector
from labelbudget.stages.common import (
    LazyModel,
    instantiate,
    pool_scores,
    run_identity,
    write_metrics,
)
from labelbudget.stages.signals import check_signals, provide_signals
from labelbudget.tracking.selection_report import (
    selection_statistics,
    summary_table,
    task_rows,
    write_selection_outputs,
)

log = logging.getLogger(__name__)


def resolve_budget(budget: Any, pool_size: int, zero_allowed: bool = False) -> int:
    """An integer count, a fraction of the pool when 0 < budget < 1 (rounded, at least 1), or
    "all" (the paper's Full row). 0 only where it means something (`train.py`: zero-shot)."""
    if budget == "all":
        return pool_size
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise ConfigError(f"budget must be a number or 'all', got {budget!r}")
    if isinstance(budget, float) and 0 < budget < 1:
        return max(1, round(budget * pool_size))
    if isinstance(budget, float) and not budget.is_integer():
        raise ConfigError(
            f"budget must be an integer count, a fraction below 1 or 'all', got {budget}"
        )
    budget = int(budget)
    if budget == 0 and zero_allowed:
        return 0
    if budget <= 0:
        raise ConfigError(f"budget must be positive, got {budget}")
    if budget > pool_size:
        raise ConfigError(f"budget {budget} is larger than the pool ({pool_size} prompts)")
    return budget


@dataclass
class Prepared:
    data: TaskData
    budget: int
    selector: Selector


def prepare(cfg: DictConfig, zero_allowed: bool = False) -> Prepared:
    """Check every setting, load and validate the pool, resolve and check the budget: no model yet."""
    check_settings(cfg)
    check_strategy(cfg.trainer)
    data: TaskData = instantiate(cfg.dataset)
    budget = resolve_budget(cfg.budget, len(data.pool), zero_allowed)
    try:
        selector: Selector = instantiate(cfg.selector)
    except ConfigError as error:  # the selector's own checks name its argument: say whose
        raise ConfigError(f"selector ({cfg.selector._target_}): {error}") from None
    if budget:
        selector.check_budget(data.pool.task_sizes(), budget)
        check_signals(selector, data.pool)
    asked = (
        f" ({cfg.budget} of the pool)"
        if isinstance(cfg.budget, float) and 0 < cfg.budget < 1
        else ""
    )
    log.info(
        "pool: %d prompts in %d tasks (%s); budget %d%s",
        len(data.pool),
        len(data.pool.task_sizes()),
        data.pool.source,
        budget,
        asked,
    )
    return Prepared(data, budget, selector)


@dataclass
class Chosen:
    selection: Selection
    metrics: dict[str, float]  # task coverage and the selector's own objective


def choose(cfg: DictConfig, prepared: Prepared, model: LazyModel, logger=None) -> Chosen:
    """Score (cached), select, write selection.jsonl, allocation.csv and allocation.png, and give
    the tracker the allocation table and plot; the coverage statistics and the selector's
    objective are returned for the run's metrics."""
    pool = prepared.data.pool
    signals = provide_signals(prepared.selector, pool, cfg, model)
    candidates = Candidates(pool.ids, pool.tasks, signals)
    # the allocation table shows each task's confidence where the pool was scored already
    scores = signals[SCORES] if SCORES in signals else pool_scores(cfg, pool, False)
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
    """Choose the prompts to annotate.

    Args:
        cfg: the composed `conf/select.yaml`.

    Returns:
        The selection; `selection.jsonl` (what to annotate), `allocation.csv` and
        `allocation.png` are in `paths.output_dir`, with metrics.json holding the task coverage
        and the selector's objective for the report.
    """
    prepared = prepare(cfg)
    chosen = choose(cfg, prepared, LazyModel(cfg.model))
    write_metrics(
        Path(cfg.paths.output_dir),
        run_identity(cfg, prepared.data, prepared.budget, prepared.selector),
        chosen.metrics,
        {},
        None,
        cfg,
        prepared.data,
    )
    return chosen.selection
