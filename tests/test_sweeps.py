"""The resumable sweeper: a killed sweep reruns only what is missing, finished jobs stay byte for
byte and second for second as they were, a folder of other settings is refused, a failed job
does not stop the others, and a study's union of grids expands as written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hydra_plugins.labelbudget_sweeper import resumable_sweeper
from hydra_plugins.labelbudget_sweeper.resumable_sweeper import ResumableSweeper

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model=tiny_llama",
    "dataset.pool_per_task=6",
    "dataset.test_per_task=3",
    "budget=20",
    "finetune.epochs=1",
    "eval.tasks.max_new_tokens=4",
    "logger=none",
]


def sweep_command(sweep_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "-m",
        *TINY,
        f"hydra.sweep.dir={sweep_dir}",
        "selector=random,kcenter",
        "seed=0,1",
        *extra,
    ]


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "offline"}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_killed_sweep_reruns_only_the_missing_jobs_and_leaves_finished_ones_untouched(tmp_path):
    sweep = tmp_path / "sweep"
    # kill -9 inside job 1: job 0 has finished, job 1 has started
    process = subprocess.Popen(
        sweep_command(sweep),
        cwd=REPO,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (
        (sweep / "0" / "metrics.json").is_file()
        and (sweep / "1" / ".hydra" / "config.yaml").is_file()
    ):
        assert process.poll() is None and time.monotonic() < deadline, (
            "the sweep ended before it could be killed"
        )
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (sweep / "1" / "metrics.json").is_file()
    # the jobs not started yet hold the sweeper's mark alone: folders it may clear
    assert [p.name for p in (sweep / "2").iterdir()] == [".labelbudget-job"]
    finished = snapshot(sweep / "0")

    rerun = subprocess.run(
        sweep_command(sweep),
        cwd=REPO,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = rerun.stdout + rerun.stderr
    assert "skip #0" in log and "rerun #1" in log and "4 jobs: 1 finished already, 3 to run" in log
    assert snapshot(sweep / "0") == finished  # same bytes, same times
    assert all((sweep / str(n) / "metrics.json").is_file() for n in range(4))

    # killed between jobs (job 3 never started) and inside one (job 2 lost its metrics.json)
    done = {n: snapshot(sweep / str(n)) for n in (0, 1)}
    subprocess.run(["rm", "-r", str(sweep / "3")], check=True)
    (sweep / "2" / "metrics.json").unlink()
    rerun = subprocess.run(
        sweep_command(sweep),
        cwd=REPO,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "4 jobs: 2 finished already, 2 to run" in rerun.stdout + rerun.stderr
    assert {n: snapshot(sweep / str(n)) for n in (0, 1)} == done
    assert all((sweep / str(n) / "metrics.json").is_file() for n in range(4))

    # the same folders with other settings: refused before any job runs, nothing touched, not
    # even an interrupted job's folder (job 3's metrics.json removed here)
    (sweep / "3" / "metrics.json").unlink()
    everything = snapshot(sweep)
    refused = subprocess.run(
        sweep_command(sweep, "finetune.learning_rate=0.01"),
        cwd=REPO,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode == 2
    assert (
        f"{sweep / '0'} holds a run of other settings (finetune.learning_rate: 0.0001 there, 0.01 now)"
        in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    assert {k: v for k, v in snapshot(sweep).items() if k != "multirun.yaml"} == {
        k: v for k, v in everything.items() if k != "multirun.yaml"
    }


def test_a_failed_job_does_not_stop_the_jobs_after_it(tmp_path):
    # budget 100000 is larger than the pool: that job fails in its checks, the other one runs
    command = [
        sys.executable,
        "train.py",
        "-m",
        *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "selector=random",
        "budget=100000,20",
    ]
    result = subprocess.run(
        command, cwd=REPO, env=environment(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 1
    assert "error: 1 of 2 jobs failed:" in result.stderr and "budget=100000" in result.stderr
    assert "is larger than the pool" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "sweep" / "1" / "metrics.json").is_file() and not (
        tmp_path / "sweep" / "0" / "metrics.json"
    ).exists()


def test_a_study_is_params_outermost_then_each_grid_and_the_command_line_wins():
    sweeper = ResumableSweeper(
        params={"seed": "0,1"},
        grids=[{"budget": 0}, {"budget": "10,20", "selector": "random,kcenter"}],
    )
    sweeper.hydra_context = SimpleNamespace(config_loader=None)
    jobs = [" ".join(job) for job in sweeper.jobs(["experiment=study"])]
    assert jobs == [
        f"seed={s} budget={b} experiment=study"
        if b == 0
        else f"seed={s} budget={b} selector={x} experiment=study"
        for s in (0, 1)
        for b, x in [(0, None), (10, "random"), (10, "kcenter"), (20, "random"), (20, "kcenter")]
    ]
    # a seed on the command line replaces the swept ones; the duplicates it makes run once
    assert [" ".join(job) for job in sweeper.jobs(["seed=5"])] == [
        "seed=5 budget=0",
        "seed=5 budget=10 selector=random",
        "seed=5 budget=10 selector=kcenter",
        "seed=5 budget=20 selector=random",
        "seed=5 budget=20 selector=kcenter",
    ]
    # a grid that sets a swept key wins over params: study_bbh's zero-shot runs once, not per seed
    sweeper.grids = [{"budget": 0, "seed": 0}, {"budget": 10}]
    assert [" ".join(job) for job in sweeper.jobs([])] == [
        "seed=0 budget=0",
        "seed=0 budget=10",
        "seed=1 budget=10",
    ]


def test_two_jobs_that_would_share_a_folder_are_refused(tmp_path):
    command = [
        sys.executable,
        "train.py",
        "-m",
        *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweep.subdir=same",
        "selector=random",
        "seed=0,1",
    ]
    result = subprocess.run(
        command, cwd=REPO, env=environment(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert (
        result.returncode == 2
        and "jobs #0 and #1 (" in result.stderr
        and "would share" in result.stderr
    )
    assert not (tmp_path / "sweep" / "same").exists()


def test_a_logger_or_paths_change_does_not_make_a_finished_job_other_settings(tmp_path):
    from labelbudget.configs import differing_keys

    saved = {
        "seed": 0,
        "logger": {"project": "a"},
        "paths": {"cache_dir": "/x"},
        "model": {"linear_layers": ["q_proj"]},
    }
    assert (
        differing_keys(
            saved, {"seed": 0, "logger": None, "paths": {"cache_dir": "/y"}, "model": {}}
        )
        == []
    )
    assert differing_keys(saved, {"seed": 1}) == ["seed: 0 there, 1 now"]
    # a run finished before model.tokenizer existed is the same run as one with it
    tokenizer = {"_target_": "labelbudget.models.tiny.byte_level_tokenizer", "_partial_": True}
    assert (
        differing_keys(saved, {**saved, "model": {"linear_layers": [], "tokenizer": tokenizer}})
        == []
    )
    assert differing_keys(saved, {**saved, "model": {"tokenizer_like": 1}}) == [
        "model.tokenizer_like: '<absent>' there, 1 now"
    ]


def test_a_job_that_calls_sys_exit_fails_like_one_that_raised():
    # Hydra's job runner catches Exception only: a SystemExit would end the sweep. (The module
    # is read through its attributes: Hydra's plugin scan executes it again, making new classes.)
    exit_as_failure = resumable_sweeper.exit_as_failure

    def exits(code):
        return lambda config: sys.exit(code)

    with pytest.raises(resumable_sweeper.JobExited, match="exited with code 3"):
        exit_as_failure(exits(3), None)
    assert exit_as_failure(exits(0), None) is None
    assert exit_as_failure(lambda config: config * 2, 21) == 42


def select_sweep(tmp_path: Path, sweep: Path, *extra: str) -> subprocess.CompletedProcess:
    """select.py over a small JSONL pool with the random selector: no model loads."""
    return subprocess.run(
        [
            sys.executable,
            "select.py",
            "-m",
            "model=tiny_llama",
            "dataset=jsonl",
            f"dataset.path={tmp_path / 'pool.jsonl'}",
            "selector=random",
            "budget=3",
            f"hydra.sweep.dir={sweep}",
            *extra,
        ],
        cwd=REPO,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_pool(tmp_path: Path, first_prompt: str = "What is 1 + 1?") -> None:
    rows = [{"id": "a", "task": "t", "prompt": first_prompt, "response": "2"}] + [
        {"id": f"q{i}", "task": "u" if i % 2 else "t", "prompt": f"Say {i}.", "response": str(i)}
        for i in range(5)
    ]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_sweeper_deletes_no_folder_it_did_not_write(tmp_path):
    write_pool(tmp_path)
    victim = tmp_path / "victim"
    (victim / "0").mkdir(parents=True)
    (victim / "0" / "my_annotations.jsonl").write_text('{"id": "a", "response": "mine"}\n')
    result = select_sweep(tmp_path, victim, "seed=0")
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        f"{victim / '0'} holds files but no metrics.json and no .labelbudget-job" in result.stderr
    )
    assert (
        victim / "0" / "my_annotations.jsonl"
    ).read_text() == '{"id": "a", "response": "mine"}\n'
    # the whole sweep folder as the job's (subdir=.): a user's notes and folders stay
    (victim / "notes.txt").write_text("notes")
    (victim / "sub").mkdir()
    result = select_sweep(tmp_path, victim, "seed=0", "hydra.sweep.subdir=.")
    assert result.returncode == 2 and f"{victim} holds files but no metrics.json" in result.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["0", "notes.txt", "sub"]
    # a marked job folder, interrupted, with a user's file dropped in: refused, nothing removed
    done = select_sweep(tmp_path, tmp_path / "sweep", "seed=0")
    assert done.returncode == 0, done.stderr[-2000:]
    job = tmp_path / "sweep" / "0"
    (job / "metrics.json").unlink()
    (job / "keep.txt").write_text("mine")
    before = sorted(p.name for p in job.iterdir())
    result = select_sweep(tmp_path, tmp_path / "sweep", "seed=0")
    assert (
        result.returncode == 2
        and "also holds 'keep.txt', which labelbudget did not write" in result.stderr
    )
    assert sorted(p.name for p in job.iterdir()) == before
    # without it: the interrupted job's own files are cleared and it reruns
    (job / "keep.txt").unlink()
    rerun = select_sweep(tmp_path, tmp_path / "sweep", "seed=0")
    assert rerun.returncode == 0 and "rerun #0" in rerun.stdout + rerun.stderr
    assert (job / "metrics.json").is_file()


def test_a_sweep_over_an_edited_pool_is_refused_and_never_resumed(tmp_path):
    write_pool(tmp_path)
    sweep = tmp_path / "sweep"
    first = select_sweep(tmp_path, sweep, "seed=0,1")
    assert first.returncode == 0, first.stderr[-2000:]
    recorded = json.loads((sweep / "0" / "metrics.json").read_text())["data"]
    assert recorded["pool"]["source"] == str(tmp_path / "pool.jsonl")
    assert recorded["pool"]["examples"] == 6 and len(recorded["pool"]["sha256"]) == 64
    again = select_sweep(tmp_path, sweep, "seed=0,1")
    assert "2 jobs: 2 finished already, 0 to run" in again.stdout + again.stderr
    # edited in place: same file name, same settings, other content
    write_pool(tmp_path, "What is 2 + 2?")
    before = snapshot(sweep)
    edited = select_sweep(tmp_path, sweep, "seed=0,1")
    assert edited.returncode == 2
    assert (
        f"{sweep / '0'} holds a run on other data: the pool {tmp_path / 'pool.jsonl'} has changed"
        in edited.stderr
    )
    # one job folder removed: the other still holds the old pool's run, so nothing runs
    subprocess.run(["rm", "-r", str(sweep / "1")], check=True)
    edited = select_sweep(tmp_path, sweep, "seed=0,1")
    assert edited.returncode == 2 and f"{sweep / '0'} holds a run on other data" in edited.stderr
    assert not (sweep / "1").exists()
    assert {k: v for k, v in snapshot(sweep / "0").items()} == {
        k.removeprefix("0/"): v for k, v in before.items() if k.startswith("0/")
    }


def test_a_damaged_metrics_json_is_set_aside_and_its_job_reruns(tmp_path):
    write_pool(tmp_path)
    sweep = tmp_path / "sweep"
    assert select_sweep(tmp_path, sweep, "seed=0,1").returncode == 0
    whole = (sweep / "0" / "metrics.json").read_text()
    (sweep / "0" / "metrics.json").write_text('{"trunc')  # a copy or a full disk cut it short
    kept = snapshot(sweep / "1")
    rerun = select_sweep(tmp_path, sweep, "seed=0,1")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    log = rerun.stdout + rerun.stderr
    assert f"{sweep / '0' / 'metrics.json'}: is not valid JSON" in log
    assert f"set aside as {sweep / '0' / 'metrics.json.damaged'}, and the job reruns" in log
    assert "skip #1" in log and snapshot(sweep / "1") == kept
    assert (sweep / "0" / "metrics.json.damaged").read_text() == '{"trunc'  # kept, not deleted
    assert (sweep / "0" / "metrics.json").read_text() == whole  # the same seed, the same record
    # a damaged record in a folder the sweeper did not mark is not its to touch
    (sweep / "1" / ".labelbudget-job").unlink()
    (sweep / "1" / "metrics.json").write_text("[]")
    refused = select_sweep(tmp_path, sweep, "seed=0,1")
    assert refused.returncode == 2 and "has no .labelbudget-job" in refused.stderr
    assert (sweep / "1" / "metrics.json").read_text() == "[]"
