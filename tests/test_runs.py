"""The run folder: the one reader and writer of metrics.json, the adapter's place and the saved
config, checked against files written by hand in the format the studies committed."""

from __future__ import annotations

import hashlib
import json

import pytest

from labelbudget.errors import DataError
from labelbudget.runs import RunFolder, RunIdentity, RunRecord, changed_data, finished_runs

IDENTITY = {
    "dataset": "d",
    "selector": "random",
    "selector_options": {},
    "budget": 10,
    "seed": 0,
    "model": "m",
}


def test_a_record_written_reads_back_equal_in_the_committed_format(tmp_path):
    record = RunRecord(
        RunIdentity(**IDENTITY), {"tasks/macro": 0.5}, {"tasks": {"n": 3}}, {"seed": 0}
    )
    folder = RunFolder(tmp_path / "run")
    assert not folder.finished
    folder.write(record)
    assert folder.finished
    assert folder.read() == record
    # the keys the committed studies and older runs use, sorted, two-space indented
    assert json.loads(folder.metrics_file.read_text()) == {
        "run": IDENTITY,
        "metrics": {"tasks/macro": 0.5},
        "settings": {"tasks": {"n": 3}},
        "config": {"seed": 0},
    }
    assert folder.metrics_file.read_text().startswith('{\n  "config": {\n    "seed": 0')


def test_a_record_without_config_or_settings_reads_with_none_and_empty(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"run": IDENTITY, "metrics": {}}))
    record = RunFolder(tmp_path).read()
    assert (record.config, record.settings) == (None, {})
    assert "config" not in json.loads(record.to_json())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a labelbudget metrics file"),
        (json.dumps({"metrics": {}}), "field 'run'"),
        (json.dumps({"run": IDENTITY}), "field 'metrics'"),
        (json.dumps({"run": [1], "metrics": {}}), "field 'run'"),
        (
            json.dumps(
                {"run": {k: v for k, v in IDENTITY.items() if k != "budget"}, "metrics": {}}
            ),
            "field 'run.budget'",
        ),
        (
            json.dumps({"run": {**IDENTITY, "lr": 1}, "metrics": {}}),
            r"holds run keys no labelbudget run writes: \['lr'\]",
        ),
    ],
)
def test_a_file_that_is_not_a_record_is_named(tmp_path, text, message):
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(DataError, match=message) as error:
        RunFolder(tmp_path).read()
    assert str(tmp_path / "metrics.json") in str(error.value)


def test_the_adapter_and_saved_config_belong_to_the_run_folder(tmp_path):
    run = RunFolder(tmp_path)
    assert run.adapter == tmp_path / "adapter"
    assert RunFolder.of_adapter(run.adapter) == run
    assert run.saved_config() is None
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "dataset:\n  name: d\n  size: ${seed}\nseed: 3\n"
    )
    # unresolved, as Hydra saved it: the sweeper compares settings, not their resolved values
    assert run.saved_config() == {"dataset": {"name": "d", "size": "${seed}"}, "seed": 3}


def test_finished_runs_finds_every_run_below_in_path_order_and_refuses_an_empty_folder(tmp_path):
    with pytest.raises(DataError, match="contains no metrics.json"):
        finished_runs([tmp_path])
    for name in ("b", "a/1", "a/0"):
        RunFolder(tmp_path / name).write(RunRecord(RunIdentity(**{**IDENTITY, "seed": name}), {}))
    (tmp_path / "c").mkdir()  # an interrupted run: no metrics.json, not listed
    found = finished_runs([tmp_path])
    assert [folder.path.relative_to(tmp_path).as_posix() for folder, _ in found] == [
        "a/0",
        "a/1",
        "b",
    ]
    assert [record.identity.seed for _, record in found] == ["a/0", "a/1", "b"]


POOL_DATA = {"source": "pool.jsonl", "examples": 3, "sha256": "a" * 64}


def test_a_record_keeps_its_data_and_tells_a_changed_pool_from_an_unchanged_one(tmp_path):
    data = {"pool": POOL_DATA, "test": None}
    folder = RunFolder(tmp_path)
    folder.write(RunRecord(RunIdentity(**IDENTITY), {}, data=data))
    assert folder.read().data == data
    assert changed_data(data, {"pool": dict(POOL_DATA), "test": None}) == []
    edited = {"pool": {**POOL_DATA, "sha256": "b" * 64}, "test": None}
    assert changed_data(data, edited) == [
        "the pool pool.jsonl has changed (3 examples, sha256 aaaaaaaaaaaa there, "
        "3 examples, sha256 bbbbbbbbbbbb now)"
    ]
    with_test = {
        "pool": POOL_DATA,
        "test": {"source": "t.jsonl", "examples": 2, "sha256": "c" * 64},
    }
    assert changed_data(data, with_test) == [
        "the test t.jsonl has changed (none there, 2 examples, sha256 cccccccccccc now)"
    ]
    assert changed_data(None, edited) == []  # an older record: nothing to compare


def test_the_pool_record_hashes_the_hidden_responses_and_metadata_too():
    from labelbudget.data.schema import Example, Pool

    pool = Pool([Example("p0", "t", "q", response="A", metadata={"rule": "exact"})], "p.jsonl")
    answered_otherwise = Pool(
        [Example("p0", "t", "q", response="B", metadata={"rule": "exact"})], "p.jsonl"
    )
    ruled_otherwise = Pool(
        [Example("p0", "t", "q", response="A", metadata={"rule": "f1"})], "p.jsonl"
    )
    hashes = {p.record()["sha256"] for p in (pool, answered_otherwise, ruled_otherwise)}
    assert (
        len(hashes) == 3
    )  # what the model sees is the same; what a run's numbers depend on is not
    assert pool.content_hash() == answered_otherwise.content_hash()
    expected = hashlib.sha256(
        (json.dumps(pool[0].to_json(), ensure_ascii=False, sort_keys=True) + "\n").encode()
    ).hexdigest()
    assert pool.record() == {"source": "p.jsonl", "examples": 1, "sha256": expected}


def test_a_damaged_saved_config_is_named(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(DataError, match="is not a readable config") as error:
        RunFolder(tmp_path).saved_config()
    assert str(tmp_path / ".hydra" / "config.yaml") in str(error.value)
    (tmp_path / ".hydra" / "config.yaml").write_text("- a list\n")
    with pytest.raises(DataError, match="is not a config"):
        RunFolder(tmp_path).saved_config()


def files_below(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_only_a_marked_folder_of_labelbudget_files_is_cleared(tmp_path):
    from labelbudget.runs import JOB_MARK

    run = RunFolder(tmp_path / "job")
    (run.path / ".hydra").mkdir(parents=True)
    (run.path / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run.path / "selection.jsonl").write_text("{}\n")
    (run.path / "adapter").mkdir()
    (run.path / ".metrics.json.x1.tmp").write_text("half")
    # unmarked: no labelbudget sweep started here, whatever the names
    with pytest.raises(DataError, match=f"no metrics.json and no {JOB_MARK}"):
        run.clear()
    assert files_below(run.path) == [
        ".hydra",
        ".hydra/config.yaml",
        ".metrics.json.x1.tmp",
        "adapter",
        "selection.jsonl",
    ]
    (run.path / JOB_MARK).write_text("{}")
    (run.path / "my_annotations.jsonl").write_text("mine\n")
    (run.path / "notes").mkdir()
    with pytest.raises(DataError, match="also holds 'my_annotations.jsonl', 'notes'"):
        run.clear()
    assert len(files_below(run.path)) == 8  # nothing removed
    (run.path / "my_annotations.jsonl").unlink()
    (run.path / "notes").rmdir()
    run.clear()
    assert files_below(run.path) == []


def test_a_finished_run_folder_is_refused_for_a_new_run(tmp_path):
    from labelbudget.errors import ConfigError

    RunFolder(tmp_path / "fresh").refuse_finished()  # absent: fine
    RunFolder(tmp_path / "done").write(RunRecord(RunIdentity(**IDENTITY), {}))
    with pytest.raises(ConfigError, match="holds a finished run"):
        RunFolder(tmp_path / "done").refuse_finished()


def test_a_record_is_finished_only_with_its_evaluations_metrics(tmp_path):
    run = RunFolder(tmp_path)
    config = {"eval": {"tasks": {"max_new_tokens": 4}}}
    run.write(RunRecord(RunIdentity(**IDENTITY), {"tasks/macro": 0.5}, config=config))
    assert run.damage() is None
    # eval=bbh: `data_dir` and `max_examples_per_task` beside it are shortcuts, not evaluations
    shortcuts = {"eval": {"bbh": {"shots": 3}, "data_dir": "d", "max_examples_per_task": None}}
    run.write(RunRecord(RunIdentity(**IDENTITY), {"bbh/macro": 0.3}, config=shortcuts))
    assert run.damage() is None
    run.write(RunRecord(RunIdentity(**IDENTITY), {"train/examples": 3.0}, config=config))
    assert run.damage() == (
        f"{run.metrics_file}: holds no metrics of the evaluation(s) ['tasks'] it ran"
    )
    run.metrics_file.write_text('{"run": {}}')
    assert run.damage() == f"{run.metrics_file}, field 'metrics': is not a labelbudget metrics file"
    assert run.set_aside_damaged() == tmp_path / "metrics.json.damaged"
    run.metrics_file.write_text("{")
    assert run.set_aside_damaged() == tmp_path / "metrics.json.damaged-2"
    assert not run.finished and (tmp_path / "metrics.json.damaged").read_text() == '{"run": {}}'


def test_a_records_headlines_are_written_and_read_back_and_a_bad_list_is_named(tmp_path):
    record = RunRecord(RunIdentity(**IDENTITY), {"q/x": 1.0}, headlines=("q/x", "tasks/macro"))
    RunFolder(tmp_path).write(record)
    assert json.loads(RunFolder(tmp_path).metrics_file.read_text())["headlines"] == [
        "q/x",
        "tasks/macro",
    ]
    assert RunFolder(tmp_path).read() == record
    (tmp_path / "metrics.json").write_text(
        json.dumps({"run": IDENTITY, "metrics": {}, "headlines": "q/x"})
    )
    with pytest.raises(DataError, match="field 'headlines': must be a list of metric names"):
        RunFolder(tmp_path).read()


def test_a_record_older_than_selector_options_reads_with_none(tmp_path):
    older = {k: v for k, v in IDENTITY.items() if k != "selector_options"}
    (tmp_path / "metrics.json").write_text(json.dumps({"run": older, "metrics": {}}))
    assert RunFolder(tmp_path).read().identity == RunIdentity(**IDENTITY)
