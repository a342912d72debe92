"""The benchmarks through the entry points on the tiny model: several evaluations in one run,
their headline numbers in metrics.json and side by side in the report, the single-evaluation
shortcuts of the command line."""

from __future__ import annotations

import json

import pytest
from test_train import TINY_RUN, compose_train, run_cli

from conftest import compose_config
from labelbudget.report import write_report

QUICK_BENCHMARKS = [
    "eval.mmlu.subjects=[anatomy,virology]",
    "eval.mmlu.limit_per_subject=2",
    "eval.bbh.tasks=[navigate]",
    "eval.bbh.max_examples_per_task=2",
    "eval.bbh.max_new_tokens=4",
]


def test_train_evaluates_tasks_mmlu_and_bbh_and_the_report_puts_them_side_by_side(
    tmp_path, shared_data
):
    from labelbudget.stages.train import run_train

    cfg = compose_train(
        tmp_path,
        *TINY_RUN,
        "logger=none",
        "eval=[tasks,mmlu,bbh]",
        f"paths.data_dir={shared_data}",
        *QUICK_BENCHMARKS,
    )
    metrics = run_train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for headline in ("tasks/macro", "mmlu/micro", "bbh/macro"):
        assert 0 <= record["metrics"][headline] <= 1
    assert record["metrics"] == pytest.approx(metrics)
    assert (
        record["settings"]["mmlu"]["n_questions"] == 4
        and record["settings"]["bbh"]["n_examples"] == 2
    )
    assert record["settings"]["bbh"]["stop_strings"] == ["\n\n", "\nQ:"]
    predictions = [
        json.loads(line)
        for line in (tmp_path / "run" / "mmlu_predictions.jsonl").read_text().splitlines()
    ]
    right = sum(p["prediction"] == p["answer"] for p in predictions)
    assert metrics["mmlu/micro"] == pytest.approx(
        right / 4
    )  # the headline is the per-question file's accuracy
    report = write_report([tmp_path / "run"], tmp_path / "report")
    assert "| selector | budget | seeds | tasks/macro | mmlu/micro | bbh/macro |" in report


def test_evaluate_with_the_single_evaluation_shortcuts(tmp_path, shared_data):
    result = run_cli(
        tmp_path,
        "evaluate.py",
        "model=tiny_llama",
        "eval=mmlu",
        f"eval.data_dir={shared_data / 'mmlu'}",
        "eval.limit_per_subject=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| micro (headline) |" in result.stdout
    assert (
        json.loads((tmp_path / "run" / "metrics.json").read_text())["settings"]["mmlu"][
            "n_questions"
        ]
        == 57
    )


def test_a_shortcut_with_several_evaluations_is_refused(tmp_path):
    from labelbudget.errors import ConfigError
    from labelbudget.stages.evaluations import evaluations

    cfg = compose_config("evaluate", "eval=[mmlu,bbh]", "eval.data_dir=/somewhere")
    with pytest.raises(ConfigError, match="eval.data_dir is a shortcut for a single evaluation"):
        evaluations(cfg)


def test_train_refuses_bbh_evaluation_on_its_own_bbh_pool_before_the_model_loads(
    tmp_path, shared_data, monkeypatch
):
    import labelbudget.models.tiny
    from labelbudget.errors import ConfigError
    from labelbudget.stages.train import run_train

    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    cfg = compose_train(
        tmp_path,
        "model=tiny_llama",
        "dataset=bbh",
        f"paths.data_dir={shared_data}",
        "selector=random",
        "budget=30",
        "logger=none",
        "eval=[tasks,bbh]",
    )
    with pytest.raises(ConfigError, match="split=heldout"):
        run_train(cfg)
