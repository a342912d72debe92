"""What a run's results rest on is checked, not assumed: the score cache follows a local
checkpoint's content, not its path; evaluate.py grades an adapter on the dataset it was trained
on, read as data from its folder (never run as code); and a single run never starts in a
finished run's folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import compose_config, fake_trained_run
from labelbudget.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def save_tiny_checkpoint(folder: Path, seed: int) -> None:
    from labelbudget.models.tiny import build_tiny_llama

    tiny = build_tiny_llama(seed=seed)
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)


def local_checkpoint_config(tmp_path: Path):
    from labelbudget.data.synthetic import build_synthetic_suite

    checkpoint = tmp_path / "ckpt"
    save_tiny_checkpoint(checkpoint, seed=0)
    cfg = compose_config(
        "select",
        "model=hf",
        f"model.loader.name_or_path={checkpoint}",
        "scoring.max_new_tokens=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_dir={tmp_path / 'run'}",
    )
    pool = build_synthetic_suite(pool_per_task=1, test_per_task=1, tasks=["arith_add_small"]).pool
    return checkpoint, cfg, pool


def test_the_score_cache_follows_a_local_checkpoints_weights_not_its_path(tmp_path):
    from labelbudget.stages.run import Run

    checkpoint, cfg, pool = local_checkpoint_config(tmp_path)
    with Run.open(cfg) as run:
        first = run.scores(pool, required=True)
    save_tiny_checkpoint(checkpoint, seed=1)  # other weights in the same folder
    with Run.open(cfg) as run:  # a run after the files changed
        second = run.scores(pool, required=True)
    assert second.seq_logprob.tolist() != first.seq_logprob.tolist()  # the new model's scores
    assert len(list((tmp_path / "cache" / "scores").iterdir())) == 2


def test_a_checkpoints_hash_covers_what_the_loader_reads_and_is_memoised(tmp_path, monkeypatch):
    import hashlib

    import labelbudget.models.fingerprint as fingerprint
    from labelbudget.models.fingerprint import model_identity

    checkpoint, cfg, _ = local_checkpoint_config(tmp_path)
    identity = model_identity(cfg.model, cfg.paths.cache_dir)
    hashed = []
    real = fingerprint.file_sha256
    monkeypatch.setattr(fingerprint, "file_sha256", lambda f: (hashed.append(f.name), real(f))[1])
    assert model_identity(cfg.model, cfg.paths.cache_dir) == identity
    assert hashed == []  # size and time unchanged: the memo answers
    # the checkpoint's hash is over (name, file hash) of every file the loader may read
    files = sorted(p for p in checkpoint.iterdir() if p.is_file())
    assert "model.safetensors" in [p.name for p in files]
    expected = hashlib.sha256(
        "".join(f"{p.name}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files).encode()
    ).hexdigest()
    assert identity["checkpoint_sha256"] == expected
    # a README beside the weights is not read by the loader and changes nothing
    (checkpoint / "README.md").write_text("notes")
    assert model_identity(cfg.model, cfg.paths.cache_dir) == identity
    # a changed tokenizer file is another model, and only it is hashed again
    tokenizer = checkpoint / "tokenizer_config.json"
    tokenizer.write_text(tokenizer.read_text() + " ")
    hashed.clear()
    changed = model_identity(cfg.model, cfg.paths.cache_dir)
    assert changed != identity and hashed == ["tokenizer_config.json"]


def evaluate_config(tmp_path: Path, adapter: Path, *extra: str):
    return compose_config(
        "evaluate",
        "model=tiny_llama",
        f"adapter={adapter}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_dir={tmp_path / 'eval'}",
        *extra,
    )


@pytest.fixture
def no_model(monkeypatch):
    import labelbudget.models.tiny

    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )


PAYLOADS = {
    "builtins.open": "_target_: builtins.open\n  file: {victim}\n  mode: w\n",
    "os.remove": "_target_: os.remove\n  path: {victim}\n",
    "subprocess.run": "_target_: subprocess.run\n  args: [rm, {victim}]\n",
}


@pytest.mark.parametrize("target", sorted(PAYLOADS))
def test_a_run_folders_config_is_never_run_as_code(tmp_path, no_model, target):
    from labelbudget.stages.evaluate import run_evaluate

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = fake_trained_run(
        tmp_path / "run", "dataset:\n  " + PAYLOADS[target].format(victim=victim)
    )
    with pytest.raises(DataError, match=f"names _target_ '{target}', which is not one of") as error:
        run_evaluate(evaluate_config(tmp_path, run / "adapter"))
    assert str(run / ".hydra" / "config.yaml") in str(error.value)
    assert victim.read_text() == "precious"
    # the same payload as the adapter's own record of its dataset
    recorded = {"_target_": target, "file" if target == "builtins.open" else "path": str(victim)}
    (run / "adapter" / "dataset.json").write_text(json.dumps(recorded))
    with pytest.raises(DataError, match=f"names _target_ '{target}'") as error:
        run_evaluate(evaluate_config(tmp_path, run / "adapter"))
    assert str(run / "adapter" / "dataset.json") in str(error.value)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    ("dataset", "field"),
    [
        # a loader of ours, but a nested call in its settings
        (
            "_target_: labelbudget.data.synthetic.build_synthetic_suite\n"
            "  tasks:\n    _target_: os.remove\n    path: {victim}\n",
            "dataset.tasks._target_",
        ),
        # an interpolation that builds a call when resolved
        (
            "_target_: labelbudget.data.synthetic.build_synthetic_suite\n"
            "  tasks: '${{oc.create:{{_target_: os.remove, path: {victim}}}}}'\n",
            "dataset.tasks._target_",
        ),
        (
            "_target_: labelbudget.data.synthetic.build_synthetic_suite\n  _partial_: true\n",
            "dataset._partial_",
        ),
    ],
)
def test_nothing_in_a_recorded_dataset_may_make_hydra_build_anything(
    tmp_path, no_model, dataset, field
):
    from labelbudget.stages.evaluate import run_evaluate

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = fake_trained_run(tmp_path / "run", "dataset:\n  " + dataset.format(victim=victim))
    with pytest.raises(DataError, match=f"field '{field}'"):
        run_evaluate(evaluate_config(tmp_path, run / "adapter"))
    assert victim.read_text() == "precious"


def test_an_interpolation_in_an_adapters_dataset_record_is_refused(tmp_path, no_model):
    from labelbudget.stages.evaluate import run_evaluate

    run = fake_trained_run(tmp_path / "run", "seed: 0\n")
    (run / "adapter" / "dataset.json").write_text(
        json.dumps(
            {"_target_": "labelbudget.data.synthetic.build_synthetic_suite", "tasks": "${oc.env:X}"}
        )
    )
    with pytest.raises(DataError, match="field 'dataset.tasks': holds an interpolation"):
        run_evaluate(evaluate_config(tmp_path, run / "adapter"))


def test_every_shipped_dataset_config_uses_an_allowed_loader():
    from omegaconf import OmegaConf

    from labelbudget.data.loaders import LOADERS

    targets = {
        OmegaConf.load(path)["_target_"] for path in (REPO / "conf" / "dataset").glob("*.yaml")
    }
    assert targets <= LOADERS and len(targets) == len(LOADERS)


def test_a_damaged_base_model_record_is_named(tmp_path, no_model):
    from labelbudget.stages.evaluate import run_evaluate

    run = fake_trained_run(tmp_path / "run", "seed: 0\n")
    (run / "adapter" / "base_model.json").write_text('{"name": "tiny_ll')
    with pytest.raises(DataError, match="is not valid JSON") as error:
        run_evaluate(evaluate_config(tmp_path, run / "adapter"))
    assert str(run / "adapter" / "base_model.json") in str(error.value)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_run_into_a_finished_runs_folder_is_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    select = [
        "select.py",
        "model=tiny_llama",
        "selector=random",
        "budget=20",
        f"hydra.run.dir={run}",
    ]
    assert cli(tmp_path, *select).returncode == 0
    finished = snapshot(run)
    assert {".hydra/config.yaml", "selection.jsonl", "allocation.csv", "metrics.json"} <= set(
        finished
    )
    # a run that would fail (budget too large) and one that would succeed: both refused
    for budget in ("budget=100000", "budget=10"):
        result = cli(tmp_path, *select, budget)
        assert result.returncode == 2
        assert f"error: {run} holds a finished run (metrics.json)" in result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot(run) == finished


def test_an_adapter_without_its_dataset_is_graded_only_on_a_dataset_the_command_names(tmp_path):
    import shutil

    run = fake_trained_run(tmp_path / "run", "seed: 0\n")
    shutil.rmtree(run / ".hydra")  # a copied adapter: no run folder, no record
    evaluate = [
        "evaluate.py",
        "model=tiny_llama",
        "eval.tasks.max_new_tokens=2",
        f"adapter={run / 'adapter'}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    ]
    refused = cli(tmp_path, *evaluate)
    assert refused.returncode == 2
    assert "does not record the dataset it was trained on" in refused.stderr
    assert "dataset=<its config>" in refused.stderr
    assert not (tmp_path / "eval" / "predictions.jsonl").exists()
    # named on the command line: graded on that dataset (24 tasks, 3 test prompts each)
    named = cli(tmp_path, *evaluate, "dataset.test_per_task=3")
    assert named.returncode == 0, named.stderr[-2000:]
    assert len((tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()) == 24 * 3
