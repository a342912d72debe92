"""The study scripts. studies/bbh_answers.py: constant-answer baselines and a run's answers,
against hand-worked values; the whole script on a two-task BBH folder, and its refusals.
studies/check_report.py: agrees with the committed study_synthetic report, and catches a run
changed after it."""

from __future__ import annotations

import importlib.util
import json
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


def pool_of(task_targets: dict[str, list[str]]) -> Pool:
    return Pool(
        [
            Example(f"{task}-{i}", task, f"question {i}", response=target)
            for task, targets in task_targets.items()
            for i, target in enumerate(targets)
        ],
        "hand-made",
    )


QUESTIONS = pool_of({"mc": ["(A)", "(B)", "(B)", "(C)"], "yn": ["Yes", "Yes", "No", "Yes"]})
POOL = pool_of({"mc": ["(B)", "(A)", "(B)"], "yn": ["No", "No", "Yes"]})


def test_baselines_score_the_pool_majority_and_the_best_constant():
    found = bbh_answers.baselines(QUESTIONS, POOL)
    # yn: the pool says "No" (1 of 4 questions), "Yes" would get 3 of 4
    assert found["yn"] == bbh_answers.Baseline("No", 0.25, 0.75)
    # mc: "(B)" gets 2 of 4; "(C)" would get only 1 and is not a pool target anyway
    assert found["mc"] == bbh_answers.Baseline("(B)", 0.5, 0.5)


def test_run_answers_read_against_the_constants():
    answers = ["(B)", "(B)", "b", "(B)", "Yes", "yes", "Yes", "No"]
    read = bbh_answers.run_answers(QUESTIONS, answers, bbh_answers.baselines(QUESTIONS, POOL))
    assert read.macro == pytest.approx((2 / 4 + 2 / 4) / 2)  # case and brackets folded
    assert read.one_answer_tasks == ["mc"]  # yn's top answer covers 3 of 4 < 90%
    assert read.mean_top_share == pytest.approx((4 / 4 + 3 / 4) / 2)
    assert read.top_answer_macro == pytest.approx((2 / 4 + 3 / 4) / 2)  # "(B)" and "yes" throughout
    assert read.tasks_answering_majority == 1  # mc's "(B)"; yn answers "yes", the pool "No"


def test_ties_go_to_the_first_in_sorted_order():
    assert bbh_answers.most_common(["b", "a", "b", "a"]) == ("a", 2)


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A two-task BBH folder, split in halves, and one job that answers "True" throughout."""
    data = tmp_path / "bbh"
    data.mkdir()
    for task, targets in {
        "bools": ["True", "False"] * 4,
        "words": ["a", "b", "c", "a"] * 2,
    }.items():
        rows = [{"input": f"{task} {i}", "target": t} for i, t in enumerate(targets)]
        (data / f"{task}.json").write_text(json.dumps({"examples": rows}))
    questions = load_bbh(data, None, 0.5, 0).test
    outputs = ["True"] * len(questions)
    correct = [o == e.response for o, e in zip(outputs, questions)]
    per_task = {
        t: sum(c for c, e in zip(correct, questions) if e.task == t) / 4 for t in ("bools", "words")
    }
    job = tmp_path / "study" / "budget=4,seed=0,selector=random"
    job.mkdir(parents=True)
    config = {
        "dataset": {"data_dir": str(data), "tasks": None, "test_fraction": 0.5, "seed": 0},
        "eval": {"bbh": {"split": "heldout", "max_examples_per_task": None}},
    }
    run = {"budget": 4, "seed": 0, "selector": "random", "selector_options": {}}
    macro = sum(per_task.values()) / 2
    (job / "metrics.json").write_text(
        json.dumps({"config": config, "run": run, "metrics": {"bbh/macro": macro}})
    )
    (job / "bbh_predictions.jsonl").write_text(
        "".join(
            json.dumps({"id": e.id, "task": e.task, "answer": o}) + "\n"
            for e, o in zip(questions, outputs)
        )
    )
    return job, macro


def test_the_script_reports_a_run_and_checks_its_grading(study, capsys):
    job, macro = study
    assert bbh_answers.main([str(job.parent)]) == 0
    out = capsys.readouterr().out
    # "True" throughout: one answer on both tasks, and its score is the run's
    assert f"| random | 0 | {macro:.4f} | 2 | 1.00 | {macro:.4f} |" in out
    assert "8 questions in 2 tasks" in out


def test_the_script_refuses_predictions_of_other_questions(study, capsys):
    job, _ = study
    file = job / "bbh_predictions.jsonl"
    rows = file.read_text().splitlines()
    file.write_text("\n".join([rows[1], rows[0], *rows[2:]]) + "\n")
    assert bbh_answers.main([str(job.parent)]) == 1
    assert "its questions differ" in capsys.readouterr().err


def test_the_script_refuses_a_grade_that_is_not_the_recorded_one(study, capsys):
    job, macro = study
    record = json.loads((job / "metrics.json").read_text())
    record["metrics"]["bbh/macro"] = macro + 0.25
    (job / "metrics.json").write_text(json.dumps(record))
    assert bbh_answers.main([str(job.parent)]) == 1
    assert "is not metrics.json's" in capsys.readouterr().err


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
    record["metrics"]["tasks/arith_add_small"] += (
        0.5  # random's per-task score: every paired row moves
    )
    file.write_text(json.dumps(record))
    assert check_report.main([str(synthetic_copy), "--bootstrap-seeds", "1"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREES: task_diversity at 150: difference +0.0021, recomputed" in out
