"""Several processes per job (DDP with gloo on the CPU, 2 ranks of the tiny model) and several
jobs per sweep: the same results as one process, files written once, one W&B run per job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from filelock import FileLock

from conftest import compose_config
from labelbudget.distributed import check_strategy
from labelbudget.errors import ConfigError
from labelbudget.inference.predict import RankBatches
from labelbudget.scoring.cache import ScoringSettings, cache_folder
from labelbudget.scoring.scorer import score_pool
from labelbudget.scoring.scores import NUMERIC_FIELDS, Scores
from labelbudget.training.data import LengthGroupedBatches

REPO = Path(__file__).resolve().parents[1]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]
# 11 prompts per task: 249 prompts in batches of 4 (the last holds 1), 3 batches per shard: the
# 21 shards split 11 / 10 between the ranks, so nothing divides evenly
UNEVEN_POOL = [
    "model=tiny_llama",
    "dataset.pool_per_task=11",
    "scoring.batch_size=4",
    "scoring.batches_per_shard=3",
]


def run_cli(tmp_path: Path, cache: str, *args: str) -> subprocess.CompletedProcess:
    # one thread per process in both runs, so reductions run in the same order
    env = {
        **os.environ,
        "LABELBUDGET_CACHE": str(tmp_path / cache),
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def only_scores(cache: Path) -> Scores:
    (folder,) = (cache / "scores").iterdir()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "meta.json",
        "scores.json",
        "scores.safetensors",
    ]
    return Scores.load(folder / "scores")


@pytest.mark.ddp
def test_ddp_scoring_equals_one_process_scoring(tmp_path):
    run_cli(
        tmp_path,
        "one",
        "select.py",
        *UNEVEN_POOL,
        "budget=150",
        f"hydra.run.dir={tmp_path / 'one_run'}",
    )
    ddp = run_cli(
        tmp_path,
        "ddp",
        "select.py",
        *UNEVEN_POOL,
        "budget=150",
        *DDP,
        f"hydra.run.dir={tmp_path / 'ddp_run'}",
    )
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in ddp.stderr  # two ranks really ran
    single, shared = only_scores(tmp_path / "one"), only_scores(tmp_path / "ddp")
    assert (
        len(single) == 249 and shared.ids == single.ids and shared.generations == single.generations
    )
    for name in (*NUMERIC_FIELDS, "embeddings"):
        np.testing.assert_allclose(
            getattr(shared, name), getattr(single, name), rtol=1e-6, atol=1e-6, err_msg=name
        )
    assert (tmp_path / "ddp_run" / "selection.jsonl").read_bytes() == (
        tmp_path / "one_run" / "selection.jsonl"
    ).read_bytes()
    assert ddp.stdout.count("tasks covered") == 1  # the summary is printed once, not once per rank


@pytest.mark.ddp
def test_ddp_prompt_sensitivity_equals_one_process(tmp_path):
    """The sensitivity pass split across two ranks (each its share of the instances, gathered)
    gives one process's values and the same whole-task selection."""
    args = [
        "select.py",
        "model=tiny_llama",
        "selector=activeit_prompt",
        "budget=30",
        "dataset.pool_per_task=6",
        "scoring.max_new_tokens=2",
        "selector.sensitivity.instances_per_task=3",
        "selector.sensitivity.n_perturbations=3",
        "selector.sensitivity.batch_size=2",
    ]
    run_cli(tmp_path, "one", *args, f"hydra.run.dir={tmp_path / 'one_run'}")
    ddp = run_cli(tmp_path, "ddp", *args, *DDP, f"hydra.run.dir={tmp_path / 'ddp_run'}")
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in ddp.stderr

    def sensitivity(cache: str) -> dict[str, float]:
        (file,) = (tmp_path / cache / "scores").glob("prompt-sensitivity-*/sensitivity.json")
        return json.loads(file.read_text())["sensitivity"]

    single, split = sensitivity("one"), sensitivity("ddp")
    assert len(single) == 24 and split == pytest.approx(single, rel=1e-6, abs=1e-9)
    assert (tmp_path / "ddp_run" / "selection.jsonl").read_bytes() == (
        tmp_path / "one_run" / "selection.jsonl"
    ).read_bytes()


@pytest.mark.ddp
def test_ddp_evaluation_equals_one_process_evaluation(tmp_path):
    args = [
        "evaluate.py",
        "model=tiny_llama",
        "dataset.pool_per_task=4",
        "dataset.test_per_task=5",
        "eval.tasks.max_new_tokens=6",
        "eval.tasks.batch_size=4",
    ]
    run_cli(tmp_path, "one", *args, f"hydra.run.dir={tmp_path / 'one'}")
    run_cli(tmp_path, "ddp", *args, *DDP, f"hydra.run.dir={tmp_path / 'ddp'}")
    assert (tmp_path / "ddp" / "predictions.jsonl").read_bytes() == (
        tmp_path / "one" / "predictions.jsonl"
    ).read_bytes()
    one, ddp = (
        json.loads((tmp_path / d / "metrics.json").read_text())["metrics"] for d in ("one", "ddp")
    )
    assert ddp == one and len(one) == 24 + 2  # every task, macro and micro


@pytest.mark.ddp
def test_two_seed_multirun_with_ddp_gives_two_jobs_two_adapters_two_wandb_runs(tmp_path):
    # the default timestamped sweep folder: a rank that re-ran the whole sweep would make another
    run_cli(
        tmp_path,
        "cache",
        "train.py",
        "model=tiny_llama",
        "dataset.pool_per_task=6",
        "dataset.test_per_task=3",
        "selector=random",
        "budget=41",
        "finetune.epochs=2",
        "finetune.batch_size=4",
        "eval.tasks.max_new_tokens=4",
        *DDP,
        f"paths.log_dir={tmp_path / 'logs'}",
        "-m",
        "seed=0,1",
    )
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["train"]
    assert [p.name for p in (tmp_path / "logs" / "train").iterdir()] == ["multiruns"]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    for seed, job in enumerate(jobs):
        assert json.loads((job / "metrics.json").read_text())["run"]["seed"] == seed
        assert (job / "adapter" / "adapter_model.safetensors").is_file()
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1
        assert (job / "train_ddp_process_1.log").is_file()  # rank 1 ran this job, in this folder
    assert len(list(sweep.rglob("offline-run-*"))) == 2


def test_rank_batches_predict_every_prompt_once_for_any_world_size():
    groups = {
        0: [[0, 1], [2]],
        1: [[3, 4]],
        3: [[5], [6, 7], [8]],
        4: [[9]],
    }  # shard 2 already done
    for world in (1, 2, 3, 5, 8):
        seen = []
        for rank in range(world):
            data = RankBatches([[1]] * 10, groups, pad_token_id=0)
            data.trainer = SimpleNamespace(global_rank=rank, world_size=world)
            rows = [row for batch in data.predict_dataloader().batch_sampler for row in batch]
            assert data.prompts_here == len(rows)
            seen += rows
        assert sorted(seen) == list(range(10)), world


def test_each_optimiser_step_sees_the_one_device_batch_split_across_ranks():
    lengths = list(
        np.random.default_rng(0).integers(1, 50, size=23)
    )  # batches of 4: 4, 4, 4, 4, 4, 3
    single = [
        sorted(batch) for batch in LengthGroupedBatches(lengths, batch_size=4, seed=3, group=2)
    ]
    assert sorted(row for batch in single for row in batch) == list(range(23))
    for world in (2, 3):
        ranks = [
            list(
                LengthGroupedBatches(
                    lengths, batch_size=4, seed=3, group=2, rank=r, world_size=world
                )
            )
            for r in range(world)
        ]
        assert all(len(r) == len(single) for r in ranks)  # the same number of steps on every rank
        assert all(r[step] for r in ranks for step in range(len(single)))  # no rank idles a step
        assert [
            sorted(row for r in ranks for row in r[step]) for step in range(len(single))
        ] == single


def test_a_last_batch_smaller_than_the_world_joins_the_one_before():
    lengths = [5] * 9  # batches of 4: 4, 4, 1
    ranks = [
        list(LengthGroupedBatches(lengths, batch_size=4, seed=0, rank=r, world_size=2))
        for r in range(2)
    ]
    assert [len(r) for r in ranks] == [2, 2]
    assert sorted(len(a) + len(b) for a, b in zip(*ranks)) == [4, 5]
    with pytest.raises(ConfigError, match="3 training examples cannot be shared by 4 ranks"):
        LengthGroupedBatches([1, 2, 3], batch_size=4, seed=0, world_size=4)


def test_a_job_waits_for_another_scoring_the_same_pool_then_reads_its_result(
    tmp_path, tiny_pool_scored
):
    pool, identity, settings, finished = tiny_pool_scored
    folder = cache_folder(pool, identity, settings, tmp_path)
    folder.mkdir(parents=True)
    loads, result = [], {}

    def second_job():
        result["scores"] = score_pool(
            pool, lambda: loads.append(1), identity, settings, tmp_path, trainer_factory=None
        )

    with FileLock(str(folder / ".lock")):  # the first job is scoring
        waiting = threading.Thread(target=second_job)
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and not loads  # blocked on the lock, no model loaded
        finished.save(folder / "scores")  # the first job publishes
    waiting.join(timeout=30)
    assert not loads and result["scores"].ids == finished.ids


@pytest.fixture
def tiny_pool_scored(tmp_path):
    """A small pool, scored once by the tiny model into a separate cache."""
    from functools import partial

    import lightning as L

    from labelbudget.data.synthetic import build_synthetic_suite
    from labelbudget.models.templates import PlainTemplate
    from labelbudget.models.tiny import build_tiny_llama

    pool = build_synthetic_suite(pool_per_task=2, test_per_task=1, seed=0).pool
    identity, settings = {"name": "tiny"}, ScoringSettings(max_new_tokens=3, batch_size=8)
    trainer = partial(
        L.Trainer,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    scores = score_pool(
        pool,
        build_tiny_llama(template=PlainTemplate()),
        identity,
        settings,
        tmp_path / "other",
        trainer,
    )
    return pool, identity, settings, scores


def test_fsdp_config_wraps_each_llama_decoder_layer():
    from hydra.utils import instantiate
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    cfg = compose_config("train", "trainer=fsdp", "paths.output_dir=out")
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy) and strategy.kwargs["use_orig_params"] is True
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {LlamaDecoderLayer}


def test_a_rank_started_by_a_scheduler_follows_its_own_jobs_claim_only(
    tmp_path, tiny_pool_scored, monkeypatch
):
    import labelbudget.scoring.cache as cache

    pool, identity, settings, finished = tiny_pool_scored
    folder = cache_folder(pool, identity, settings, tmp_path)
    folder.mkdir(parents=True)
    read = partial(cache.load_cached, folder, pool.ids)
    monkeypatch.setattr(cache, "job_identity", lambda: "SLURM_JOB_ID=2/0")
    (folder / cache.CLAIM).write_text("SLURM_JOB_ID=1/0")  # another job is scoring this pool
    result = {}
    follower = threading.Thread(
        target=lambda: result.setdefault(
            "scores", cache.follow_main_process(folder, read, poll_s=0.05)
        )
    )
    follower.start()
    time.sleep(0.5)
    assert follower.is_alive()  # neither joins the other job's pass nor scores alone
    finished.save(folder / "scores")
    follower.join(timeout=10)
    assert result["scores"].ids == finished.ids

    other = cache_folder(pool, identity, ScoringSettings(max_new_tokens=4), tmp_path)
    other.mkdir()
    (other / cache.CLAIM).write_text(
        "SLURM_JOB_ID=2/0"
    )  # its own job's main process claimed the pass
    read_other = partial(cache.load_cached, other, pool.ids)
    assert (
        cache.follow_main_process(other, read_other, poll_s=0.05) is None
    )  # so it takes its share


def test_spawning_strategies_are_refused_before_any_work(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "select.py",
            "model=tiny_llama",
            "+trainer.strategy=ddp_spawn",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache")},
    )
    assert (
        result.returncode == 2
        and "trainer.strategy='ddp_spawn' is not supported: use trainer=ddp" in result.stderr
    )
    assert not (tmp_path / "cache").exists()  # refused before scoring
    for strategy in (
        "ddp_fork",
        "ddp_notebook",
        {"_target_": "DDPStrategy", "start_method": "spawn"},
    ):
        with pytest.raises(ConfigError, match="is not supported"):
            check_strategy({"strategy": strategy})
    for strategy in (None, "ddp", "auto", {"_target_": "FSDPStrategy"}):
        check_strategy({"strategy": strategy})
