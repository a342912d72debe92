"""estimate.py on the tiny model, mode by mode: learning-curve runs -> curves and AUC, CoS-Low
per task, the fit, CoS-Low with the fit (predicted AUC, labels needed), the plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_train import REPO, compose_train

from conftest import compose_config
from labelbudget.efficiency import data_efficiency_auc
from labelbudget.efficiency.curves import labels_needed
from labelbudget.selection.base import Candidates
from labelbudget.selection.random_sampling import RandomSelector

TASKS = "[convert_units,extract_last_word,reason_word_problem]"  # pools of 50, 20 and 80 prompts


def compose_estimate(tmp_path: Path, *overrides: str):
    return compose_config(
        "estimate", f"paths.cache_dir={tmp_path / 'cache'}", "model=tiny_llama", *overrides
    )


def test_random_subsets_nest_across_budgets_as_prefixes_of_one_shuffle():
    candidates = Candidates([f"p{i}" for i in range(50)], ["t"] * 50)
    picks = {
        b: RandomSelector().select(candidates, b, np.random.default_rng(7)).ids for b in (5, 10, 30)
    }
    assert picks[10][:5] == picks[5] and picks[30][:10] == picks[10]


def test_learning_curve_runs_become_a_curve_and_its_auc(tmp_path):
    from labelbudget.stages.estimate import run_estimate
    from labelbudget.stages.train import run_train

    runs = []
    for budget in (0, 20):
        run = tmp_path / f"b{budget}"
        cfg = compose_train(
            tmp_path,
            "experiment=learning_curve",
            "model=tiny_llama",
            "dataset.tasks=[extract_price]",
            "dataset.pool_per_task=30",
            "dataset.test_per_task=5",
            f"budget={budget}",
            "finetune.epochs=1",
            "eval.tasks.max_new_tokens=4",
            "logger=none",
            f"paths.output_dir={run}",
        )
        metrics = run_train(cfg)
        assert (run / "adapter").is_dir() == (budget > 0) and metrics["train/examples"] == budget
        runs.append(run)
    summary = run_estimate(
        compose_estimate(
            tmp_path,
            "mode=curves",
            f"runs=[{runs[0]},{runs[1]}]",
            f"paths.output_dir={tmp_path / 'est'}",
        )
    )
    accuracies = [
        json.loads((r / "metrics.json").read_text())["metrics"]["tasks/extract_price"] for r in runs
    ]
    assert (
        summary["extract_price"]["budgets"] == [0, 20]
        and summary["extract_price"]["accuracies"] == accuracies
    )
    assert summary["extract_price"]["auc"] == pytest.approx(
        data_efficiency_auc([0, 20], accuracies)
    )
    assert (tmp_path / "est" / "curves.png").stat().st_size > 0


def test_coslow_fit_prediction_and_plan(tmp_path):
    from labelbudget.errors import DataError
    from labelbudget.stages.estimate import run_estimate

    common = [
        f"dataset.tasks={TASKS}",
        "coslow.n=6",
        "coslow.rank=4",
        "coslow.alpha=8",
        "scoring.max_new_tokens=4",
    ]
    first = tmp_path / "coslow"
    result = run_estimate(
        compose_estimate(tmp_path, "mode=coslow", *common, f"paths.output_dir={first}")
    )
    rows = {r["task"]: r for r in result["tasks"]}
    assert set(rows) == {"convert_units", "extract_last_word", "reason_word_problem"}
    assert all(-1 <= r["coslow"] <= 1 and r["n_pairs"] == 15 for r in rows.values())
    sample = [json.loads(line) for line in (first / "coslow_sample.jsonl").read_text().splitlines()]
    assert len(sample) == 18 and {s["task"] for s in sample} == set(rows)
    # same seed, same sample and numbers; a task alone gets the numbers it gets among others
    # (each task's adapters are fresh: the previous task's are removed)
    again = run_estimate(
        compose_estimate(tmp_path, "mode=coslow", *common, f"paths.output_dir={tmp_path / 'again'}")
    )
    assert again == result
    alone = run_estimate(
        compose_estimate(
            tmp_path,
            "mode=coslow",
            *common,
            "dataset.tasks=[reason_word_problem]",
            f"paths.output_dir={tmp_path / 'alone'}",
        )
    )
    assert alone["tasks"][0]["coslow"] == pytest.approx(
        rows["reason_word_problem"]["coslow"], abs=1e-6
    )

    curves = {  # measured on a 100-label axis: the fit must keep it
        "n_max": 100,
        "human": None,
        "tasks": {
            t: {"budgets": [0, 50], "accuracies": [0.0, a], "auc": a}
            for t, a in zip(sorted(rows), (0.2, 0.5, 0.7))
        },
    }
    (tmp_path / "curves.json").write_text(json.dumps(curves))
    fitted = run_estimate(
        compose_estimate(
            tmp_path,
            "mode=fit",
            f"curves={tmp_path / 'curves.json'}",
            f"signals={first / 'coslow.json'}",
            f"paths.output_dir={tmp_path / 'fit'}",
        )
    )
    assert fitted["fit"]["n_max"] == 100  # predictions use the axis the AUCs were measured on
    with pytest.raises(DataError, match=r"curves\.json, field 'n_max': is not a curves\.json"):
        (tmp_path / "bare" / "curves.json").parent.mkdir()
        (tmp_path / "bare" / "curves.json").write_text(json.dumps({"tasks": curves["tasks"]}))
        run_estimate(
            compose_estimate(
                tmp_path,
                "mode=fit",
                f"curves={tmp_path / 'bare' / 'curves.json'}",
                f"signals={first / 'coslow.json'}",
                f"paths.output_dir={tmp_path / 'bare'}",
            )
        )
    xs = np.array([rows[t]["coslow"] for t in sorted(rows)])
    slope, intercept = np.polyfit(xs, [0.2, 0.5, 0.7], 1)
    assert fitted["fit"]["slope"] == pytest.approx(slope) and fitted["fit"][
        "intercept"
    ] == pytest.approx(intercept)
    assert set(fitted["signals"]) == {"coslow", "cosine_random", "gradient_norm", "mean_confidence"}
    assert (tmp_path / "fit" / "predicted_vs_measured.png").is_file()

    predicted = run_estimate(
        compose_estimate(
            tmp_path,
            "mode=coslow",
            *common,
            f"fit={tmp_path / 'fit' / 'fit.json'}",
            f"paths.output_dir={tmp_path / 'pred'}",
        )
    )
    for row in predicted["tasks"]:
        auc = float(np.clip(slope * row["coslow"] + intercept, 1e-3, 1 - 1e-3))
        assert row["predicted_auc"] == pytest.approx(auc)
        assert row["labels_for_0.5"] == pytest.approx(labels_needed(0.5, auc, 100))
    plan = run_estimate(
        compose_estimate(
            tmp_path,
            "mode=plan",
            f"dataset.tasks={TASKS}",
            f"predictions={tmp_path / 'pred' / 'predicted_auc.json'}",
            "budget=60",
            f"paths.output_dir={tmp_path / 'plan'}",
        )
    )
    assert sum(plan["counts"].values()) == 60
    assert (tmp_path / "plan" / "plan.csv").read_text().count("\n") == 4


def test_unlabelled_pool_gets_its_sample_exported_then_asks_for_annotations(tmp_path):
    from labelbudget.errors import DataError
    from labelbudget.stages.estimate import run_estimate

    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "prompt": f"Question {i}?", "task": "tu"[i % 2]}) + "\n"
            for i in range(24)
        )
    )
    with pytest.raises(DataError, match="annotations="):
        run_estimate(
            compose_estimate(
                tmp_path,
                "mode=coslow",
                "dataset=jsonl",
                f"dataset.path={pool}",
                "dataset.fields.response=null",
                "coslow.n=4",
                "scoring.max_new_tokens=4",
                f"paths.output_dir={tmp_path / 'out'}",
            )
        )
    exported = [
        json.loads(line)
        for line in (tmp_path / "out" / "coslow_sample.jsonl").read_text().splitlines()
    ]
    assert len(exported) == 8 and {e["task"] for e in exported} == {"t", "u"}
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(json.dumps({"id": e["id"], "response": "forty two"}) + "\n" for e in exported)
    )
    result = run_estimate(
        compose_estimate(
            tmp_path,
            "mode=coslow",
            "dataset=jsonl",
            f"dataset.path={pool}",
            "dataset.fields.response=null",
            "coslow.n=4",
            "scoring.max_new_tokens=4",
            f"annotations={answers}",
            f"paths.output_dir={tmp_path / 'out'}",
        )
    )
    # one file answers both tasks' samples (each task's join once refused the other's ids)
    assert [(t["task"], t["n_pairs"], t["cosine_random"]) for t in result["tasks"]] == [
        ("t", 6, None),
        ("u", 6, None),
    ]


def test_estimate_py_uses_the_packaged_fit_for_the_model(tmp_path):
    """The entry point, as a user runs it: no fit= given, the model's packaged fit predicts."""
    import os
    import subprocess
    import sys

    packaged = json.loads(
        (REPO / "src" / "labelbudget" / "efficiency" / "fits" / "smollm2_135m.json").read_text()
    )
    out = tmp_path / "out"
    # the tiny model under the embedded model's name: the packaged fit is chosen by name
    command = [
        sys.executable,
        "estimate.py",
        "mode=coslow",
        "model=tiny_llama",
        "model.name=smollm2_135m",
        "dataset.tasks=[convert_units]",
        "coslow.n=6",
        "coslow.rank=4",
        "scoring.max_new_tokens=4",
        f"hydra.run.dir={out}",
    ]
    env = {**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "using the fit measured for smollm2_135m" in result.stdout
    row = json.loads((out / "coslow.json").read_text())["tasks"][0]
    auc = float(np.clip(packaged["slope"] * row["coslow"] + packaged["intercept"], 1e-3, 1 - 1e-3))
    assert json.loads((out / "predicted_auc.json").read_text()) == {
        "n_max": packaged["n_max"],
        "tasks": {"convert_units": pytest.approx(auc)},
    }
    assert f"predicted AUC {auc:.3f}" in result.stdout
