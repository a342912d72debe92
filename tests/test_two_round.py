"""Two-round selection: predicted_efficiency's probe is paid from the budget, labelled like the
rest and trained on; the planner splits what remains from the probe's counts; with real
annotators the rounds are two annotation files, each checked against the other's selection."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

import labelbudget.models.tiny
from conftest import annotate, compose_config, read_jsonl, write_unlabelled_pool
from labelbudget.data.synthetic import build_synthetic_suite
from labelbudget.efficiency.planner import plan_budget
from labelbudget.errors import ConfigError, DataError
from labelbudget.stages.select import run_select

SMALL = "dataset.pool_per_task=6"
TASKS = "dataset.tasks=[arith_add_small,cls_prime,extract_price,str_reverse_letters]"
PROBE = ["selector=predicted_efficiency", "selector.probe=3", "selector.coslow.rank=4"]


@pytest.fixture
def fit(tmp_path) -> str:
    """An AUC ~ CoS-Low line for the tiny model (none is shipped for it)."""
    path = tmp_path / "fit.json"
    line = {"slope": 0.5, "intercept": 0.2, "signal": "coslow", "model": "tiny_llama"}
    path.write_text(json.dumps({**line, "n_tasks": 3, "n_max": 100}))
    return f"selector.fit={path}"


def select_config(tmp_path: Path, *overrides: str, output: str = "run"):
    synthetic = [] if any(o.startswith("dataset=") for o in overrides) else [SMALL, TASKS]
    return compose_config(
        "select", "model=tiny_llama", *synthetic, *overrides, folder=tmp_path, output=output
    )


def test_the_probe_is_spent_from_the_budget_and_the_plan_starts_from_it(tmp_path, fit):
    pool = build_synthetic_suite(
        pool_per_task=6,
        tasks=["arith_add_small", "cls_prime", "extract_price", "str_reverse_letters"],
    ).pool
    sizes = pool.task_sizes()
    probe = {t: min(3, n) for t, n in sizes.items()}
    budget = sum(probe.values()) + 5
    selection = run_select(select_config(tmp_path, *PROBE, fit, f"budget={budget}"))
    assert len(selection.ids) == budget == len(set(selection.ids))  # spent exactly
    held = selection.ids[: sum(probe.values())]  # the probe comes first, task by task
    task_of = {e.id: e.task for e in pool}
    assert Counter(task_of[i] for i in held) == probe
    assert selection.objective == {"probe_labels": float(sum(probe.values()))}
    predicted = json.loads((tmp_path / "run" / "probe_auc.json").read_text())
    assert predicted["n_max"] == 100 and set(predicted["tasks"]) == set(sizes)
    expected = plan_budget(predicted["tasks"], sizes, budget, 100, start=probe)
    assert Counter(task_of[i] for i in selection.ids) == expected
    with open(tmp_path / "run" / "allocation.csv") as handle:
        allocated = {row["task"]: int(row["selected"]) for row in csv.DictReader(handle)}
    assert allocated == expected


def test_a_budget_below_the_probe_is_refused_with_the_minimum(tmp_path, fit, monkeypatch):
    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    sizes = build_synthetic_suite(
        pool_per_task=6,
        tasks=["arith_add_small", "cls_prime", "extract_price", "str_reverse_letters"],
    ).pool.task_sizes()
    needed = sum(min(3, n) for n in sizes.values())
    with pytest.raises(
        ConfigError, match=f"below the probe's {needed} labels .* minimum budget is {needed}$"
    ):
        run_select(select_config(tmp_path, *PROBE, fit, f"budget={needed - 1}"))
    with pytest.raises(
        ConfigError, match="selector.fit: no CoS-Low fit is shipped for model 'tiny_llama'"
    ):
        run_select(select_config(tmp_path, *PROBE, f"budget={needed}"))


def test_a_label_free_probe_spends_no_label(tmp_path, fit):
    selection = run_select(
        select_config(tmp_path, *PROBE, "selector.probe_targets=self", fit, "budget=4")
    )
    assert len(selection.ids) == 4 and selection.objective == {"probe_labels": 0.0}


def test_two_annotation_rounds_and_a_file_of_another_selection_refused(tmp_path, fit):
    pool = write_unlabelled_pool(tmp_path)
    real = [
        "dataset=jsonl",
        f"dataset.path={pool}",
        "dataset.fields.id=id",
        "dataset.fields.response=null",
        *PROBE,
        "selector.probe_fraction=1.0",  # the probe drawn from the whole task: seeds differ
        fit,
        "budget=12",
    ]
    assert run_select(select_config(tmp_path, *real, output="round1")) is None
    first = read_jsonl(tmp_path / "round1" / "first_round.jsonl")
    assert len(first) == 9 and not (tmp_path / "round1" / "selection.jsonl").exists()
    answers = annotate(first, tmp_path / "round1_answers.jsonl")
    selection = run_select(
        select_config(tmp_path, *real, f"annotations={answers}", output="round2")
    )
    assert len(selection.ids) == 12 and selection.ids[:9] == [r["id"] for r in first]
    # the same file for another seed's probe: refused, naming the file, before any selection
    with pytest.raises(
        DataError, match=r"round1_answers.jsonl, field 'id': answers \d of the 9 prompts"
    ):
        run_select(select_config(tmp_path, *real, f"annotations={answers}", "seed=5", output="r3"))


def test_train_takes_both_rounds_files_and_refuses_an_id_answered_twice(tmp_path, fit):
    from labelbudget.stages.train import run_train

    tasks = "dataset.tasks=[arith_add_small,cls_prime,extract_price,str_reverse_letters]"
    run = [
        "model=tiny_llama",
        "dataset.pool_per_task=6",
        "dataset.test_per_task=2",
        tasks,
        *PROBE,
        fit,
        "budget=16",
        "finetune.epochs=1",
        "eval.tasks.max_new_tokens=2",
    ]
    same_pool = "dataset.test_per_task=2"
    selection = run_select(select_config(tmp_path, *PROBE, fit, "budget=16", same_pool, output="a"))
    probe = int(selection.objective["probe_labels"])
    one = annotate(read_jsonl(tmp_path / "a" / "selection.jsonl")[:probe], tmp_path / "one.jsonl")
    # round 2 learns from the annotator's probe labels (not the pool's): the rest follows them
    run_select(
        select_config(
            tmp_path, *PROBE, fit, "budget=16", same_pool, f"annotations={one}", output="b"
        )
    )
    rows = read_jsonl(tmp_path / "b" / "selection.jsonl")
    assert [r["id"] for r in rows[:probe]] == selection.ids[:probe]
    two = annotate(rows[probe:], tmp_path / "two.jsonl")
    metrics = run_train(
        compose_config("train", *run, f"annotations.path=[{one},{two}]", folder=tmp_path)
    )
    assert metrics["train/examples"] == 16.0
    both = annotate([rows[0], *rows[probe:]], tmp_path / "both.jsonl")
    with pytest.raises(
        DataError,
        match=rf"one.jsonl \+ .*both.jsonl, field 'id': 1 ids are answered in more than one of these files: '{rows[0]['id']}'$",
    ):
        run_train(
            compose_config(
                "train", *run, f"annotations.path=[{one},{both}]", folder=tmp_path, output="x"
            )
        )
