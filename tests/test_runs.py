"""The run folder: the one reader and writer of metrics.json, the adapter's place and the saved
config, checked against files written by hand in the format the studies committed."""

from __future__ import annotations

import json

import pytest

from labelbudget.errors import DataError
from labelbudget.runs import RunFolder, RunRecord, finished_runs

IDENTITY = {
    "dataset": "d",
    "selector": "random",
    "selector_options": {},
    "budget": 10,
    "seed": 0,
    "model": "m",
}


def test_a_record_written_reads_back_equal_in_the_committed_format(tmp_path):
    record = RunRecord(IDENTITY, {"tasks/macro": 0.5}, {"tasks": {"n": 3}}, {"seed": 0})
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
        RunFolder(tmp_path / name).write(RunRecord({**IDENTITY, "seed": name}, {}))
    (tmp_path / "c").mkdir()  # an interrupted run: no metrics.json, not listed
    found = finished_runs([tmp_path])
    assert [folder.path.relative_to(tmp_path).as_posix() for folder, _ in found] == [
        "a/0",
        "a/1",
        "b",
    ]
    assert [record.identity["seed"] for _, record in found] == ["a/0", "a/1", "b"]
