"""The run object: one per stage, naming its tracker from its identity, recording metrics.json
and the same numbers to the tracker, and closing the tracker however the stage ends."""

from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

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
    # the whole config, resolved: where the run writes too
    assert logger.hyperparams["paths"]["output_dir"] == str(tmp_path / "run")
    assert logger.hyperparams["model"]["name"] == "tiny_llama" and "seed" in logger.hyperparams
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


def test_opening_a_run_loads_no_model_and_a_cache_miss_is_no_scoring_pass(tmp_path):
    from labelbudget.data.synthetic import build_synthetic_suite

    cfg = config_with(tmp_path, None)
    pool = build_synthetic_suite(pool_per_task=2, test_per_task=1, tasks=["arith_add_small"]).pool
    with Run.open(cfg, IDENTITY) as run:
        assert run.scores(pool, required=False) is None  # nothing cached yet
        assert run.model.loaded is None


def test_only_the_main_process_writes_the_record_but_every_rank_logs(tmp_path, monkeypatch):
    import labelbudget.stages.run as run_module

    RecordingLogger.opened.clear()
    monkeypatch.setattr(run_module, "is_main_process", lambda: False)
    cfg = config_with(tmp_path, {"_target_": "test_run.RecordingLogger", "_partial_": True})
    with Run.open(cfg, IDENTITY) as run:
        run.record({"tasks/macro": 0.5}, {})
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert RecordingLogger.opened[0].metrics == [
        {"tasks/macro": 0.5}
    ]  # Lightning's rank-zero loggers


def test_a_run_without_identity_records_nothing(tmp_path):
    with Run.open(config_with(tmp_path, None)) as run, pytest.raises(ValueError, match="records"):
        run.record({"x": 1.0}, {})


class FailingLogger(RecordingLogger):
    """A tracker that starts W&B, then fails before the stage gets it."""

    def log_hyperparams(self, params):
        import wandb

        wandb.init(mode="offline", dir=str(params["paths"]["output_dir"]))
        raise RuntimeError("the tracker failed")


def test_a_tracker_that_fails_half_way_open_is_still_closed(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    (tmp_path / "run").mkdir(parents=True)
    cfg = config_with(tmp_path, {"_target_": "test_run.FailingLogger", "_partial_": True})
    with pytest.raises(RuntimeError, match="the tracker failed"):
        with Run.open(cfg, IDENTITY):
            pass
    assert wandb.run is None


def test_select_with_a_tracker_sends_it_the_allocation_table_and_plot(tmp_path):
    from labelbudget.stages.select import run_select

    TableLogger.calls.clear()
    cfg = compose_config(
        "select", "model=tiny_llama", "selector=task_diversity", "budget=30", folder=tmp_path
    )
    with open_dict(cfg):
        cfg.logger = {"_target_": "test_run.TableLogger", "_partial_": True}
    run_select(cfg)
    table, image, metrics = TableLogger.calls
    assert table[0] == "selection/allocation" and sum(row[-1] for row in table[1]) == 30
    assert image == ("selection/allocation_plot", [str(tmp_path / "run" / "allocation.png")])
    assert metrics == (
        "metrics",
        json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"],
    )
    assert metrics[1]["selection/tasks_covered"] == 24.0


class TableLogger(RecordingLogger):
    """A tracker that takes tables and images, like W&B's."""

    calls: list = []

    def log_table(self, key, columns, data):
        TableLogger.calls.append((key, data))

    def log_image(self, key, images):
        TableLogger.calls.append((key, images))

    def log_metrics(self, metrics):
        TableLogger.calls.append(("metrics", metrics))
