"""The report's markdown tables and its CSV."""

from __future__ import annotations

from typing import Any

from labelbudget.io import csv_text
from labelbudget.report.comparisons import BASELINE, Cells, Reallocation, TaskGroup, table_axes
from labelbudget.report.statistics import BOOTSTRAP_DRAWS, PERMUTATIONS, Correlation, Paired


def by_budget(results: dict[tuple[str, int], Any]) -> list[tuple[tuple[str, int], Any]]:
    """(row, budget) results in table order: by budget, then row."""
    return sorted(results.items(), key=lambda item: (item[0][1], item[0][0]))


def _cell(value: tuple[float, float, int] | None, with_n: bool = False) -> str:
    if value is None:
        return ""
    return f"{value[0]:.4f} ± {value[1]:.4f}" + (f" (n={value[2]})" if with_n else "")


def headline_markdown(table: dict[str, Cells], headlines: list[str]) -> str:
    """One row per (row, budget), one column per evaluation's headline number."""
    columns = [m for m in headlines if m in table]
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
    """The section of each row's paired difference with `baseline_row` at its budget, with
    its interval, verdict and MDE."""
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
    """The premise check's section: per row, the correlation of task confidence with gain
    per label."""
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
    """The mechanism's section: per row, the tasks it gave more and fewer labels than
    random, and what each move bought per label."""

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
    """One metric's table: rows by budgets, each cell mean ± standard error (n)."""
    rows, budgets = table_axes(cells)
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
    """report.csv: every cell of every metric of every table, one line each."""
    return csv_text(
        ["setting", "metric", "selector", "budget", "mean", "standard_error", "n_seeds"],
        (
            [title, metric, row, budget, f"{mean:.6g}", f"{error:.6g}", n]
            for title, table in tables
            for metric, cells in table.items()
            for (row, budget), (mean, error, n) in sorted(cells.items())
        ),
    )
