"""Task-labelled pools from Hugging Face `datasets` (the hub, or any builder such as "json")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelbudget.data.records import FieldMap, example_from_record, field_map
from labelbudget.data.schema import Pool, TaskData
from labelbudget.errors import ConfigError, MissingResourceError


def load_hub_dataset(
    name: str,
    split: str = "train",
    fields: Mapping[str, Any] | None = None,
    test_split: str | None = None,
    revision: str | None = None,
    data_files: Any = None,
    cache_dir: str | None = None,
    preset: str | None = None,
) -> TaskData:
    """Load `split` (and optionally `test_split`) with `datasets.load_dataset` and map each row
    through the same `FieldMap` rules as local files (`fields` overriding `preset` key by key).

    Ids come from the rows' `id` field or, without one, from each row's content, as for local
    files (`example_from_record`).
    """
    mapping = field_map(fields, preset)
    load_kwargs = {"revision": revision, "data_files": data_files, "cache_dir": cache_dir}
    test = _load_split(name, test_split, mapping, load_kwargs) if test_split is not None else None
    return TaskData(name=name, pool=_load_split(name, split, mapping, load_kwargs), test=test)


def _load_split(name: str, split: str, fields: FieldMap, load_kwargs: dict[str, Any]) -> Pool:
    source = f"{name} (split {split!r})"
    rows = download(name, split, load_kwargs)
    return Pool(
        (example_from_record(r, fields, source, row) for row, r in enumerate(rows, start=1)), source
    )


def download(name: str, split: str, load_kwargs: dict[str, Any]) -> Any:
    """`datasets.load_dataset`, with its failures turned into errors that say what to do instead."""
    import datasets  # heavy; only hub configs pay for the import

    try:
        return datasets.load_dataset(name, split=split, **load_kwargs)
    except OSError as err:  # no network, offline mode, unknown dataset, missing data files
        raise MissingResourceError(
            f"could not load dataset {name!r} (split {split!r}) with datasets.load_dataset: {err}. "
            "Without hub access, download its data file and load it locally with dataset=jsonl dataset.path=...; "
            "for Dolly: dataset=dolly_jsonl dataset.path=/path/to/databricks-dolly-15k.jsonl"
        ) from err
    except ValueError as err:  # e.g. an unknown split name
        raise ConfigError(
            f"datasets.load_dataset({name!r}, split={split!r}) rejected the config: {err}"
        ) from err
