"""The annotation step: simulated reveal and imported files, every bad file refused with a list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelbudget.data.annotation import join_annotations, read_annotations, reveal_responses
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import DataError

POOL = Pool(
    [Example(id=f"p{i}", task="t", prompt=f"q{i}", response=f"a{i}") for i in range(6)],
    "pool.jsonl",
)


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_reveal_returns_the_pools_responses_in_selection_order():
    assert [(e.id, e.response) for e in reveal_responses(POOL, ["p3", "p0"])] == [
        ("p3", "a3"),
        ("p0", "a0"),
    ]


def test_reveal_refuses_prompts_without_responses():
    pool = Pool(
        [
            Example(id="x", task="t", prompt="q"),
            Example(id="y", task="t", prompt="q", response="r"),
        ],
        "unlabelled.jsonl",
    )
    with pytest.raises(DataError, match=r"1 selected prompts have none \('x'\).*annotations="):
        reveal_responses(pool, ["x", "y"])


def test_import_joins_by_id_whatever_the_file_order(tmp_path):
    path = write(
        tmp_path / "ann.jsonl", [{"id": "p2", "response": "B"}, {"id": "p1", "response": "A"}]
    )
    examples = import_annotations(path, POOL, ["p1", "p2"])
    assert [(e.id, e.prompt, e.response) for e in examples] == [
        ("p1", "q1", "A"),
        ("p2", "q2", "B"),
    ]


def import_annotations(path, pool, ids):
    return join_annotations(read_annotations(path, pool), pool, ids)


def test_repeated_ids_are_refused_when_the_file_is_read(tmp_path):
    path = write(
        tmp_path / "ann.jsonl",
        [
            {"id": "p1", "response": "A"},
            {"id": "p1", "response": "A2"},
            {"id": "p2", "response": "B"},
        ],
    )
    with pytest.raises(DataError, match=r"1 ids appear twice: 'p1 \(rows 1 and 2\)'"):
        read_annotations(path, POOL)


def test_join_lists_every_missing_and_unknown_id(tmp_path):
    path = write(
        tmp_path / "ann.jsonl", [{"id": "p1", "response": "A"}, {"id": "p5", "response": "?"}]
    )
    with pytest.raises(DataError) as error:
        import_annotations(path, POOL, ["p1", "p2", "p3"])
    message = str(error.value)
    assert "1 ids are not in the selection: 'p5'" in message
    assert "2 selected ids have no response: 'p2', 'p3'" in message


@pytest.mark.parametrize(
    "row, field",
    [
        ({"id": "p1"}, "response"),
        ({"id": "p1", "response": " "}, "response"),
        ({"response": "A"}, "id"),
    ],
)
def test_import_names_row_and_field_of_a_bad_row(tmp_path, row, field):
    path = write(tmp_path / "ann.jsonl", [{"id": "p0", "response": "ok"}, row])
    with pytest.raises(DataError) as error:
        import_annotations(path, POOL, ["p0", "p1"])
    assert (error.value.row, error.value.field) == (2, field)


def test_import_names_malformed_json_line(tmp_path):
    path = write(tmp_path / "ann.jsonl", ['{"id": "p0", "response": "ok"}', '{"id": '])
    with pytest.raises(DataError, match=r"ann.jsonl, row 2: line is not valid JSON"):
        import_annotations(path, POOL, ["p0"])


def test_a_row_that_shows_another_prompt_than_the_pools_is_refused(tmp_path):
    # p1's row carries the fingerprint of what the annotator saw then: prompt "old question"
    shown = Example(id="p1", task="t", prompt="old question").fingerprint
    rows = [
        {"id": "p0", "response": "A", "fingerprint": POOL[0].fingerprint},
        {"id": "p1", "response": "B", "fingerprint": shown},
        {"id": "p2", "response": "C", "prompt": "q2 edited"},
        {"id": "p3", "response": "D", "prompt": "q3"},
    ]
    with pytest.raises(
        DataError,
        match=r"2 annotated ids now name a different prompt in the pool pool.jsonl: 'p1', 'p2'",
    ):
        read_annotations(write(tmp_path / "ann.jsonl", rows), POOL)


def test_ids_unknown_to_the_pool_and_an_empty_file_are_refused(tmp_path):
    with pytest.raises(
        DataError, match=r"1 annotated ids are not in the pool pool.jsonl .*: 'gone'"
    ):
        read_annotations(
            write(
                tmp_path / "ann.jsonl",
                [{"id": "p0", "response": "A"}, {"id": "gone", "response": "B"}],
            ),
            POOL,
        )
    with pytest.raises(DataError, match="holds no annotations"):
        read_annotations(write(tmp_path / "empty.jsonl", []), POOL)
    with pytest.raises(DataError, match="is a directory"):
        read_annotations(tmp_path, POOL)


def test_rows_without_a_fingerprint_are_counted_in_a_warning_or_refused(tmp_path, caplog):
    fingerprinted = {"id": "p0", "response": "A", "fingerprint": POOL[0].fingerprint}
    with_prompt = {"id": "p1", "response": "B", "prompt": "q1"}
    minimal = [{"id": f"p{i}", "response": "C"} for i in (2, 3)]
    path = write(tmp_path / "ann.jsonl", [fingerprinted, with_prompt, *minimal])
    with caplog.at_level("WARNING"):
        annotations = read_annotations(path, POOL)
    assert sorted(annotations.responses) == ["p0", "p1", "p2", "p3"]  # still accepted
    assert f"{path}: 3 of 4 rows carry no fingerprint, 2 of them no prompt either" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_annotations(write(tmp_path / "full.jsonl", [fingerprinted]), POOL)
    assert "fingerprint" not in caplog.text
    with pytest.raises(
        DataError,
        match=r"field 'fingerprint': 3 of 4 rows carry no fingerprint .*rows 2, 3, 4",
    ):
        read_annotations(path, POOL, require_fingerprint=True)


def test_annotations_is_a_file_or_a_node_and_both_forms_are_one_run(tmp_path):
    from conftest import compose_config
    from labelbudget.configs import determining_settings
    from labelbudget.stages.select import imported_annotations

    rows = [{"id": "p0", "response": "A"}]
    path = write(tmp_path / "ann.jsonl", rows)
    short = compose_config("train", f"annotations={path}")
    long = compose_config(
        "train", f"annotations.path={path}", "annotations.require_fingerprint=true"
    )
    assert imported_annotations(short.annotations, POOL).responses == {"p0": "A"}
    with pytest.raises(DataError, match="carry no fingerprint"):
        imported_annotations(long.annotations, POOL)
    assert imported_annotations(compose_config("train").annotations, POOL) is None
    # the shorthand, the node, and a run recorded before the node existed: the same settings
    assert determining_settings({"annotations": str(path)}) == determining_settings(
        {"annotations": {"path": str(path), "require_fingerprint": True}}
    )
    assert determining_settings({"annotations": None}) == determining_settings(
        {"annotations": {"path": None, "require_fingerprint": False}}
    )
