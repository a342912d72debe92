"""Uncertainty baselines and ActiveIT on hand-made scores whose answers are known exactly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from labelbudget.configs import instantiate
from labelbudget.errors import ConfigError
from labelbudget.scoring.scores import Scores
from labelbudget.selection.activeit import ActiveITPromptSelector, ActiveITSelector
from labelbudget.selection.base import (
    PROMPT_SENSITIVITY,
    SCORES,
    SELECTORS,
    Candidates,
    make_selector,
)
from labelbudget.selection.uncertainty import (
    LeastConfidenceSelector,
    MeanEntropySelector,
    MeanMarginSelector,
    MinMarginSelector,
)

REPO = Path(__file__).resolve().parents[1]
UNCERTAINTY = ["least_confidence", "mean_entropy", "mean_margin", "min_margin"]


def candidates_with(
    tasks: list[str], sensitivity: dict[str, float] | None = None, **columns
) -> Candidates:
    """Prompts 'p0', 'p1', ... of the given tasks; the given score columns, every other one zero."""
    scores = Scores.with_columns([f"p{i}" for i in range(len(tasks))], **columns)
    signals = {SCORES: scores}
    if sensitivity is not None:
        signals[PROMPT_SENSITIVITY] = sensitivity
    return Candidates(scores.ids, tasks, signals)


def task_confidences(sizes_and_confidences: dict[str, list[float]]) -> Candidates:
    """Per-prompt sequence confidences given task by task; ids 'p0', 'p1', ... in that order."""
    tasks = [t for t, conf in sizes_and_confidences.items() for _ in conf]
    confidence = [c for conf in sizes_and_confidences.values() for c in conf]
    return candidates_with(tasks, seq_logprob=np.log(confidence))


def ids_of(candidates: Candidates, task: str) -> set[str]:
    return {i for i, t in zip(candidates.ids, candidates.tasks) if t == task}


# Each column ranks the six prompts differently, so a selector reading the wrong one fails.
COLUMNS = {
    "seq_logprob": np.log([0.9, 0.1, 0.5, 0.05, 0.7, 0.3]),  # lowest: p3, p1, p5
    "mean_entropy": [0.2, 1.5, 0.7, 0.1, 3.0, 1.0],  # highest: p4, p1, p5
    "mean_margin": [0.6, 0.9, 0.05, 0.4, 0.3, 0.01],  # lowest: p5, p2, p4
    "min_margin": [0.02, 0.5, 0.3, 0.2, 0.6, 0.1],  # lowest: p0, p5, p3
}


@pytest.mark.parametrize(
    "name, expected, objective",
    [
        (
            "least_confidence",
            ["p3", "p1", "p5"],
            ("log_confidence", np.log([0.05, 0.1, 0.3]).mean()),
        ),
        ("mean_entropy", ["p4", "p1", "p5"], ("mean_entropy", (3.0 + 1.5 + 1.0) / 3)),
        ("mean_margin", ["p5", "p2", "p4"], ("mean_margin", (0.01 + 0.05 + 0.3) / 3)),
        ("min_margin", ["p0", "p5", "p3"], ("min_margin", (0.02 + 0.1 + 0.2) / 3)),
    ],
)
def test_uncertainty_selectors_pick_the_most_uncertain_in_rank_order(name, expected, objective):
    candidates = candidates_with(["t"] * 6, **COLUMNS)
    selection = make_selector(name).select(candidates, 3, np.random.default_rng(0))
    assert selection.ids == expected
    assert selection.objective == {f"selected_mean/{objective[0]}": pytest.approx(objective[1])}


def test_least_confidence_token_geomean_reads_the_per_token_confidence():
    # p0 has a long, confident answer: lowest by the product, highest per token
    candidates = candidates_with(
        ["t"] * 3, seq_logprob=np.log([0.01, 0.2, 0.3]), mean_logprob=np.log([0.9, 0.2, 0.3])
    )
    assert make_selector("least_confidence").select(
        candidates, 2, np.random.default_rng(0)
    ).ids == ["p0", "p1"]
    by_token = make_selector("least_confidence", confidence="token_geomean").select(
        candidates, 2, np.random.default_rng(0)
    )
    assert by_token.ids == ["p1", "p2"]


# (column, the clearly most uncertain value, the value the other nine share)
TIES = {
    "least_confidence": ("seq_logprob", -9.0, -1.0),
    "mean_entropy": ("mean_entropy", 9.0, 1.0),
    "mean_margin": ("mean_margin", 0.0, 0.5),
    "min_margin": ("min_margin", 0.0, 0.5),
}


@pytest.mark.parametrize("name", UNCERTAINTY)
def test_ties_are_broken_by_the_seed(name):
    column, clear, tied = TIES[name]
    candidates = candidates_with(["t"] * 10, **{column: np.r_[clear, np.full(9, tied)]})
    picks = [
        make_selector(name).select(candidates, 3, np.random.default_rng(seed)).ids
        for seed in range(600)
    ]
    assert all(p[0] == "p0" for p in picks)
    assert (
        picks[0] == make_selector(name).select(candidates, 3, np.random.default_rng(0)).ids
    )  # same seed, same picks
    hits = Counter(i for p in picks for i in p[1:])
    assert np.allclose(
        [hits[f"p{i}"] / 600 for i in range(1, 10)], 2 / 9, atol=0.06
    )  # every tied prompt alike


def test_activeit_takes_whole_tasks_lowest_mean_confidence_first():
    # conf_t is the mean of the confidences, not of their logs: x (0.9, 0.01) has mean 0.455 but a
    # geometric mean 0.095, so the order is z (0.05) < y (0.3) < x (0.455) < w (0.9)
    candidates = task_confidences(
        {"w": [0.9] * 4, "x": [0.9, 0.01], "y": [0.3] * 3, "z": [0.05] * 2}
    )
    selection = make_selector("activeit").select(candidates, 6, np.random.default_rng(3))
    assert set(selection.ids[:2]) == ids_of(candidates, "z")
    assert set(selection.ids[2:5]) == ids_of(candidates, "y")
    assert set(selection.ids[5:]) < ids_of(candidates, "x")
    assert selection.allocation == {"w": 0.0, "x": 1.0, "y": 3.0, "z": 2.0}
    assert selection.objective == {"tasks_covered": 3.0}


def test_activeit_token_geomean_ranks_by_per_token_confidence():
    candidates = task_confidences({"long": [0.01] * 3, "short": [0.2] * 3})
    per_token = Scores(
        **{**candidates.signals[SCORES].__dict__, "mean_logprob": np.log([0.9] * 3 + [0.2] * 3)}
    )
    candidates = Candidates(candidates.ids, candidates.tasks, {SCORES: per_token})
    assert set(
        make_selector("activeit").select(candidates, 3, np.random.default_rng(0)).ids
    ) == ids_of(candidates, "long")
    by_token = make_selector("activeit", confidence="token_geomean").select(
        candidates, 3, np.random.default_rng(0)
    )
    assert set(by_token.ids) == ids_of(candidates, "short")


def test_activeit_samples_the_last_task_uniformly():
    candidates = task_confidences({"whole": [0.1] * 3, "partial": [0.5] * 8, "none": [0.9] * 5})
    hits = Counter()
    for seed in range(2000):
        ids = make_selector("activeit").select(candidates, 5, np.random.default_rng(seed)).ids
        assert set(ids[:3]) == ids_of(candidates, "whole")
        hits.update(ids[3:])
    assert set(hits) == ids_of(candidates, "partial")
    assert np.allclose([hits[i] / 2000 for i in ids_of(candidates, "partial")], 2 / 8, atol=0.04)


def test_activeit_prompt_ranks_tasks_by_sensitivity_highest_first():
    candidates = candidates_with(
        ["a"] * 2 + ["b"] * 3 + ["c"] * 4, sensitivity={"a": 0.01, "b": 0.3, "c": 0.2}
    )
    selection = ActiveITPromptSelector().select(candidates, 6, np.random.default_rng(0))
    assert set(selection.ids[:3]) == ids_of(candidates, "b")
    assert set(selection.ids[3:]) < ids_of(candidates, "c")
    assert selection.allocation == {"a": 0.0, "b": 3.0, "c": 3.0}


def test_activeit_breaks_task_ties_by_the_seed():
    candidates = task_confidences({"a": [0.5] * 3, "b": [0.5] * 3})
    firsts = Counter(
        candidates.tasks[
            candidates.ids.index(
                ActiveITSelector().select(candidates, 3, np.random.default_rng(s)).ids[0]
            )
        ]
        for s in range(400)
    )
    assert 150 < firsts["a"] < 250


@pytest.mark.parametrize("name", [*UNCERTAINTY, "activeit", "activeit_prompt"])
@pytest.mark.parametrize("budget", [1, 15, 59, 60])
def test_every_selector_returns_exactly_budget_distinct_pool_ids(name, budget):
    rng = np.random.default_rng(11)
    tasks = ["a"] * 4 + ["b"] * 36 + ["c"] * 20
    columns = {c: rng.random(60) for c in ("mean_entropy", "mean_margin", "min_margin")}
    candidates = candidates_with(
        tasks,
        sensitivity={"a": 0.2, "b": 0.1, "c": 0.3},
        seq_logprob=np.log(rng.random(60)),
        **columns,
    )
    selection = make_selector(name).select(candidates, budget, np.random.default_rng(7))
    assert len(selection.ids) == len(set(selection.ids)) == budget
    assert set(selection.ids) <= set(candidates.ids)


@pytest.mark.parametrize("name", [*UNCERTAINTY, "activeit"])
def test_score_based_selectors_need_scores(name):
    with pytest.raises(ConfigError, match="needs the signal 'scores'"):
        make_selector(name).select(Candidates(["x"], ["t"]), 1, np.random.default_rng(0))


def test_activeit_prompt_needs_prompt_sensitivity_alone():
    assert set(ActiveITPromptSelector().signals()) == {PROMPT_SENSITIVITY}
    with pytest.raises(ConfigError, match="needs the signal 'prompt_sensitivity'"):
        ActiveITPromptSelector().select(Candidates(["x"], ["t"]), 1, np.random.default_rng(0))


@pytest.mark.parametrize("cls", [LeastConfidenceSelector, ActiveITSelector])
def test_unknown_confidence_kind_is_refused_when_built(cls):
    with pytest.raises(ConfigError, match="confidence must be"):
        cls(confidence="mean")


@pytest.mark.parametrize(
    "name, cls",
    [
        ("least_confidence", LeastConfidenceSelector),
        ("mean_entropy", MeanEntropySelector),
        ("mean_margin", MeanMarginSelector),
        ("min_margin", MinMarginSelector),
        ("activeit", ActiveITSelector),
        ("activeit_prompt", ActiveITPromptSelector),
    ],
)
def test_configs_build_the_registered_selectors(name, cls):
    cfg = compose_config("select", f"selector={name}", "scoring.max_new_tokens=7")
    selector = instantiate(cfg.selector)
    assert type(selector) is cls and selector.name == name and SELECTORS[name] is cls
    if (
        name == "activeit_prompt"
    ):  # the pass's settings arrive built, y_hat capped like the scoring pass
        settings = selector.signals()[PROMPT_SENSITIVITY]
        assert settings.max_new_tokens == 7 and settings.dropout == 0.2
