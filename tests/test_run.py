"""The run object: one per stage, naming its tracker from its identity, recording metrics.json
and the same numbers to the tracker, and closing the tracker however the stage ends."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf, open_dict

from conftest import compose_config
from labelbudget.runs import RunIdentity
from labelbudget.stages.run import Run, run_identity

IDENTITY = RunIdentity("synthetic", "random", {"a": 1}, 40, 3, "tiny_llama")


class RecordingLogger:
    """A tracker that keeps what it was given."""

    opened: list[RecordingLogger] = []

    def __init__(self, group: str, name: str, tags: list[str]):
        self.names = {"group": group, "name": name, "tags": tags}
        self.hyperparams, self.metrics = None, []
        RecordingLogger.opened.append(self)

    def log_hyperparams(self, params):
        self.hyperparams = params

    def log_metrics(self, metrics):
        self.metrics.append(metrics)


def config_with(tmp_path, logger: dict | None):
    cfg = compose_config("train", "model=tiny_llama", "logger=none", folder=tmp_path)
    with open_dict(cfg):
        cfg.logger = logger
    return cfg


def test_the_tracker_is_named_from_the_identity_and_gets_the_config_and_the_record(tmp_path):
    RecordingLogger.opened.clear()
    cfg = config_with(tmp_path, {"_target_": "test_run.RecordingLogger", "_partial_": True})
    with Run.open(cfg, IDENTITY) as run:
        run.record({"tasks/macro": 0.25}, {"tasks": {"max_new_tokens": 4}})
    (logger,) = RecordingLogger.opened
    assert logger.names == {
        "group": "synthetic/random/40",
        "name": "random-b40-seed3",
        "tags": ["synthetic", "random", "budget=40", "tiny_llama"],
    }
    assert logger.hyperparams == OmegaConf.to_container(cfg, resolve=True)
    assert logger.metrics == [{"tasks/macro": 0.25}]
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["run"] == IDENTITY.as_dict() and record["metrics"] == {"tasks/macro": 0.25}
    assert record["settings"] == {"tasks": {"max_new_tokens": 4}}
    assert record["config"]["model"]["name"] == "tiny_llama" and "paths" not in record["config"]
    assert "data" not in record and "headlines" not in record  # none given


def test_a_run_without_identity_opens_no_tracker_and_a_run_without_logger_none(tmp_path):
    RecordingLogger.opened.clear()
    cfg = config_with(tmp_path, {"_target_": "test_run.RecordingLogger", "_partial_": True})
    with Run.open(cfg) as run:  # estimate.py: files of its own, no record
        assert run.logger is None and run.identity is None
    with Run.open(config_with(tmp_path, None), IDENTITY) as run:
        assert run.logger is None
    assert RecordingLogger.opened == []


def test_the_wandb_run_is_closed_when_the_stage_fails(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config("train", "model=tiny_llama", "logger=wandb", folder=tmp_path)
    with pytest.raises(RuntimeError, match="the stage failed"):
        with Run.open(cfg, IDENTITY) as run:
            assert run.logger.experiment is not None  # W&B starts its run on first use
            assert wandb.run is not None
            raise RuntimeError("the stage failed")
    assert wandb.run is None  # the next job of a multirun starts its own
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_budget_zero_and_the_whole_pool_are_their_own_rows_whatever_the_selector(tmp_path):
    cfg = compose_config("train", "model=tiny_llama", folder=tmp_path)

    class Named:
        name = "weighted_task"

    assert run_identity(cfg, "d", 0, Named(), 100).selector == "zero-shot"
    assert run_identity(cfg, "d", 100, Named(), 100).selector == "full"
    chosen = run_identity(cfg, "d", 30, Named(), 100)
    assert (chosen.selector, chosen.selector_options, chosen.budget) == ("weighted_task", {}, 30)
    assert run_identity(cfg, "d") == RunIdentity("d", "zero-shot", {}, 0, 0, "tiny_llama")
