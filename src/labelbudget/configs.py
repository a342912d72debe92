"""Composed configs as plain data: flat dotted settings, and the part of a run's config that
determines its numbers (what metrics.json records and the report compares)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

RUN_LOCAL_KEYS = ("paths", "logger", "hydra")  # where a run writes, not what it computes


def flat_settings(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values; lists stay whole, an empty mapping is a leaf."""
    if not isinstance(node, dict) or not node:
        return {prefix.rstrip("."): node}
    return {key: value for name, child in node.items() for key, value in flat_settings(child, f"{prefix}{name}.").items()}


def recorded_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config, resolved, without the run-local keys."""
    return {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in cfg if key not in RUN_LOCAL_KEYS}
