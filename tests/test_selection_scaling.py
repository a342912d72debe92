"""benchmarks/selection_scaling.py at toy sizes: each selector timed in its own process, a
refusal recorded with its message, the table and the plot written."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT


def scaling(out, sizes: str):
    return subprocess.run(
        [
            sys.executable,
            "selection_scaling.py",
            "--n",
            sizes,
            "--d",
            "64",
            "--selectors",
            "kcenter,weighted_task",
            "--no-apricot",
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT / "benchmarks",
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_scaling_benchmark_times_each_selector_and_records_refusals(tmp_path):
    first = scaling(tmp_path, "600")
    assert first.returncode == 0, first.stderr[-3000:]
    before = json.loads((tmp_path / "scaling.json").read_text())["results"]["kcenter"][0]
    # the same command again, one size more: the finished runs are read back, not run again
    done = scaling(tmp_path, "600,1200")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["name"], r["n"]) for r in runs) == [
        ("kcenter", 600),
        ("kcenter", 1200),
        ("weighted_task", 600),
        ("weighted_task", 1200),
    ]
    summary = json.loads((tmp_path / "scaling.json").read_text())
    kcenter = summary["results"]["kcenter"]
    assert [(r["n"], r["k"], r["picks"]) for r in kcenter] == [(600, 198, 198), (1200, 396, 396)]
    assert all(r["seconds"] > 0 and r["peak_rss_gb"] > 0 for r in kcenter)
    assert kcenter[0]["seconds"] == before["seconds"]
    # 200 tasks of about 3 and 6 prompts: a base of 5 per task needs more than 198 and 396 labels
    weighted = summary["results"]["weighted_task"]
    assert all("is smaller than the base allocation" in r["refused"] for r in weighted)
    assert summary["bandwidth"]["read_gb_s"] > 0
    assert "| kcenter | " in done.stdout and "| weighted_task | refused (below) |" in done.stdout
    assert "- weighted_task at N=600: budget 198" in done.stdout
    assert (tmp_path / "scaling.png").stat().st_size > 0
    (tmp_path / "scaling.png").unlink()
    report = subprocess.run(
        [sys.executable, "selection_scaling.py", "--report", "--out", str(tmp_path)],
        cwd=REPO_ROOT / "benchmarks",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert report.stdout == done.stdout and (tmp_path / "scaling.png").stat().st_size > 0


def test_a_resumed_benchmark_runs_again_what_failed_was_stopped_sooner_or_was_cut_short(
    tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import selection_scaling

    wanted = {"d": 64, "k_fraction": 0.33, "seed": 0, "memory_limit_mb": None, "commit": "abc"}
    lines = [
        {"name": "kcenter", "n": 600, "k": 198, "seconds": 1.5, "peak_rss_gb": 1.0},
        {"name": "dpp", "n": 600, "k": 198, "failed": -9, "stderr": ""},
        {"name": "dpp", "n": 1200, "k": 396, "stopped_after_min": 5},
        {"name": "kcenter", "n": 1200, "k": 396, "seconds": 2.0, "peak_rss_gb": 1.0},
    ]
    runs = [json.dumps({**wanted, **line}) for line in lines]
    runs[3] = json.dumps({**wanted, "commit": "other", **lines[3]})  # another commit's run
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(runs) + '\n{"name": "random", "n"')  # the last line cut short
    done = selection_scaling.finished_runs(path, wanted, timeout_min=20)
    assert done == {("kcenter", 600): {"n": 600, "k": 198, "seconds": 1.5, "peak_rss_gb": 1.0}}
    done = selection_scaling.finished_runs(path, wanted, timeout_min=5)
    assert set(done) == {("kcenter", 600), ("dpp", 1200)}
    assert selection_scaling.cell("dpp", done["dpp", 1200], None) == "over 5 min (stopped)"


def test_a_report_without_results_says_what_is_missing(tmp_path):
    done = subprocess.run(
        [sys.executable, "selection_scaling.py", "--report", "--out", str(tmp_path)],
        cwd=REPO_ROOT / "benchmarks",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2
    assert (
        f"--report: there is no {tmp_path / 'scaling.json'}; run the benchmark first" in done.stderr
    )
