"""Fuzz the data layer: generated pool and annotation files through the real loaders.

Rows of arbitrary unicode (lone surrogates and control characters included), huge and deeply
nested values, wrong types and duplicate keys. Every file either loads, with every field exactly
as written (a task name trimmed, the one documented change), and hashes and serialises, or fails
with a DataError naming the file. Nothing else: no other exception, no silent change.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelbudget.data.annotation import read_annotations
from labelbudget.data.jsonl import load_jsonl_dataset
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import DataError

# every code point, and often the ones that break text handling: lone surrogates (which JSON
# allows), NUL and other controls, line and paragraph separators, a byte-order mark, spaces
SPECIAL = ["\ud800", "\udfff", "\x00", "\x1f", "\r", "\u2028", "\u2029", "\ufeff", " ", "\n"]
# (joined by hand: st.text and st.characters leave lone surrogates out whatever they are told)
CHARACTER = st.characters(codec=None) | st.sampled_from(SPECIAL)
TEXT = st.lists(CHARACTER, max_size=30).map("".join)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
FIELD_VALUES = TEXT | SCALARS | VALUES


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@st.composite
def row_lines(draw, fields: tuple[str, ...], ids: tuple[str, ...] = ()) -> str:
    """One JSONL line: an object with every one of `fields` as text, or some of them (usually
    text) and extra keys, or another JSON value, or a deeply nested value, or a key twice."""
    kind = draw(st.sampled_from(["text", "text", "object", "value", "deep", "twice"]))
    if kind == "value":
        return json.dumps(draw(VALUES))
    if kind == "text":  # every field text: the rows that load, odd characters and all
        record = {name: draw(TEXT.filter(str.strip)) for name in fields}
        if ids:  # ids a file may really hold (an annotation names a pool prompt), or not
            record["id"] = draw(st.sampled_from(ids) | TEXT.filter(str.strip))
            if draw(st.booleans()):  # the minimal {id, response} form, which loads
                record = {"id": record["id"], "response": record["response"]}
    else:  # each field usually present, usually text
        record = {
            name: draw(st.one_of(TEXT, TEXT, FIELD_VALUES))
            for name in fields
            if draw(st.integers(0, 19)) > 0
        }
    if kind != "text":
        record.update(draw(st.dictionaries(TEXT, VALUES, max_size=2)))
    line = json.dumps(record)  # ensure_ascii: a lone surrogate is written as \udXXX, valid JSON
    if kind == "deep":
        return (
            line[:-1]
            + (", " if record else "")
            + f'"deep": {nested(draw(st.sampled_from([63, 64, 2000])))}}}'
        )
    if kind == "twice" and record:
        key = draw(st.sampled_from(sorted(record)))
        return line[:-1] + f", {json.dumps(key)}: {json.dumps(draw(TEXT))}}}"
    return line


def write(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def same_as_written(example: Example, record: dict) -> bool:
    """The example holds the row's fields unchanged (an int id becomes a string, a task name is
    trimmed, an empty context is none: the documented changes)."""
    return (
        example.prompt == record["prompt"]
        and example.task == record["task"].strip()
        and example.context == (record["context"] or None)
        and example.response == record["response"]
        and (record.get("id") is None or example.id == str(record["id"]))
    )


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    lines=st.lists(
        row_lines(("id", "task", "prompt", "context", "response")), min_size=1, max_size=4
    )
)
def test_a_generated_pool_loads_exactly_or_fails_naming_the_file(lines, tmp_path):
    path = write(tmp_path, "pool.jsonl", lines)
    try:
        # the shipped dataset=jsonl mapping, with a context field
        pool = load_jsonl_dataset(path, fields={"context": "context", "response": "response"}).pool
    except DataError as error:
        assert error.source == str(path)
        return
    records = [json.loads(line) for line in lines if line.strip()]
    assert len(pool) == len(records)
    assert all(same_as_written(e, r) for e, r in zip(pool, records))
    assert len(pool.content_hash()) == 64 and json.dumps(pool.record())


POOL_ROWS = [
    {"id": f"p{i}", "task": "t", "prompt": f"Say {i}.", "response": str(i)} for i in range(3)
]


@FUZZ
@given(
    lines=st.lists(
        row_lines(("id", "response", "fingerprint", "prompt"), ("p0", "p1", "p2")),
        min_size=1,
        max_size=4,
    )
)
def test_generated_annotations_are_read_exactly_or_fail_naming_the_file(lines, tmp_path):
    pool_file = write(tmp_path, "pool.jsonl", [json.dumps(r) for r in POOL_ROWS])
    pool: Pool = load_jsonl_dataset(pool_file).pool
    path = write(tmp_path, "answers.jsonl", lines)
    try:
        annotations = read_annotations(path, pool)
    except DataError as error:
        assert error.source == str(path)
        return
    records = [json.loads(line) for line in lines if line.strip()]
    assert annotations.responses == {str(r["id"]): r["response"] for r in records}
