"""The stages behind `estimate.py`, one per mode, each readable top to bottom.

coslow  per task: the low-confidence sample (exported for annotation), CoS-Low and the
        comparison signals; with a saved fit, the predicted AUC and labels needed.
curves  learning-curve runs of train.py -> per-task curves, AUCs, a plot.
fit     measured AUCs + signals -> the line per signal, leave-one-task-out error, correlations,
        plots of predicted against measured curves; saves the CoS-Low fit.
plan    predicted AUCs + a total budget -> labels per task, and labels needed per target.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from labelbudget.configs import check_settings, instantiate
from labelbudget.data.annotation import annotated, read_annotations, reveal_responses
from labelbudget.data.records import existing_path
from labelbudget.efficiency.coslow import (
    gradient_signals,
    low_confidence_sample,
    task_gradients,
)
from labelbudget.efficiency.curves import (
    cleaned_curve,
    data_efficiency_auc,
    labels_needed,
    log_budget,
    predicted_performance,
)
from labelbudget.efficiency.planner import mean_predicted_performance, plan_budget
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.efficiency.predictor import (
    LinearFit,
    choose_fit,
    correlations,
    fit_line,
    leave_one_out_errors,
)
from labelbudget.errors import ConfigError, DataError
from labelbudget.evaluation.base import per_task
from labelbudget.io import atomic_write_bytes, atomic_write_text, csv_text, jsonl_text
from labelbudget.rendering import markdown_table, png_bytes, pyplot
from labelbudget.runs import finished_runs
from labelbudget.stages.run import Run

SIGNALS = ("coslow", "cosine_random", "gradient_norm", "mean_confidence")


def run_estimate(cfg: DictConfig) -> dict[str, Any]:
    """Run the chosen mode of estimate.py.

    Args:
        cfg: the composed `conf/estimate.yaml`; `conf/mode/<mode>.yaml` brings the mode's
            settings and sets `mode` (coslow, curves, fit or plan).

    Returns:
        The mode's summary (per-task signals, curves, the fit, or the plan); its files are in
        `paths.output_dir`.
    """
    check_settings(cfg)
    mode = {"coslow": run_coslow, "curves": run_curves, "fit": run_fit, "plan": run_plan}[cfg.mode]
    with Run.open(cfg) as run:
        return mode(run)


# --- coslow -------------------------------------------------------------------------------------


def run_coslow(run: Run) -> dict[str, Any]:
    """mode=coslow: each task's CoS-Low signal from its least confident prompts, and the AUC it predicts."""
    cfg, folder = run.cfg, run.folder.path
    settings = cfg.coslow
    data = instantiate(cfg.dataset)
    annotations = read_annotations(cfg.annotations, data.pool) if cfg.annotations else None
    fit = choose_fit(cfg.fit, cfg.model.name)
    targets = [float(t) for t in cfg.targets]
    pool = data.pool
    small = {task: size for task, size in pool.task_sizes().items() if size < settings.n}
    if small:
        raise ConfigError(
            f"CoS-Low samples {settings.n} prompts per task; too few in {small} "
            "(choose tasks with dataset.tasks=[...] or a larger pool, or lower coslow.n)"
        )
    scores = run.scores(pool, required=True)
    rows_of = task_rows(pool)
    samples = {
        task: sample_rows(np.asarray(rows), scores.mean_prob, settings, cfg.seed, task)
        for task, rows in rows_of.items()
    }
    exported = [
        {"id": pool[r].id, "task": task, "prompt": pool[r].prompt, "context": pool[r].context}
        for task, (low, _) in samples.items()
        for r in low
    ]
    atomic_write_text(folder / "coslow_sample.jsonl", jsonl_text(exported))
    print(f"wrote the sample to annotate: {folder / 'coslow_sample.jsonl'}")
    # one join for the whole sample, as exported: the file answers every task's prompts at once
    labelled_by_id = {
        e.id: e for e in annotated(pool, [row["id"] for row in exported], annotations)
    }
    results, predicted = [], {}
    for task, (low, random_rows) in tqdm(samples.items(), desc="CoS-Low", unit="task"):
        labelled = [labelled_by_id[pool[r].id] for r in low]
        loaded = run.model()
        low_signals = gradient_signals(
            task_gradients(loaded, labelled, settings, cfg.seed), settings.aggregate
        )
        rows = rows_of[task]
        result = {
            "task": task,
            "coslow": low_signals.cosine,
            "cosine_random": None,
            "gradient_norm": low_signals.mean_gradient_norm,
            "mean_confidence": float(scores.mean_prob[rows].mean()),
            "n_pool": len(rows),
            "n_pairs": low_signals.n_pairs,
        }
        # the paper's comparison signal needs 32 more labels: simulation only
        if annotations is None:
            revealed = reveal_responses(pool, [pool[r].id for r in random_rows])
            result["cosine_random"] = gradient_signals(
                task_gradients(loaded, revealed, settings, cfg.seed), settings.aggregate
            ).cosine
        if fit is not None:
            auc = fit.predict(result["coslow"])
            predicted[task] = auc
            result["predicted_auc"] = auc
            result.update({f"labels_for_{t:g}": labels_needed(t, auc, fit.n_max) for t in targets})
        results.append(result)
    atomic_write_text(
        folder / "coslow.json",
        json.dumps(
            {
                "model": cfg.model.name,
                "settings": OmegaConf.to_container(settings),
                "tasks": results,
            },
            indent=2,
        )
        + "\n",
    )
    if predicted:
        PredictedAUC(predicted, fit.n_max).write(folder / "predicted_auc.json")
    header = list(results[0])
    print(markdown_table(header, [[r[k] for k in header] for r in results]))
    if fit is None:
        print(
            "no fit given: measure curves (experiment=learning_curve), then estimate.py mode=fit, then pass fit=<fit.json>"
        )
    for row in results if fit is not None else []:
        needs = ", ".join(
            f"about {row[f'labels_for_{t:g}']:.0f} labels to reach t = {t:g}" for t in targets
        )
        print(
            f"task {row['task']}: CoS-Low {row['coslow']:.3f}, predicted AUC {row['predicted_auc']:.3f}; {needs} (n_max {fit.n_max})"
        )
    print(f"wrote {folder / 'coslow.json'}")
    return {"tasks": results}


def task_rows(pool) -> dict[str, list[int]]:
    """Each task's rows in pool order, tasks sorted."""
    rows: dict[str, list[int]] = defaultdict(list)
    for row, task in enumerate(pool.tasks):
        rows[task].append(row)
    return dict(sorted(rows.items()))


def sample_rows(
    rows: np.ndarray, confidence: np.ndarray, settings: DictConfig, seed: int, task: str
) -> tuple[list[int], list[int]]:
    """The task's low-confidence sample and, for the comparison signal, a random one; seeded by
    (seed, task) so a task's sample does not depend on the other tasks loaded."""
    rng = np.random.default_rng([seed, *task.encode()])
    low = rows[low_confidence_sample(confidence[rows], settings.fraction, settings.n, rng)]
    return [int(r) for r in low], [int(r) for r in rng.choice(rows, size=settings.n, replace=False)]


# --- curves -------------------------------------------------------------------------------------


def read_curve_runs(folders: list[str]) -> dict[str, dict[int, list[float]]]:
    """task -> budget -> accuracies (one per seed), from train.py runs' metrics.json."""
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _, record in finished_runs([Path(f) for f in folders]):
        for task, value in per_task(record.metrics, "tasks/macro").items():
            curves[task][int(record.identity.budget)].append(float(value))
    return curves


def run_curves(run: Run) -> dict[str, Any]:
    """mode=curves: each task's measured learning curve and AUC from train.py learning-curve runs."""
    cfg, folder = run.cfg, run.folder.path
    if not cfg.runs:
        raise ConfigError("mode=curves needs runs=[<train.py learning-curve folders>]")
    curves = read_curve_runs(list(cfg.runs))
    summary = {}
    for task, points in sorted(curves.items()):
        budgets = sorted(points)
        accuracies = [float(np.mean(points[b])) for b in budgets]
        summary[task] = {
            "budgets": budgets,
            "accuracies": accuracies,
            "seeds": [len(points[b]) for b in budgets],
            "auc": data_efficiency_auc(budgets, accuracies, cfg.human, cfg.n_max),
        }
    atomic_write_text(
        folder / "curves.json",
        json.dumps({"n_max": cfg.n_max, "human": cfg.human, "tasks": summary}, indent=2) + "\n",
    )
    atomic_write_bytes(folder / "curves.png", plot_curves(summary, cfg.n_max, cfg.human))
    print(
        markdown_table(
            ["task", "budgets", "accuracies", "AUC"],
            [
                [t, s["budgets"], [round(a, 3) for a in s["accuracies"]], s["auc"]]
                for t, s in summary.items()
            ],
        )
    )
    print(f"wrote {folder / 'curves.json'} and {folder / 'curves.png'}")
    return summary


def normalised_points(budgets, accuracies, human, n_max) -> tuple[list[float], list[float]]:
    """A curve on the AUC's axes: log budget, and accuracy from the first point (0) to the best (1)."""
    curve = cleaned_curve(budgets, accuracies, n_max)
    first, top = curve[0][1], max(curve[-1][1], human if human is not None else -np.inf)
    span = top - first if top > first else 1.0
    return [log_budget(n, n_max) for n, _ in curve], [(a - first) / span for _, a in curve]


def plot_curves(
    summary: dict, n_max: int, human: float | None, predicted: dict[str, float] | None = None
) -> bytes:
    """Measured normalised curves (and dashed predicted x^p curves when given), one panel per task."""
    plt = pyplot()
    tasks = sorted(summary)
    cols = min(4, len(tasks))
    fig, axes = plt.subplots(
        (len(tasks) + cols - 1) // cols,
        cols,
        figsize=(3.2 * cols, 2.6 * ((len(tasks) + cols - 1) // cols)),
        squeeze=False,
    )
    grid = np.linspace(0, 1, 101)
    for ax, task in zip(axes.flat, tasks):
        xs, ys = normalised_points(
            summary[task]["budgets"], summary[task]["accuracies"], human, n_max
        )
        ax.plot(xs, ys, "o-", label=f"measured, AUC {summary[task]['auc']:.2f}")
        if predicted and task in predicted:
            ax.plot(
                grid,
                grid ** ((1 - predicted[task]) / predicted[task]),
                "--",
                label=f"predicted, AUC {predicted[task]:.2f}",
            )
        ax.set_title(task, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    fig.supxlabel(f"log2(labels) / log2({n_max})")
    fig.supylabel("normalised accuracy")
    fig.tight_layout()
    return png_bytes(fig, dpi=100)


# --- fit ----------------------------------------------------------------------------------------


def run_fit(run: Run) -> dict[str, Any]:
    """mode=fit: the AUC ~ CoS-Low fit through measured curves and their tasks' signals."""
    cfg, folder = run.cfg, run.folder.path
    if not cfg.curves or not cfg.signals:
        raise ConfigError(
            "mode=fit needs curves=<curves.json from mode=curves> and signals=<coslow.json from mode=coslow>"
        )
    curves_file = existing_path(cfg.curves, "curves file")
    measured = json.loads(curves_file.read_text())
    for key in ("n_max", "human", "tasks"):
        if key not in measured:
            raise DataError(str(curves_file), "is not a curves.json of mode=curves", field=key)
    # the AUCs were measured on this budget axis and ceiling: the fit and its plot keep them
    curves, n_max, human = measured["tasks"], int(measured["n_max"]), measured["human"]
    signals_file = json.loads(existing_path(cfg.signals, "signals file").read_text())
    signals = {row["task"]: row for row in signals_file["tasks"]}
    tasks = sorted(set(curves) & set(signals))
    if len(tasks) < 3:
        raise ConfigError(
            f"a fit needs at least 3 tasks with both a curve and signals, got {tasks}"
        )
    auc = np.array([curves[t]["auc"] for t in tasks])
    table, rows = {}, []
    for name in (n for n in SIGNALS if all(signals[t].get(n) is not None for t in tasks)):
        values = np.array([signals[t][name] for t in tasks])
        table[name] = {**correlations(values, auc), **leave_one_out_errors(values, auc)}
        rows.append(
            [
                name,
                table[name]["pearson"],
                table[name]["spearman"],
                table[name]["loto_mae"],
                table[name]["mean_baseline_mae"],
            ]
        )
    slope, intercept = fit_line(np.array([signals[t]["coslow"] for t in tasks]), auc)
    fit = LinearFit(slope, intercept, "coslow", signals_file.get("model", "?"), len(tasks), n_max)
    fit.save(folder / "fit.json")
    predicted = {t: fit.predict(signals[t]["coslow"]) for t in tasks}
    atomic_write_text(
        folder / "fit_report.json",
        json.dumps(
            {"fit": asdict(fit), "signals": table, "tasks": tasks, "predicted_auc": predicted},
            indent=2,
        )
        + "\n",
    )
    atomic_write_bytes(
        folder / "predicted_vs_measured.png",
        plot_curves({t: curves[t] for t in tasks}, n_max, human, predicted),
    )
    print(
        markdown_table(["signal", "pearson", "spearman", "LOTO MAE", "mean-AUC baseline MAE"], rows)
    )
    print(
        f"AUC = {slope:.4f} * CoS-Low + {intercept:.4f} over {len(tasks)} tasks; wrote {folder / 'fit.json'}"
    )
    return {"fit": asdict(fit), "signals": table}


# --- plan ---------------------------------------------------------------------------------------


def run_plan(run: Run) -> dict[str, Any]:
    """mode=plan: a budget split between tasks by their predicted AUCs (plan.csv)."""
    cfg, folder = run.cfg, run.folder.path
    if not cfg.predictions or cfg.budget is None:
        raise ConfigError(
            "mode=plan needs predictions=<predicted_auc.json> and budget=<total labels>"
        )
    predictions = PredictedAUC.read(cfg.predictions)
    predicted, n_max = predictions.tasks, predictions.n_max
    sizes = instantiate(cfg.dataset).pool.task_sizes()
    predictions.check_covers(sizes)
    counts = plan_budget({t: predicted[t] for t in sizes}, sizes, int(cfg.budget), n_max)
    targets = [float(t) for t in cfg.targets]
    rows = [
        [
            t,
            predicted[t],
            sizes[t],
            counts[t],
            predicted_performance(counts[t], predicted[t], n_max),
            *[round(labels_needed(x, predicted[t], n_max)) for x in targets],
        ]
        for t in sizes
    ]
    print(
        markdown_table(
            [
                "task",
                "predicted AUC",
                "pool",
                "planned labels",
                "predicted y",
                *[f"labels for t={x:g}" for x in targets],
            ],
            rows,
        )
    )
    for task, auc, *_ in rows:
        print(
            f"task {task} needs about {round(labels_needed(targets[0], auc, n_max))} labels to reach t = {targets[0]:g}"
        )
    mean = mean_predicted_performance(counts, predicted, n_max)
    atomic_write_text(
        folder / "plan.csv",
        csv_text(["task", "predicted_auc", "pool", "labels"], [r[:4] for r in rows]),
    )
    print(f"mean predicted normalised performance {mean:.4f}; wrote {folder / 'plan.csv'}")
    return {"counts": counts, "mean_predicted": mean}
