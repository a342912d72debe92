"""A trained LoRA adapter on disk: saved with the identity of its base model, checked before the
base model loads (its config, its weights, the base it was trained on), loaded with one clear
line for a shape that does not fit."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from labelbudget.errors import ConfigError, DataError, listing

log = logging.getLogger(__name__)

BASE_MODEL = "base_model.json"  # the base model's config as it determines numbers (model_identity)
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def save_adapter(model, folder: Path, base: dict[str, Any], write: bool) -> None:
    """Every rank takes part (FSDP gathers the adapter's shards); `write` on one of them only.
    peft keeps `target_modules` as a set and writes it in hash order, which changes from one
    process to the next: it is rewritten sorted, so one seed gives one adapter folder, byte for
    byte."""
    model.save_pretrained(folder, is_main_process=write)
    if write:
        config_file = folder / "adapter_config.json"
        config = json.loads(config_file.read_text())
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True))  # peft's own format
        (folder / BASE_MODEL).write_text(json.dumps(base, indent=2, sort_keys=True) + "\n")


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
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(
            str(config_file), f"is not valid JSON ({error}); the adapter folder is damaged"
        ) from None
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
    recorded = json.loads(trained_on.read_text())
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
