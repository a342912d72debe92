"""Compare runs: python -m labelbudget.report <run or sweep folder> [...] [--out DIR] [--cells KEY]

Finds every metrics.json below the folders and lays the runs out as the paper's tables, with a
verdict on each selector:

- Runs that differ in any setting but the selector, its options, the budget and the seed go to
  separate tables, titled by the settings that differ: numbers of two datasets, models or
  learning rates are never averaged together.
- Rows are the selector plus its non-default options (`weighted_task (confidence=token_geomean)`),
  columns the budget, cells the mean ± standard error over seeds.
- Each row is compared with random, and with task_diversity (even spreading, the bar an allocator
  has to beat), at the same budget, paired by seed and task: the mean difference of the macro
  headline and a 95% interval from a crossed bootstrap that resamples tasks and seeds
  independently (so both the spread of tasks and the noise of seeds count), with the minimum
  detectable effect at 80% power. A cell says "better" or "worse" only where the interval
  excludes 0, else "not shown".
- `--cells KEY ...`: settings that repeat a row with the seed rather than separate tables (a
  study's pool compositions, `dataset.composition_seed`); each (value, seed) pair is one cell.
- The paper's premise, that low-confidence tasks gain more per label, is checked per row: the
  Spearman correlation over tasks of a task's mean confidence with its gain over zero-shot per
  label, with a permutation p-value. The premise predicts a negative correlation.
- The mechanism, per row against random at its budget and paired by seed: the tasks it gave more
  labels and those it gave fewer, and the score each group moved per label: the row wins only
  where what the first gains per label outweighs what the second loses.
- Plots: each headline against budget (one line per row, standard-error bars); the paired
  differences with their intervals (one panel per budget); each task's gain over zero-shot
  against the labels it got, coloured by its mean confidence; and the labels each row gave each
  task (one heatmap per budget).

Writes report.md, report.csv (every metric's cells) and plots/.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from labelbudget.configs import determining_settings
from labelbudget.efficiency.predictor import rank
from labelbudget.errors import DataError
from labelbudget.evaluation.base import HEADLINES, PER_TASK, per_task
from labelbudget.io import atomic_write_bytes, atomic_write_text, csv_cell, csv_text
from labelbudget.rendering import png_bytes, pyplot
from labelbudget.runs import RunFolder, RunRecord, changed_data, finished_runs

BASELINE = "random"  # the floor; the mechanism check compares with it
# every row is paired with each: random, and even spreading, the bar an allocator has to beat
BASELINES = (BASELINE, "task_diversity")
# the true difference a paired comparison finds 80% of the time at the two-sided 5% level
MDE_Z = 1.959964 + 0.841621
ZERO_SHOT = "zero-shot"
BOOTSTRAP_DRAWS = 10_000
PERMUTATIONS = 10_000
# what distinguishes runs within one table; everything else in `config` separates tables
WITHIN_TABLE = ("seed", "budget", "selector")


@dataclass(frozen=True)
class Run:
    folder: Path
    row: str  # selector and its non-default options
    budget: int
    cell: tuple[str, ...]  # what repeats a row: its seed, and the `--cells` settings' values
    metrics: dict[str, float]
    setting: tuple[tuple[str, str], ...]  # every other config value, flattened
    data: dict[str, Any] | None = None  # the pool's and test split's hashes (RunRecord.data)


def row_name(identity: dict[str, Any]) -> str:
    options = identity.get("selector_options") or {}
    if not options:
        return identity["selector"]
    return (
        f"{identity['selector']} ("
        + ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
        + ")"
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
        int(identity["budget"]),
        (*cell, f"seed={int(identity['seed'])}"),
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
    Runs recorded before labelbudget kept the hashes cannot be checked and are let through."""
    first = next((run for run in runs if run.data is not None), None)
    for run in runs:
        changes = changed_data(first.data, run.data) if run.data is not None else []
        if changes:
            raise DataError(
                str(run.folder),
                f"has the settings of {first.folder} but other data: {'; '.join(changes)} "
                f"(there: {first.folder}, now: this run); rerun the runs of the old data, or "
                "report the two apart",
            )


def check_one_run_per_cell(runs: list[Run]) -> None:
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


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n)); 0 error for one run."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


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


@dataclass(frozen=True)
class Paired:
    mean: float
    low: float
    high: float
    tasks: int
    seeds: int  # cells: seeds, or (`--cells` settings, seed) pairs
    mde: float  # minimum detectable effect: MDE_Z bootstrap standard errors

    @property
    def verdict(self) -> str:
        """ "not shown" where the interval holds 0: no difference is shown, and none is proved."""
        return "better" if self.low > 0 else "worse" if self.high < 0 else "not shown"


def crossed_bootstrap(
    differences: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> Paired:
    """Mean of a (task x seed) table of paired differences and its 95% percentile interval, from
    resampling tasks and seeds independently with replacement: each draw's mean is
    sum_ts c_t d_ts e_s / (T S), c and e the times each task and seed was drawn."""
    n_tasks, n_seeds = differences.shape
    rng = np.random.default_rng(seed)
    task_counts, seed_counts = (draw_counts(rng, n, draws) for n in (n_tasks, n_seeds))
    means = np.einsum("dt,ts,ds->d", task_counts, differences, seed_counts) / (n_tasks * n_seeds)
    low, high = np.percentile(means, [2.5, 97.5])
    mde = MDE_Z * float(means.std())
    return Paired(float(differences.mean()), float(low), float(high), n_tasks, n_seeds, mde)


def draw_counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """(draws, n): how often each of n items is drawn in each of `draws` resamples of size n."""
    picks = rng.integers(0, n, (draws, n)) + n * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n)


# (row, budget) -> cell -> task -> a value of that run
SeedTables = dict[tuple[str, int], dict[tuple[str, ...], dict[str, Any]]]


def seed_tables(runs: list[Run], value: Callable[[Run], dict[str, Any]]) -> SeedTables:
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


@dataclass(frozen=True)
class Correlation:
    rho: float
    p: float
    tasks: int


def spearman(
    x: np.ndarray, y: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0
) -> Correlation | None:
    """Spearman's rho (Pearson's on average ranks) and a two-sided permutation p-value,
    (1 + #{|rho of y's ranks permuted| >= |rho|}) / (1 + permutations); None when a side is
    constant or there are fewer than 3 points."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rx, ry = rank(x), rank(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = np.sqrt((rx**2).sum() * (ry**2).sum())
    rho = float(rx @ ry / scale)
    rng = np.random.default_rng(seed)
    shuffled = ry[np.argsort(rng.random((permutations, len(ry))), axis=1)]
    extreme = int((np.abs(shuffled @ rx / scale) >= abs(rho) - 1e-12).sum())
    return Correlation(rho, (1 + extreme) / (1 + permutations), len(x))


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


def by_budget(results: dict[tuple[str, int], Any]) -> list[tuple[tuple[str, int], Any]]:
    """(row, budget) results in table order: by budget, then row."""
    return sorted(results.items(), key=lambda item: (item[0][1], item[0][0]))


def _axes(cells: Cells) -> tuple[list[str], list[int]]:
    return sorted({row for row, _ in cells}), sorted({budget for _, budget in cells})


def _cell(value: tuple[float, float, int] | None, with_n: bool = False) -> str:
    if value is None:
        return ""
    return f"{value[0]:.4f} ± {value[1]:.4f}" + (f" (n={value[2]})" if with_n else "")


def headline_markdown(table: dict[str, Cells]) -> str:
    """One row per (row, budget), one column per evaluation's headline number."""
    columns = [m for m in HEADLINES if m in table]
    if not columns:
        return ""
    keys = sorted({key for m in columns for key in table[m]}, key=lambda k: (k[1], k[0]))
    lines = [
        "### headline metrics\n",
        "| selector | budget | seeds | " + " | ".join(columns) + " |",
        "|---|---:|---:|" + "---:|" * len(columns),
    ]
    for key in keys:
        seeds = max(table[m][key][2] for m in columns if key in table[m])
        lines.append(
            f"| {key[0]} | {key[1]} | {seeds} | "
            + " | ".join(_cell(table[m].get(key)) for m in columns)
            + " |"
        )
    return "\n".join(lines) + "\n"


def section_markdown(title: str, intro: str, header: str, rule: str, rows: list[str]) -> str:
    """A report section: its title, what it measures, and a table; empty without rows."""
    if not rows:
        return ""
    return "\n".join([f"### {title}\n", f"{intro}\n", header, rule, *rows]) + "\n"


def signed(value: float) -> str:
    """+0.1234; a difference that rounds to zero is +0.0000, never -0.0000 from float noise."""
    return f"{round(value, 4) + 0.0:+.4f}"


def paired_markdown(
    headline: str, paired: dict[tuple[str, int], Paired], baseline_row: str = BASELINE
) -> str:
    return section_markdown(
        f"{headline}: paired difference with {baseline_row} at the same budget",
        f"Mean over (task, seed) cells of the row's minus {baseline_row}'s per-task score; 95% "
        f"interval from a crossed bootstrap over tasks and seeds ({BOOTSTRAP_DRAWS:,} draws). "
        "MDE: the true difference this comparison finds with 80% power (two-sided 5%), 2.8 "
        'bootstrap standard errors. "not shown": the interval holds 0; differences beyond its '
        "ends are excluded, smaller ones are not.",
        "| selector | budget | difference | 95% interval | tasks x seeds | verdict | MDE |",
        "|---|---:|---:|---|---:|---|---:|",
        [
            f"| {row} | {budget} | {signed(result.mean)} | "
            f"[{signed(result.low)}, {signed(result.high)}] | "
            f"{result.tasks} x {result.seeds} | {result.verdict} | {result.mde:.4f} |"
            for (row, budget), result in by_budget(paired)
        ],
    )


def premise_markdown(headline: str, premise: dict[tuple[str, int], Correlation]) -> str:
    return section_markdown(
        f"{headline}: do low-confidence tasks gain more per label?",
        "Spearman's rho over tasks with labels between a task's mean confidence (the sequence "
        "probability of its pool answers under the base model) and its gain over zero-shot per label "
        f"(both means over seeds); two-sided p from {PERMUTATIONS:,} permutations. The paper's premise "
        "predicts rho < 0.",
        "| selector | budget | rho | p | tasks |",
        "|---|---:|---:|---:|---:|",
        [
            f"| {row} | {budget} | {check.rho:+.3f} | {check.p:.3f} | {check.tasks} |"
            for (row, budget), check in by_budget(premise)
        ],
    )


def reallocation_markdown(headline: str, checks: dict[tuple[str, int], Reallocation]) -> str:
    def group(g: TaskGroup | None) -> str:
        if g is None:
            return "0 | | |"
        return f"{g.tasks} | {g.labels_moved:.1f} | {g.score_difference:+.4f} | {g.per_label:+.4f}"

    return section_markdown(
        f"{headline}: where the labels went, against {BASELINE}",
        f"Per task, the row's labels and score minus {BASELINE}'s, paired by seed and averaged over "
        "the seeds both ran; the tasks the row gave more labels (how many, by how many labels on "
        "average, their mean score difference and that per label moved) and those it gave fewer. "
        "Labels help a task whoever picks them, so the first group gains and the second loses for "
        "almost any row; the move pays only where the score gained per label moved in outweighs "
        "the score lost per label moved out (at an equal budget about as many labels move each "
        "way). The last column, over all tasks, is the paired table's difference.",
        "| selector | budget | more labels: tasks | by | score difference | per label | "
        "fewer labels: tasks | by | score difference | per label | all tasks | score difference |",
        "|---|---:|" + "---:|" * 10,
        [
            f"| {row} | {budget} | {group(check.more)} | {group(check.fewer)} | "
            f"{check.tasks} | {check.score_difference:+.4f} |"
            for (row, budget), check in by_budget(checks)
        ],
    )


def metric_markdown(metric: str, cells: Cells) -> str:
    rows, budgets = _axes(cells)
    lines = [
        f"### {metric}\n",
        "| selector | " + " | ".join(str(b) for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    lines += [
        f"| {row} | " + " | ".join(_cell(cells.get((row, b)), with_n=True) for b in budgets) + " |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def cells_csv(tables: list[tuple[str, dict[str, Cells]]]) -> str:
    return csv_text(
        ["setting", "metric", "selector", "budget", "mean", "standard_error", "n_seeds"],
        (
            [title, metric, row, budget, f"{mean:.6g}", f"{error:.6g}", n]
            for title, table in tables
            for metric, cells in table.items()
            for (row, budget), (mean, error, n) in sorted(cells.items())
        ),
    )


def row_styles(rows: list[str]) -> dict[str, dict[str, Any]]:
    """A colour and marker per row: tab20's 20 colours and 8 markers, both cycling, give each of
    up to 40 rows its own pair."""
    colours = pyplot().get_cmap("tab20").colors
    markers = "osD^vP*X"
    return {
        row: {"color": colours[i % len(colours)], "marker": markers[i % len(markers)]}
        for i, row in enumerate(rows)
    }


def plot_metric(metric: str, cells: Cells, title: str = "") -> bytes:
    """The metric against budget, a line per row with standard-error bars, rows nudged apart along
    the budget axis so that their bars do not cover each other; zero-shot as a level."""
    plt = pyplot()
    rows, budgets = _axes(cells)
    lines = [row for row in rows if row != ZERO_SHOT]
    styles = row_styles(lines)
    nudge = 0.006 * max(budgets)
    fig, ax = plt.subplots(figsize=(11, 5.5))
    if (ZERO_SHOT, 0) in cells:
        ax.axhline(
            cells[(ZERO_SHOT, 0)][0], color="grey", linestyle="--", linewidth=1, label=ZERO_SHOT
        )
    for i, row in enumerate(lines):
        points = [(b, *cells[(row, b)][:2]) for b in budgets if (row, b) in cells]
        shift = (i - (len(lines) - 1) / 2) * nudge
        ax.errorbar(
            [p[0] + shift for p in points],
            [p[1] for p in points],
            yerr=[p[2] for p in points],
            capsize=3,
            markersize=5,
            linewidth=1.2,
            label=row,
            **styles[row],
        )
    ax.set_xticks([b for b in budgets if b > 0])
    ax.set_xlabel("budget (labelled prompts)")
    ax.set_ylabel(metric)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(
        f"{metric}: mean ± standard error over seeds" + (f"\n{title}" if title else ""), fontsize=9
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return png_bytes(fig, dpi=110)


VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "not shown": "tab:grey"}


def plot_paired(
    headline: str,
    paired: dict[tuple[str, int], Paired],
    title: str = "",
    baseline_row: str = BASELINE,
) -> bytes:
    """The paired differences with the baseline and their 95% intervals, a panel per budget, rows
    sorted by difference and coloured by verdict."""
    plt = pyplot()
    budgets = sorted({budget for _, budget in paired})
    rows_at = {
        b: sorted((r for r, budget in paired if budget == b), key=lambda r: paired[(r, b)].mean)
        for b in budgets
    }
    fig, axes = plt.subplots(
        len(budgets),
        1,
        figsize=(10, 1.2 + 0.32 * sum(len(r) for r in rows_at.values()) + 0.6 * len(budgets)),
        height_ratios=[len(rows_at[b]) + 1 for b in budgets],
        squeeze=False,
        sharex=True,
    )
    for ax, budget in zip(axes[:, 0], budgets):
        for y, row in enumerate(rows_at[budget]):
            result = paired[(row, budget)]
            ax.errorbar(
                result.mean,
                y,
                xerr=[[result.mean - result.low], [result.high - result.mean]],
                fmt="o",
                capsize=3,
                color=VERDICT_COLOURS[result.verdict],
            )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(rows_at[budget])), rows_at[budget], fontsize=8)
        ax.set_ylim(-0.7, len(rows_at[budget]) - 0.3)
        ax.set_title(f"budget {budget}", fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel(
        f"{headline}: difference with {baseline_row}, mean over (task, seed) and 95% interval"
    )
    fig.suptitle(
        f"paired with {baseline_row}: green better, red worse, grey not shown"
        + (f"\n{title}" if title else ""),
        fontsize=9,
    )
    fig.tight_layout()
    return png_bytes(fig, dpi=110)


def plot_task_gains(
    gains: TaskGains,
    premise: dict[tuple[str, int], Correlation],
    budget: int,
    headline: str,
) -> bytes:
    """One panel per row at `budget`: each task's gain over zero-shot against the labels it got,
    coloured by the task's mean confidence, with the premise check's correlation."""
    plt = pyplot()
    panels = [(row, points) for (row, b), points in gains.items() if b == budget]
    cols = min(4, len(panels))
    n_rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(
        n_rows,
        cols,
        figsize=(3.6 * cols + 1.5, 3.0 * n_rows + 1.2),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    from matplotlib.colors import LogNorm, Normalize

    confidences = [c for _, points in panels for *_, c in points if c is not None]
    low, high = (min(confidences), max(confidences)) if confidences else (0.0, 1.0)
    # sequence confidences span orders of magnitude: a log scale then keeps the tasks apart
    norm = LogNorm(low, high) if low > 0 and high > 10 * low else Normalize(low, high)
    scatter = None
    for ax, (row, points) in zip(axes.flat, panels):
        colours = [c if c is not None else np.nan for *_, c in points]
        scatter = ax.scatter(
            [p[1] for p in points],
            [p[2] for p in points],
            c=colours,
            cmap="viridis",
            norm=norm,
            s=18,
        )
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(textwrap.fill(row, 48), fontsize=8)
        if (row, budget) in premise:
            check = premise[(row, budget)]
            ax.text(
                0.97,
                0.95,
                f"rho(conf, gain/label) = {check.rho:+.2f}, p = {check.p:.2f}",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=7,
            )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    fig.supxlabel("labels the task got (mean over seeds)")
    fig.supylabel(f"gain over zero-shot ({headline}, per task)")
    fig.suptitle(
        f"budget {budget}: per-task gain against labels, colour = task's mean confidence",
        fontsize=10,
    )
    if scatter is not None:
        fig.colorbar(scatter, ax=axes, shrink=0.6, label="mean confidence")
    return png_bytes(fig, dpi=110)


def plot_allocation(gains: TaskGains, budget: int) -> bytes:
    """Labels per task (mean over seeds) of every row at `budget`: tasks down the side by rising
    mean confidence, rows across, so that where each selector put its labels reads at a glance."""
    plt = pyplot()
    # random first: every other column is read against it
    rows = sorted((row for row, b in gains if b == budget), key=lambda row: (row != BASELINE, row))
    labels = {row: {task: n for task, n, _, _ in gains[(row, budget)]} for row in rows}
    confidence = {task: c for row in rows for task, _, _, c in gains[(row, budget)]}
    tasks = sorted(confidence, key=lambda t: (confidence[t] is None, confidence[t] or 0.0, t))
    grid = np.array([[labels[row].get(task, np.nan) for row in rows] for task in tasks])
    fig, ax = plt.subplots(
        figsize=(4.5 + 0.55 * len(rows), 2.5 + 0.26 * len(tasks)), layout="constrained"
    )
    colours = plt.get_cmap("Blues").with_extremes(bad="lightgrey")  # tasks a row did not score
    image = ax.imshow(grid, cmap=colours, aspect="auto")
    darkest = np.nanmax(grid)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(
                j,
                i,
                f"{value:.0f}" if value == round(value) else f"{value:.1f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if value > 0.6 * darkest else "black",
            )
    ax.set_xticks(
        range(len(rows)),
        [textwrap.fill(row, 26) for row in rows],
        rotation=40,
        ha="right",
        fontsize=7,
    )
    ax.set_yticks(
        range(len(tasks)),
        [t if confidence[t] is None else f"{t} ({confidence[t]:.1e})" for t in tasks],
        fontsize=7,
    )
    ax.set_title(
        f"budget {budget}: labels per task, mean over seeds\n"
        "tasks by rising mean confidence (in brackets)",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, shrink=0.6, label="labels")
    return png_bytes(fig, dpi=110)


def write_report(
    folders: list[Path], out: Path, cells: tuple[str, ...] = (), skip_unreadable: bool = False
) -> str:
    """report.md, report.csv and plots/ in `out`; the settings in `cells` repeat rows (each value
    with each seed is one cell of the paired bootstraps) instead of separating tables. An
    unreadable metrics.json stops the report, naming it, unless `skip_unreadable`: then the
    report leaves it out and lists it first."""
    skipped: list[DataError] = []
    found = finished_runs(folders, skipped)
    if skipped and not skip_unreadable:
        first, more = skipped[0], f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DataError(
            first.source, f"{first.message}{more}; --skip-unreadable reports the other runs"
        )
    runs = [as_run(folder, record, cells) for folder, record in found]
    tables = []
    parts = [f'Cells: ({", ".join(cells)}, seed); read "seeds" below as these.\n'] if cells else []
    if skipped:
        parts.append(
            "Left out, unreadable (--skip-unreadable):\n" + "".join(f"- {e}\n" for e in skipped)
        )
    for index, (title, members) in enumerate(split_by_setting(runs)):
        check_one_data_per_table(members)
        check_one_run_per_cell(members)
        table = aggregate(members)
        tables.append((title, table))
        suffix = f"_{index + 1}" if title else ""
        parts.append(f"## {title}\n" if title else "")
        parts.append(headline_markdown(table))
        for headline in (m for m in HEADLINES if m in table):
            name = headline.replace("/", "_")
            plots = {f"{name}{suffix}.png": plot_metric(headline, table[headline], title)}
            for baseline in BASELINES:
                paired = paired_with_baseline(members, headline, baseline)
                parts.append(paired_markdown(headline, paired, baseline))
                versus = "" if baseline == BASELINE else f"_vs_{baseline}"
                if paired:
                    plots[f"paired{versus}_{name}{suffix}.png"] = plot_paired(
                        headline, paired, title, baseline
                    )
            if headline in PER_TASK:
                gains = task_gains(members, headline)
                premise = premise_check(gains)
                parts.append(premise_markdown(headline, premise))
                parts.append(reallocation_markdown(headline, reallocation_check(members, headline)))
                for budget in sorted({b for _, b in gains}):
                    plots[f"task_gain_{name}_b{budget}{suffix}.png"] = plot_task_gains(
                        gains, premise, budget, headline
                    )
                    if len({row for row, b in gains if b == budget}) > 1:
                        plots[f"allocation_{name}_b{budget}{suffix}.png"] = plot_allocation(
                            gains, budget
                        )
            for filename, png in plots.items():
                atomic_write_bytes(out / "plots" / filename, png)
        parts += [metric_markdown(metric, cells) for metric, cells in table.items()]
    text = "\n".join(part for part in parts if part)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.csv", cells_csv(tables))
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m labelbudget.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write (default: the first folder)"
    )
    parser.add_argument(
        "--cells",
        nargs="+",
        default=[],
        metavar="KEY",
        help="settings that repeat a row with the seed instead of separating tables "
        "(e.g. dataset.composition_seed: the study's pool compositions)",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out (and list) each metrics.json that cannot be read, rather than stop",
    )
    args = parser.parse_args(argv)
    out = args.out or args.folders[0]
    print(write_report(args.folders, out, tuple(args.cells), args.skip_unreadable))
