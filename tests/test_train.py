"""train.py end to end on the tiny model: fine-tuning learns, adapters reload, runs are tracked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import compose_config, fake_trained_run
from labelbudget.data.schema import Example
from labelbudget.models.tiny import build_tiny_llama
from labelbudget.training.data import (
    IGNORE_INDEX,
    RightPadCollator,
    SFTData,
    SFTDataset,
    encode_sft,
    encode_sft_rows,
)
from labelbudget.training.lora import attach_lora
from labelbudget.training.module import SFTModule

REPO = Path(__file__).resolve().parents[1]
TINY_RUN = [
    "model=tiny_llama",
    "dataset.pool_per_task=6",
    "dataset.test_per_task=3",
    "selector=random",
    "budget=40",
    "finetune.epochs=2",
    "eval.tasks.max_new_tokens=4",
]


def test_loss_is_on_response_tokens_only():
    tiny = build_tiny_llama()
    example = Example(id="1", task="t", prompt="2+2=", response="4")
    ids, labels = encode_sft(tiny.template, tiny.tokenizer, example, max_length=64)
    prompt_len = len(tiny.template.encode_prompt(tiny.tokenizer, example))
    assert labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert (
        labels[prompt_len:]
        == ids[prompt_len:]
        == tiny.tokenizer("4", add_special_tokens=False)["input_ids"]
        + [tiny.tokenizer.eos_token_id]
    )
    # too long: the prompt loses its start, the response stays whole
    ids, labels = encode_sft(tiny.template, tiny.tokenizer, example, max_length=4)
    assert len(ids) == 4 and labels[-2:] == ids[-2:] and labels[:2] == [IGNORE_INDEX] * 2


def test_rows_cut_to_fit_are_counted_in_one_warning(caplog):
    """Counted from the token lengths: a row is cut when prompt + response + end-of-sequence
    exceeds max_length, and a response longer than max_length loses the prompt entirely."""
    tiny = build_tiny_llama()
    fits = Example(id="1", task="t", prompt="2+2=", response="4")
    long_prompt = Example(
        id="2", task="t", prompt="What is 2+2? Answer with a digit.", response="4"
    )
    long_response = Example(id="3", task="t", prompt="2+2=", response="four " * 20)
    prompt_tokens = len(tiny.template.encode_prompt(tiny.tokenizer, fits))
    max_length = prompt_tokens + 2  # "4" and end-of-sequence: the first row fits exactly
    with caplog.at_level("WARNING"):
        rows = encode_sft_rows(
            tiny.template,
            tiny.tokenizer,
            [fits, long_prompt, long_response],
            max_length,
            "finetune.max_length",
        )
    assert [len(ids) for ids, _ in rows] == [max_length] * 3
    assert rows[0] == encode_sft(tiny.template, tiny.tokenizer, fits, max_length + 10)
    assert IGNORE_INDEX not in rows[2][1]  # no prompt token left
    assert tiny.tokenizer.eos_token_id not in rows[2][0]
    (message,) = [r.getMessage() for r in caplog.records if "exceed" in r.getMessage()]
    assert message.startswith(f"2 of 3 examples exceed finetune.max_length={max_length} ")
    assert "in 1 of them the response alone is longer" in message


class LossLog(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def test_training_loss_falls_on_a_fixed_batch():
    tiny = build_tiny_llama()
    rows = [
        encode_sft(
            tiny.template,
            tiny.tokenizer,
            Example(id="1", task="t", prompt="Say hi.", response="hi there"),
            64,
        )
    ]
    loader = DataLoader(
        SFTDataset(rows * 4), batch_size=4, collate_fn=RightPadCollator(tiny.tokenizer.pad_token_id)
    )
    log = LossLog()
    model = attach_lora(tiny.model, rank=8, alpha=16, dropout=0.0, seed=0).train()
    trainer = L.Trainer(
        max_epochs=30,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[log],
    )
    trainer.fit(SFTModule(model, learning_rate=1e-2), loader)
    # a random 2-layer model learns slowly through rank-8 adapters: about 5.5 -> 4.8 nats here
    assert log.losses[-1] < log.losses[0] - 0.5
    assert sum(log.losses[-5:]) < sum(log.losses[:5])
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert all(not p.requires_grad for p in frozen)  # only the adapter trains


class BatchLog(L.Callback):
    """The rows of every training batch, by their first token (unique per row here), per epoch."""

    def __init__(self):
        self.epochs: list[list[tuple[int, ...]]] = []

    def on_train_epoch_start(self, trainer, module):
        self.epochs.append([])

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.epochs[-1].append(tuple(batch["input_ids"][:, 0].tolist()))


def fit_and_log_batches(seed: int) -> list[list[tuple[int, ...]]]:
    tiny = build_tiny_llama()
    # 24 rows of 6 lengths; row i starts with token 3 + i, so a batch names its rows
    rows = [([3 + i] + [5] * (1 + i % 6), [IGNORE_INDEX] + [5] * (1 + i % 6)) for i in range(24)]
    log = BatchLog()
    model = attach_lora(tiny.model, rank=4, alpha=8, dropout=0.0, seed=0).train()
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[log],
    )
    trainer.fit(
        SFTModule(model, learning_rate=1e-3),
        datamodule=SFTData(rows, batch_size=4, seed=seed, pad_token_id=0),
    )
    return log.epochs


def test_each_epoch_draws_a_fresh_seeded_batch_order():
    epochs = fit_and_log_batches(seed=7)
    assert len(epochs) == 3 and all(len(batches) == 6 for batches in epochs)
    for batches in epochs:  # every row once per epoch
        assert sorted(row for batch in batches for row in batch) == list(range(3, 27))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and epochs[0] != epochs[2]
    assert fit_and_log_batches(seed=7) == epochs  # the same seed: the same three orders
    assert fit_and_log_batches(seed=8)[0] != epochs[0]


def compose_train(tmp_path: Path, *overrides: str):
    return compose_config("train", *overrides, folder=tmp_path)


def test_train_in_process_writes_metrics_adapter_and_finishes_wandb_once(tmp_path, monkeypatch):
    import wandb

    from labelbudget.errors import ConfigError
    from labelbudget.stages.evaluate import run_evaluate
    from labelbudget.stages.train import run_train

    monkeypatch.setenv("WANDB_MODE", "offline")
    finished = []
    real_finish = wandb.finish
    monkeypatch.setattr(wandb, "finish", lambda *a, **k: (finished.append(1), real_finish(*a, **k)))
    metrics = run_train(compose_train(tmp_path, *TINY_RUN))
    assert finished == [1]
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["run"] == {
        "dataset": "synthetic",
        "selector": "random",
        "selector_options": {},
        "budget": 40,
        "seed": 0,
        "model": "tiny_llama",
    }
    assert record["config"]["finetune"]["epochs"] == 2 and "paths" not in record["config"]
    assert record["metrics"] == pytest.approx(metrics)
    assert 0 <= metrics["tasks/macro"] <= 1 and metrics["train/examples"] == 40
    # the tiny model's plan for its longest batch, made before the fit (test_memory_plan checks the method)
    assert metrics["train/planned_memory_gib"] == pytest.approx(0.0156351, rel=1e-5)
    assert record["settings"]["tasks"]["max_new_tokens"] == 4
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 1
    # the adapter reloads for evaluation and reproduces the end-of-training numbers
    cfg = compose_config(
        "evaluate",
        *[o for o in TINY_RUN if o.startswith(("model", "dataset", "eval"))],
        f"adapter={tmp_path / 'run' / 'adapter'}",
        f"paths.output_dir={tmp_path / 'eval'}",
    )
    reloaded = run_evaluate(cfg)
    tasks_metrics = {k: v for k, v in metrics.items() if k.startswith("tasks/")}
    assert {k: v for k, v in reloaded.items() if k.startswith("tasks/")} == pytest.approx(
        tasks_metrics
    )
    # a copied adapter, without its run's .hydra/ beside it, still grades on its own dataset
    # (the default suite has 20 test prompts per task, this run's 3): it records it
    copied = tmp_path / "copied" / "adapter"
    shutil.copytree(tmp_path / "run" / "adapter", copied)
    assert json.loads((copied / "dataset.json").read_text())["test_per_task"] == 3
    bare = compose_config(
        "evaluate",
        "model=tiny_llama",
        "eval.tasks.max_new_tokens=4",
        f"adapter={copied}",
        f"paths.output_dir={tmp_path / 'eval_copied'}",
    )
    assert {k: v for k, v in run_evaluate(bare).items() if k.startswith("tasks/")} == (
        pytest.approx(tasks_metrics)
    )
    # without that record, it is refused rather than graded on the default suite
    (copied / "dataset.json").unlink()
    with pytest.raises(ConfigError, match="does not record the dataset it was trained on"):
        run_evaluate(bare)


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_two_seed_multirun_gives_two_runs_each_tracked_then_the_report(tmp_path):
    result = run_cli(
        tmp_path, "train.py", *TINY_RUN, f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m", "seed=0,1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    seeds = [json.loads((j / "metrics.json").read_text())["run"]["seed"] for j in jobs]
    assert seeds == [0, 1]
    for job in jobs:
        assert (job / "adapter" / "adapter_config.json").is_file()
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1  # one W&B run per job
    report = subprocess.run(
        [sys.executable, "-m", "labelbudget.report", str(tmp_path / "sweep")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    assert "### tasks/macro" in report.stdout and "(n=2)" in report.stdout
    # evaluate.py on a job's adapter, without repeating the job's dataset settings: graded on
    # the test split the job trained beside, so it reproduces the job's own numbers
    evaluated = run_cli(
        tmp_path,
        "evaluate.py",
        "model=tiny_llama",
        "eval.tasks.max_new_tokens=4",
        f"adapter={jobs[0] / 'adapter'}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "dataset.pool_per_task: 6 there, 40 now" in evaluated.stdout + evaluated.stderr
    job = json.loads((jobs[0] / "metrics.json").read_text())
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["run"] == job["run"]
    assert {k: v for k, v in again["metrics"].items() if k.startswith("tasks/")} == pytest.approx(
        {k: v for k, v in job["metrics"].items() if k.startswith("tasks/")}
    )
    assert again["config"]["dataset"] == job["config"]["dataset"]


def test_bad_annotations_file_fails_before_the_model_loads(tmp_path, monkeypatch):
    import labelbudget.models.tiny
    from labelbudget.errors import DataError
    from labelbudget.stages.train import run_train

    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    path = tmp_path / "ann.jsonl"
    path.write_text('{"id": "a", "response": "x"}\n{"id": "a", "response": "y"}\n')
    with pytest.raises(DataError, match="ids appear twice"):
        run_train(compose_train(tmp_path, *TINY_RUN, "logger=none", f"annotations={path}"))


def test_imported_annotations_are_what_the_model_trains_on(tmp_path):
    from labelbudget.stages.select import run_select
    from labelbudget.stages.train import run_train

    run_select(
        compose_train(tmp_path, *TINY_RUN, "logger=none")
    )  # the selection train.py will make
    chosen = [
        json.loads(line) for line in (tmp_path / "run" / "selection.jsonl").read_text().splitlines()
    ]
    path = tmp_path / "ann.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": r["id"], "response": "IMPORTED"}) + "\n" for r in reversed(chosen)
        )
    )
    seen = []
    import labelbudget.training.fit as fit

    real = fit.encode_sft_rows
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            fit,
            "encode_sft_rows",
            lambda template, tok, examples, *rest: (
                seen.extend(examples),
                real(template, tok, examples, *rest),
            )[1],
        )
        run_train(compose_train(tmp_path, *TINY_RUN, "logger=none", f"annotations={path}"))
    assert [e.id for e in seen] == [r["id"] for r in chosen]
    assert {e.response for e in seen} == {"IMPORTED"}


def test_evaluate_refuses_a_folder_without_an_adapter_before_the_model_loads(tmp_path, monkeypatch):
    import labelbudget.models.tiny
    from labelbudget.errors import ConfigError
    from labelbudget.stages.evaluate import run_evaluate

    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    cfg = compose_config(
        "evaluate",
        "model=tiny_llama",
        f"adapter={tmp_path}",
        f"paths.output_dir={tmp_path / 'eval'}",
    )
    with pytest.raises(ConfigError, match="holds no LoRA adapter"):
        run_evaluate(cfg)


def test_train_refuses_a_dataset_without_test_split_before_the_model_loads(tmp_path, monkeypatch):
    import labelbudget.models.tiny
    from labelbudget.errors import ConfigError
    from labelbudget.stages.train import run_train

    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    path = tmp_path / "pool.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": f"q{i}", "task": "t", "response": "a"}) + "\n" for i in range(5)
        )
    )
    cfg = compose_train(
        tmp_path,
        "model=tiny_llama",
        "dataset=jsonl",
        f"dataset.path={path}",
        "selector=random",
        "budget=2",
        "logger=none",
    )
    with pytest.raises(ConfigError, match="no held-out test split"):
        run_train(cfg)


def test_evaluate_refuses_the_split_the_adapter_was_trained_on_from_its_saved_config(
    tmp_path, monkeypatch
):
    import labelbudget.models.tiny
    from labelbudget.errors import ConfigError
    from labelbudget.stages.evaluate import run_evaluate

    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    # what train.py saved for a run fine-tuned on a BBH pool (half of each task)
    run = fake_trained_run(
        tmp_path / "run",
        "dataset:\n  _target_: labelbudget.data.bbh.load_bbh\n  data_dir: x\n"
        "  test_fraction: 0.5\n  seed: 0\n",
    )
    cfg = compose_config(
        "evaluate",
        "model=tiny_llama",
        "eval=bbh",
        f"adapter={run / 'adapter'}",
        f"paths.output_dir={tmp_path / 'eval'}",
    )
    with pytest.raises(
        ConfigError,
        match="fine-tuned on a BBH pool: evaluate on the other half with eval.bbh.split=heldout",
    ):
        run_evaluate(cfg)


def fit_once(tmp_path: Path, *overrides: str) -> tuple[dict, dict]:
    """One fine-tune of the tiny model on 16 examples: its stats and the adapter weights."""
    from labelbudget.configs import instantiate
    from labelbudget.data.synthetic import build_synthetic_suite
    from labelbudget.training.fit import fine_tune

    cfg = compose_train(tmp_path, *TINY_RUN, "finetune.lora.dropout=0.0", *overrides)
    loaded = build_tiny_llama()
    examples = list(build_synthetic_suite(pool_per_task=6, test_per_task=1).pool)[:16]
    tuned, stats = fine_tune(loaded, examples, cfg.finetune, instantiate(cfg.trainer), None, seed=0)
    weights = {n: p.detach().clone() for n, p in tuned.model.named_parameters() if "lora_" in n}
    base = tuned.model.get_base_model()
    stats["checkpointing"] = getattr(base, "is_activation_checkpointing", None)
    if stats["checkpointing"] is None:  # transformers before the rename
        stats["checkpointing"] = base.is_gradient_checkpointing
    return stats, weights


def test_gradient_checkpointing_gives_the_same_fit(tmp_path):
    plain_stats, plain = fit_once(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checkpointed_stats, checkpointed = fit_once(
            tmp_path, "finetune.gradient_checkpointing=true"
        )
    assert checkpointed_stats["checkpointing"] and not plain_stats["checkpointing"]
    # our call uses the current API (peft still reads the old `is_gradient_checkpointing`)
    assert not [str(w.message) for w in caught if "gradient_checkpointing_enable" in str(w.message)]
    assert checkpointed_stats["train/last_epoch_loss"] == pytest.approx(
        plain_stats["train/last_epoch_loss"], rel=1e-5
    )
    assert plain.keys() == checkpointed.keys() and plain
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5)
    assert any((w != 0).any() for n, w in plain.items() if "lora_B" in n)  # it trained


def test_rows_longer_than_max_length_are_counted_in_a_warning(tmp_path, caplog):
    from labelbudget.data.synthetic import build_synthetic_suite

    examples = list(build_synthetic_suite(pool_per_task=6, test_per_task=1).pool)[:16]
    tiny = build_tiny_llama()
    lengths = [  # prompt, response and end-of-sequence
        len(tiny.template.encode_prompt(tiny.tokenizer, e))
        + len(tiny.tokenizer(e.response, add_special_tokens=False)["input_ids"])
        + 1
        for e in examples
    ]
    limit = sorted(lengths)[8]  # about half the rows are longer; the test counts them itself
    with caplog.at_level("WARNING"):
        fit_once(tmp_path, f"finetune.max_length={limit}", "finetune.epochs=1")
    assert (
        f"{sum(n > limit for n in lengths)} of 16 examples exceed finetune.max_length={limit}"
        in caplog.text
    )


@pytest.mark.parametrize("with_id_field", [True, False])
def test_annotations_never_join_a_prompt_that_changed_after_selection(
    tmp_path, monkeypatch, with_id_field
):
    """The new user's trial: select, annotate from selection.jsonl, then reorder the pool file and
    edit one selected prompt; train.py refuses before any model loads and names that id."""
    import labelbudget.models.tiny
    from labelbudget.errors import DataError
    from labelbudget.stages.select import run_select
    from labelbudget.stages.train import run_train

    rows = [
        {
            "prompt": f"Question {i}?",
            "task": f"t{i % 3}",
            "response": f"answer {i}",
            **({"id": f"q{i}"} if with_id_field else {}),
        }
        for i in range(30)
    ]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = [
        "model=tiny_llama",
        "dataset=jsonl",
        f"dataset.path={pool}",
        f"dataset.test_path={pool}",
        "selector=random",
        "budget=10",
        "logger=none",
    ]
    run_select(compose_train(tmp_path, *common, f"paths.output_dir={tmp_path / 'select'}"))
    chosen = [
        json.loads(line)
        for line in (tmp_path / "select" / "selection.jsonl").read_text().splitlines()
    ]
    annotations = (
        tmp_path / "responses.jsonl"
    )  # what an annotation tool returns: the rows, plus a response
    annotations.write_text(
        "".join(json.dumps({**r, "response": "ANNOTATED"}) + "\n" for r in chosen)
    )

    edited = next(r for r in rows if r["prompt"] == chosen[0]["prompt"])
    edited["prompt"] = "A different question?"
    pool.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    expected = "now name a different prompt" if with_id_field else "are not in the pool"
    with pytest.raises(DataError, match=f"{expected}.*'{chosen[0]['id']}'"):
        run_train(compose_train(tmp_path, *common, f"annotations={annotations}"))


def test_a_broken_or_foreign_adapter_is_one_clear_line(tmp_path, monkeypatch):
    import shutil

    import labelbudget.models.tiny
    from labelbudget.errors import ConfigError, DataError
    from labelbudget.stages.evaluate import run_evaluate
    from labelbudget.stages.train import run_train

    run_train(compose_train(tmp_path, *TINY_RUN, "logger=none", "finetune.epochs=1"))
    trained = tmp_path / "run" / "adapter"
    assert json.loads((trained / "base_model.json").read_text())["loader"]["hidden_size"] == 64

    def evaluate(folder: Path, *overrides: str):
        cfg = compose_config(
            "evaluate",
            "model=tiny_llama",
            "dataset.pool_per_task=6",
            "dataset.test_per_task=3",
            "eval.tasks.max_new_tokens=4",
            f"adapter={folder}",
            f"paths.output_dir={tmp_path / 'eval'}",
            *overrides,
        )
        return run_evaluate(cfg)

    def broken(name: str, damage) -> Path:
        folder = tmp_path / name
        shutil.copytree(trained, folder)
        damage(folder)
        return folder

    real_build = labelbudget.models.tiny.build_tiny_llama
    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    cases = [
        (
            broken("bad_config", lambda f: (f / "adapter_config.json").write_text("{not json")),
            DataError,
            r"adapter_config.json: is not valid JSON",
        ),
        (
            broken(
                "truncated",
                lambda f: (f / "adapter_model.safetensors").write_bytes(
                    (f / "adapter_model.safetensors").read_bytes()[:100]
                ),
            ),
            DataError,
            r"adapter_model.safetensors: cannot be read .*truncated or damaged",
        ),
        (
            broken("no_weights", lambda f: (f / "adapter_model.safetensors").unlink()),
            DataError,
            r"has no adapter weights",
        ),
    ]
    for folder, error, message in cases:
        with pytest.raises(error, match=message):
            evaluate(folder)
    with pytest.raises(
        ConfigError,
        match=r"was trained on base model 'tiny_llama' .* not on this run's 'tiny_llama'",
    ):
        evaluate(
            trained, "model.loader.hidden_size=32"
        )  # same name, another base: refused before loading it
    # an adapter without its record (older labelbudget) on a base of another shape: after the load, one line
    monkeypatch.setattr(labelbudget.models.tiny, "build_tiny_llama", real_build)
    with pytest.raises(
        ConfigError, match=r"the adapter in .* does not fit this base model: .*size mismatch"
    ):
        evaluate(
            broken("unrecorded", lambda f: (f / "base_model.json").unlink()),
            "model.loader.hidden_size=32",
        )


def test_adapter_may_name_a_run_folder_and_a_sweep_folder_is_refused_as_ambiguous(tmp_path):
    from labelbudget.errors import ConfigError
    from labelbudget.training.adapters import resolve_adapter

    for run in ("sweep/0", "sweep/1"):
        (tmp_path / run / "adapter").mkdir(parents=True)
        (tmp_path / run / "adapter" / "adapter_config.json").write_text("{}")
    assert resolve_adapter(tmp_path / "sweep" / "0") == tmp_path / "sweep" / "0" / "adapter"
    assert (
        resolve_adapter(tmp_path / "sweep" / "0" / "adapter")
        == tmp_path / "sweep" / "0" / "adapter"
    )
    with pytest.raises(
        ConfigError,
        match=r"sweep holds 2 adapters .*sweep/0/adapter, .*sweep/1/adapter\); give adapter= one",
    ):
        resolve_adapter(tmp_path / "sweep")


def test_zero_shot_and_fine_tuned_models_are_both_scored_right_in_one_process(tmp_path):
    # fine_tune returns the tuned model as a value; the base is scored before it, or inside
    # disable_adapter() after it, and CoS-Low's fresh adapters leave the base as it was
    from labelbudget.configs import instantiate
    from labelbudget.data.synthetic import build_synthetic_suite
    from labelbudget.training.fit import fine_tune
    from labelbudget.training.lora import fresh_adapters

    cfg = compose_train(
        tmp_path, *TINY_RUN, "finetune.lora.dropout=0.0", "finetune.learning_rate=0.01"
    )
    base = build_tiny_llama()
    probe = torch.tensor([base.tokenizer("What is 2+2?")["input_ids"]])

    def logits(model):
        with torch.no_grad():
            return model(input_ids=probe).logits

    zero_shot = logits(base.model)
    with fresh_adapters(base.model, rank=4, alpha=8, dropout=0.0, seed=1) as adapted:
        adapted.eval()
        torch.testing.assert_close(logits(adapted), zero_shot)  # fresh LoRA: B = 0
    torch.testing.assert_close(logits(base.model), zero_shot, rtol=0, atol=0)  # unloaded: as before
    examples = list(build_synthetic_suite(pool_per_task=6, test_per_task=1).pool)[:16]
    tuned, _ = fine_tune(base, examples, cfg.finetune, instantiate(cfg.trainer), None, seed=0)
    assert tuned is not base and tuned.tokenizer is base.tokenizer
    fine_tuned = logits(tuned.model)
    assert not torch.allclose(fine_tuned, zero_shot)
    with tuned.model.disable_adapter():
        torch.testing.assert_close(logits(tuned.model), zero_shot, rtol=0, atol=0)
    torch.testing.assert_close(logits(tuned.model), fine_tuned, rtol=0, atol=0)


SAVE_ADAPTER = """
import sys
from pathlib import Path
from labelbudget.models.tiny import build_tiny_llama
from labelbudget.training.adapters import save_adapter
from labelbudget.training.lora import attach_lora
tiny = build_tiny_llama(seed=0)
model = attach_lora(tiny.model, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], seed=0)
save_adapter(model, Path(sys.argv[1]), {"name": "tiny"}, {"name": "d"}, True)
"""


def test_a_saved_adapter_is_the_same_bytes_whatever_the_processs_hash_seed(tmp_path):
    """peft writes target_modules in set order, which follows PYTHONHASHSEED: one seed of ours
    must still give one adapter folder."""
    folders = []
    for hash_seed in ("1", "2", "3"):
        folder = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONWARNINGS": "ignore"}
        subprocess.run(
            [sys.executable, "-c", SAVE_ADAPTER, str(folder)], env=env, check=True, timeout=300
        )
        folders.append(folder)
    for name in ("adapter_config.json", "adapter_model.safetensors", "base_model.json"):
        assert len({(f / name).read_bytes() for f in folders}) == 1, name
    config = json.loads((folders[0] / "adapter_config.json").read_text())
    assert config["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
