"""Shared fixtures and helpers: composed configs, JSONL pools and annotations, the real benchmark files in ../shared/data (skipped when
absent), an offline hub, and the `gpu` marker's skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def compose_config(
    name: str, *overrides: str, folder: Path | None = None, output: str = "run"
) -> DictConfig:
    """conf/<name>.yaml composed with `overrides` as the command line would; with `folder`, the
    run's caches go to folder/cache and its files to folder/<output>."""
    paths = (
        []
        if folder is None
        else [f"paths.cache_dir={folder / 'cache'}", f"paths.output_dir={folder / output}"]
    )
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=[*paths, *overrides])


@pytest.fixture
def composed(tmp_path):
    """`compose_config` writing into the test's tmp_path."""

    def composed(name: str, *overrides: str, output: str = "run") -> DictConfig:
        return compose_config(name, *overrides, folder=tmp_path, output=output)

    return composed


@pytest.fixture
def shared_data() -> Path:
    """The folder of real BBH and MMLU files; the test is skipped, saying why, when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real benchmark data not found at {SHARED_DATA} (it lives beside the repo in shared/data)"
        )
    return SHARED_DATA


@pytest.fixture
def offline_hub(monkeypatch, tmp_path) -> Path:
    """No network for `datasets`/`huggingface_hub` (both read the flag at import, hence the patches);
    returns a fresh cache folder."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hf-cache"


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped, with the reason, where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason="needs a CUDA GPU (torch.cuda.is_available() is False); run with pytest -m gpu on one"
    )
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def cpu_trainer(**kwargs):
    """A quiet one-device CPU Trainer for inference passes in tests (the stages' is
    `predict_trainer`, built from the trainer config)."""
    import lightning as L

    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        **kwargs,
    )


def fake_trained_run(run: Path, saved_config: str) -> Path:
    """A train.py run folder as far as evaluate.py reads it before the model loads: an adapter
    and the saved Hydra config."""
    import numpy as np
    from safetensors.numpy import save_file

    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    save_file(
        {"w": np.zeros(2, dtype=np.float32)}, str(run / "adapter" / "adapter_model.safetensors")
    )
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(saved_config)
    return run


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_unlabelled_pool(folder: Path) -> Path:
    """A user's pool still to annotate: three tasks of five prompts, no responses."""
    rows = [
        {"id": f"{task}-{i}", "task": task, "prompt": f"{task} question {i}?"}
        for task in ("alpha", "beta", "gamma")
        for i in range(5)
    ]
    path = folder / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def annotate(rows: list[dict], path: Path) -> Path:
    """What an annotator sends back: each row of the file given, with a response."""
    path.write_text(
        "".join(json.dumps({**r, "response": f"answer to {r['id']}"}) + "\n" for r in rows)
    )
    return path


def greedy_reference(loaded, prompt: str, max_new_tokens: int) -> str:
    """Greedy decoding written out: one token at a time, no cache, no batch. The reference the
    batched engine's answers are checked against."""
    import torch

    from labelbudget.data.schema import Example

    ids = loaded.template.encode_prompt(loaded.tokenizer, Example(id="-", task="-", prompt=prompt))
    new: list[int] = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = int(loaded.model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
        if token in loaded.eos_token_ids:
            break
        new.append(token)
    return loaded.tokenizer.decode(new, skip_special_tokens=True)
