"""docs/adding_a_selector.md's worked example, run as written: its module and its YAML, through
select.py on the tiny model, and from Python through make_selector."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from conftest import REPO_ROOT, compose_config
from labelbudget.errors import ConfigError
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import SELECTORS, make_selector

DOC = REPO_ROOT / "docs" / "adding_a_selector.md"
POOL = ["model=tiny_llama", "dataset.pool_per_task=6", "scoring.max_new_tokens=4"]


def doc_block(language: str) -> str:
    """The first fenced block of that language in the doc."""
    return re.search(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL).group(1)


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """The doc's two files, where the doc puts them."""
    (tmp_path / "my_selectors").mkdir()
    (tmp_path / "my_selectors" / "__init__.py").write_text("")
    (tmp_path / "my_selectors" / "balanced.py").write_text(doc_block("python"))
    (tmp_path / "my_conf" / "selector").mkdir(parents=True)
    (tmp_path / "my_conf" / "selector" / "balanced_least_confidence.yaml").write_text(
        doc_block("yaml")
    )
    return tmp_path


def expected_picks(tmp_path: Path, budget: int) -> list[str]:
    """Rank each prompt within its task by confidence (ties: pool order), then take rank 1 of
    every task (tasks by name), then rank 2, ..., from the scores the run cached."""
    pool = instantiate(compose_config("select", *POOL).dataset).pool
    (scores_file,) = (tmp_path / "cache" / "scores").rglob("scores.json")
    scores = Scores.load(scores_file.with_suffix(""))
    assert scores.ids == pool.ids
    rank = {}
    for task in set(pool.tasks):
        members = sorted(
            (scores.seq_logprob[i], i) for i in range(len(pool)) if pool.tasks[i] == task
        )
        rank.update({i: r for r, (_, i) in enumerate(members)})
    order = sorted(range(len(pool)), key=lambda i: (rank[i], pool.tasks[i]))
    return [pool.ids[i] for i in order[:budget]]


@pytest.mark.parametrize("conf_folder", ["my_conf", "odd, it's here/my_conf"])
def test_the_worked_example_runs_through_select_py(example_project, conf_folder):
    """Also from a config folder whose path holds a comma and a quote: the run's identity
    composes the app again on the same search path, which must survive Hydra's grammar."""
    tmp = example_project
    if conf_folder != "my_conf":
        (tmp / conf_folder).parent.mkdir()
        (tmp / "my_conf").rename(tmp / conf_folder)
    command = [
        sys.executable,
        "select.py",
        *POOL,
        "selector=balanced_least_confidence",
        "budget=30",
        f'hydra.searchpath=["file://{tmp / conf_folder}"]',
        f"paths.output_dir={tmp / 'run'}",
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": str(tmp),
        "LABELBUDGET_CACHE": str(tmp / "cache"),
        "WANDB_MODE": "offline",
    }
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp / "run" / "selection.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == expected_picks(tmp, 30)
    assert (
        len({row["task"] for row in rows[:24]}) == 24
    )  # the first round: one prompt of every task
    identity = json.loads((tmp / "run" / "metrics.json").read_text())["run"]
    assert (identity["selector"], identity["selector_options"]) == ("balanced_least_confidence", {})


def test_the_worked_example_from_python(example_project):
    sys.path.insert(0, str(example_project))
    try:
        import my_selectors.balanced  # noqa: F401  (registers the selector)

        selector = make_selector("balanced_least_confidence", confidence="token_geomean")
        assert type(selector).__name__ == "BalancedLeastConfidenceSelector"
        assert selector.confidence == "token_geomean"
        with pytest.raises(ConfigError, match="confidence must be"):
            make_selector("balanced_least_confidence", confidence="median")
    finally:
        sys.path.remove(str(example_project))
        SELECTORS.pop("balanced_least_confidence", None)
        for name in [m for m in sys.modules if m.startswith("my_selectors")]:
            del sys.modules[name]
