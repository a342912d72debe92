"""select.py: score the pool (cached), select, and write what to annotate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig

from labelbudget.configs import check_settings, instantiate
from labelbudget.data.annotation import (
    Annotations,
    examples_of,
    labelled_subset,
    merged,
    read_annotations,
    reveal_responses,
)
from labelbudget.data.schema import Example, Pool, TaskData
from labelbudget.distributed import check_strategy, is_main_process, print_once
from labelbudget.errors import ConfigError
from labelbudget.io import atomic_write_text
from labelbudget.runs import RunIdentity
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import (
    FIRST_ROUND,
    SCORES,
    Candidates,
    FirstRound,
    Selection,
    Selector,
)
from labelbudget.stages.run import Run, run_identity
from labelbudget.stages.signals import (
    check_learned,
    check_signals,
    provide_learned,
    provide_signals,
)
from labelbudget.tracking.loggers import log_allocation
from labelbudget.tracking.selection_report import (
    allocation_csv,
    selection_jsonl,
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
class SelectionInputs:
    """What a selection needs, every part checked before any model loads."""

    data: TaskData
    budget: int
    selector: Selector
    annotations: Annotations | None  # the `annotations` files, read and checked; None: simulated

    def identity(self, cfg: DictConfig) -> RunIdentity:
        """The identity of a run that selects from these inputs."""
        return run_identity(cfg, self.data.name, self.budget, self.selector, len(self.data.pool))


def selection_inputs(cfg: DictConfig, zero_allowed: bool = False) -> SelectionInputs:
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
        check_learned(selector, cfg)
    annotations = imported_annotations(cfg.get("annotations"), data.pool)
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
    return SelectionInputs(data, budget, selector, annotations)


def imported_annotations(node, pool: Pool) -> Annotations | None:
    """The `annotations` setting read and checked: a file (`annotations=FILE`, shorthand for
    `annotations.path=FILE`) or a list of files (a two-round selector's rounds), or
    `{path, require_fingerprint}`; None where no file is given (simulated annotation)."""
    path, required = (
        (node.path, node.require_fingerprint) if isinstance(node, DictConfig) else (node, False)
    )
    if not path:
        return None
    paths = list(path) if isinstance(path, (list, ListConfig)) else [path]
    return merged([read_annotations(p, pool, required) for p in paths])


@dataclass
class Chosen:
    """A selection and the metrics it adds to the run's record."""

    selection: Selection
    metrics: dict[str, float]  # task coverage and the selector's own objective


def choose(run: Run, inputs: SelectionInputs) -> Chosen | None:
    """Score (cached), select, write selection.jsonl, allocation.csv and allocation.png, and give
    the tracker the allocation table and plot; the coverage statistics and the selector's
    objective are returned for the run's metrics. A two-round selector's first round is
    labelled and learned from first (its allocation in allocation_round1.csv, the seconds that
    took in `selection/learn_seconds`); None where it is still to be annotated (its file
    written)."""
    pool, selector, budget = inputs.data.pool, inputs.selector, inputs.budget
    signals = provide_signals(selector, pool, run)
    candidates = Candidates(pool.ids, pool.tasks, signals)
    # the allocation table shows each task's confidence where the pool was scored already
    scores = signals[SCORES] if SCORES in signals else run.scores(pool, required=False)
    folder = run.folder.path
    rng = np.random.default_rng(run.seed)
    learn_seconds: dict[str, float] = {}
    first = selector.first_round(candidates, budget, rng)
    if first is not None:
        labelled = first_round_examples(first, pool, inputs.annotations, scores)
        if labelled is None:
            write_first_round(folder, pool, first)
            return None
        started = time.perf_counter()
        learned = provide_learned(selector, labelled, run)
        learn_seconds["selection/learn_seconds"] = time.perf_counter() - started
        if is_main_process():
            for name, signal in learned.items():  # e.g. the probe's predicted AUCs
                if hasattr(signal, "write"):
                    signal.write(folder / f"{name}.json")
            first_rows = task_rows(pool, Selection(ids=first.ids), scores)
            atomic_write_text(folder / "allocation_round1.csv", allocation_csv(first_rows))
        candidates = Candidates(pool.ids, pool.tasks, {**signals, **learned, FIRST_ROUND: first})
    selection = selector.select(candidates, budget, rng)
    _check_selection(selection, pool, budget, selector.name)
    rows = task_rows(pool, selection, scores)
    if is_main_process():  # every rank of a DDP job selects the same prompts; one writes them
        write_selection_outputs(folder, rows, pool, selection, selector.name, budget)
    print_once(summary_table(rows, selector.name, budget))
    print_once(f"wrote {folder / 'selection.jsonl'}, allocation.csv and allocation.png")
    metrics = {
        **selection_statistics(rows),
        **{f"selection/{k}": float(v) for k, v in selection.objective.items()},
        **learn_seconds,
    }
    if run.logger is not None:
        log_allocation(run.logger, rows, folder / "allocation.png")
    return Chosen(selection, metrics)


FIRST_ROUND_FILE = "first_round.jsonl"


def first_round_examples(
    first: FirstRound, pool: Pool, annotations: Annotations | None, scores: Scores | None
) -> list[Example] | None:
    """A two-round selector's first round with its targets: the model's own greedy answers
    where it spends no labels, else the annotations file's (which must answer every prompt of
    the round: a file from another selection is refused), else the pool's own in simulation;
    None where the pool has none and no file was given (the round is to be annotated first)."""
    if not first.counted:
        row = {id_: i for i, id_ in enumerate(pool.ids)}
        return [replace(pool[row[i]], response=scores.generations[row[i]]) for i in first.ids]
    if annotations is not None:
        return labelled_subset(annotations, pool, first.ids, "the selector's first round")
    if Pool(examples_of(pool, first.ids), pool.source).unanswered_ids():
        return None
    return reveal_responses(pool, first.ids)


def write_first_round(folder: Path, pool: Pool, first: FirstRound) -> None:
    """Round 1 of a two-round selection with real annotators: the prompts to annotate now, and
    how to go on."""
    path = folder / FIRST_ROUND_FILE
    if is_main_process():
        atomic_write_text(path, selection_jsonl(pool, Selection(ids=first.ids)))
    print_once(
        f"round 1 of 2: wrote the {len(first.ids)} prompts this selector labels first to {path}. "
        "Annotate them ({id, response, fingerprint} rows), then rerun the same command with "
        "annotations=<that file> to choose the rest; train.py then takes both files, "
        "annotations.path=[<round 1>,<round 2>]"
    )


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
    inputs = selection_inputs(cfg)
    with Run.open(cfg, inputs.identity(cfg)) as run:
        chosen = choose(run, inputs)
        if chosen is None:  # a first round to annotate: no selection yet
            return None
        run.record(chosen.metrics, {}, inputs.data)
        return chosen.selection
