"""Does a label-free probe rank tasks as the labelled one does? (issue 29, `probe_targets=self`)

    python studies/probe_agreement.py studies/probe [--synthetic studies/synthetic] [--probe 8]

Runs `select.py selector=predicted_efficiency selector.probe=K` on study_allocation's default
pool twice, with the probe's human labels (`probe_targets=labels`) and with the base model's own
greedy answers (`probe_targets=self`, no label spent), into <out>/labels and <out>/self (a run
already there is reused). Each writes probe_auc.json: every task's predicted AUC. It then ranks
the tasks by each, and against a measured curve per task from study_synthetic's runs on the same
pool: zero-shot, random at 150 and 300 (the labels each task got, mean over seeds) and Full (its
whole pool), through the paper's AUC (`data_efficiency_auc`); and against CoS-Low's own
32-label sample of study_synthetic (`<synthetic>/coslow/predicted_auc.json`, from equal pools).
Spearman's rho with a permutation p-value for each pair, in <out>/agreement.md. The label-free probe earns a study row only if it
ranks the measured curves as well as the labelled one.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from labelbudget.efficiency.curves import data_efficiency_auc
from labelbudget.report import spearman

MEASURED_ROWS = ("zero-shot", "random", "full")  # full: the whole pool (budget=all)
POOL = ["dataset.pool_per_task=40", "dataset.test_per_task=20", "dataset.pool_sizes=varied"]


def probe_auc(out: Path, targets: str, probe: int) -> dict[str, float]:
    folder = out / targets
    if not (folder / "probe_auc.json").is_file():
        command = [sys.executable, "select.py", "selector=predicted_efficiency"]
        command += [f"selector.probe={probe}", f"selector.probe_targets={targets}", "budget=300"]
        subprocess.run([*command, *POOL, f"hydra.run.dir={folder}"], check=True)
    return json.loads((folder / "probe_auc.json").read_text())["tasks"]


def measured_auc(synthetic: Path) -> dict[str, float]:
    """Task -> the AUC of its measured curve: (labels, score) means over seeds at zero-shot,
    random 150 and 300, and Full."""
    points: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for file in sorted(synthetic.glob("*/metrics.json")):
        record = json.loads(file.read_text())
        run = record["run"]
        if run["selector"] not in MEASURED_ROWS:
            continue
        allocation = file.parent / "allocation.csv"
        labels = (
            {r["task"]: float(r["selected"]) for r in csv.DictReader(allocation.open())}
            if allocation.is_file()
            else {}
        )
        for key, score in record["metrics"].items():
            task = key.removeprefix("tasks/")
            if key.startswith("tasks/") and task not in ("macro", "micro"):
                points[task][int(run["budget"])].append((labels.get(task, 0.0), score))
    curves = {}
    for task, by_budget in sorted(points.items()):
        curve = sorted(
            (round(float(np.mean([n for n, _ in p]))), float(np.mean([s for _, s in p])))
            for p in by_budget.values()
        )
        merged = dict(curve)  # two budgets that gave a task the same labels: the later score
        curves[task] = data_efficiency_auc(list(merged), list(merged.values()))
    return curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--synthetic", type=Path, default=Path("studies/synthetic"))
    parser.add_argument("--probe", type=int, default=8)
    args = parser.parse_args(argv)
    predicted = {t: probe_auc(args.out, t, args.probe) for t in ("labels", "self")}
    measured = measured_auc(args.synthetic)
    coslow = json.loads((args.synthetic / "coslow" / "predicted_auc.json").read_text())["tasks"]
    tasks = sorted(set(measured) & set(predicted["labels"]) & set(predicted["self"]) & set(coslow))
    series = {
        "labelled probe": predicted["labels"],
        "label-free probe": predicted["self"],
        "CoS-Low, 32 labels": coslow,
        "measured": measured,
    }
    lines = [
        f"# Label-free against labelled probe ({args.probe} per task, {len(tasks)} tasks)\n",
        "| pair | Spearman rho | permutation p |",
        "|---|---:|---:|",
    ]
    for a, b in (
        ("label-free probe", "labelled probe"),
        ("labelled probe", "measured"),
        ("label-free probe", "measured"),
        ("CoS-Low, 32 labels", "measured"),
    ):
        result = spearman(
            np.array([series[a][t] for t in tasks]), np.array([series[b][t] for t in tasks])
        )
        cell = "(constant)" if result is None else f"{result.rho:+.3f} | {result.p:.4f}"
        lines.append(f"| {a} vs {b} | {cell} |")
    lines += ["", "| task | " + " | ".join(series) + " |", "|---|" + "---:|" * len(series)]
    lines += [
        f"| {t} | " + " | ".join(f"{s[t]:.4f}" for s in series.values()) + " |" for t in tasks
    ]
    text = "\n".join(lines) + "\n"
    (args.out / "agreement.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
