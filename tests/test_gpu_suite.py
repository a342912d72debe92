"""benchmarks/gpu_suite.py runs on a bare GPU machine: its dry run, without hydra-core,
omegaconf or wandb installed, measures every part at toy sizes."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

ABSENT_ON_THE_GPU_MACHINE = ("hydra", "omegaconf", "wandb")


def bare_site_packages(folder: Path) -> Path:
    """This venv's packages, less those the GPU machine lacks and labelbudget's own install."""
    folder.mkdir()
    for entry in Path(site.getsitepackages()[0]).iterdir():
        name = entry.name.lower()
        if not name.startswith((*ABSENT_ON_THE_GPU_MACHINE, "labelbudget", "__editable__")):
            (folder / entry.name).symlink_to(entry)
    return folder


def test_the_dry_run_measures_every_part_without_hydra_omegaconf_or_wandb(tmp_path):
    packages = bare_site_packages(tmp_path / "site")
    env = {"PYTHONPATH": f"{packages}:{REPO_ROOT / 'src'}", "PATH": "/usr/bin:/bin"}
    python = [sys.executable, "-S"]  # no site: only the packages above
    absent = subprocess.run([*python, "-c", "import omegaconf"], env=env, capture_output=True)
    assert absent.returncode != 0  # the environment really lacks them
    out = tmp_path / "out"
    done = subprocess.run(
        [*python, "gpu_suite.py", "--dry-run", "--out", str(out)],
        cwd=REPO_ROOT / "benchmarks",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "gpu_suite.json").read_text())
    assert summary["dry_run"] and summary["sizes"]["n"] == 600
    assert summary["scoring"]["naive_prompts_per_s"] > 0 and summary["scoring"]["speedup"] > 0
    assert summary["scoring"]["generated_tokens"]["naive"] == 4 * 32  # random weights never stop
    assert summary["training"]["ours_tokens_per_s"] > 0
    assert summary["training"]["hf_trainer_tokens_per_s"] > 0
    assert summary["training"]["peak_memory_gib"] is None  # measured on a GPU only
    assert set(summary["selection"]) == {
        "kcenter",
        "dpp",
        "facility_location",
        "facility_location_knn",
    }
    assert summary["selection"]["kcenter"]["objective"]["max_min_distance"] > 0
    knn = summary["selection"]["facility_location_knn"]["objective"]
    # the graph leaves out pairs (K = 0 there): the same picks cover at least as much densely
    assert 0 < knn["facility_location_knn"] <= knn["facility_location"]
    table = (out / "gpu_suite.md").read_text()
    assert "| LoRA training, tokens/s |" in table and "| dpp, N=600, seconds |" in table
