"""The report's plots: each headline against budget, the paired differences, each task's gain
against its labels, and the labels each row gave each task."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

from labelbudget.rendering import png_bytes, pyplot
from labelbudget.report.comparisons import BASELINE, ZERO_SHOT, Cells, TaskGains, table_axes
from labelbudget.report.statistics import Correlation, Paired


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
    rows, budgets = table_axes(cells)
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
