"""Trackers: what W&B is given passes its own validation, whatever the pool file is called."""

from __future__ import annotations

import hashlib

import pytest

from labelbudget.tracking.loggers import wandb_logger, wandb_tag


def test_a_tag_over_64_characters_is_shortened_to_a_stable_distinct_tag():
    long = "pool-" + "x" * 80 + ".jsonl"
    other = "pool-" + "x" * 80 + ".json"
    assert wandb_tag("dolly.jsonl") == "dolly.jsonl"  # short tags are kept as they are
    assert wandb_tag("y" * 64) == "y" * 64
    expected = long[:55] + "-" + hashlib.sha256(long.encode()).hexdigest()[:8]
    assert wandb_tag(long) == expected and len(expected) == 64
    assert wandb_tag(other) != wandb_tag(long)


def test_wandb_accepts_the_tags_of_a_pool_with_a_long_file_name(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    tags = ["a" * 70 + ".jsonl", "random", "budget=30", "tiny_llama"]
    with pytest.raises(ValueError, match="Tags must be between 1 and 64 characters"):
        wandb.Settings(run_tags=tuple(tags))  # what W&B does with the name as it is
    logger = wandb_logger(str(tmp_path), group="g", name="n", tags=tags)
    given = logger._wandb_init["tags"]
    wandb.Settings(run_tags=tuple(given))  # raises if any tag is still too long
    assert given[1:] == tags[1:]
