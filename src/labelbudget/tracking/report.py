"""Compare runs: python -m labelbudget.report <run or multirun folder> [...] [--out DIR]

Finds every metrics.json below the folders and lays the runs out as the paper's tables:
rows = selector, columns = budget, cells = mean +- standard error over seeds, one table per
metric, after a first table with each evaluation's headline number side by side. Writes report.csv, report.md and one plot of score against budget per metric.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path

from labelbudget.errors import DataError
from labelbudget.evaluation.base import HEADLINES
from labelbudget.io import atomic_write_bytes, atomic_write_text


def load_runs(folders: list[Path]) -> list[dict]:
    runs = []
    for folder in folders:
        files = sorted(Path(folder).rglob("metrics.json"))
        if not files:
            raise DataError(str(folder), "contains no metrics.json (is it a train.py run or multirun folder?)")
        for file in files:
            record = json.loads(file.read_text())
            for key in ("run", "metrics"):
                if key not in record:
                    raise DataError(str(file), "is not a labelbudget metrics file", field=key)
            runs.append(record)
    return runs


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n)); 0 error for one run."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def aggregate(runs: list[dict]) -> dict[str, dict[tuple[str, int], tuple[float, float, int]]]:
    """metric -> (selector, budget) -> (mean, standard error, number of seeds)."""
    grouped: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        key = (run["run"]["selector"], int(run["run"]["budget"]))
        for metric, value in run["metrics"].items():
            grouped[metric][key].append(float(value))
    return {
        metric: {key: (*mean_and_standard_error(values), len(values)) for key, values in cells.items()}
        for metric, cells in sorted(grouped.items())
    }


def _axes(cells) -> tuple[list[str], list[int]]:
    return sorted({s for s, _ in cells}), sorted({b for _, b in cells})


def headline_markdown(table: dict) -> str:
    """One row per (selector, budget), one column per evaluation's headline number."""
    columns = [m for m in HEADLINES if m in table]
    if not columns:
        return ""
    keys = sorted({key for m in columns for key in table[m]})
    lines = ["### headline metrics\n", "| selector | budget | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for selector, budget in keys:
        cells = [f"{table[m][(selector, budget)][0]:.4f} ± {table[m][(selector, budget)][1]:.4f}" if (selector, budget) in table[m] else ""
                 for m in columns]
        lines.append(f"| {selector} | {budget} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n"


def markdown(table: dict) -> str:
    parts = [headline_markdown(table)]
    for metric, cells in table.items():
        selectors, budgets = _axes(cells)
        parts.append(f"### {metric}\n")
        parts.append("| selector | " + " | ".join(str(b) for b in budgets) + " |")
        parts.append("|---|" + "---:|" * len(budgets))
        for s in selectors:
            row = [f"{cells[(s, b)][0]:.4f} ± {cells[(s, b)][1]:.4f} (n={cells[(s, b)][2]})" if (s, b) in cells else "" for b in budgets]
            parts.append(f"| {s} | " + " | ".join(row) + " |")
        parts.append("")
    return "\n".join(part for part in parts if part)


def csv_text(table: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "selector", "budget", "mean", "standard_error", "n_seeds"])
    for metric, cells in table.items():
        for (selector, budget), (mean, error, n) in sorted(cells.items()):
            writer.writerow([metric, selector, budget, f"{mean:.6g}", f"{error:.6g}", n])
    return out.getvalue()


def plot(metric: str, cells) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    selectors, budgets = _axes(cells)
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in selectors:
        points = [(b, *cells[(s, b)][:2]) for b in budgets if (s, b) in cells]
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o", capsize=3, label=s)
    ax.set_xlabel("budget (labelled prompts)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean ± standard error over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def write_report(folders: list[Path], out: Path) -> str:
    table = aggregate(load_runs(folders))
    text = markdown(table)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.csv", csv_text(table))
    for metric, cells in table.items():
        atomic_write_bytes(out / "plots" / f"{metric.replace('/', '_')}.png", plot(metric, cells))
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labelbudget.report", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the first folder)")
    args = parser.parse_args(argv)
    print(write_report(args.folders, args.out or args.folders[0]))
