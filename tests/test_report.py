"""The runs table: means and standard errors checked against values computed by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labelbudget.errors import DataError
from labelbudget.tracking.report import main, write_report


def write_run(folder: Path, selector: str, budget: int, seed: int, **metrics: float) -> None:
    folder.mkdir(parents=True)
    record = {"run": {"dataset": "d", "selector": selector, "budget": budget, "seed": seed, "model": "m"}, "metrics": metrics}
    (folder / "metrics.json").write_text(json.dumps(record))


def test_report_means_and_standard_errors_by_hand(tmp_path, capsys):
    # weighted_task at 100: 0.5, 0.6, 0.7 -> mean 0.6, sd 0.1, se 0.1/sqrt(3) = 0.057735
    for seed, value in enumerate([0.5, 0.6, 0.7]):
        write_run(tmp_path / "sweep" / f"w{seed}", "weighted_task", 100, seed, acc=value)
    # random at 100: 0.2, 0.4 -> mean 0.3, sd 0.141421, se 0.1 ; random at 200: one run, se 0
    write_run(tmp_path / "sweep" / "r0", "random", 100, 0, acc=0.2)
    write_run(tmp_path / "sweep" / "r1", "random", 100, 1, acc=0.4)
    write_run(tmp_path / "other" / "r2", "random", 200, 0, acc=0.9)
    main([str(tmp_path / "sweep"), str(tmp_path / "other"), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "| weighted_task | 0.6000 ± 0.0577 (n=3) |  |" in printed
    assert "| random | 0.3000 ± 0.1000 (n=2) | 0.9000 ± 0.0000 (n=1) |" in printed
    rows = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert "acc,weighted_task,100,0.6,0.057735,3" in rows
    assert "acc,random,100,0.3,0.1,2" in rows
    assert (tmp_path / "out" / "plots" / "acc.png").read_bytes()[:4] == b"\x89PNG"


def test_report_refuses_a_folder_without_runs(tmp_path):
    with pytest.raises(DataError, match="contains no metrics.json"):
        write_report([tmp_path], tmp_path)


def test_the_report_imports_without_torch_or_lightning():
    code = "import sys, labelbudget.tracking.report; assert not {'torch', 'lightning'} & set(sys.modules), sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
