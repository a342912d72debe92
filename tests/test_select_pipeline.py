"""select.py end to end on the tiny model: files, determinism, and every bad input refused
before any model is loaded."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labelbudget.models.tiny
from conftest import compose_config, read_jsonl
from labelbudget.errors import ConfigError, DataError
from labelbudget.stages.select import run_select

REPO = Path(__file__).resolve().parents[1]


def config(tmp_path: Path, *overrides: str, output: str = "run"):
    small_pool = (
        [] if any(o.startswith("dataset=") for o in overrides) else ["dataset.pool_per_task=12"]
    )
    return compose_config(
        "select", "model=tiny_llama", *small_pool, *overrides, folder=tmp_path, output=output
    )


@pytest.fixture
def no_model(monkeypatch):
    """Any attempt to build the model fails the test: input checks must come first."""

    def explode(**_):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(labelbudget.models.tiny, "build_tiny_llama", explode)


def test_weighted_task_writes_selection_allocation_and_plot(tmp_path):
    selection = run_select(config(tmp_path, "budget=150"))
    rows = read_jsonl(tmp_path / "run" / "selection.jsonl")
    assert [r["rank"] for r in rows] == list(range(1, 151))
    assert [r["id"] for r in rows] == selection.ids
    assert len({r["id"] for r in rows}) == 150
    assert all(
        set(r) == {"rank", "id", "task", "prompt", "context", "fingerprint"} for r in rows
    )  # no hidden response
    from labelbudget.data.synthetic import build_synthetic_suite

    by_id = {e.id: e for e in build_synthetic_suite(pool_per_task=12).pool}
    # the fingerprint is of what the annotator sees, computed here: SHA-256 of [task, prompt, context]
    assert all(
        r["fingerprint"]
        == hashlib.sha256(
            json.dumps(
                [r["task"], by_id[r["id"]].prompt, by_id[r["id"]].context], ensure_ascii=False
            ).encode()
        ).hexdigest()[:16]
        for r in rows
    )

    with open(tmp_path / "run" / "allocation.csv") as handle:
        table = list(csv.DictReader(handle))
    per_task = {}
    for r in rows:
        per_task[r["task"]] = per_task.get(r["task"], 0) + 1
    assert {t["task"]: int(t["selected"]) for t in table if int(t["selected"])} == per_task
    assert sum(int(t["selected"]) for t in table) == 150
    for t in table:  # every task gets its base of 5, or all of it when smaller
        assert int(t["selected"]) >= min(5, int(t["pool_size"]))
        assert float(t["mean_confidence"]) > 0
    assert (tmp_path / "run" / "allocation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weighted_task_spends_more_on_less_confident_tasks(tmp_path):
    run_select(config(tmp_path, "budget=150"))
    with open(tmp_path / "run" / "allocation.csv") as handle:
        table = [
            t
            for t in csv.DictReader(handle)
            if int(t["pool_size"]) > 5 and float(t["allocated"]) < int(t["pool_size"])
        ]
    ordered = sorted(table, key=lambda t: float(t["mean_confidence"]))
    allocated = [float(t["allocated"]) for t in ordered]
    assert allocated == sorted(
        allocated, reverse=True
    )  # unclamped tasks: lower confidence, more budget


@pytest.mark.parametrize("selector", ["random", "task_diversity", "weighted_task"])
def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path, selector):
    for output, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_select(
            config(tmp_path, f"selector={selector}", "budget=150", f"seed={seed}", output=output)
        )
    for name in ("selection.jsonl", "allocation.csv", "allocation.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "selection.jsonl").read_bytes() != (
        tmp_path / "c" / "selection.jsonl"
    ).read_bytes()


def test_fractional_budget_is_a_share_of_the_pool_and_all_is_the_whole_pool(tmp_path):
    from labelbudget.data.synthetic import build_synthetic_suite

    cfg = config(tmp_path, "selector=random", "budget=0.25")
    n_pool = len(build_synthetic_suite(pool_per_task=12).pool)
    assert len(run_select(cfg).ids) == round(0.25 * n_pool)
    assert len(run_select(config(tmp_path, "selector=random", "budget=all")).ids) == n_pool


@pytest.mark.parametrize(
    "budget, message",
    [
        ("0", "budget must be positive"),
        ("-5", "budget must be positive"),
        ("100000", "larger than the pool"),
        ("2.5", "an integer count, a fraction below 1 or 'all'"),
        ("most", "a number or 'all'"),
        ("20", "smaller than the base allocation"),
    ],
)
def test_bad_budget_is_refused_before_the_model_loads(tmp_path, no_model, budget, message):
    with pytest.raises(ConfigError, match=message):
        run_select(config(tmp_path, f"budget={budget}"))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "lines, row, field",
    [
        (
            ['{"prompt": "a", "task": "t", "id": "1"}', '{"prompt": "b", "task": "", "id": "2"}'],
            2,
            "task",
        ),
        (
            ['{"prompt": "a", "task": "t", "id": "1"}', '{"prompt": "  ", "task": "t", "id": "2"}'],
            2,
            "prompt",
        ),
        (
            ['{"prompt": "a", "task": "t", "id": "1"}', '{"prompt": "b", "task": "t", "id": "1"}'],
            2,
            "id",
        ),
        (
            [
                '{"prompt": "a", "task": "t", "id": "1"}',
                '{"prompt": "b", "task": "t", "id": "2"}',
                '{"prompt": "c",',
            ],
            3,
            None,
        ),
        (['{"prompt": "a", "id": "1"}'], 1, "task"),
    ],
)
def test_bad_pool_file_is_refused_before_the_model_loads(tmp_path, no_model, lines, row, field):
    path = write_lines(tmp_path / "pool.jsonl", lines)
    cfg = config(
        tmp_path,
        "dataset=jsonl",
        f"dataset.path={path}",
        "dataset.fields.id=id",
        "dataset.fields.response=null",
        "selector=random",
        "budget=1",
    )
    with pytest.raises(DataError) as error:
        run_select(cfg)
    assert error.value.source.endswith("pool.jsonl")
    assert error.value.row == row
    assert error.value.field == field


def test_non_finite_cached_score_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    run_select(config(tmp_path, "budget=150"))
    cached = next((tmp_path / "cache" / "scores").glob("*/scores.safetensors")).with_suffix("")
    from dataclasses import replace

    from labelbudget.scoring.scores import Scores

    scores = Scores.load(cached)
    broken = scores.seq_logprob.copy()
    broken[7] = np.inf
    replace(scores, seq_logprob=broken).save(
        cached
    )  # as a faulty scorer would write it: checksum and all
    monkeypatch.setattr(
        labelbudget.models.tiny, "build_tiny_llama", lambda **_: pytest.fail("model loaded")
    )
    with pytest.raises(DataError, match=r"row 8, field 'seq_logprob'"):
        run_select(config(tmp_path, "budget=150", output="again"))


# ---------- the real entry point, as a user runs it ----------


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_multirun_over_seeds_writes_one_selection_per_seed(tmp_path):
    result = run_cli(
        tmp_path,
        "select.py",
        "model=tiny_llama",
        "dataset.pool_per_task=12",
        "budget=150",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "-m",
        "seed=0,1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted((tmp_path / "sweep").glob("*/selection.jsonl"))
    assert [f.parent.name for f in files] == ["0", "1"]
    assert files[0].read_bytes() != files[1].read_bytes()
    assert len(list((tmp_path / "cache" / "scores").iterdir())) == 1  # scored once for both seeds


def test_unknown_key_and_unknown_option_fail_with_hydras_message(tmp_path):
    unknown_key = run_cli(tmp_path, "select.py", "nonsense=1")
    assert unknown_key.returncode != 0 and "Could not override 'nonsense'" in unknown_key.stderr
    unknown_option = run_cli(tmp_path, "select.py", "selector=nope")
    assert (
        unknown_option.returncode != 0 and "Could not find 'selector/nope'" in unknown_option.stderr
    )


def test_bad_input_ends_with_one_clear_line(tmp_path):
    result = run_cli(tmp_path, "select.py", "model=tiny_llama", "budget=0")
    assert result.returncode == 2
    assert "error: budget must be positive, got 0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "entry",
    [
        ["select.py", "dataset=jsonl", "dataset.path={pool}"],
        ["train.py", "dataset=jsonl", "dataset.path={pool}"],
        ["estimate.py", "mode=coslow", "dataset=jsonl", "dataset.path={pool}"],
        ["evaluate.py", "adapter={tmp}/no_such_adapter"],
        ["-m", "labelbudget.report", "{tmp}"],
        ["annotate.py", "action=push", "selection={tmp}/no_such_run"],
    ],
    ids=lambda entry: entry[1] if entry[0] == "-m" else entry[0],
)
def test_every_entry_point_ends_bad_input_in_one_line_and_exit_code_2(entry, tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"id": "a", "task": "t", "prompt": "cut \\ud800", "response": "r"}\n')
    args = [a.format(pool=pool, tmp=tmp_path) for a in entry]
    modelled = entry[0] in ("select.py", "train.py", "estimate.py", "evaluate.py")
    result = run_cli(tmp_path, *args, *(["model=tiny_llama"] if modelled else []))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(tmp_path) in last


def test_select_py_does_not_shadow_the_standard_library():
    # from the repo root, `import select` finds select.py first; subprocess needs the real one
    for code in (
        "import subprocess; subprocess.run(['true'], check=True)",
        "import select; select.select([], [], [], 0)",
    ):
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
    assert (
        subprocess.run(
            [sys.executable, "select.py", "--help"], cwd=REPO, capture_output=True, text=True
        ).returncode
        == 0
    )


# what each experiment file says it sets (its header comment), checked where the config has the key
EXPERIMENT_CLAIMS = {
    "quickstart": {
        "budget": 150,
        "dataset.pool_per_task": 12,
        "dataset.test_per_task": 10,
        "finetune.epochs": 3,
        "finetune.learning_rate": 3e-4,
        "finetune.batch_size": 8,
    },
    "learning_curve": {
        "selector._target_": "labelbudget.selection.random_sampling.RandomSelector",
        "dataset.pool_sizes": "equal",
        "dataset.pool_per_task": 1000,
        "dataset.test_per_task": 50,
        "finetune.learning_rate": 3e-4,
    },
    "paper_dolly": {
        "budget": 3000,
        "dataset.name": "databricks/databricks-dolly-15k",
        "model.name": "llama2_7b",
        "trainer.accelerator": "gpu",
        "finetune.epochs": 3,
        "finetune.learning_rate": 1e-4,
        "finetune.batch_size": 4,
        "finetune.accumulate_grad_batches": 8,
        "finetune.gradient_checkpointing": True,
    },
    "paper_flan": {
        "budget": 30000,
        "dataset.preset": "flan",
        "model.name": "llama2_7b",
        "trainer.accelerator": "gpu",
        "finetune.epochs": 3,
        "finetune.learning_rate": 1e-4,
        "finetune.batch_size": 4,
        "finetune.accumulate_grad_batches": 8,
        "finetune.gradient_checkpointing": True,
    },
    "study_bbh": {
        "dataset._target_": "labelbudget.data.bbh.load_bbh",
        "dataset.test_fraction": 0.5,
        "eval.bbh.split": "heldout",
        "eval.bbh.cot": False,
        "finetune.epochs": 3,
        "finetune.learning_rate": 3e-4,
        "finetune.batch_size": 8,
    },
    "study_synthetic": {
        "dataset.pool_per_task": 40,
        "dataset.test_per_task": 20,
        "dataset.pool_sizes": "varied",
        "finetune.epochs": 3,
        "finetune.learning_rate": 3e-4,
        "finetune.batch_size": 8,
    },
    "study_allocation": {  # study_synthetic's pool and fine-tuning, every row alike
        "dataset.pool_per_task": 40,
        "dataset.test_per_task": 20,
        "dataset.pool_sizes": "varied",
        "dataset.composition_seed": None,
        "finetune.epochs": 3,
        "finetune.learning_rate": 3e-4,
        "finetune.batch_size": 8,
    },
}


def test_every_experiment_is_checked():
    assert set(EXPERIMENT_CLAIMS) == {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}


# experiments that choose a group an app does not have: select.py has no `eval`, evaluate.py
# no `selector` (nor a scoring pass or fine-tuning: it composes only what evaluation reads)
NOT_FOR = {"select": {"study_bbh"}, "evaluate": {"learning_curve"}, "train": set()}


@pytest.mark.parametrize(
    "config_name, experiment",
    [
        (name, experiment)
        for experiment in sorted(EXPERIMENT_CLAIMS)
        for name in ("select", "train", "evaluate")
        if experiment not in NOT_FOR[name]
    ],
)
def test_every_experiment_composes_resolves_and_sets_what_it_claims(config_name, experiment):
    from omegaconf import OmegaConf

    cfg = compose_config(config_name, f"experiment={experiment}", "paths.output_dir=out")
    resolved = OmegaConf.to_container(cfg, resolve=True)  # a bad interpolation fails here
    for key, value in EXPERIMENT_CLAIMS[experiment].items():
        if key.split(".")[0] in resolved:  # select.py and evaluate.py have no finetune
            assert OmegaConf.select(cfg, key) == value, key


def test_quickstart_experiment_runs(tmp_path):
    cfg = config(tmp_path, "experiment=quickstart")
    assert cfg.dataset.pool_per_task == 12 and cfg.budget == 150
    assert len(run_select(cfg).ids) == 150


def test_experiment_overrides_group_defaults_in_train_config():
    cfg = compose_config("train", "experiment=quickstart", "paths.output_dir=out")
    plain = compose_config("train", "paths.output_dir=out")
    from omegaconf import OmegaConf

    experiment = OmegaConf.load(REPO / "conf" / "experiment" / "quickstart.yaml")
    assert plain.finetune.learning_rate == 1.0e-4  # the paper's
    assert (
        cfg.finetune.learning_rate
        == experiment.finetune.learning_rate
        != plain.finetune.learning_rate
    )
    assert cfg.task_name == "train" and cfg.logger._target_.endswith("wandb_logger")


def test_select_multirun_over_selectors_reports_coverage_side_by_side(tmp_path):
    result = run_cli(
        tmp_path,
        "select.py",
        "model=tiny_llama",
        "dataset.pool_per_task=12",
        "budget=150",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "-m",
        "selector=random,activeit,weighted_task",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "labelbudget.report", str(tmp_path / "sweep")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    table = report.stdout.split("### selection/tasks_covered")[1].split("###")[0]
    assert "| weighted_task | 24.0000" in table  # every task covered by design
    assert "| activeit |" in table and "| random |" in table
    assert "### selection/allocation_entropy" in report.stdout
    activeit_covered = float(table.split("| activeit | ")[1].split(" ")[0])
    assert activeit_covered < 24  # whole tasks, lowest confidence first: fewer tasks


def test_small_things_csv_cells_are_not_formulas_a_fraction_is_said_and_same_embeddings_warn(
    tmp_path, caplog
):
    import io as text_io

    from labelbudget.io import csv_cell, csv_text
    from labelbudget.selection.kernels import Pairwise

    written = csv_text(["task", "n"], [["=SUM(A1:A9)", 3], ["+x", -2], ["plain", "-12.5"]])
    assert (
        written == "task,n\n'=SUM(A1:A9),3\n'+x,-2\nplain,-12.5\n"
    )  # numbers, and text that is one, stay
    assert [csv_cell(r["task"]) for r in csv.DictReader(text_io.StringIO(written))] == [
        "=SUM(A1:A9)",
        "+x",
        "plain",
    ]
    with caplog.at_level("INFO"):
        run_select(config(tmp_path, "selector=random", "budget=0.0001"))
    assert "budget 1 (0.0001 of the pool)" in caplog.text
    with caplog.at_level("WARNING"):
        Pairwise(np.ones((5, 3)), "rbf")
    assert "every one of the 5 embeddings is identical" in caplog.text


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path):
    env = {**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache")}
    command = [
        sys.executable,
        "select.py",
        "model=tiny_llama",
        "selector=random",
        "budget=5",
        f"paths.log_dir={tmp_path}",
    ]
    runs = [
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    assert [run.wait(timeout=300) for run in runs] == [0, 0], [
        run.stderr.read()[-2000:] for run in runs
    ]
    folders = sorted((tmp_path / "select" / "runs").iterdir())
    assert len(folders) == 2 and all((f / "selection.jsonl").is_file() for f in folders)


def another_tokenizer():
    """The tiny model's tokenizer with one more token: not the tokenizer the loader loads."""
    from labelbudget.models.tiny import byte_level_tokenizer

    tokenizer = byte_level_tokenizer()
    tokenizer.add_tokens(["<another>"])
    return tokenizer


def test_a_tokenizer_loader_that_disagrees_with_the_model_is_refused(tmp_path):
    from labelbudget.errors import ConfigError
    from labelbudget.models.loading import LazyModel

    agreeing = LazyModel(config(tmp_path).model)
    assert agreeing.tokenizer is not None and agreeing().model is not None
    cfg = config(tmp_path, "model.tokenizer._target_=test_select_pipeline.another_tokenizer")
    disagreeing = LazyModel(cfg.model)
    assert disagreeing.tokenizer.get_vocab()["<another>"]  # read before the weights load
    with pytest.raises(ConfigError, match="model.tokenizer loads another tokenizer"):
        disagreeing()
