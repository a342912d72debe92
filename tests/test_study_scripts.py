"""The study scripts. studies/bbh_answers.py: constant-answer baselines and a run's answers,
against hand-worked values; the whole script on a two-task BBH folder, and its refusals.
studies/check_report.py: agrees with the committed study_synthetic report, and catches a run
changed after it."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys

import pytest

from conftest import REPO_ROOT
from labelbudget.data.bbh import load_bbh
from labelbudget.data.schema import Example, Pool


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bbh_answers = load_script("bbh_answers")
bbh_blank_answers = load_script("bbh_blank_answers")


def pool_of(task_targets: dict[str, list[str]]) -> Pool:
    return Pool(
        [
            Example(f"{task}-{i}", task, f"question {i}", response=target)
            for task, targets in task_targets.items()
            for i, target in enumerate(targets)
        ],
        "hand-made",
    )


QUESTIONS = pool_of(
    {
        "mc": ["(A)", "(B)", "(B)", "(C)"],
        "tie": ["(A)", "(A)", "(B)", "(C)"],
        "yn": ["Yes", "Yes", "No", "Yes"],
    }
)
POOL = pool_of({"mc": ["(B)", "(A)", "(B)"], "tie": ["(A)", "(B)"], "yn": ["No", "No", "Yes"]})


def test_baselines_score_the_pool_majority_and_the_best_constant():
    found = bbh_answers.baselines(QUESTIONS, POOL)
    # mc: the pool says "(B)", 2 of 4 questions; no target does better
    assert found["mc"] == bbh_answers.Baseline(["b"], 0.5, 0.5)
    # tie: "(A)" (2 of 4) and "(B)" (1 of 4) tie in the pool: 0.375 on average
    assert found["tie"] == bbh_answers.Baseline(["a", "b"], 0.375, 0.5)
    # yn: the pool says "No", 1 of 4; "Yes" would get 3 of 4
    assert found["yn"] == bbh_answers.Baseline(["no"], 0.25, 0.75)


def test_run_answers_read_against_the_constants():
    outputs = [
        *["So the answer is (B).", "(B)", "b", "(B)"],  # mc: one answer, the pool's; 2 of 4
        *["", "", "", "(C)"],  # tie: 3 blank, then right once
        *["Yes", "yes", "Yes", "No"],  # yn: "yes" only 3 of 4 times; 2 of 4 right
    ]
    read = bbh_answers.run_answers(QUESTIONS, outputs, bbh_answers.baselines(QUESTIONS, POOL))
    assert read.macro == pytest.approx((2 / 4 + 1 / 4 + 2 / 4) / 3)
    assert read.blank == 3
    # 9 answered, of them right: 2 (mc), 1 (tie), 2 (yn)
    assert read.answered_accuracy == pytest.approx(5 / 9)
    assert read.mostly_blank_tasks == ["tie"]  # 3 of 4 blank; none elsewhere
    assert read.one_answer_tasks == ["mc"]
    assert read.one_answer_is_majority == 1
    # "(B)", "(C)" and "yes" given throughout: 2, 1 and 3 of 4
    assert read.top_answer_macro == pytest.approx((2 / 4 + 1 / 4 + 3 / 4) / 3)


def test_most_common_keeps_every_tie_in_sorted_order():
    assert bbh_answers.most_common(["b", "a", "c", "b", "a"]) == ["a", "b"]


@pytest.fixture
def study(tmp_path):
    """A two-task BBH folder, split in halves, and one job that answers "True" throughout:
    right on every "bools" question (all True), wrong on every "words" one (all "b")."""
    data = tmp_path / "bbh"
    (data / "bbh").mkdir(parents=True)
    for task, target in {"bools": "True", "words": "b"}.items():
        rows = [{"input": f"{task} {i}", "target": target} for i in range(8)]
        (data / "bbh" / f"{task}.json").write_text(json.dumps({"examples": rows}))
    settings = {"data_dir": str(data), "tasks": None, "test_fraction": 0.5, "seed": 0}
    questions = load_bbh(data / "bbh", None, 0.5, 0).test
    job = tmp_path / "study" / "budget=4,seed=0,selector=random"
    job.mkdir(parents=True)
    config = {"eval": {"bbh": {**settings, "split": "heldout", "max_examples_per_task": None}}}
    run = {"dataset": "bbh", "selector": "random", "selector_options": {}, "budget": 4}
    run |= {"seed": 0, "model": "m"}
    (job / "metrics.json").write_text(
        json.dumps({"config": config, "run": run, "metrics": {"bbh/macro": 0.5}})
    )
    (job / "bbh_predictions.jsonl").write_text(
        "".join(json.dumps({"id": e.id, "output": "True"}) + "\n" for e in questions)
    )
    return job


def test_the_script_reports_a_run_and_checks_its_grading(study, capsys):
    assert bbh_answers.main([str(study.parent)]) == 0
    out = capsys.readouterr().out
    assert "8 questions in 2 tasks" in out
    assert "| each task answered with its pool half's most common target | 1.0000 |" in out
    # nothing blank, half of the 8 answers right; one answer on both tasks, the pool's on bools only
    assert "| random | 0 | 0.5000 | 0 | 0.5000 | 2 | 1 | 0.5000 |" in out


def test_the_script_refuses_predictions_of_other_questions(study, capsys):
    file = study / "bbh_predictions.jsonl"
    rows = file.read_text().splitlines()
    file.write_text("\n".join([rows[1], rows[0], *rows[2:]]) + "\n")
    assert bbh_answers.main([str(study.parent)]) == 1
    assert "not the questions of the saved eval.bbh settings" in capsys.readouterr().err


def test_the_script_refuses_a_grade_that_is_not_the_recorded_one(study, capsys):
    record = json.loads((study / "metrics.json").read_text())
    record["metrics"]["bbh/macro"] = 0.75
    (study / "metrics.json").write_text(json.dumps(record))
    assert bbh_answers.main([str(study.parent)]) == 1
    assert "is not metrics.json's 0.75" in capsys.readouterr().err


def test_blank_answers_refuses_a_job_without_its_adapter(study):
    with pytest.raises(SystemExit, match="holds no adapter/"):
        bbh_blank_answers.main([str(study)])


check_report = load_script("check_report")


@pytest.fixture
def synthetic_copy(tmp_path):
    """The committed study_synthetic's runs and report, without their configs and plots."""
    copy = tmp_path / "synthetic"
    shutil.copytree(
        REPO_ROOT / "studies" / "synthetic",
        copy,
        ignore=lambda folder, names: [n for n in names if n in (".hydra", "plots")],
    )
    return copy


def test_check_report_agrees_with_the_committed_report(synthetic_copy, capsys):
    assert check_report.main([str(synthetic_copy), "--bootstrap-seeds", "1"]) == 0
    assert "agrees with report.md" in capsys.readouterr().out


def test_check_report_catches_a_run_that_no_longer_matches_its_report(synthetic_copy, capsys):
    file = synthetic_copy / "budget=150,seed=0,selector=random" / "metrics.json"
    record = json.loads(file.read_text())
    task = "tasks/arith_add_small"  # random's score on it: every paired row's difference moves
    record["metrics"][task] = 1.0 if record["metrics"][task] < 0.5 else 0.0
    file.write_text(json.dumps(record))
    assert check_report.main([str(synthetic_copy), "--bootstrap-seeds", "1"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREES: task_diversity at 150: difference +0.0021, recomputed" in out


probe_agreement = load_script("probe_agreement")


def test_probe_agreement_measures_each_tasks_curve_from_zero_shot_random_and_full(tmp_path):
    def run(name: str, selector: str, budget: int, score: float, labels: int | None) -> None:
        folder = tmp_path / name
        folder.mkdir()
        record = {
            "run": {"selector": selector, "budget": budget, "seed": 0},
            "metrics": {"tasks/t": score, "tasks/macro": score},
        }
        (folder / "metrics.json").write_text(json.dumps(record))
        if labels is not None:
            (folder / "allocation.csv").write_text(f"task,selected\nt,{labels}\n")

    run("zero", "zero-shot", 0, 0.2, None)
    run("random", "random", 150, 0.4, 4)
    run("full", "full", 872, 0.6, 8)
    run("other", "task_diversity", 150, 0.9, 4)  # not a measured row
    # normalised 0, 1/2, 1 at x(4) = 2 / log2 5000 and x(8) = 3 / log2 5000, then 1 up to x = 1:
    # trapezoids 1/4 x(4) + 3/4 (x(8) - x(4)) + (1 - x(8))
    x4, x8 = 2 / math.log2(5000), 3 / math.log2(5000)
    expected = 0.25 * x4 + 0.75 * (x8 - x4) + (1 - x8)
    assert probe_agreement.measured_auc(tmp_path) == {"t": pytest.approx(expected)}
