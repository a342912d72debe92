"""What select.py leaves in the run folder: the prompts to annotate, the per-task allocation
table and its bar chart, and a summary printed for the person at the terminal."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelbudget.data.schema import Pool
from labelbudget.io import atomic_write_bytes, atomic_write_text, csv_text, jsonl_text
from labelbudget.rendering import png_bytes, pyplot
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import Candidates, Selection


@dataclass(frozen=True)
class TaskRow:
    """One task's line of allocation.csv."""

    task: str
    pool_size: int
    mean_confidence: float | None  # the paper's conf_t: mean of the sequence probability
    allocated: float | None
    selected: int


def task_rows(pool: Pool, selection: Selection, scores: Scores | None) -> list[TaskRow]:
    """Each task's pool size, mean confidence (where scored), allocation and selected count."""
    selected = Counter(pool[i].task for i in _rows_of(pool, selection.ids))
    confidence: dict[str, float | None] = dict.fromkeys(pool.task_sizes())
    if scores is not None:
        task_indices = Candidates(pool.ids, pool.tasks).task_rows()
        confidence = dict(
            zip(task_indices, np.exp(scores.task_log_confidence(task_indices)).tolist())
        )
    rows = []
    for task, size in pool.task_sizes().items():
        allocated = None if selection.allocation is None else selection.allocation[task]
        rows.append(TaskRow(task, size, confidence[task], allocated, selected[task]))
    return rows


def _rows_of(pool: Pool, ids: list[str]) -> list[int]:
    position = {id_: i for i, id_ in enumerate(pool.ids)}
    return [position[id_] for id_ in ids]


def selection_jsonl(pool: Pool, selection: Selection) -> str:
    """One line per chosen prompt, rank 1 first: what an annotator needs, no hidden response. The
    fingerprint of what is shown travels with the annotation, so the import can check it."""
    examples = (pool[row] for row in _rows_of(pool, selection.ids))
    return jsonl_text(
        {
            "rank": rank,
            "id": e.id,
            "task": e.task,
            "prompt": e.prompt,
            "context": e.context,
            "fingerprint": e.fingerprint,
        }
        for rank, e in enumerate(examples, start=1)
    )


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def allocation_csv(rows: list[TaskRow]) -> str:
    """allocation.csv's text."""
    return csv_text(
        ["task", "pool_size", "mean_confidence", "allocated", "selected"],
        (
            [r.task, r.pool_size, _fmt(r.mean_confidence, 6), _fmt(r.allocated, 6), r.selected]
            for r in rows
        ),
    )


def summary_table(rows: list[TaskRow], selector: str, budget: int) -> str:
    """The allocation as a text table, most selected first, for the terminal."""
    width = max(len("task"), *(len(r.task) for r in rows))
    header = f"{'task':<{width}}  {'pool':>6}  {'mean conf':>10}  {'allocated':>9}  {'selected':>8}"
    lines = [f"selector={selector}  budget={budget}", header, "-" * len(header)]
    for r in sorted(rows, key=lambda r: (-r.selected, r.task)):
        conf = "" if r.mean_confidence is None else f"{r.mean_confidence:.3g}"
        alloc = "" if r.allocated is None else f"{r.allocated:.4g}"
        lines.append(
            f"{r.task:<{width}}  {r.pool_size:>6}  {conf:>10}  {alloc:>9}  {r.selected:>8}"
        )
    covered = sum(r.selected > 0 for r in rows)
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<{width}}  {sum(r.pool_size for r in rows):>6}  {'':>10}  {'':>9}  {sum(r.selected for r in rows):>8}"
    )
    lines.append(f"tasks covered: {covered} of {len(rows)}")
    return "\n".join(lines)


def allocation_plot(rows: list[TaskRow], title: str) -> bytes:
    """Bar chart of selected prompts per task (like the paper's Figure 4), tasks ordered by
    selection, with each task's mean confidence on a second axis when known."""
    plt = pyplot()
    ordered = sorted(rows, key=lambda r: (-r.selected, r.task))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(ordered) + 2), 4.5))
    positions = np.arange(len(ordered))
    ax.bar(positions, [r.pool_size for r in ordered], color="#dddddd", label="pool size")
    ax.bar(positions, [r.selected for r in ordered], color="#3b75af", label="selected")
    ax.set_xticks(positions, [r.task for r in ordered], rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("prompts")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    if all(r.mean_confidence is not None for r in ordered):
        twin = ax.twinx()
        twin.plot(
            positions,
            [r.mean_confidence for r in ordered],
            "o",
            color="#d1495b",
            label="mean confidence",
        )
        twin.set_yscale("log")
        twin.set_ylabel("mean confidence (log scale)")
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig, dpi=120)


def selection_statistics(rows: list[TaskRow]) -> dict[str, float]:
    """Task coverage of a selection: tasks with at least one pick, and the entropy (nats) of the
    selected prompts' task distribution (log of the number of tasks when perfectly even)."""
    counts = np.array([r.selected for r in rows], dtype=np.float64)
    shares = counts[counts > 0] / counts.sum()
    return {
        "selection/tasks_covered": float((counts > 0).sum()),
        "selection/tasks_in_pool": float(len(rows)),
        "selection/allocation_entropy": float(-(shares * np.log(shares)).sum()),
    }


def write_selection_outputs(
    folder: Path, rows: list[TaskRow], pool: Pool, selection: Selection, selector: str, budget: int
) -> None:
    """Write selection.jsonl, allocation.csv and allocation.png from the per-task rows."""
    atomic_write_text(folder / "selection.jsonl", selection_jsonl(pool, selection))
    atomic_write_text(folder / "allocation.csv", allocation_csv(rows))
    atomic_write_bytes(
        folder / "allocation.png", allocation_plot(rows, f"{selector}, budget {budget}")
    )
