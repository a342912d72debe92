"""Every bad setting is refused through the command line before any model loads: exit code 2, one
line naming the key, no traceback, and the job's log without a "loading model" line.

The cases run through the real entry scripts (argv, Hydra, run_entry, exit code) in one Python
process, one after another, so that the table stays cheap: a fresh interpreter per case would
spend its time importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs each argv as `python <script> <args>` would, and reports exit code, stderr and the job log.
DRIVER = """
import contextlib, io, json, pathlib, runpy, sys
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    sys.argv, code = list(argv), 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as stop:
            code = stop.code
    folder = pathlib.Path(next(a for a in argv if a.startswith("hydra.run.dir=")).split("=", 1)[1])
    logs = "".join(p.read_text() for p in folder.glob("*.log"))
    results.append({"code": code, "stderr": err.getvalue(), "log": logs})
print(json.dumps(results))
"""

BASE = ["train.py", "model=tiny_llama", "logger=none"]
SMALL = [*BASE, "dataset.pool_per_task=6", "dataset.test_per_task=2"]  # 145 prompts
TRAIN = [*SMALL, "budget=130"]


def cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(argv, the start of the error after "error: ") for each bad setting."""
    empty, folder, a_file = tmp / "empty.jsonl", tmp / "folder", tmp / "a_file"
    empty.write_text("")
    folder.mkdir()
    a_file.write_text("not a folder")
    one_task = tmp / "predicted_auc.json"
    one_task.write_text(json.dumps({"n_max": 100, "tasks": {"t": 0.5}}))
    unlabelled = tmp / "unlabelled.jsonl"
    unlabelled.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "task": "t"}) + "\n" for i in range(20))
    )
    return [
        ([*TRAIN, "seed=-1"], "seed must be an integer >= 0, got -1"),
        ([*TRAIN, "seed=abc"], "seed must be an integer >= 0, got 'abc'"),
        ([*TRAIN, "scoring.batch_size=0"], "scoring.batch_size must be an integer >= 1, got 0"),
        (
            [*TRAIN, "scoring.max_new_tokens=0"],
            "scoring.max_new_tokens must be an integer >= 1, got 0",
        ),
        (
            [*TRAIN, "scoring.pooling=bogus"],
            "scoring.pooling must be one of 'mean', 'last', got 'bogus'",
        ),
        ([*TRAIN, "finetune.epochs=0"], "finetune.epochs must be an integer >= 1, got 0"),
        (
            [*TRAIN, "finetune.learning_rate=-1"],
            "finetune.learning_rate must be a number > 0, got -1",
        ),
        ([*TRAIN, "finetune.batch_size=0"], "finetune.batch_size must be an integer >= 1, got 0"),
        ([*TRAIN, "finetune.lora.rank=0"], "finetune.lora.rank must be an integer >= 1, got 0"),
        (
            [*TRAIN, "finetune.lora.target_modules=[q_proj,qq_proj]"],
            "finetune.lora.target_modules names ['qq_proj'], which tiny_llama",
        ),
        (
            [*TRAIN, "finetune.lora.target_modules=[]"],
            "finetune.lora.target_modules must be a non-empty list of distinct names",
        ),
        ([*TRAIN, "finetune.lora.alpha=0"], "finetune.lora.alpha must be a number > 0, got 0"),
        (
            [*TRAIN, "finetune.lora.dropout=1.5"],
            "finetune.lora.dropout must be a number in [0, 1), got 1.5",
        ),
        (
            [*TRAIN, "finetune.accumulate_grad_batches=0"],
            "finetune.accumulate_grad_batches must be an integer >= 1, got 0",
        ),
        ([*TRAIN, "finetune.max_length=1"], "finetune.max_length must be an integer >= 2, got 1"),
        (
            [*TRAIN, "finetune.gradient_checkpointing=maybe"],
            "finetune.gradient_checkpointing must be true or false, got 'maybe'",
        ),
        (
            [*TRAIN, "selector.base_per_task=abc"],
            "selector.base_per_task must be an integer >= 0, got 'abc'",
        ),
        (
            [*TRAIN, "selector.confidence=median"],
            "selector.confidence must be one of 'sequence', 'token_geomean', got 'median'",
        ),
        (
            [*TRAIN, "selector=kcenter", "selector.memory_limit_mb=0"],
            "selector.memory_limit_mb must be a number > 0, got 0",
        ),
        (
            [*TRAIN, "selector=kcenter", "selector.device=gpu"],
            "selector.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'",
        ),
        (
            [*TRAIN, "selector=dpp", "selector.min_quality=abc"],
            "selector.min_quality must be a number in (0, 1], got 'abc'",
        ),
        (
            [*TRAIN, "selector=dpp", "selector.jitter=tiny"],
            "selector.jitter must be a number > 0, got 'tiny'",
        ),
        (
            [*TRAIN, "selector=dpp", "selector.max_factor_mb=lots"],
            "selector.max_factor_mb must be a number > 0, got 'lots'",
        ),
        (
            [*TRAIN, "selector=activeit_prompt", "selector.sensitivity.seed=0.5"],
            "selector.sensitivity.seed must be an integer >= 0, got 0.5",
        ),
        (
            [*TRAIN, "annotations.require_fingerprint=yes"],
            "annotations.require_fingerprint must be true or false, got 'yes'",
        ),
        *(
            []
            if torch_finds_a_gpu()
            else [
                (
                    [*TRAIN, "selector=kcenter", "selector.device=cuda"],
                    "selector (labelbudget.selection.kcenter.KCenterSelector): device is 'cuda', "
                    "but torch",
                )
            ]
        ),
        (
            [*TRAIN, "selector=facility_location", "selector.gamma=-0.1"],
            "selector.gamma must be a number > 0, got -0.1",
        ),
        (
            [*TRAIN, "selector=predicted_efficiency"],
            "selector (labelbudget.selection.predicted_efficiency.PredictedEfficiencySelector): "
            "predicted_efficiency needs its curves from one place",
        ),
        (
            [*TRAIN, "selector=predicted_efficiency", "selector.probe=1"],
            "selector.probe must be an integer >= 2 or null, got 1",
        ),
        (
            [*TRAIN, "selector=predicted_efficiency", "selector.probe=4", "budget=20"],
            "budget 20 is below the probe's",
        ),
        (
            [
                *TRAIN,
                "selector=predicted_efficiency",
                "selector.probe=4",
                "selector.probe_targets=human",
            ],
            "selector.probe_targets must be one of 'labels', 'self', got 'human'",
        ),
        (
            [*TRAIN, "selector=adaptive", "selector.first_round=0"],
            "selector (labelbudget.selection.adaptive.AdaptiveSelector): first_round must be a "
            "share of the budget in (0, 1), got 0",
        ),
        (
            [*TRAIN, "selector=adaptive", "selector.n_max=1"],
            "selector.n_max must be an integer >= 2, got 1",
        ),
        (  # the selector's signal checked against the pool by its provider
            [*TRAIN, "selector=predicted_efficiency", f"selector.predictions={one_task}"],
            f"{one_task}: has no predicted AUC for the pool's task(s) [",
        ),
        (
            [*TRAIN, "eval.tasks.max_new_tokens=0"],
            "eval.tasks.max_new_tokens must be an integer >= 1, got 0",
        ),
        (
            [*TRAIN, "eval.tasks.limit_per_task=0"],
            "eval.tasks.limit_per_task must be an integer >= 1 or null, got 0",
        ),
        ([*SMALL, "budget=abc"], "budget must be a number or 'all', got 'abc'"),
        ([*BASE, "dataset=jsonl"], "dataset.path must be set (it has no default)"),
        ([*BASE, "dataset=jsonl", f"dataset.path={folder}"], f"{folder}: is a directory"),
        ([*TRAIN, f"annotations={empty}"], f"{empty}: holds no annotations"),
        ([*TRAIN, f"annotations={folder}"], f"{folder}: is a directory"),
        (
            [
                *BASE,
                "dataset=jsonl",
                f"dataset.path={unlabelled}",
                f"dataset.test_path={unlabelled}",
                "dataset.fields.response=null",
                "selector=random",
                "budget=5",
            ],
            f"{unlabelled}, field 'response': simulated annotation needs the pool's responses",
        ),
        (
            [
                *BASE,
                "dataset=jsonl",
                f"dataset.path={unlabelled}",
                f"dataset.test_path={unlabelled}",
                "dataset.fields.response=null",
                "budget=0",
            ],
            f"{unlabelled}, field 'response': 20 test prompts have no reference answer to grade "
            "against",
        ),
        ([*TRAIN, f"paths.cache_dir={a_file}"], f"paths.cache_dir is {a_file}, a file"),
        ([*TRAIN, "+trainer.strategy=ddp_spawn"], "trainer.strategy='ddp_spawn' is not supported"),
        (
            ["select.py", "model=tiny_llama", "scoring.batches_per_shard=0"],
            "scoring.batches_per_shard must be an integer >= 1, got 0",
        ),
        (
            ["evaluate.py", "model=tiny_llama", "eval=mmlu", "eval.mmlu.shots=-1"],
            "eval.mmlu.shots must be an integer >= 0, got -1",
        ),
        (
            ["estimate.py", "model=tiny_llama", "coslow.n=0"],
            "coslow.n must be an integer >= 2, got 0",
        ),
        (
            ["estimate.py", "model=tiny_llama", "coslow.aggregate=mode"],
            "coslow.aggregate must be one of 'median', 'mean', got 'mode'",
        ),
    ]


def torch_finds_a_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def run_cases(tmp_path: Path, argvs: list[list[str]]) -> list[dict]:
    argvs = [[*argv, f"hydra.run.dir={tmp_path / 'runs' / str(i)}"] for i, argv in enumerate(argvs)]
    env = {
        **os.environ,
        "LABELBUDGET_CACHE": str(tmp_path / "cache"),
        "WANDB_MODE": "disabled",
        "PYTHONWARNINGS": "ignore",
    }
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argvs)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_every_bad_setting_is_one_line_naming_the_key_before_any_model_loads(tmp_path):
    table = cases(tmp_path)
    assert len(table) >= 30
    # the last case is a good one: the model loads, so the log line looked for below is real
    good = [
        "select.py",
        "model=tiny_llama",
        "selector=kcenter",
        "budget=10",
        "dataset.pool_per_task=3",
    ]
    results = run_cases(tmp_path, [argv for argv, _ in table] + [good])
    for (argv, expected), result in zip(table, results):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2, (argv, result["stderr"][-2000:])
        assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), (argv, lines)
        assert "loading model" not in result["log"], argv
    assert results[-1]["code"] == 0 and "loading model tiny_llama" in results[-1]["log"]


def test_a_fine_tune_whose_loss_is_not_finite_stops_naming_the_step(tmp_path):
    from test_train import TINY_RUN, compose_train

    from labelbudget.errors import ConfigError
    from labelbudget.stages.train import run_train

    with pytest.raises(
        ConfigError, match=r"the training loss became (nan|inf) at step \d+ \(epoch 0, batch \d+\)"
    ):
        run_train(compose_train(tmp_path, *TINY_RUN, "logger=none", "finetune.learning_rate=1e30"))
    assert (
        not (tmp_path / "run" / "adapter").exists()
        and not (tmp_path / "run" / "metrics.json").exists()
    )
