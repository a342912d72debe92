"""Runs as the report lays them out (rows, budgets, the cells that repeat them, tables of equal
settings) and the comparisons made of them: paired differences, per-task gains over zero-shot,
the premise check and where each row moved labels."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from labelbudget.configs import determining_settings
from labelbudget.errors import DataError
from labelbudget.evaluation.base import per_task
from labelbudget.io import csv_cell
from labelbudget.report.statistics import (
    Correlation,
    Paired,
    crossed_bootstrap,
    mean_and_standard_error,
    spearman,
)
from labelbudget.runs import RunFolder, RunIdentity, RunRecord, changed_data

BASELINE = "random"  # the floor; the mechanism check compares with it


# every row is paired with each: random, and even spreading, the bar an allocator has to beat
BASELINES = (BASELINE, "task_diversity")


ZERO_SHOT = "zero-shot"


# what distinguishes runs within one table; everything else in `config` separates tables
WITHIN_TABLE = ("seed", "budget", "selector")


@dataclass(frozen=True)
class Run:
    """One run's record as the report places it: its table (`setting`), row, budget and cell."""

    folder: Path
    row: str  # selector and its non-default options
    budget: int
    cell: tuple[str, ...]  # what repeats a row: its seed, and the `--cells` settings' values
    metrics: dict[str, float]
    setting: tuple[tuple[str, str], ...]  # every other config value, flattened
    data: dict[str, Any] | None = None  # the pool's and test split's hashes (RunRecord.data)


def row_name(identity: RunIdentity) -> str:
    """The report's row: the selector, with the options this run changed from its file."""
    options = identity.selector_options or {}
    if not options:
        return identity.selector
    return (
        f"{identity.selector} (" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"
    )


def as_run(folder: RunFolder, record: RunRecord, cells: tuple[str, ...] = ()) -> Run:
    """The run as the report lays it out; the settings named in `cells` (with the seed) make the
    cell that repeats a row, rather than separating tables."""
    identity = record.identity
    config = {
        k: v
        for k, v in determining_settings(record.config or {}).items()
        if k.split(".")[0] not in WITHIN_TABLE
    }
    cell = tuple(f"{key}={json.dumps(config.pop(key, None))}" for key in cells)
    setting = tuple(
        sorted((key, json.dumps(value, sort_keys=True)) for key, value in config.items() if key)
    )
    return Run(
        folder.path,
        row_name(identity),
        int(identity.budget),
        (*cell, f"seed={int(identity.seed)}"),
        record.metrics,
        setting,
        record.data,
    )


def split_by_setting(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Groups of runs with equal settings, each titled by the settings that differ between groups."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.setting].append(run)
    if len(groups) == 1:
        return [("", runs)]
    keys = sorted({key for setting in groups for key, _ in setting})
    values = {setting: dict(setting) for setting in groups}
    differing = [key for key in keys if len({values[s].get(key) for s in groups}) > 1]
    titled = []
    for setting, members in groups.items():
        title = ", ".join(
            f"{key}={json.loads(values[setting][key]) if key in values[setting] else '(unset)'}"
            for key in differing
        )
        titled.append((title, members))
    return sorted(titled)


def check_one_data_per_table(runs: list[Run]) -> None:
    """Runs of equal settings made on different contents of their pool or test file (edited in
    place between them) are never averaged: the report stops, naming both runs and the file.
    Runs of different `--cells` values (pool compositions) are other pools by design, and are
    compared only among their own. Runs recorded before labelbudget kept the hashes cannot be
    checked and are let through."""
    groups: dict[tuple[str, ...], list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.cell[:-1]].append(run)  # the cell less its seed
    for members in groups.values():
        first = next((run for run in members if run.data is not None), None)
        for run in members:
            changes = changed_data(first.data, run.data) if run.data is not None else []
            if changes:
                raise DataError(
                    str(run.folder),
                    f"has the settings of {first.folder} but other data: {'; '.join(changes)} "
                    f"(there: {first.folder}, now: this run); rerun the runs of the old data, or "
                    "report the two apart",
                )


def check_one_run_per_cell(runs: list[Run]) -> None:
    """Refuse two runs of one row, budget and cell with the same settings: they would be
    averaged as two seeds."""
    seen: dict[tuple, Path] = {}
    for run in runs:
        key = (run.row, run.budget, run.cell)
        if key in seen:
            raise DataError(
                str(run.folder),
                f"repeats row {run.row!r}, budget {run.budget}, {', '.join(run.cell)} of "
                f"{seen[key]} with the same settings; report one of them",
            )
        seen[key] = run.folder


Cells = dict[tuple[str, int], tuple[float, float, int]]


def aggregate(runs: list[Run]) -> dict[str, Cells]:
    """metric -> (row, budget) -> (mean, standard error, number of cells: seeds, by default)."""
    grouped: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for metric, value in run.metrics.items():
            grouped[metric][(run.row, run.budget)].append(float(value))
    return {
        metric: {
            key: (*mean_and_standard_error(values), len(values)) for key, values in cells.items()
        }
        for metric, cells in sorted(grouped.items())
    }


# (row, budget) -> cell -> task -> a value of that run
SeedTables = dict[tuple[str, int], dict[tuple[str, ...], dict[str, Any]]]


def seed_tables(runs: list[Run], value: Callable[[Run], dict[str, Any]]) -> SeedTables:
    """(row, budget) -> cell -> `value` of that run: runs laid out for pairing by cell."""
    tables: SeedTables = defaultdict(dict)
    for run in runs:
        tables[(run.row, run.budget)][run.cell] = value(run)
    return tables


def against_baseline(
    tables: SeedTables, baseline_row: str = BASELINE
) -> Iterator[tuple[tuple[str, int], list[tuple[str, ...]], list[str]]]:
    """Each other row at a budget the baseline ran: its (row, budget), the cells both ran and the
    tasks all of those runs have, so that every comparison is paired by cell (seed) and task."""
    for key, seeds in sorted(tables.items()):
        baseline = tables.get((baseline_row, key[1]))
        if key[0] == baseline_row or baseline is None:
            continue
        common = sorted(set(seeds) & set(baseline))
        if common:
            tasks = set.intersection(*[set(seeds[s]) & set(baseline[s]) for s in common])
            if tasks:
                yield key, common, sorted(tasks)


def paired_with_baseline(
    runs: list[Run], headline: str, baseline_row: str = BASELINE
) -> dict[tuple[str, int], Paired]:
    """(row, budget) -> each row against the baseline at its budget, on the cells and tasks both
    have."""
    scores = seed_tables(runs, lambda run: per_task(run.metrics, headline))
    results = {}
    for key, seeds, tasks in against_baseline(scores, baseline_row):
        row, baseline = scores[key], scores[(baseline_row, key[1])]
        table = np.array([[row[s][t] - baseline[s][t] for s in seeds] for t in tasks])
        results[key] = crossed_bootstrap(table)
    return results


def read_allocation(folder: Path) -> dict[str, tuple[float, float | None]]:
    """task -> (labels selected, mean confidence or None) from the run's allocation.csv; empty
    where the run wrote none (zero-shot). A NaN confidence is an unknown one."""
    path = folder / "allocation.csv"
    if not path.is_file():
        return {}
    allocation = {}
    for line in csv.DictReader(io.StringIO(path.read_text())):
        confidence = float(line["mean_confidence"]) if line.get("mean_confidence") else math.nan
        allocation[csv_cell(line["task"])] = (
            float(line["selected"]),
            None if math.isnan(confidence) else confidence,
        )
    return allocation


# (row, budget) -> per task: (task, labels it got, gain over zero-shot, mean confidence)
TaskGains = dict[tuple[str, int], list[tuple[str, float, float, float | None]]]


def task_gains(runs: list[Run], headline: str) -> TaskGains:
    """(row, budget) -> per task: (task, labels it got, gain over zero-shot, mean confidence),
    means over seeds; from each run's allocation.csv. The confidence is the mean of every run's
    reading: one value, unless the task's pool differs between cells (pool compositions).
    Empty without zero-shot runs."""
    zero = [per_task(r.metrics, headline) for r in runs if r.row == ZERO_SHOT]
    if not zero:
        return {}
    base = {
        task: float(np.mean([z[task] for z in zero]))
        for task in set.intersection(*[set(z) for z in zero])
    }
    collected: dict[tuple[str, int], dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    readings: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.row == ZERO_SHOT:
            continue
        values = per_task(run.metrics, headline)
        for task, (selected, task_confidence) in read_allocation(run.folder).items():
            if task_confidence is not None:
                readings[task].append(task_confidence)
            if task in values and task in base:
                collected[(run.row, run.budget)][task].append((selected, values[task] - base[task]))
    return {
        key: [
            (
                task,
                float(np.mean([p[0] for p in points])),
                float(np.mean([p[1] for p in points])),
                float(np.mean(readings[task])) if readings[task] else None,
            )
            for task, points in sorted(tasks.items())
        ]
        for key, tasks in sorted(collected.items())
    }


# gains are differences of means of scores in [0, 1]: rounded to this many decimals, equal gains
# computed by different sums tie (0.4 - 0.4 is 0, mean([0.4] * 3) - 0.4 is 6e-17)
GAIN_DECIMALS = 12


def premise_check(gains: TaskGains) -> dict[tuple[str, int], Correlation]:
    """(row, budget) -> the correlation of task confidence with gain over zero-shot per label, over
    the tasks that got labels and have a confidence."""
    results = {}
    for key, points in gains.items():
        kept = [
            (c, round(gain / labels, GAIN_DECIMALS))
            for _, labels, gain, c in points
            if labels > 0 and c is not None
        ]
        correlation = spearman(np.array([k[0] for k in kept]), np.array([k[1] for k in kept]))
        if correlation is not None:
            results[key] = correlation
    return results


# label counts are means over seeds: closer than this, a row and random gave a task the same
SAME_LABELS = 1e-9


@dataclass(frozen=True)
class TaskGroup:
    """The tasks a row gave more (or fewer) labels than random: how many, by how many labels on
    average, and their mean score difference with random."""

    tasks: int
    labels_moved: float
    score_difference: float

    @property
    def per_label(self) -> float:
        """Score gained (or lost) per label moved: what the move bought."""
        return self.score_difference / self.labels_moved


@dataclass(frozen=True)
class Reallocation:
    """Where a row put its labels against random at its budget, and what that bought."""

    more: TaskGroup | None
    fewer: TaskGroup | None
    tasks: int
    score_difference: float  # mean over all the tasks: the paired table's difference


def reallocation_check(runs: list[Run], headline: str) -> dict[tuple[str, int], Reallocation]:
    """(row, budget) -> per task, the row's labels and score minus random's, paired by seed and
    averaged over the seeds both ran; the tasks given more labels and those given fewer."""

    def outcomes(run: Run) -> dict[str, tuple[float, float]]:
        scores = per_task(run.metrics, headline)
        return {
            t: (n, scores[t]) for t, (n, _) in read_allocation(run.folder).items() if t in scores
        }

    tables = seed_tables(runs, outcomes)
    results = {}
    for key, seeds, tasks in against_baseline(tables):
        row, baseline = tables[key], tables[(BASELINE, key[1])]
        moved = np.array(
            [[np.subtract(row[s][t], baseline[s][t]) for s in seeds] for t in tasks]
        ).mean(axis=1)  # (task, [labels, score])
        labels, scores = moved[:, 0], moved[:, 1]
        results[key] = Reallocation(
            _task_group(labels > SAME_LABELS, labels, scores),
            _task_group(labels < -SAME_LABELS, -labels, scores),
            len(tasks),
            float(scores.mean()),
        )
    return results


def _task_group(members: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> TaskGroup | None:
    if not members.any():
        return None
    return TaskGroup(
        int(members.sum()), float(labels[members].mean()), float(scores[members].mean())
    )


def table_axes(cells: Cells) -> tuple[list[str], list[int]]:
    """The rows and the budgets the cells span, sorted: a table's axes."""
    return sorted({row for row, _ in cells}), sorted({budget for _, budget in cells})
