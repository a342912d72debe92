"""Composed configs: built into objects (`instantiate`), as plain data (flat dotted settings;
the part of a run's config that determines its numbers, which metrics.json records and the
report compares), and checked (every setting a stage reads, before any model loads)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from labelbudget.errors import ConfigError, LabelbudgetError

RUN_LOCAL_KEYS = ("paths", "logger", "hydra")  # where a run writes, not what it computes
# read to check other settings, or a second way to load what the loader loads: no number changes
CHECK_ONLY_KEYS = ("model.linear_layers", "model.tokenizer", "annotations.require_fingerprint")
# settings that may be given as one value in place of their node: the same run either way
SHORTHANDS = {"annotations": "annotations.path"}


def instantiate(node: Any, *args, **kwargs) -> Any:
    """Hydra's instantiate, but our own errors reach the user as they are, not wrapped."""
    try:
        return hydra_instantiate(node, *args, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, LabelbudgetError):
            raise error.__cause__ from None
        raise


def flat_settings(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values; lists stay whole, an empty mapping is a leaf."""
    if not isinstance(node, dict) or not node:
        return {prefix.rstrip("."): node}
    return {
        key: value
        for name, child in node.items()
        for key, value in flat_settings(child, f"{prefix}{name}.").items()
    }


def recorded_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config, resolved, without the run-local keys."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        if OmegaConf.is_config(cfg[key])
        else cfg[key]
        for key in cfg
        if key not in RUN_LOCAL_KEYS
    }


def _check_only(key: str) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in CHECK_ONLY_KEYS)


def determining_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Flat settings of a config as plain data, without what changes no number (where the run
    writes, the keys only read for checks): what two runs must share to be the same run. A null
    setting is one not set, so that a setting added later with a null default leaves the runs
    made before it the same runs."""
    return {
        SHORTHANDS.get(key, key): value
        for key, value in flat_settings(config).items()
        if key.split(".")[0] not in RUN_LOCAL_KEYS
        and not _check_only(key)
        and value != {}
        and value is not None
    }


def differing_keys(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The determining settings that differ between a saved run's config and the one asked for
    now, each as "key: <saved> there, <wanted> now"."""
    a, b = determining_settings(saved), determining_settings(wanted)
    return [
        f"{key}: {a.get(key, '<absent>')!r} there, {b.get(key, '<absent>')!r} now"
        for key in sorted(set(a) | set(b))
        if a.get(key, "<absent>") != b.get(key, "<absent>")
    ]


# --- the checks every stage runs on its config before any model loads ----------------------------


@dataclass(frozen=True)
class Rule:
    """What a setting must be, in words for the error and as a test."""

    allowed: str
    accepts: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(low: int, optional: bool = False) -> Rule:
    """An integer of at least `low`; null too where `optional`."""
    return Rule(
        f"an integer >= {low}" + (" or null" if optional else ""),
        lambda v: (optional and v is None) or (_is_int(v) and v >= low),
    )


def positive() -> Rule:
    """A finite number above 0 (a bool is not a number here)."""
    return Rule("a number > 0", lambda v: _is_number(v) and v > 0)


def share(closed_above: bool) -> Rule:
    """A fraction in (0, 1] where `closed_above`, else in [0, 1)."""
    return Rule(
        "a number in (0, 1]" if closed_above else "a number in [0, 1)",
        lambda v: _is_number(v) and (0 < v <= 1 if closed_above else 0 <= v < 1),
    )


def choice(*options: str) -> Rule:
    """Exactly one of `options`."""
    return Rule("one of " + ", ".join(repr(o) for o in options), lambda v: v in options)


BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
NAMES = Rule(
    "a non-empty list of distinct names",
    lambda v: (
        isinstance(v, list)
        and bool(v)
        and all(isinstance(n, str) and n for n in v)
        and len(set(v)) == len(v)
    ),
)

# Every setting of the shipped configs that a typo or a bad value could break after minutes of
# work; a key absent from the composed config (another stage, another selector) is not checked.
SETTINGS: dict[str, Rule] = {
    "seed": whole(0),
    "scoring.max_new_tokens": whole(1),
    "scoring.batch_size": whole(1),
    "scoring.batches_per_shard": whole(1),
    "scoring.max_prompt_tokens": whole(1),
    "scoring.pooling": choice("mean", "last"),
    "finetune.epochs": whole(1),
    "finetune.learning_rate": positive(),
    "finetune.batch_size": whole(1),
    "finetune.accumulate_grad_batches": whole(1),
    "finetune.max_length": whole(2),  # one prompt token and one answer token at the least
    "finetune.gradient_checkpointing": BOOLEAN,
    "finetune.lora.rank": whole(1),
    "finetune.lora.alpha": positive(),
    "finetune.lora.dropout": share(closed_above=False),
    "finetune.lora.target_modules": NAMES,
    "selector.base_per_task": whole(0),
    "selector.confidence": choice("sequence", "token_geomean"),
    "selector.gamma": positive(),
    "selector.normalize": BOOLEAN,
    "selector.memory_limit_mb": positive(),
    "selector.knn": whole(1, optional=True),
    "selector.device": Rule(
        "'auto', 'cpu', 'cuda' or 'cuda:N'",
        lambda v: (
            isinstance(v, str)
            and (v in ("auto", "cpu", "cuda") or bool(re.fullmatch(r"cuda:\d+", v)))
        ),
    ),
    "selector.probe": whole(2, optional=True),
    "selector.probe_targets": choice("labels", "self"),
    "selector.probe_fraction": share(closed_above=True),
    "selector.first_round": share(closed_above=False),  # adaptive refuses 0 itself
    "selector.holdout": share(closed_above=False),
    "selector.n_max": whole(2),
    "selector.max_new_tokens": whole(1),
    "selector.min_quality": share(closed_above=True),
    "selector.jitter": positive(),  # the DPP checks its float64 floor itself
    "selector.max_factor_mb": positive(),
    "selector.sensitivity.instances_per_task": whole(1),
    "selector.sensitivity.n_perturbations": whole(1),
    "selector.sensitivity.dropout": share(closed_above=False),
    "selector.sensitivity.seed": whole(0),
    "selector.sensitivity.batch_size": whole(1),
    "annotations.require_fingerprint": BOOLEAN,
    "action": choice("push", "pull"),
    "allow_partial": BOOLEAN,
    "overwrite": BOOLEAN,
    "eval.tasks.max_new_tokens": whole(1),
    "eval.tasks.batch_size": whole(1),
    "eval.tasks.limit_per_task": whole(1, optional=True),
    "eval.mmlu.batch_size": whole(1),
    "eval.mmlu.shots": whole(0),
    "eval.mmlu.limit_per_subject": whole(1, optional=True),
    "eval.bbh.batch_size": whole(1),
    "eval.bbh.max_new_tokens": whole(1),
    "eval.bbh.shots": whole(0),
    "eval.bbh.max_examples_per_task": whole(1, optional=True),
    "eval.alpaca_eval.max_new_tokens": whole(1),
    "eval.alpaca_eval.batch_size": whole(1),
    "coslow.n": whole(2),
    "coslow.fraction": share(closed_above=True),
    "coslow.rank": whole(1),
    "coslow.alpha": positive(),
    "coslow.batch_size": whole(1),
    "coslow.max_length": whole(2),
    "coslow.aggregate": choice("median", "mean"),
    "coslow.target_modules": NAMES,
}

_ABSENT = object()


def check_settings(cfg: DictConfig) -> None:
    """Every setting checked at once, before any model loads: values with no default left unset,
    types, ranges and choices, LoRA targets against the model's linear layers, cache folders.
    One error names every bad key, its value and what is allowed."""
    problems = [f"{key} must be set (it has no default)" for key in missing_keys(cfg)]
    for key, rule in SETTINGS.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if (
            value is not _ABSENT
            and not OmegaConf.is_missing(cfg, key)
            and not rule.accepts(_plain(value))
        ):
            problems.append(f"{key} must be {rule.allowed}, got {_plain(value)!r}")
    layers = OmegaConf.select(cfg, "model.linear_layers", default=None)
    for key in ("finetune.lora.target_modules", "coslow.target_modules"):
        targets = _plain(OmegaConf.select(cfg, key, default=None))
        if layers and isinstance(targets, list):
            unknown = [t for t in targets if t not in layers]
            if unknown:
                problems.append(
                    f"{key} names {unknown}, which {cfg.model.name} does not have; its linear layers are {list(layers)}"
                )
    for key in ("paths.cache_dir", "paths.score_cache_dir", "paths.model_cache_dir"):
        folder = OmegaConf.select(cfg, key, default=None)
        if (
            folder
            and Path(str(folder)).expanduser().exists()
            and not Path(str(folder)).expanduser().is_dir()
        ):
            problems.append(
                f"{key} is {folder}, a file; it must be a folder (or a path that does not exist yet)"
            )
    if problems:
        raise ConfigError("; ".join(problems))


def missing_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys left at `???` (Hydra's "no default: you must set it"), outside hydra's own node."""
    found = []
    for key in cfg:
        if not prefix and key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            found.append(f"{prefix}{key}")
        elif isinstance(cfg[key], DictConfig):
            found += missing_keys(cfg[key], f"{prefix}{key}.")
    return found


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
