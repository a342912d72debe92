"""Held-out task evaluation: macro and micro averages by hand, per-example predictions file."""

from __future__ import annotations

import json

import pytest

from labelbudget.data.schema import Example, Pool
from labelbudget.evaluation.tasks import grade, limit_per_task, predictions_jsonl

POOL = Pool(
    [
        Example(id="a1", task="a", prompt="1+1?", response="2", metadata={"rule": "number"}),
        Example(id="a2", task="a", prompt="2+2?", response="4", metadata={"rule": "number"}),
        Example(id="b1", task="b", prompt="say hi", response="hi"),  # no rule: exact match
    ],
    "test",
)


def test_macro_weighs_tasks_alike_and_micro_weighs_prompts_alike():
    metrics, scores = grade(POOL, ["The answer is 2.", "5", "Hi!"])
    assert scores == [1.0, 0.0, 1.0]
    assert metrics == pytest.approx(
        {"tasks/a": 0.5, "tasks/b": 1.0, "tasks/macro": 0.75, "tasks/micro": 2 / 3}
    )


def test_predictions_file_has_one_line_per_prompt():
    lines = [
        json.loads(line)
        for line in predictions_jsonl(POOL, ["2", "5", "hi"], [1.0, 0.0, 1.0]).splitlines()
    ]
    assert [(r["id"], r["reference"], r["prediction"], r["score"]) for r in lines] == [
        ("a1", "2", "2", 1.0),
        ("a2", "4", "5", 0.0),
        ("b1", "hi", "hi", 1.0),
    ]


def test_limit_per_task_keeps_the_first_prompts_of_each_task():
    assert limit_per_task(POOL, 1).ids == ["a1", "b1"]
    assert limit_per_task(POOL, None) is POOL


def test_each_evaluation_names_its_headline_and_the_report_knows_every_one():
    """The report reads headlines without importing the evaluations (torch): its list must be
    theirs, in the order the summary line shows them."""
    import importlib

    import yaml

    from conftest import REPO_ROOT
    from labelbudget.evaluation.base import HEADLINES, Evaluation

    classes = []
    for name in ("tasks", "mmlu", "bbh", "alpaca_eval"):
        target = yaml.safe_load((REPO_ROOT / "conf" / "eval" / f"{name}.yaml").read_text())
        module, _, cls = target[name]["_target_"].rpartition(".")
        classes.append(getattr(importlib.import_module(module), cls))
    assert all(issubclass(c, Evaluation) for c in classes)
    assert sorted(p.stem for p in (REPO_ROOT / "conf" / "eval").glob("*.yaml")) == sorted(
        c.name for c in classes
    )
    assert tuple(c.headline for c in classes) == HEADLINES
    assert all(c.headline.startswith(f"{c.name}/") for c in classes)


class NoHeadline:
    """An evaluation that forgot its headline (built by Hydra from this module)."""

    name = "no_headline"

    def __init__(self, **settings):
        pass


def test_an_evaluation_without_a_headline_is_refused_when_built():
    from conftest import compose_config
    from labelbudget.errors import ConfigError
    from labelbudget.stages.evaluations import evaluations

    cfg = compose_config("evaluate", "+eval.mine._target_=test_task_evaluation.NoHeadline")
    with pytest.raises(ConfigError, match="eval.mine: NoHeadline names no `headline` metric"):
        evaluations(cfg)


def test_per_task_keeps_task_names_with_a_slash():
    """FLAN names tasks like 'glue/cola:2.0.0'; the report pairs runs through these values."""
    from labelbudget.evaluation.base import per_task

    metrics = {
        "tasks/glue/cola:2.0.0": 0.5,
        "tasks/b": 1.0,
        "tasks/macro": 0.75,
        "tasks/micro": 0.6,
    }
    assert per_task(metrics, "tasks/macro") == {"glue/cola:2.0.0": 0.5, "b": 1.0}


def rows(*examples: Example) -> Pool:
    return Pool(list(examples), "test.jsonl")


@pytest.mark.parametrize(
    "test, message",
    [
        (
            rows(Example(id="m", task="macro", prompt="?", response="1")),
            "test.jsonl, field 'task': task names ['macro'] would overwrite",
        ),
        (
            rows(*POOL, Example(id="n", task="b", prompt="?", response=None)),
            "test.jsonl, field 'response': 1 test prompts have no reference answer to grade against: 'n'",
        ),
        (
            rows(Example(id="r", task="a", prompt="?", response="7", metadata={"rule": "Exact"})),
            "test.jsonl, field 'rule': test prompt 'r' (task 'a'): unknown scoring rule 'Exact'",
        ),
        (
            rows(
                Example(id="s", task="a", prompt="?", response="seven", metadata={"rule": "number"})
            ),
            "test prompt 's' (task 'a'): rule 'number': the reference 'seven' is not a number",
        ),
        (
            rows(
                Example(
                    id="t",
                    task="a",
                    prompt="?",
                    response="maybe",
                    metadata={"rule": "label:yes|no"},
                )
            ),
            "test prompt 't' (task 'a'): rule 'label': the reference 'maybe' is not one of",
        ),
    ],
)
def test_a_test_row_that_cannot_be_graded_is_refused_naming_it(test, message):
    from labelbudget.errors import DataError
    from labelbudget.evaluation.tasks import check_gradable

    with pytest.raises(DataError) as error:
        check_gradable(test)
    assert message in str(error.value)


def test_a_reference_that_cannot_score_is_warned_about_by_task(caplog):
    from labelbudget.evaluation.tasks import check_gradable

    multi_line = Example(id="d1", task="open_qa", prompt="?", response="First line.\nSecond line.")
    with caplog.at_level("WARNING"):
        check_gradable(rows(*POOL, multi_line))
    assert "1 test references of test.jsonl do not score even as their own answer" in caplog.text
    assert caplog.text.rstrip().endswith(": task 'open_qa' (1, e.g. 'd1')")
    caplog.clear()
    check_gradable(POOL)
    assert caplog.text == ""
