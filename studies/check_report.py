"""Recompute a study's report.md from its run files, without labelbudget's code.

    python studies/check_report.py studies/synthetic [--bootstrap-seeds 6]
    python studies/check_report.py studies/allocation --cells dataset.composition_seed

An independent check of `python -m labelbudget.report <study>`: the headline table (mean and
standard error over seeds), the paired differences with random and with task_diversity (the mean
exactly; the 95% crossed bootstrap interval, tasks and seeds resampled independently, and the
minimum detectable effect at 80% power, redrawn with several seeds, and whether any verdict
flips), and the premise check's Spearman rho. `--cells`: as the report's, settings that join the
seed in the cell a row repeats over. Reads only each run's
metrics.json and allocation.csv and the report's own tables; numpy is its one dependency.
Exits 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

PER_TASK_PREFIX = {"tasks/macro": "tasks/", "bbh/macro": "bbh/task/"}
DRAWS = 10_000
INTERVAL_TOLERANCE = 0.005  # Monte Carlo error of a 10,000-draw percentile end
MDE_Z = 1.959964 + 0.841621  # z of a two-sided 5% test plus z of 80% power


def row_name(run: dict) -> str:
    options = run["selector_options"] or {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return run["selector"] + (f" ({shown})" if shown else "")


def setting(config: dict, key: str):
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def load_runs(
    study: Path, headline: str, cells: list[str]
) -> dict[tuple[str, int], dict[tuple, dict]]:
    """(row, budget) -> cell (the `cells` settings' values and the seed) -> {"headline",
    "tasks": {task: score}, "allocation": {task: row}}."""
    prefix = PER_TASK_PREFIX[headline]
    groups: dict[tuple[str, int], dict[tuple, dict]] = {}
    for file in sorted(study.glob("*/metrics.json")):
        record = json.loads(file.read_text())
        run, metrics = record["run"], record["metrics"]
        allocation = file.parent / "allocation.csv"
        cell = (*(json.dumps(setting(record["config"], k)) for k in cells), int(run["seed"]))
        groups.setdefault((row_name(run), int(run["budget"])), {})[cell] = {
            "headline": metrics[headline],
            "tasks": {
                k.removeprefix(prefix): v
                for k, v in metrics.items()
                if k.startswith(prefix) and k not in (headline, f"{prefix}micro")
            },
            "allocation": {r["task"]: r for r in csv.DictReader(allocation.open())}
            if allocation.is_file()
            else {},
        }
    return groups


def report_table(report: str, title: str) -> list[list[str]]:
    """The body rows of the report's table under the heading that starts with `title`."""
    for section in re.split(r"^### ", report, flags=re.M):
        if section.startswith(title):
            lines = [line for line in section.splitlines() if line.startswith("| ")][1:]
            return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    raise SystemExit(f"report.md has no table '{title}'")


def ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's rho uses."""
    order = np.argsort(values, kind="stable")
    result = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        result[order[start : end + 1]] = (start + end) / 2
        start = end + 1
    return result


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def crossed_interval(cells: np.ndarray, seed: int) -> tuple[float, float, float]:
    """95% percentile interval of the mean over (task, seed) cells, tasks and seeds resampled,
    and the minimum detectable effect: MDE_Z standard deviations of the resampled means."""
    rng = np.random.default_rng(seed)
    n_tasks, n_seeds = cells.shape
    means = np.empty(DRAWS)
    for draw in range(DRAWS):
        tasks = rng.integers(0, n_tasks, n_tasks)
        seeds = rng.integers(0, n_seeds, n_seeds)
        means[draw] = cells[np.ix_(tasks, seeds)].mean()
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high), MDE_Z * float(means.std())


def verdict(low: float, high: float) -> str:
    return "better" if low > 0 else "worse" if high < 0 else "not shown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--bootstrap-seeds", type=int, default=6)
    parser.add_argument("--cells", nargs="+", default=[], metavar="KEY")
    args = parser.parse_args(argv)
    report = (args.study / "report.md").read_text()
    headline = report_table(report, "headline metrics")
    metric = re.search(r"^\| selector \| budget \| seeds \| (\S+) \|", report, flags=re.M).group(1)
    groups = load_runs(args.study, metric, args.cells)
    problems = []

    for name, budget, _, shown in headline:
        scores = np.array([run["headline"] for run in groups[(name, int(budget))].values()])
        error = scores.std(ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else 0.0
        mine = f"{scores.mean():.4f} ± {error:.4f}"
        if not shown.startswith(mine):
            problems.append(f"headline {name} at {budget}: report {shown}, recomputed {mine}")
    print(f"headline: {len(headline)} cells checked")

    widest, compared = 0.0, 0
    for baseline in ("random", "task_diversity"):
        title = f"{metric}: paired difference with {baseline} "
        paired = report_table(report, title) if f"### {title}" in report else []
        for name, budget, difference, interval, _, shown, mde in paired:
            row, base = groups[(name, int(budget))], groups[(baseline, int(budget))]
            seeds = sorted(set(row) & set(base))
            tasks = sorted(
                set.intersection(*(set(row[s]["tasks"]) & set(base[s]["tasks"]) for s in seeds))
            )
            cells = np.array(
                [[row[s]["tasks"][t] - base[s]["tasks"][t] for s in seeds] for t in tasks]
            )
            if f"{round(cells.mean(), 4) + 0.0:+.4f}" != difference:
                problems.append(
                    f"{name} at {budget}: difference {difference}, recomputed {cells.mean():+.4f}"
                )
            low, high = (float(v) for v in interval.strip("[]").split(","))
            for seed in range(args.bootstrap_seeds):
                *ends, detectable = crossed_interval(cells, seed)
                widest = max(
                    widest,
                    abs(ends[0] - low),
                    abs(ends[1] - high),
                    abs(detectable - float(mde)),
                )
                if verdict(*ends) != shown:
                    problems.append(
                        f"{name} at {budget} against {baseline}: verdict {shown}, "
                        f"bootstrap seed {seed} gives {verdict(*ends)} {ends}"
                    )
            compared += 1
    print(
        f"paired: {compared} rows; interval ends and MDEs within {widest:.4f} of the report's over "
        f"{args.bootstrap_seeds} bootstrap seeds"
    )
    if widest > INTERVAL_TOLERANCE:
        problems.append(f"an interval end differs by {widest:.4f} (> {INTERVAL_TOLERANCE})")

    confidences: dict[str, list[float]] = {}  # every run's reading, as the report averages them
    for runs in groups.values():
        for run in runs.values():
            for task, row in run["allocation"].items():
                if row.get("mean_confidence"):
                    confidences.setdefault(task, []).append(float(row["mean_confidence"]))
    if not args.cells and any(len(set(values)) > 1 for values in confidences.values()):
        problems.append("runs disagree on a task's mean confidence")
    confidence = {task: float(np.mean(values)) for task, values in confidences.items()}
    zero_shot = groups[("zero-shot", 0)]
    premise = report_table(report, f"{metric}: do low")
    for name, budget, rho, _, n_tasks in premise:
        runs = list(groups[(name, int(budget))].values())
        tasks = sorted(confidence)
        before = {t: np.mean([z["tasks"][t] for z in zero_shot.values()]) for t in tasks}
        labels = {t: np.mean([float(r["allocation"][t]["selected"]) for r in runs]) for t in tasks}
        kept = [t for t in tasks if labels[t] > 0]
        # rounded, so that equal gains reached by different float sums tie
        per_label = [
            round((np.mean([r["tasks"][t] for r in runs]) - before[t]) / labels[t], 12)
            for t in kept
        ]
        mine = spearman(np.array([confidence[t] for t in kept]), np.array(per_label))
        if f"{mine:.3f}" != f"{float(rho):.3f}" or len(kept) != int(n_tasks):
            problems.append(
                f"premise {name} at {budget}: rho {rho} over {n_tasks}, recomputed {mine:.3f} over {len(kept)}"
            )
    print(f"premise: {len(premise)} rho checked")

    for problem in problems:
        print("DISAGREES:", problem)
    print("agrees with report.md" if not problems else f"{len(problems)} disagreements")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
