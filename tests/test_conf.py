"""The shipped configs say what runs: every value an app's own file sets survives composition
(a group listed after `_self_` once silently replaced estimate.yaml's scoring setting), and
each mode of estimate.py holds only its own keys."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import REPO_ROOT, compose_config

CONF = REPO_ROOT / "conf"


def flat(node: dict, prefix: str = "") -> dict[str, object]:
    items = {}
    for key, value in node.items():
        if isinstance(value, dict):
            items.update(flat(value, f"{prefix}{key}."))
        else:
            items[f"{prefix}{key}"] = value
    return items


@pytest.mark.parametrize("app", ["select", "train", "evaluate", "estimate"])
def test_every_value_an_app_file_sets_is_the_value_it_runs_with(app):
    own = yaml.safe_load((CONF / f"{app}.yaml").read_text())
    own.pop("defaults", None)
    composed = compose_config(app)
    for key, value in flat(own).items():
        if isinstance(value, str) and "${" in value:
            continue
        assert OmegaConf.select(composed, key) == value, f"conf/{app}.yaml sets {key}: {value!r}"


MODE_KEYS = {
    "coslow": {"coslow", "annotations", "fit", "targets"},
    "curves": {"runs", "n_max", "human"},
    "fit": {"curves", "signals"},
    "plan": {"predictions", "budget", "targets"},
}


@pytest.mark.parametrize("mode", sorted(MODE_KEYS))
def test_each_estimate_mode_brings_its_own_keys_and_no_other_modes(mode):
    assert sorted(p.stem for p in (CONF / "mode").glob("*.yaml")) == sorted(MODE_KEYS)
    composed = compose_config("estimate", f"mode={mode}")
    others = set().union(*MODE_KEYS.values()) - MODE_KEYS[mode]
    assert composed.mode == mode
    assert MODE_KEYS[mode] <= set(composed) and not others & set(composed)


def test_evaluate_composes_only_what_evaluation_reads():
    assert set(compose_config("evaluate")) == {
        "task_name",
        "seed",
        "adapter",
        "paths",
        "dataset",
        "model",
        "trainer",
        "eval",
    }
