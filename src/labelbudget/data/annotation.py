"""The annotation step: responses for the selected prompts, simulated or imported.

Simulation reveals the pool's own hidden responses, only now that selection is final. Import
joins an annotator's JSONL file to the selection by id; every id missing, unknown or repeated is
reported at once, so nothing is dropped or doubled silently. An imported row that carries what
the annotator saw (selection.jsonl's `fingerprint`, or the `prompt` and `context` themselves)
must still match the pool: a response is never joined to a prompt that has since changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from labelbudget.data.jsonl import read_records
from labelbudget.data.records import existing_path
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import DataError, listing

log = logging.getLogger(__name__)


def examples_of(pool: Pool, ids: list[str]) -> list[Example]:
    """The pool's examples `ids`, in that order."""
    by_id = {e.id: e for e in pool}
    return [by_id[i] for i in ids]


def reveal_responses(pool: Pool, ids: list[str]) -> list[Example]:
    """Simulated annotation: the selected examples with the pool's own responses."""
    examples = examples_of(pool, ids)
    check_responses(Pool(examples, pool.source), "selected ")
    return examples


def check_responses(pool: Pool, which: str = "") -> None:
    """Simulated annotation needs every prompt it may reveal to have a response; checked on the
    whole pool before any model loads, since any prompt may be selected."""
    missing = pool.unanswered_ids()
    if missing:
        raise DataError(
            pool.source,
            f"simulated annotation needs the pool's responses, but {len(missing)} {which}prompts have none "
            f"({listing(missing)}); give real ones with annotations=path/to/responses.jsonl",
            field="response",
        )


@dataclass(frozen=True)
class Annotations:
    """Responses read from an annotator's file, by id; `source` names the file for errors."""

    source: str
    responses: dict[str, str]


def read_annotations(
    path: str | Path,
    pool: Pool,
    require_fingerprint: bool = False,
    id_field: str = "id",
    response_field: str = "response",
) -> Annotations:
    """Read and check an annotator's JSONL file (one {id, response} object per line) against the
    pool: every row well formed, no id twice, every id in the pool and naming the prompt it was
    annotated for. A row without selection.jsonl's `fingerprint` cannot be checked as well
    (without `prompt` either, not at all): such rows are counted in a warning, or refused with
    `require_fingerprint`. Runs before any model work; the join to the selection comes later."""
    file = existing_path(
        path, "annotations file", "set annotations to the JSONL file of {id, response} rows"
    )
    if not file.is_file():
        raise DataError(
            str(file), "is a directory; annotations= takes the JSONL file of {id, response} rows"
        )
    source = str(file)
    responses: dict[str, str] = {}
    first_row: dict[str, int] = {}
    duplicates: list[str] = []
    records: dict[str, dict] = {}
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
        records[id_] = record
        first_row.setdefault(id_, row)
    if duplicates:
        raise DataError(
            source, f"{len(duplicates)} ids appear twice: {listing(duplicates)}", field=id_field
        )
    if not responses:
        raise DataError(source, "holds no annotations")
    _check_fingerprints(source, records, first_row, require_fingerprint)
    _check_against_pool(source, records, pool)
    return Annotations(source, responses)


def _check_fingerprints(
    source: str, records: dict[str, dict], rows: dict[str, int], required: bool
) -> None:
    """Rows that do not carry the fingerprint of the prompt they were annotated for: refused
    when required, else counted in a warning (those without the prompt too are joined by id
    alone, so an edit of their prompt since goes unseen)."""
    bare = [i for i, record in records.items() if record.get("fingerprint") is None]
    if not bare:
        return
    by_id_alone = [i for i in bare if records[i].get("prompt") is None]
    if required:
        raise DataError(
            source,
            f"{len(bare)} of {len(records)} rows carry no fingerprint (annotations.require_fingerprint "
            f"is true): rows {listing([rows[i] for i in bare])}; keep selection.jsonl's "
            "`fingerprint` field in each row",
            field="fingerprint",
        )
    log.warning(
        "%s: %d of %d rows carry no fingerprint, %d of them no prompt either: those are joined "
        "by id alone, so a prompt edited since they were annotated goes unseen; keep "
        "selection.jsonl's `fingerprint` in each row, or set annotations.require_fingerprint=true "
        "to refuse such rows",
        source,
        len(bare),
        len(records),
        len(by_id_alone),
    )


def _check_against_pool(source: str, records: dict[str, dict], pool: Pool) -> None:
    """Every annotated id is in the pool and, where the row says what was shown, shows it still."""
    by_id = {e.id: e for e in pool}
    unknown = [i for i in records if i not in by_id]
    changed = [i for i, record in records.items() if i in by_id and not _shows(record, by_id[i])]
    problems = []
    if unknown:
        problems.append(
            f"{len(unknown)} annotated ids are not in the pool {pool.source} (removed, or their prompt "
            f"changed, which changes a content id): {listing(unknown)}"
        )
    if changed:
        problems.append(
            f"{len(changed)} annotated ids now name a different prompt in the pool {pool.source}: "
            f"{listing(changed)}; annotate the new prompts, or restore the pool file"
        )
    if problems:
        raise DataError(source, "; ".join(problems), field="id")


def _shows(record: dict, example: Example) -> bool:
    """Whether the annotated row matches the pool's example, judged by what the row carries."""
    if record.get("fingerprint") is not None:
        return record["fingerprint"] == example.fingerprint
    if record.get("prompt") is not None:
        return (record["prompt"], record.get("context") or None) == (
            example.prompt,
            example.context,
        )
    return True


def join_annotations(annotations: Annotations, pool: Pool, ids: list[str]) -> list[Example]:
    """The selected examples with the annotator's responses; every id missing from the file or
    not in the selection is listed in one error."""
    wanted = set(ids)
    problems = []
    unknown = [i for i in annotations.responses if i not in wanted]
    if unknown:
        problems.append(f"{len(unknown)} ids are not in the selection: {listing(unknown)}")
    missing = [i for i in ids if i not in annotations.responses]
    if missing:
        problems.append(f"{len(missing)} selected ids have no response: {listing(missing)}")
    if problems:
        raise DataError(annotations.source, "; ".join(problems), field="id")
    return [replace(e, response=annotations.responses[e.id]) for e in examples_of(pool, ids)]


def merged(files: list[Annotations]) -> Annotations:
    """Several annotators' files (the rounds of a two-round selector) as one; an id answered in
    two files is refused, naming the files and the ids."""
    responses: dict[str, str] = {}
    twice: dict[str, list[str]] = {}
    for file in files:
        for id_ in file.responses.keys() & responses.keys():
            twice.setdefault(id_, []).append(file.source)
        responses.update(file.responses)
    if twice:
        raise DataError(
            " + ".join(f.source for f in files),
            f"{len(twice)} ids are answered in more than one of these files: {listing(sorted(twice))}",
            field="id",
        )
    return Annotations(" + ".join(f.source for f in files), responses)


def labelled_subset(
    annotations: Annotations, pool: Pool, ids: list[str], what: str
) -> list[Example]:
    """The examples `ids` with the annotator's responses, the file holding others too (the
    later rounds'); an id it does not answer means it was annotated for another selection."""
    missing = [i for i in ids if i not in annotations.responses]
    if missing:
        raise DataError(
            annotations.source,
            f"answers {len(ids) - len(missing)} of the {len(ids)} prompts of {what}; missing "
            f"{listing(missing)}: the file was annotated for another selection (another pool, "
            "seed, selector or scoring setting); rerun with the settings it was written for",
            field="id",
        )
    return [replace(e, response=annotations.responses[e.id]) for e in examples_of(pool, ids)]


def annotated(pool: Pool, ids: list[str], annotations: Annotations | None) -> list[Example]:
    """The selected examples with responses: the annotator's when a file was given, else the
    pool's own (simulation)."""
    return (
        join_annotations(annotations, pool, ids)
        if annotations is not None
        else reveal_responses(pool, ids)
    )
