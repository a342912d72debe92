"""Selectors through the uniform interface, on pools whose confidences are known exactly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from labelbudget.errors import ConfigError
from labelbudget.scoring.scores import Scores
from labelbudget.selection import SELECTORS, Candidates, make_selector
from labelbudget.selection.base import SCORES

REPO = Path(__file__).resolve().parents[1]


def candidates_with_confidence(task_conf: dict[str, tuple[int, float]]) -> Candidates:
    """Every prompt of a task has the same sequence confidence, so conf_t is known exactly."""
    ids, tasks, logprob = [], [], []
    for task, (size, conf) in task_conf.items():
        for i in range(size):
            ids.append(f"{task}-{i}")
            tasks.append(task)
            logprob.append(np.log(conf))
    scores = Scores.with_columns(ids, seq_logprob=np.array(logprob), mean_logprob=np.array(logprob))
    return Candidates(ids, tasks, {SCORES: scores})


def task_counts(candidates: Candidates, ids: list[str]) -> dict[str, int]:
    task_of = dict(zip(candidates.ids, candidates.tasks))
    return dict(Counter(task_of[i] for i in ids))


def test_registry_has_the_selectors_by_name():
    assert {"random", "task_diversity", "weighted_task"} <= set(SELECTORS)
    with pytest.raises(ConfigError, match="unknown selector 'nope'"):
        make_selector("nope")


def test_weighted_task_counts_follow_inverse_confidence():
    # hand-worked: a 2-prompt task is taken whole, the confident task stays at its base 5,
    # the unsure task takes the remaining 23 (see test_allocation for the arithmetic)
    candidates = candidates_with_confidence(
        {"tiny": (2, 0.01), "easy": (50, 0.9), "hard": (50, 0.1)}
    )
    selection = make_selector("weighted_task").select(candidates, 30, np.random.default_rng(0))
    assert task_counts(candidates, selection.ids) == {"tiny": 2, "easy": 5, "hard": 23}
    assert selection.allocation == {"easy": 5.0, "hard": 23.0, "tiny": 2.0}


def test_weighted_task_token_geomean_option_uses_per_token_confidence():
    candidates = candidates_with_confidence({"a": (100, 0.5), "b": (100, 0.25)})
    # make task a's answers long: its sequence confidence drops, per-token confidence does not
    long = Scores(
        **{
            **candidates.signals[SCORES].__dict__,
            "seq_logprob": np.where(
                np.array(candidates.tasks) == "a", np.log(0.5) * 10, np.log(0.25)
            ),
        }
    )
    candidates = Candidates(candidates.ids, candidates.tasks, {SCORES: long})
    by_sequence = make_selector("weighted_task").select(candidates, 30, np.random.default_rng(0))
    by_token = make_selector("weighted_task", confidence="token_geomean").select(
        candidates, 30, np.random.default_rng(0)
    )
    # by the product a's confidence is 0.5^10 = 1/1024 against b's 0.25: base 5 each, then the other
    # 20 split 1024 : 4, i.e. 19.92 : 0.08, rounded to 20 : 0
    assert task_counts(candidates, by_sequence.ids) == {"a": 25, "b": 5}
    assert task_counts(candidates, by_token.ids) == {"a": 10, "b": 20}  # 1/0.5 : 1/0.25


def test_task_diversity_levels_counts_across_tasks():
    candidates = candidates_with_confidence(
        {"a": (3, 0.5), "b": (40, 0.5), "c": (40, 0.5), "d": (40, 0.5)}
    )
    selection = make_selector("task_diversity").select(candidates, 33, np.random.default_rng(1))
    assert task_counts(candidates, selection.ids) == {"a": 3, "b": 10, "c": 10, "d": 10}


def test_within_task_picks_are_uniform():
    candidates = candidates_with_confidence({"a": (10, 0.5), "b": (10, 0.5)})
    hits = Counter()
    for seed in range(2000):
        hits.update(
            make_selector("task_diversity").select(candidates, 4, np.random.default_rng(seed)).ids
        )
    frequencies = np.array([hits[i] for i in candidates.ids]) / 2000
    assert np.allclose(frequencies, 0.2, atol=0.04)  # 2 of 10 per task, every prompt alike


@pytest.mark.parametrize("name", ["random", "task_diversity", "weighted_task"])
@pytest.mark.parametrize("budget", [15, 97, 100])
def test_every_selector_returns_exactly_budget_distinct_pool_ids(name, budget):
    candidates = candidates_with_confidence({"a": (4, 0.9), "b": (60, 0.2), "c": (36, 0.05)})
    selection = make_selector(name).select(candidates, budget, np.random.default_rng(7))
    assert len(selection.ids) == len(set(selection.ids)) == budget
    assert set(selection.ids) <= set(candidates.ids)


def test_weighted_task_refuses_a_budget_below_its_base():
    with pytest.raises(ConfigError, match="smaller than the base allocation 14"):
        make_selector("weighted_task").check_budget({"a": 4, "b": 60, "c": 36}, 13)
    make_selector("weighted_task").check_budget({"a": 4, "b": 60, "c": 36}, 14)
    make_selector("weighted_task", base_per_task=1).check_budget({"a": 4, "b": 60, "c": 36}, 3)
    # a base of 0 still gives every task a label: 2 labels for 3 tasks is refused, not spent on
    # the first two names
    with pytest.raises(ConfigError, match="smaller than the number of tasks 3"):
        make_selector("weighted_task", base_per_task=0).check_budget({"a": 4, "b": 60, "c": 36}, 2)
    make_selector("weighted_task", base_per_task=0).check_budget({"a": 4, "b": 60, "c": 36}, 3)


def test_weighted_task_needs_scores():
    with pytest.raises(ConfigError, match="needs the signal 'scores'"):
        make_selector("weighted_task").select(Candidates(["x"], ["t"]), 1, np.random.default_rng(0))


def test_selection_statistics_by_hand():
    from labelbudget.tracking.selection_report import TaskRow, selection_statistics

    rows = [
        TaskRow("a", 10, None, None, 2),
        TaskRow("b", 10, None, None, 2),
        TaskRow("c", 10, None, None, 0),
    ]
    stats = selection_statistics(rows)
    assert stats["selection/tasks_covered"] == 2 and stats["selection/tasks_in_pool"] == 3
    assert stats["selection/allocation_entropy"] == pytest.approx(np.log(2))  # two tasks, evenly


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (REPO / "conf" / "selector").glob("*.yaml"))
)
def test_every_selector_config_builds_what_make_selector_of_its_name_builds(name, tmp_path):
    """One registry, one set of defaults: `selector=<name>` and `make_selector(<name>)` agree."""
    from hydra.utils import instantiate

    predictions = tmp_path / "predicted_auc.json"
    predictions.write_text('{"n_max": 100, "tasks": {"t": 0.5}}')
    given = {"predictions": str(predictions)} if name == "predicted_efficiency" else {}
    cfg = compose_config(
        "select", f"selector={name}", *[f"selector.{k}={v}" for k, v in given.items()]
    )
    from_config = instantiate(cfg.selector)
    from_python = make_selector(name, **given)
    assert type(from_python) is type(from_config)
    assert vars(from_python) == vars(from_config)


def identical_candidates(tmp_path: Path) -> tuple[Candidates, dict]:
    """Two tasks of 5 prompts whose embeddings are all the same vector, with every signal a
    selector could ask for; and the options each conf/selector needs to build."""
    from labelbudget.efficiency.predicted_auc import PredictedAUC
    from labelbudget.selection.base import PREDICTED_AUC, PROBE_AUC, PROMPT_SENSITIVITY, ROUND_GAINS

    ids = [f"{task}-{i}" for task in "ab" for i in range(5)]
    tasks = [i.split("-")[0] for i in ids]
    logprob = np.log(np.linspace(0.1, 0.9, len(ids)))
    scores = Scores.with_columns(
        ids,
        embeddings=np.ones((len(ids), 8)),
        seq_logprob=logprob,
        mean_logprob=logprob,
        mean_prob=np.exp(logprob),
        mean_margin=np.full(len(ids), 0.5),
        min_margin=np.full(len(ids), 0.5),
        mean_entropy=np.full(len(ids), 1.0),
    )
    curves = PredictedAUC({"a": 0.3, "b": 0.6}, 100)
    predictions = tmp_path / "predicted_auc.json"
    curves.write(predictions)
    signals = {
        SCORES: scores,
        PROMPT_SENSITIVITY: {"a": 0.2, "b": 0.4},
        PREDICTED_AUC: curves,
        PROBE_AUC: curves,
        ROUND_GAINS: curves,
    }
    return Candidates(ids, tasks, signals), {
        "predicted_efficiency": {"predictions": str(predictions)}
    }


@pytest.mark.parametrize("k", [1, 10])
@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (REPO / "conf" / "selector").glob("*.yaml"))
)
def test_every_selector_picks_exactly_k_from_identical_embeddings(name, k, tmp_path):
    """Embeddings all equal (a model whose pooled states collapse): every pair at distance 0,
    the rbf kernel's scale undefined, the DPP's kernel of rank one; still exactly k picks."""
    from hydra.utils import instantiate

    from labelbudget.selection.base import FIRST_ROUND

    candidates, options = identical_candidates(tmp_path)
    given = options.get(name, {})
    cfg = compose_config(
        "select", f"selector={name}", *[f"selector.{a}={v}" for a, v in given.items()]
    )
    selector = instantiate(cfg.selector)
    budget = k
    sizes = {"a": 5, "b": 5}
    refusals = {  # k = 1 is below what these need: refused, not run
        "weighted_task": "smaller than the base allocation 10",  # its base of 5 per task
        "adaptive": "it needs at least 2, got 1",  # two rounds
    }
    if name in refusals and k == 1:
        with pytest.raises(ConfigError, match=refusals[name]):
            selector.check_budget(sizes, budget)
        return
    selector.check_budget(sizes, budget)
    rng = np.random.default_rng(0)
    first = selector.first_round(candidates, budget, rng)
    if first is not None:
        candidates = Candidates(
            candidates.ids, candidates.tasks, {**candidates.signals, FIRST_ROUND: first}
        )
    selection = selector.select(candidates, budget, rng)
    assert len(selection.ids) == len(set(selection.ids)) == budget
    assert set(selection.ids) <= set(candidates.ids)


def test_a_tasks_confidence_is_the_mean_of_its_prompts_probabilities():
    # conf_t = mean of conf(x): task a (0.2, 0.4) -> 0.3, task b (0.9) -> 0.9; per token
    # (token_geomean) the same from mean_logprob
    sequence, per_token = np.log([0.2, 0.4, 0.9]), np.log([0.5, 0.7, 0.1])
    scores = Scores.with_columns(["p0", "p1", "p2"], seq_logprob=sequence, mean_logprob=per_token)
    rows = {"b": np.array([2]), "a": np.array([0, 1])}
    assert np.exp(scores.task_log_confidence(rows)) == pytest.approx([0.9, 0.3])
    assert np.exp(scores.task_log_confidence(rows, "token_geomean")) == pytest.approx([0.1, 0.6])
