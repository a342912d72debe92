"""The runs report: means and standard errors, the paired bootstrap and the keying of rows and
tables, each checked against values worked out by hand."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelbudget.errors import DataError
from labelbudget.report import crossed_bootstrap, premise_check, spearman, write_report
from labelbudget.report.__main__ import main


def write_run(
    folder: Path,
    selector: str,
    budget: int,
    seed: int,
    options: dict | None = None,
    dataset: str = "d",
    allocation: dict[str, tuple[int, float]] | None = None,
    composition: int | None = None,
    data: dict | None = None,
    **metrics: float,
) -> None:
    folder.mkdir(parents=True)
    config = {
        "dataset": {"name": dataset, "composition_seed": composition},
        "finetune": {"learning_rate": 3e-4},
        "seed": seed,
        "budget": budget,
        "selector": {"_target_": selector, **(options or {})},
    }
    record = {
        "run": {
            "dataset": dataset,
            "selector": selector,
            "selector_options": options or {},
            "budget": budget,
            "seed": seed,
            "model": "m",
        },
        "metrics": metrics,
        "config": config,
        **({"data": data} if data else {}),
    }
    (folder / "metrics.json").write_text(json.dumps(record))
    if allocation:
        lines = ["task,pool_size,mean_confidence,allocated,selected"]
        lines += [
            f"{task},10,{confidence},,{selected}"
            for task, (selected, confidence) in allocation.items()
        ]
        (folder / "allocation.csv").write_text("\n".join(lines) + "\n")


def macro(a: float, b: float) -> dict[str, float]:
    return {"tasks/a": a, "tasks/b": b, "tasks/macro": (a + b) / 2, "tasks/micro": (a + b) / 2}


def test_report_means_and_standard_errors_by_hand(tmp_path, capsys):
    # weighted_task at 100: macro 0.5, 0.6, 0.7 -> mean 0.6, sd 0.1, se 0.1/sqrt(3) = 0.057735
    for seed, value in enumerate([0.5, 0.6, 0.7]):
        write_run(
            tmp_path / "sweep" / f"w{seed}", "weighted_task", 100, seed, **macro(value, value)
        )
    # random at 100: 0.2, 0.4 -> mean 0.3, sd 0.141421, se 0.1 ; random at 200: one run, se 0
    write_run(tmp_path / "sweep" / "r0", "random", 100, 0, **macro(0.2, 0.2))
    write_run(tmp_path / "sweep" / "r1", "random", 100, 1, **macro(0.4, 0.4))
    write_run(tmp_path / "other" / "r2", "random", 200, 0, **macro(0.9, 0.9))
    main([str(tmp_path / "sweep"), str(tmp_path / "other"), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "| weighted_task | 0.6000 ± 0.0577 (n=3) |  |" in printed
    assert "| random | 0.3000 ± 0.1000 (n=2) | 0.9000 ± 0.0000 (n=1) |" in printed
    assert "| weighted_task | 100 | 3 | 0.6000 ± 0.0577 |" in printed  # the headline table
    rows = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert ",tasks/macro,weighted_task,100,0.6,0.057735,3" in rows
    assert ",tasks/macro,random,100,0.3,0.1,2" in rows
    assert (tmp_path / "out" / "plots" / "tasks_macro.png").read_bytes()[:4] == b"\x89PNG"


def test_crossed_bootstrap_by_hand():
    # 2 tasks, 1 seed: differences 0.1 and 0.3. Resampled task pairs give means 0.1 (1/4),
    # 0.2 (1/2), 0.3 (1/4): the 2.5th and 97.5th percentiles are 0.1 and 0.3, the mean 0.2.
    result = crossed_bootstrap(np.array([[0.1], [0.3]]))
    assert (result.mean, result.low, result.high) == pytest.approx((0.2, 0.1, 0.3))
    assert result.verdict == "better"
    # 1 task, 2 seeds: 0.1 and -0.3 -> means 0.1, -0.1, -0.3: the interval holds 0
    result = crossed_bootstrap(np.array([[0.1, -0.3]]))
    assert (result.low, result.high) == pytest.approx((-0.3, 0.1))
    assert result.verdict == "not shown"
    assert crossed_bootstrap(np.full((4, 3), -0.05)).verdict == "worse"


def test_crossed_bootstrap_matches_the_exact_resampling_distribution():
    # 2 tasks x 2 seeds: all 16 equally likely (task pair, seed pair) draws, enumerated
    differences = np.array([[0.3, -0.1], [0.0, 0.2]])
    exact = [
        differences[np.ix_(t, s)].mean()
        for t in itertools.product(range(2), repeat=2)
        for s in itertools.product(range(2), repeat=2)
    ]
    result = crossed_bootstrap(differences, draws=200_000)
    # the quantiles of the exact distribution (16 atoms, inverted CDF)
    assert (result.low, result.high) == pytest.approx(
        tuple(np.percentile(exact, [2.5, 97.5], method="inverted_cdf"))
    )
    assert result.mean == pytest.approx(np.mean(exact))
    # the minimum detectable effect: (1.96 + 0.84) standard deviations of the same distribution
    assert result.mde == pytest.approx((1.959964 + 0.841621) * np.std(exact), rel=0.01)


def test_rows_are_selector_and_options_and_settings_split_tables(tmp_path):
    for seed in range(2):
        write_run(tmp_path / f"r{seed}", "random", 10, seed, **macro(0.2, 0.4))
        write_run(tmp_path / f"w{seed}", "weighted_task", 10, seed, **macro(0.3, 0.5))
        write_run(
            tmp_path / f"g{seed}",
            "weighted_task",
            10,
            seed,
            options={"confidence": "token_geomean"},
            **macro(0.2, 0.4),
        )
        write_run(tmp_path / f"other{seed}", "random", 10, seed, dataset="bbh", **macro(0.9, 0.9))
    text = write_report([tmp_path], tmp_path / "out")
    assert "## dataset.name=bbh" in text and "## dataset.name=d" in text  # two datasets, two tables
    d_table = text[text.index("## dataset.name=d") :]
    assert "| weighted_task | 10 | 2 | 0.4000 ± 0.0000 |" in d_table
    assert "| weighted_task (confidence=token_geomean) | 10 | 2 | 0.3000 ± 0.0000 |" in d_table
    # paired with random: +0.1 on every (task, seed) cell -> better; the variant ties random
    assert (
        "| weighted_task | 10 | +0.1000 | [+0.1000, +0.1000] | 2 x 2 | better | 0.0000 |" in d_table
    )
    assert (
        "| weighted_task (confidence=token_geomean) | 10 | +0.0000 | [+0.0000, +0.0000] | 2 x 2 | not shown | 0.0000 |"
        in d_table
    )
    assert "0.9000" not in d_table  # the bbh runs are not averaged in


def tasks(a: float, b: float, c: float) -> dict[str, float]:
    return {"tasks/a": a, "tasks/b": b, "tasks/c": c, "tasks/macro": (a + b + c) / 3}


def test_per_task_gains_and_the_premise_check_from_allocations_and_zero_shot(tmp_path):
    write_run(tmp_path / "z", "zero-shot", 0, 0, **tasks(0.1, 0.1, 0.1))
    write_run(
        tmp_path / "r",
        "random",
        10,
        0,
        allocation={"a": (4, 0.2), "b": (4, 0.5), "c": (2, 0.8)},
        **tasks(0.3, 0.2, 0.1),
    )
    write_run(
        tmp_path / "w",
        "weighted_task",
        10,
        0,
        allocation={"a": (6, 0.2), "b": (2, 0.5), "c": (2, 0.8)},
        **tasks(0.4, 0.5, 0.3),
    )
    text = write_report([tmp_path], tmp_path / "out")
    for plot in (
        "task_gain_tasks_macro_b10.png",
        "paired_tasks_macro.png",
        "allocation_tasks_macro_b10.png",
    ):
        assert (tmp_path / "out" / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    # gain per label, tasks a, b, c by rising confidence: random 0.05, 0.025, 0 -> rho -1;
    # weighted_task 0.05, 0.2, 0.1 -> ranks 1, 3, 2 against 1, 2, 3: rho = 1 - 6 * 2 / 24 = +0.5
    assert "| random | 10 | -1.000 |" in text
    assert "| weighted_task | 10 | +0.500 |" in text
    # against random: a got 2 more labels and scores 0.1 more (0.05 a label), b 2 fewer and 0.3
    # more, c the same labels (in neither group); over the 3 tasks (0.1 + 0.3 + 0.2) / 3 = +0.2
    assert (
        "| weighted_task | 10 | 1 | 2.0 | +0.1000 | +0.0500 | 1 | 2.0 | +0.3000 | +0.1500 "
        "| 3 | +0.2000 |" in text
    )


def test_the_premise_check_ties_gains_that_differ_by_float_noise_alone():
    # tasks a to d by rising confidence; b's and c's gains are 0 computed by other sums
    noisy = [("a", 1.0, 0.0, 1e-3), ("b", 1.0, 0.1 + 0.2 - 0.3, 2e-3)]
    noisy += [("c", 1.0, 0.3 - 0.1 - 0.2, 3e-3), ("d", 1.0, 0.1, 4e-3)]
    # gains rank 2, 2, 2, 4 against 1, 2, 3, 4: centred (-0.5, -0.5, -0.5, 1.5) and
    # (-1.5, -0.5, 0.5, 1.5), rho = 3 / sqrt(3 * 5) (untied, ranks 2, 3, 1, 4 would give 0.4)
    rho = premise_check({("random", 4): noisy})[("random", 4)].rho
    assert rho == pytest.approx(3 / math.sqrt(15))


def test_spearman_by_hand_with_ties_and_against_scipy():
    # ranks 1,2,3,4 against 1,3,2,4: sum d^2 = 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 30, 20, 40])).rho == pytest.approx(
        0.8
    )
    # a tie: ranks 1.5, 1.5, 3 against 1, 2, 3 -> covariance 1.5 / sqrt(1.5 * 2) = 0.8660
    assert spearman(np.array([5.0, 5, 7]), np.array([1.0, 2, 3])).rho == pytest.approx(
        1.5 / np.sqrt(3)
    )
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 6, 30).astype(float), rng.normal(size=30)
    assert spearman(x, y).rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert spearman(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])) is None  # a constant side
    assert spearman(np.array([1.0, 2]), np.array([1.0, 2])) is None  # too few points


def test_spearman_permutation_p_matches_the_exact_count():
    # n = 4: rho = 1 - sum d^2 / 10; |rho| >= 0.8 for sum d^2 in {0, 2, 18, 20}: 1 + 3 + 3 + 1 of
    # the 24 orders, so the exact two-sided p is 8 / 24
    result = spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]), permutations=40_000)
    assert result.p == pytest.approx(1 / 3, abs=0.01)
    assert result.tasks == 4


def test_premise_check_uses_gain_per_label_of_tasks_that_got_labels():
    gains = {
        ("w", 10): [
            ("a", 2.0, 0.4, 0.1),  # 0.2 per label, least confident
            ("b", 4.0, 0.4, 0.2),  # 0.1
            ("c", 1.0, 0.05, 0.3),  # 0.05
            ("d", 0.0, 0.9, 0.05),  # no labels: left out
            ("e", 3.0, 0.9, None),  # no confidence: left out
        ]
    }
    result = premise_check(gains)[("w", 10)]
    assert (result.rho, result.tasks) == (pytest.approx(-1.0), 3)


def test_reallocation_is_paired_by_seed_with_random_and_ties_fall_in_neither_group(tmp_path):
    runs = {  # (row, seed): labels of a and b, their scores
        ("random", 0): ((4, 4), (0.2, 0.2)),
        ("random", 1): ((2, 6), (0.1, 0.3)),
        ("random", 2): ((8, 0), (0.9, 0.0)),  # w has no seed 2: left out of every comparison
        ("w", 0): ((6, 2), (0.4, 0.1)),
        ("w", 1): ((6, 2), (0.3, 0.2)),
        ("same", 0): ((4, 4), (0.2, 0.2)),  # random's labels in each seed: in neither group
        ("same", 1): ((2, 6), (0.1, 0.3)),
    }
    for (row, seed), ((la, lb), (sa, sb)) in runs.items():
        allocation = {"a": (la, 0.1), "b": (lb, 0.2)}
        write_run(tmp_path / f"{row}{seed}", row, 10, seed, allocation=allocation, **macro(sa, sb))
    write_run(tmp_path / "full", "full", 30, 0, allocation={"a": (15, 0.1)}, **macro(1, 1))
    text = write_report([tmp_path], tmp_path / "out")
    section = text[text.index("where the labels went") :].split("###")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert {line.count("|") for line in rows} == {13}  # every row as wide as the header
    # a: +2 and +4 labels (mean +3), +0.2 and +0.2 score; b: -2 and -4 (-3), -0.1 and -0.1;
    # per label +0.2 / 3 and -0.1 / 3; over both tasks +0.05, as in the paired table
    assert (
        "| w | 10 | 1 | 3.0 | +0.2000 | +0.0667 | 1 | 3.0 | -0.1000 | -0.0333 | 2 | +0.0500 |"
        in section
    )
    assert "| w | 10 | +0.0500 |" in text
    assert "| same | 10 | 0 | | | | 0 | | | | 2 | +0.0000 |" in section
    assert "| full |" not in section  # no random at its budget


def test_report_refuses_a_folder_without_runs_and_a_repeated_cell(tmp_path):
    with pytest.raises(DataError, match="contains no metrics.json"):
        write_report([tmp_path], tmp_path)
    write_run(tmp_path / "a", "random", 10, 0, **macro(0.2, 0.4))
    write_run(tmp_path / "b", "random", 10, 0, **macro(0.3, 0.4))
    with pytest.raises(DataError, match="repeats row 'random', budget 10, seed=0 of"):
        write_report([tmp_path], tmp_path)


def test_the_report_imports_without_torch_or_lightning():
    code = "import sys, labelbudget.report, labelbudget.report.__main__; assert not {'torch', 'lightning'} & set(sys.modules), sorted(sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-500:]


def test_runs_of_one_table_made_on_an_edited_pool_are_refused_not_averaged(tmp_path):
    def with_data(folder: Path, sha: str | None) -> None:
        record = json.loads((folder / "metrics.json").read_text())
        if sha is not None:
            record["data"] = {
                "pool": {"source": "pool.jsonl", "examples": 4, "sha256": sha},
                "test": None,
            }
        (folder / "metrics.json").write_text(json.dumps(record))

    write_run(tmp_path / "a", "random", 10, 0, **macro(0.2, 0.4))
    write_run(tmp_path / "b", "random", 10, 1, **macro(0.3, 0.4))
    write_run(tmp_path / "c", "random", 10, 2, **macro(0.3, 0.5))
    with_data(tmp_path / "a", "1" * 64)
    with_data(tmp_path / "b", "1" * 64)
    with_data(tmp_path / "c", None)  # recorded before the hashes: cannot be checked, let through
    assert "0.2667" in write_report([tmp_path], tmp_path / "out")
    with_data(tmp_path / "b", "2" * 64)
    with pytest.raises(DataError, match=r"the pool pool.jsonl has changed") as error:
        write_report([tmp_path], tmp_path / "out2")
    assert str(tmp_path / "b") in str(error.value) and str(tmp_path / "a") in str(error.value)
    assert not (tmp_path / "out2" / "report.md").exists()


def test_every_row_is_paired_with_task_diversity_too(tmp_path):
    for seed in range(2):
        write_run(tmp_path / f"r{seed}", "random", 10, seed, **macro(0.2, 0.4))
        write_run(tmp_path / f"t{seed}", "task_diversity", 10, seed, **macro(0.4, 0.4))
        write_run(tmp_path / f"w{seed}", "weighted_task", 10, seed, **macro(0.3, 0.5))
    text = write_report([tmp_path], tmp_path / "out")
    versus = text[text.index("paired difference with task_diversity") :]
    # weighted_task - task_diversity: a -0.1, b +0.1 in both seeds: mean 0; resampling the two
    # tasks gives means -0.1, 0, 0, +0.1 (each seed the same): interval [-0.1, +0.1]
    assert "| weighted_task | 10 | +0.0000 | [-0.1000, +0.1000] | 2 x 2 | not shown |" in versus
    assert "| random | 10 | -0.1000 | [-0.2000, +0.0000] | 2 x 2 | not shown |" in versus
    assert (tmp_path / "out" / "plots" / "paired_vs_task_diversity_tasks_macro.png").is_file()


def test_cells_pool_compositions_and_seeds_in_one_table(tmp_path):
    for composition, seed in itertools.product((1, 2), (0, 1)):
        name = f"c{composition}s{seed}"
        lift = 0.1 if composition == 1 else 0.3  # weighted_task gains more in composition 2
        # each composition is another pool, with its own hash: compared only within the cell
        pool = {"pool": {"source": "s", "examples": 8, "sha256": f"{composition}" * 64}}
        write_run(
            tmp_path / f"r{name}",
            "random",
            10,
            seed,
            composition=composition,
            data=pool,
            **macro(0.2, 0.2),
        )
        write_run(
            tmp_path / f"w{name}",
            "weighted_task",
            10,
            seed,
            composition=composition,
            data=pool,
            **macro(0.2 + lift, 0.2 + lift),
        )
    apart = write_report([tmp_path], tmp_path / "apart")
    assert "## dataset.composition_seed=1" in apart and "## dataset.composition_seed=2" in apart
    text = write_report([tmp_path], tmp_path / "out", cells=("dataset.composition_seed",))
    assert "##" not in text.replace("###", "")  # one table
    assert text.startswith("Cells: (dataset.composition_seed, seed)")
    # 2 tasks x 4 cells, differences 0.1 (composition 1) and 0.3 (composition 2): mean 0.2
    assert "| weighted_task | 10 | +0.2000 |" in text and "| 2 x 4 | better |" in text
    assert "| weighted_task | 10 | 4 | 0.4000 ± 0.0577 |" in text  # n = 4 cells, sd 0.11547
    with pytest.raises(DataError, match="--cells: no run has the setting 'dataset.composition'"):
        write_report([tmp_path], tmp_path / "typo", cells=("dataset.composition",))
    # within a cell a pool edited in place is still refused
    edited = {"pool": {"source": "s", "examples": 8, "sha256": "e" * 64}}
    write_run(
        tmp_path / "edited", "task_diversity", 10, 0, composition=1, data=edited, **macro(0.2, 0.2)
    )
    with pytest.raises(DataError, match="but other data: the pool s has changed"):
        write_report([tmp_path], tmp_path / "out", cells=("dataset.composition_seed",))
    subprocess.run(["rm", "-r", str(tmp_path / "edited")], check=True)
    first = {"pool": {"source": "s", "examples": 8, "sha256": "1" * 64}}  # composition 1's
    with pytest.raises(
        DataError,
        match=r"repeats row 'random', budget 10, "
        r"dataset.composition_seed=1, seed=0 of",
    ):
        write_run(tmp_path / "again", "random", 10, 0, composition=1, data=first, **macro(0.2, 0.2))
        write_report([tmp_path], tmp_path / "out", cells=("dataset.composition_seed",))


def report_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labelbudget.report", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_report_cli_ends_bad_input_in_one_line_and_can_skip_unreadable_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes" / "x").mkdir(parents=True)
    for folder in ("empty", "notes"):
        result = report_cli(str(tmp_path / folder))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr == (
            f"error: {tmp_path / folder}: contains no metrics.json (is it a train.py run or "
            "multirun folder?)\n"
        )
    study = tmp_path / "study"
    for seed in range(2):
        write_run(study / f"r{seed}", "random", 10, seed, **macro(0.2, 0.4))
    (study / "r2").mkdir()
    (study / "r2" / "metrics.json").write_text('{"trunc')
    result = report_cli(str(study))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {study / 'r2' / 'metrics.json'}: is not valid JSON")
    assert result.stderr.endswith("; --skip-unreadable reports the other runs\n")
    result = report_cli(str(study), "--skip-unreadable")
    assert result.returncode == 0, result.stderr
    assert "Left out, unreadable (--skip-unreadable):\n- " + str(study / "r2") in result.stdout
    assert "| random | 10 | 2 | 0.3000 ± 0.0000 |" in result.stdout  # the two good runs
    (study / "r0" / "metrics.json").write_text("[]")
    (study / "r1" / "metrics.json").write_text("")
    result = report_cli(str(study), "--skip-unreadable")
    assert result.returncode == 2 and "and no other metrics.json is readable" in result.stderr


def test_the_headlines_are_the_records_own_and_labelbudgets_for_older_records():
    from labelbudget.report import reported_headlines
    from labelbudget.runs import RunIdentity, RunRecord

    identity = RunIdentity("d", "random", {}, 10, 0, "m")
    own = RunRecord(identity, {}, headlines=("z/own", "tasks/macro", "a/own"))
    older = RunRecord(identity, {})  # no headlines: labelbudget's four
    assert reported_headlines([own]) == ["tasks/macro", "a/own", "z/own"]
    assert reported_headlines([own, older]) == [
        "tasks/macro",
        "mmlu/micro",
        "bbh/macro",
        "alpaca_eval/length_controlled_winrate",
        "a/own",
        "z/own",
    ]
