"""A trained LoRA adapter on disk: saved with the identity of its base model, checked before the
base model loads (its config, its weights, the base it was trained on), loaded with one clear
line for a shape that does not fit."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from labelbudget.data.loaders import recorded_dataset
from labelbudget.errors import ConfigError, DataError, listing
from labelbudget.io import room_for
from labelbudget.runs import RunFolder

log = logging.getLogger(__name__)

BASE_MODEL = "base_model.json"  # the base model's config as it determines numbers (model_identity)
TRAINED_ON = (
    "dataset.json"  # the dataset config it was trained on, resolved: what eval=tasks grades
)
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def save_adapter(
    model, folder: Path, base: dict[str, Any], dataset: dict[str, Any], write: bool
) -> None:
    """Every rank takes part (FSDP gathers the adapter's shards); `write` on one of them only.
    Beside peft's files: the base model and the dataset it was trained on, so that a copied
    adapter folder still says both. peft keeps `target_modules` as a set and writes it in hash order, which changes from one
    process to the next: it is rewritten sorted, so one seed gives one adapter folder, byte for
    byte."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    with room_for(folder / "adapter_model.safetensors", weights):
        model.save_pretrained(folder, is_main_process=write)
    if write:
        config_file = folder / "adapter_config.json"
        config = json.loads(config_file.read_text())
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True))  # peft's own format
        (folder / BASE_MODEL).write_text(json.dumps(base, indent=2, sort_keys=True) + "\n")
        (folder / TRAINED_ON).write_text(json.dumps(dataset, indent=2, sort_keys=True) + "\n")


def read_json(file: Path) -> Any:
    """A JSON file of an adapter folder; a damaged one is named."""
    try:
        return json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(
            str(file), f"is not valid JSON ({error}); the adapter folder is damaged"
        ) from None


def trained_dataset(adapter: Path) -> dict[str, Any] | None:
    """The dataset config `adapter` was trained on, as data checked by `recorded_dataset`
    (never run as code): the adapter's own `dataset.json`, or, from an older labelbudget, the
    dataset of its run's saved config; None where neither exists."""
    recorded = adapter / TRAINED_ON
    if recorded.is_file():
        return recorded_dataset(read_json(recorded), str(recorded))
    run = RunFolder.of_adapter(adapter)
    saved = run.saved_config()
    if saved is None or saved.get("dataset") is None:
        return None
    source = str(run.saved_config_file)
    try:
        node = OmegaConf.to_container(OmegaConf.create(saved).dataset, resolve=True)
    except Exception as error:  # omegaconf's resolution errors share no useful base class
        raise DataError(source, f"cannot be resolved ({error})", field="dataset") from None
    return recorded_dataset(node, source)


def resolve_adapter(path: Path) -> Path:
    """The adapter folder `adapter=` means: the folder itself, or a train.py run's `adapter/`;
    a folder holding several runs' adapters (a sweep) is ambiguous and refused, listing them."""
    if (path / "adapter_config.json").is_file() or not path.is_dir():
        return path
    found = sorted(config.parent for config in path.rglob("adapter_config.json"))
    if len(found) > 1:
        raise ConfigError(
            f"{path} holds {len(found)} adapters ({listing(found, 5, str)}); give adapter= one of them"
        )
    if found:
        log.info("adapter=%s is a run folder: evaluating its adapter %s", path, found[0])
        return found[0]
    return path


def check_adapter(folder: Path, base: dict[str, Any]) -> None:
    """Everything about an adapter folder that can be checked without the base model."""
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"{folder.resolve()} holds no LoRA adapter (adapter_config.json); give a train.py run's adapter folder"
        )
    config = read_json(config_file)
    if not isinstance(config, dict) or "peft_type" not in config:
        raise DataError(str(config_file), "is not a peft adapter config (no 'peft_type')")
    weights = next((folder / name for name in WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        raise DataError(
            str(folder),
            f"has no adapter weights ({' or '.join(WEIGHTS)}); the adapter folder is incomplete",
        )
    if weights.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            load(weights.read_bytes())
        except (SafetensorError, ValueError) as error:
            raise DataError(
                str(weights), f"cannot be read ({error}); it is truncated or damaged"
            ) from None
    trained_on = folder / BASE_MODEL
    if not trained_on.is_file():
        log.warning(
            "%s does not record its base model (saved by an older labelbudget): it is not checked",
            folder,
        )
        return
    recorded = read_json(trained_on)
    if not isinstance(recorded, dict):
        raise DataError(str(trained_on), "is not a base model record (a JSON object)")
    if recorded != base:
        raise ConfigError(
            f"{folder} was trained on base model {recorded.get('name')!r} ({json.dumps(recorded, sort_keys=True)}), "
            f"not on this run's {base.get('name')!r} ({json.dumps(base, sort_keys=True)}); choose that model= setting"
        )


def load_adapter(model, folder: Path):
    """`model` with the adapter attached; a shape that does not fit is one line, not a traceback."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(folder)).eval()
    except (RuntimeError, ValueError, KeyError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [
            type(error).__name__
        ]
        # torch's first line says only "Error(s)"
        telling = next((line for line in lines if "size mismatch" in line), lines[0])
        raise ConfigError(
            f"the adapter in {folder} does not fit this base model: {telling}"
        ) from None
