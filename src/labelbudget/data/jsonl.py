"""Task-labelled pools from the user's own files: JSON Lines (one object per line) or a `.json` list of objects."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from labelbudget.data.records import FieldMap, example_from_record, existing_path, field_map
from labelbudget.data.schema import Pool, TaskData
from labelbudget.errors import DataError


def load_jsonl_dataset(
    path: str | Path,
    fields: Mapping[str, Any] | None = None,
    name: str | None = None,
    test_path: str | Path | None = None,
    preset: str | None = None,
) -> TaskData:
    """Load a pool (and optionally a held-out test file with the same fields) from local files.

    `fields` maps source field names onto the example (see `FieldMap`), overriding `preset`
    ("dolly", "flan") key by key. A `.json` file holds a list of objects; any other file is read
    as JSON Lines, where blank lines are skipped and rows are line numbers, so every error points
    at the line to fix. Ids come from the rows' `id` field or, without one, from each row's
    content (`example_from_record`): never from its position.
    """
    mapping = field_map(fields, preset)
    pool_file = existing_path(path, "dataset file", "set dataset.path to your JSONL file")
    test = None
    if test_path is not None:
        test = _load_pool(
            existing_path(test_path, "test file", "set dataset.test_path, or null for none"),
            mapping,
        )
    return TaskData(name=name or pool_file.stem, pool=_load_pool(pool_file, mapping), test=test)


def _load_pool(path: Path, fields: FieldMap) -> Pool:
    source = str(path)
    if not path.is_file():
        raise DataError(
            source, "is a directory; dataset.path (and dataset.test_path) take a JSONL or JSON file"
        )
    examples = [
        example_from_record(record, fields, source, row) for row, record in read_records(path)
    ]
    return Pool(examples, source)


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based row, parsed value) pairs: positions in a `.json` list, line numbers in JSON Lines."""
    if path.suffix == ".json":
        records = read_json(path)
        if not isinstance(records, list):
            raise DataError(
                str(path), "must hold a list of objects (for one object per line, name it .jsonl)"
            )
        yield from enumerate(records, start=1)
        return
    # split on "\n" only: JSON strings may legally hold raw U+2028, which str.splitlines would split on.
    for line_number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield line_number, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                str(path), f"line is not valid JSON: {err.msg} (column {err.colno})", line_number
            ) from None


def read_json(path: Path) -> Any:
    """Parse a whole JSON file; a syntax error names the file, line and column."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(
            str(path), f"is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None


def _read_text(path: Path) -> str:
    """The file's text; "utf-8-sig" so a byte-order mark left by some editors is not a parse error."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            str(path), f"is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except OSError as err:  # unreadable (permissions, a folder, a broken mount): say which file
        raise DataError(str(path), f"cannot be read ({err.strerror or err})") from None
