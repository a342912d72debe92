"""Task-labelled pools from the user's own files: JSON Lines (one object per line) or a `.json` list of objects."""

from __future__ import annotations

import json
import re
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


# deeper than this, a row is refused: no pool, annotation or metadata field needs it, and the
# recursive code that copies and hashes rows would otherwise fail far from the row
MAX_DEPTH = 64
# a lone UTF-16 surrogate ("\ud800"): JSON allows it, but it is no character and cannot be
# written as UTF-8, so hashing, tokenizing and writing the row would all fail on it
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based row, parsed value) pairs: positions in a `.json` list, line numbers in JSON Lines.
    Every row is checked (`check_row`): no lone surrogate in its text, nesting within MAX_DEPTH."""
    if path.suffix == ".json":
        records = read_json(path)
        if not isinstance(records, list):
            raise DataError(
                str(path), "must hold a list of objects (for one object per line, name it .jsonl)"
            )
        for row, record in enumerate(records, start=1):
            yield row, check_row(record, str(path), row)
        return
    # split on "\n" only: JSON strings may legally hold raw U+2028, which str.splitlines would split on.
    for line_number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except DuplicateKey as err:
            raise DataError(str(path), _TWICE, line_number, str(err)) from None
        except json.JSONDecodeError as err:
            raise DataError(
                str(path), f"line is not valid JSON: {err.msg} (column {err.colno})", line_number
            ) from None
        except RecursionError:
            raise DataError(str(path), _TOO_DEEP, line_number) from None
        yield line_number, check_row(record, str(path), line_number)


class DuplicateKey(ValueError):
    """A JSON object that names one field twice: json.loads would keep the last silently."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        raise DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return record


_TWICE = "is named twice in one object (JSON would keep the last silently)"
_TOO_DEEP = f"nests arrays or objects more than {MAX_DEPTH} levels deep"


def check_row(record: Any, source: str, row: int) -> Any:
    """The row itself, once no string in it (key or value) holds a lone surrogate and it nests at
    most MAX_DEPTH arrays and objects, itself included; else a DataError naming the row and its
    top-level field."""
    stack = [(record, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            raise DataError(source, _TOO_DEEP, row, field)
        if isinstance(value, str):
            found = LONE_SURROGATE.search(value)
            if found:
                raise DataError(
                    source,
                    f"holds a lone surrogate {found.group()!r} at character {found.start()}, "
                    "which is no character: fix the exporter, or replace it (U+FFFD)",
                    row,
                    field,
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                name = key if field is None else field
                stack += [(key, depth, name), (item, depth + 1, name)]
        elif isinstance(value, list):
            stack += [(item, depth + 1, field) for item in value]
    return record


def read_json(path: Path) -> Any:
    """Parse a whole JSON file; a syntax error names the file, line and column."""
    try:
        return json.loads(_read_text(path), object_pairs_hook=_unique_keys)
    except DuplicateKey as err:
        raise DataError(str(path), f"an object: {_TWICE}", field=str(err)) from None
    except RecursionError:
        raise DataError(str(path), _TOO_DEEP) from None
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
