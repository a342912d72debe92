"""Sweeps through Hydra launchers: SLURM (submitit) composes without a cluster; joblib runs jobs
side by side, sharing one scoring pass through the cache's lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "disabled", **(env or {})},
    )


def test_slurm_launcher_gives_each_job_the_nodes_gpus_and_one_task_per_gpu():
    result = run(
        "train.py",
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
        "--cfg",
        "all",
        "--resolve",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert (
        launcher["_target_"]
        == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (2, 4, 4)
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] == 2160
    info = run("train.py", "hydra/launcher=slurm", "--info", "plugins")
    assert info.returncode == 0 and "SlurmLauncher" in info.stdout


def test_slurm_launcher_refuses_devices_it_cannot_turn_into_tasks():
    result = run(
        "train.py", "hydra/launcher=slurm", "trainer=ddp", "--cfg", "all", "--resolve"
    )  # devices: auto
    assert result.returncode != 0 and "hydra.launcher.gpus_per_node" in result.stderr


def test_joblib_jobs_run_side_by_side_and_score_the_pool_once(tmp_path):
    result = run(
        "select.py",
        "model=tiny_llama",
        "dataset.pool_per_task=12",
        "budget=150",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "-m",
        "seed=0,1",
        env={"LABELBUDGET_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    selections = [tmp_path / "sweep" / job / "selection.jsonl" for job in ("0", "1")]
    assert (
        all(s.is_file() for s in selections)
        and selections[0].read_bytes() != selections[1].read_bytes()
    )
    assert len(list((tmp_path / "cache" / "scores").iterdir())) == 1
