"""The annotation step: responses for the selected prompts, simulated or imported.

Simulation reveals the pool's own hidden responses, only now that selection is final. Import
joins an annotator's JSONL file to the selection by id; every id missing, unknown or repeated is
reported at once, so nothing is dropped or doubled silently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from labelbudget.data.jsonl import read_records
from labelbudget.data.records import existing_path
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import DataError


def _listing(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _selected(pool: Pool, ids: list[str]) -> list[Example]:
    by_id = {e.id: e for e in pool}
    return [by_id[i] for i in ids]


def reveal_responses(pool: Pool, ids: list[str]) -> list[Example]:
    """Simulated annotation: the selected examples with the pool's own responses."""
    examples = _selected(pool, ids)
    missing = [e.id for e in examples if not (e.response or "").strip()]
    if missing:
        raise DataError(
            pool.source,
            f"simulated annotation needs the pool's responses, but {len(missing)} selected prompts have none "
            f"({_listing(missing)}); give real ones with annotations=path/to/responses.jsonl",
            field="response",
        )
    return examples


@dataclass(frozen=True)
class Annotations:
    """Responses read from an annotator's file, by id; `source` names the file for errors."""

    source: str
    responses: dict[str, str]


def read_annotations(path: str | Path, id_field: str = "id", response_field: str = "response") -> Annotations:
    """Read and check an annotator's JSONL file (one {id, response} object per line): every row
    well formed, no id twice. Runs before any model work; the join to the selection comes later."""
    file = existing_path(path, "annotations file", "set annotations to the JSONL file of {id, response} rows")
    source = str(file)
    responses: dict[str, str] = {}
    first_row: dict[str, int] = {}
    duplicates: list[str] = []
    for row, record in read_records(file):
        if not isinstance(record, dict):
            raise DataError(source, "must be a JSON object", row)
        for name in (id_field, response_field):
            value = record.get(name)
            if isinstance(value, int) and name == id_field:
                value = str(value)
            if not isinstance(value, str) or not value.strip():
                raise DataError(source, "is missing, empty or not a string", row, name)
        id_ = str(record[id_field])
        if id_ in responses:
            duplicates.append(f"{id_} (rows {first_row[id_]} and {row})")
        responses[id_] = record[response_field]
        first_row.setdefault(id_, row)
    if duplicates:
        raise DataError(source, f"{len(duplicates)} ids appear twice: {_listing(duplicates)}", field=id_field)
    return Annotations(source, responses)


def join_annotations(annotations: Annotations, pool: Pool, ids: list[str]) -> list[Example]:
    """The selected examples with the annotator's responses; every id missing from the file or
    not in the selection is listed in one error."""
    wanted = set(ids)
    problems = []
    unknown = [i for i in annotations.responses if i not in wanted]
    if unknown:
        problems.append(f"{len(unknown)} ids are not in the selection: {_listing(unknown)}")
    missing = [i for i in ids if i not in annotations.responses]
    if missing:
        problems.append(f"{len(missing)} selected ids have no response: {_listing(missing)}")
    if problems:
        raise DataError(annotations.source, "; ".join(problems), field="id")
    return [replace(e, response=annotations.responses[e.id]) for e in _selected(pool, ids)]
