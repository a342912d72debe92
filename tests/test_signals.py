"""Selectors declare the signals they read; one provider per signal checks and computes it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelbudget.data.schema import Example, Pool
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.errors import ConfigError, DataError
from labelbudget.runs import RunFolder
from labelbudget.selection.base import PREDICTED_AUC, SCORES, Candidates, Selection, Selector
from labelbudget.selection.predicted_efficiency import PredictedEfficiencySelector
from labelbudget.selection.random_sampling import RandomSelector
from labelbudget.stages.run import Run
from labelbudget.stages.signals import PROVIDERS, check_signals, provide_signals


class NoModel:
    """A model provider that fails if asked: these signals must not need the model."""

    def __call__(self):
        raise AssertionError("the model was loaded")


def run_without_model(tmp_path) -> Run:
    """A run whose model fails if loaded, and whose config fails if read."""
    return Run(cfg=None, identity=None, folder=RunFolder(tmp_path), model=NoModel(), logger=None)


class WantsSomethingNew(Selector):
    name = "wants_something_new"

    def signals(self):
        return {"reading_level": None}

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        return Selection(candidates.ids[:budget])


def pool_of(tasks: list[str]) -> Pool:
    return Pool(
        [Example(id=f"p{i}", task=t, prompt=f"q{i}", response="r") for i, t in enumerate(tasks)],
        "test pool",
    )


def test_a_signal_no_provider_computes_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"'wants_something_new' asks for signal\(s\) \['reading_level'\]"
    ) as error:
        check_signals(WantsSomethingNew(), pool_of(["a"]))
    assert all(name in str(error.value) for name in PROVIDERS)


def test_each_selector_gets_exactly_the_signals_it_declares(tmp_path):
    pool = pool_of(["a", "a", "b"])
    assert provide_signals(RandomSelector(), pool, run_without_model(tmp_path)) == {}
    path = tmp_path / "predicted_auc.json"
    path.write_text(json.dumps({"n_max": 100, "tasks": {"a": 0.5, "b": 0.25, "c": 0.1}}))
    selector = PredictedEfficiencySelector(str(path))
    check_signals(selector, pool)
    assert provide_signals(selector, pool, run_without_model(tmp_path)) == {
        PREDICTED_AUC: PredictedAUC({"a": 0.5, "b": 0.25, "c": 0.1}, 100, str(path))
    }
    with pytest.raises(DataError, match=r"has no predicted AUC for the pool's task\(s\) \['d'\]"):
        check_signals(selector, pool_of(["a", "d"]))


def test_candidates_refuse_a_task_keyed_signal_that_misses_a_task():
    from labelbudget.selection.base import PROMPT_SENSITIVITY

    with pytest.raises(ValueError, match="prompt_sensitivity does not cover exactly"):
        Candidates(["x", "y"], ["a", "b"], {PROMPT_SENSITIVITY: {"a": 0.1}})


def test_the_scores_signal_takes_the_runs_scoring_settings_not_a_selectors_own():
    class OwnScoring(WantsSomethingNew):
        def signals(self):
            return {SCORES: {"max_new_tokens": 5}}

    with pytest.raises(ConfigError, match="takes the run's scoring settings"):
        check_signals(OwnScoring(), pool_of(["a"]))
