"""selector=adaptive: round 1 spread evenly, a fine-tune on it less a held-out part, curves fitted
through what it gained, the rest planned from round 1's counts; every label in the budget."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest

import labelbudget.models.tiny
from conftest import annotate, compose_config, read_jsonl, write_unlabelled_pool
from labelbudget.data.schema import Example
from labelbudget.data.synthetic import build_synthetic_suite
from labelbudget.efficiency.planner import plan_budget
from labelbudget.errors import ConfigError, DataError
from labelbudget.stages.select import run_select
from labelbudget.stages.signals import fitted_auc, held_out_split

TASKS = ["arith_add_small", "cls_prime", "extract_price", "str_reverse_letters"]
ADAPTIVE = [
    "model=tiny_llama",
    "dataset.pool_per_task=6",
    f"dataset.tasks=[{','.join(TASKS)}]",
    "selector=adaptive",
    "selector.n_max=100",
    "selector.max_new_tokens=4",
    "finetune=lora",
    "finetune.epochs=1",
]


def test_fitted_auc_by_hand():
    # x(10) = log2 10 / log2 100 = 1/2; y = (0.75 - 0.5) / (1 - 0.5) = 1/2: p = 1, AUC 1/2
    assert fitted_auc(10, 0.5, 0.75, 100) == pytest.approx(0.5)
    # x(4) = 2/4 = 1/2; y = 0.25: p = 2, AUC 1/3
    assert fitted_auc(4, 0.0, 0.25, 16) == pytest.approx(1 / 3)
    # a loss is clipped to y = 0.001: p = log 0.001 / log 0.5, a flat curve
    assert fitted_auc(4, 0.5, 0.25, 16) == pytest.approx(1 / (1 + math.log(1e-3) / math.log(0.5)))
    # nothing left to gain, nothing held out, or x(n) = 0: no curve
    assert fitted_auc(4, 1.0, 1.0, 16) == pytest.approx(1 / (1 + math.log(1e-3) / math.log(0.5)))
    assert fitted_auc(1, 0.0, 1.0, 16) is None
    assert fitted_auc(4, None, 0.5, 16) is None


def test_held_out_split_keeps_one_to_train_on():
    examples = [
        Example(id=f"{task}{i}", task=task, prompt="p", response="r")
        for task, n in (("one", 1), ("two", 2), ("three", 3), ("six", 6))
        for i in range(n)
    ]
    trained, held = held_out_split(examples, 0.34)
    assert Counter(e.task for e in trained) == {"one": 1, "two": 1, "three": 2, "six": 4}
    assert [e.id for e in held] == ["two1", "three2", "six4", "six5"]  # each task's last


def read_allocation(path: Path) -> dict[str, int]:
    with open(path) as handle:
        return {row["task"]: int(row["selected"]) for row in csv.DictReader(handle)}


def test_adaptive_spends_the_budget_exactly_and_plans_from_round_one(tmp_path, caplog):
    budget = 20
    selection = run_select(compose_config("select", *ADAPTIVE, f"budget={budget}", folder=tmp_path))
    assert len(selection.ids) == budget == len(set(selection.ids))
    sizes = build_synthetic_suite(pool_per_task=6, tasks=TASKS).pool.task_sizes()
    task_of = {e.id: e.task for e in build_synthetic_suite(pool_per_task=6, tasks=TASKS).pool}
    run = tmp_path / "run"
    round1 = read_allocation(run / "allocation_round1.csv")
    assert round1 == {
        "arith_add_small": 3,
        "cls_prime": 3,
        "extract_price": 2,
        "str_reverse_letters": 2,
    }  # Task Diversity's spread of 10, by name
    held = selection.ids[: sum(round1.values())]
    assert Counter(task_of[i] for i in held) == {t: n for t, n in round1.items() if n}
    gains = json.loads((run / "round_gains.json").read_text())
    assert gains["n_max"] == 100 and set(gains["tasks"]) == set(sizes)
    # the two tasks of 3 labels are fitted (2 trained, 1 graded); the two of 2 take their median
    fitted = [gains["tasks"]["arith_add_small"], gains["tasks"]["cls_prime"]]
    assert gains["tasks"]["extract_price"] == gains["tasks"]["str_reverse_letters"]
    assert gains["tasks"]["extract_price"] == pytest.approx(sum(fitted) / 2)
    assert "2 of 4 tasks had too few round-1 labels for a curve" in caplog.text
    expected = plan_budget(gains["tasks"], sizes, budget, 100, start=round1)
    assert read_allocation(run / "allocation.csv") == expected
    assert Counter(task_of[i] for i in selection.ids) == {t: n for t, n in expected.items() if n}
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["selection/round1_labels"] == 10.0 and metrics["selection/learn_seconds"] > 0


def test_adaptive_without_finetune_settings_is_refused_before_a_model_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    settings = [o for o in ADAPTIVE if not o.startswith("finetune")]
    with pytest.raises(ConfigError, match="add finetune=lora"):
        run_select(compose_config("select", *settings, "budget=20", folder=tmp_path))
    with pytest.raises(ConfigError, match="at least 2, got 1"):
        run_select(compose_config("select", *ADAPTIVE, "budget=1", folder=tmp_path))
    # round 1 of 16 is 8 labels, 2 per task: none has the third a curve needs; 17 gives 9
    with pytest.raises(
        ConfigError,
        match=r"round 1 \(0.5 of 16 = 8 labels, spread evenly\) "
        r"gives no task the 3 labels .* raise the budget to at least 17",
    ):
        run_select(compose_config("select", *ADAPTIVE, "budget=16", folder=tmp_path))


def test_two_annotation_rounds_with_real_annotators(tmp_path):
    pool = write_unlabelled_pool(tmp_path)
    real = [
        "model=tiny_llama",
        "dataset=jsonl",
        f"dataset.path={pool}",
        "dataset.fields.id=id",
        "dataset.fields.response=null",
        *ADAPTIVE[3:],
        "budget=14",
    ]
    assert run_select(compose_config("select", *real, folder=tmp_path, output="r1")) is None
    first = read_jsonl(tmp_path / "r1" / "first_round.jsonl")
    assert Counter(r["task"] for r in first) == {"alpha": 3, "beta": 2, "gamma": 2}  # 7 of 14
    one = annotate(first, tmp_path / "one.jsonl")
    selection = run_select(
        compose_config("select", *real, f"annotations={one}", folder=tmp_path, output="r2")
    )
    assert len(selection.ids) == 14 and selection.ids[:7] == [r["id"] for r in first]
    with pytest.raises(DataError, match=r"one.jsonl, field 'id': answers 7 of the 10 prompts"):
        run_select(  # a larger round 1 than the file answers
            compose_config(
                "select", *real, f"annotations={one}", "selector.first_round=0.7", folder=tmp_path
            )
        )


def test_train_fine_tunes_on_both_rounds_and_reports_the_extra_fine_tune(tmp_path):
    from labelbudget.stages.train import run_train

    settings = [*ADAPTIVE, "budget=20", "dataset.test_per_task=2", "eval.tasks.max_new_tokens=2"]
    metrics = run_train(compose_config("train", *settings, folder=tmp_path))
    assert metrics["train/examples"] == 20.0
    assert 0 < metrics["selection/learn_seconds"] and metrics["selection/round1_labels"] == 10.0
