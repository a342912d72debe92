"""Turning one row of a user's data (a dict of named fields) into an `Example`.

JSONL files, Hugging Face hub datasets and BBH files all arrive as dict rows with their own
field names; a `FieldMap` says which field plays which role, so that mapping and validation
(and the error a user sees for a bad row) live here once for every loader. The two small helpers
at the end are the other things every file loader shares: finding its input, reading name lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelbudget.data.schema import Example, content_fingerprint
from labelbudget.errors import ConfigError, DataError, MissingResourceError


@dataclass(frozen=True)
class FieldMap:
    """Names of the source fields that hold each part of an `Example`.

    `id=None` takes the row's own `id` field where it has one, else an id made from the row's
    content (see `example_from_record`); `context=None` and
    `response=None` mean the data has none. `task_constant`, when set, labels every row with
    that task (a single-task file) and the `task` field is then not read. `metadata` lists
    extra fields copied verbatim into `Example.metadata`.
    """

    prompt: str = "prompt"
    task: str | None = "task"
    id: str | None = None
    context: str | None = None
    response: str | None = None
    task_constant: str | None = None
    metadata: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task is None and self.task_constant is None:
            raise ConfigError(
                "dataset.fields needs 'task' (the field naming each row's task) or 'task_constant'"
            )


DOLLY_FIELDS = FieldMap(
    prompt="instruction", context="context", response="response", task="category"
)


def flan_fields(task: str = "task_name") -> FieldMap:
    """FLAN-style rows (`inputs` → `targets`); the task field is `task_name` in FLAN dumps and
    `dataset` in Tulu-style mixtures."""
    return FieldMap(prompt="inputs", response="targets", task=task)


PRESETS: dict[str, FieldMap] = {"dolly": DOLLY_FIELDS, "flan": flan_fields()}

# How to fix a config whose mapped field a row lacks, by the role the field plays.
_MISSING_FIELD_FIXES = {
    "id": "set dataset.fields.id to the field that holds the example id, or null to number the rows",
    "task": "set dataset.fields.task to the field that holds the task name, "
    "or dataset.fields.task_constant to give every row one task",
    "prompt": "set dataset.fields.prompt to the field that holds the prompt",
    "context": "set dataset.fields.context to the field that holds the context, or null for none",
    "response": "set dataset.fields.response to the field that holds the reference response, or null for none",
    "metadata": "remove it from dataset.fields.metadata",
}


def field_map(fields: Mapping[str, Any] | None = None, preset: str | None = None) -> FieldMap:
    """Build the mapping a config asks for: the preset's (or the defaults') with `fields`
    overriding it key by key. Accepts plain dicts and Hydra's DictConfig alike."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(
            f"unknown dataset.preset {preset!r}; choose one of {sorted(PRESETS)} or leave it null"
        )
    base = PRESETS[preset] if preset is not None else FieldMap()
    overrides = dict(fields or {})
    valid = {f.name for f in dataclasses.fields(FieldMap)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(
            f"unknown dataset.fields key(s) {unknown}; valid keys are {sorted(valid)}"
        )
    if "metadata" in overrides:
        overrides["metadata"] = tuple(overrides["metadata"] or ())
    return dataclasses.replace(base, **overrides)


def example_from_record(
    record: Any,
    fields: FieldMap,
    source: str,
    row: int,
    id_prefix: str | None = None,
    suggest_config: bool = True,
) -> Example:
    """Map one row to an `Example`, raising `DataError` (source, 1-based row, field) for a
    mapped field that is missing, not a string, or empty where it must not be.

    The id: the mapped id field if one is set; else the row's own `id` field where it has one;
    else the content fingerprint of (task, prompt, context), so that reordering, inserting or
    deleting rows, or renaming the file, never moves an id to another prompt. Fixed benchmark
    files, whose order is part of the benchmark, pass `id_prefix` for positional ids
    (`id_prefix` + the zero-based row index). Integer ids are accepted and made strings; task
    names are trimmed ("open_qa " is "open_qa"); a null or empty context becomes None, a null
    response None. `suggest_config=False` (fixed formats such as BBH) keeps the error for a
    missing field from suggesting a `dataset.fields` setting.
    """
    if not isinstance(record, Mapping):
        raise DataError(
            source, f"expected an object with named fields, got {type(record).__name__}", row
        )
    reader = _RowReader(record, source, row, suggest_config)
    task = (
        fields.task_constant
        if fields.task_constant is not None
        else reader.text("task", fields.task)
    )
    prompt = reader.text("prompt", fields.prompt)
    context = (reader.optional_text("context", fields.context) or None) if fields.context else None
    if fields.id is not None:
        id_ = reader.text("id", fields.id, allow_int=True)
    elif id_prefix is not None:
        id_ = f"{id_prefix}{row - 1}"
    elif record.get("id") is not None:
        id_ = reader.text("id", "id", allow_int=True)
    else:
        id_ = content_fingerprint(task.strip(), prompt, context)
    return Example(
        id=id_,
        task=task.strip(),
        prompt=prompt,
        context=context,
        response=reader.optional_text("response", fields.response) if fields.response else None,
        metadata={name: reader.value("metadata", name) for name in fields.metadata},
    )


@dataclass(frozen=True)
class _RowReader:
    """Reads the fields of one row; every error it raises names the source, row and field."""

    record: Mapping[str, Any]
    source: str
    row: int
    suggest_config: bool

    def value(self, role: str, name: str) -> Any:
        """The raw value; an absent field lists the row's fields and says which config key to change."""
        if name not in self.record:
            present = ", ".join(sorted(map(str, self.record))) or "none"
            hint = f"; {_MISSING_FIELD_FIXES[role]}" if self.suggest_config else ""
            raise DataError(
                self.source, f"no field '{name}' (row has: {present}){hint}", self.row, name
            )
        return self.record[name]

    def text(self, role: str, name: str, allow_int: bool = False) -> str:
        """A required string: present, a string (or an int, where `allow_int`), not blank."""
        value = self.value(role, name)
        if allow_int and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        self._require_string(value, name)
        if not value.strip():
            raise DataError(self.source, "is empty", self.row, name)
        return value

    def optional_text(self, role: str, name: str) -> str | None:
        """A field the data may leave null or empty (context, response); it must still be present."""
        value = self.value(role, name)
        if value is not None:
            self._require_string(value, name)
        return value

    def _require_string(self, value: Any, name: str) -> None:
        if not isinstance(value, str):
            raise DataError(
                self.source,
                f"must be a string, got {type(value).__name__} {value!r:.60}",
                self.row,
                name,
            )


def existing_path(path: str | Path, what: str, hint: str = "") -> Path:
    """The absolute path of a file or folder a loader needs, or a `MissingResourceError` saying
    exactly where it was looked for (relative paths are resolved against the working directory,
    which under Hydra may not be the one the user expects)."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise MissingResourceError(
            f"{what} not found at {resolved}" + (f"; {hint}" if hint else "")
        )
    return resolved


def as_name_list(names: str | Sequence[str] | None) -> list[str] | None:
    """A config's list of names (tasks, subjects); a single name given on the command line counts as a list of one."""
    if names is None:
        return None
    return [names] if isinstance(names, str) else [str(n) for n in names]
