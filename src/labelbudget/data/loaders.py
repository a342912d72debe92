"""labelbudget's own dataset loaders, the only ones a dataset config read from a run folder may
name.

`evaluate.py adapter=...` grades on the dataset the adapter was trained on, read from the run's
files. Those files may come from someone else (a shared or downloaded run folder), so they are
data, never code: a `_target_` there is a name to look up in this allow-list, and nothing else
in them may make Hydra call or build anything. A loader of your own is given on the command
line (`dataset=...`), which is your code, not the run folder's.
"""

from __future__ import annotations

from typing import Any

from labelbudget.errors import DataError

LOADERS = frozenset(
    {
        "labelbudget.data.synthetic.build_synthetic_suite",
        "labelbudget.data.jsonl.load_jsonl_dataset",
        "labelbudget.data.hub.load_hub_dataset",
        "labelbudget.data.bbh.load_bbh",
        "labelbudget.data.mmlu.load_mmlu",
    }
)


def recorded_dataset(node: Any, source: str) -> dict[str, Any]:
    """A dataset config read from `source` (a run's file), checked to build nothing but one of
    labelbudget's loaders: `_target_` in `LOADERS`, no other Hydra key (`_partial_`, `_args_`,
    a nested `_target_`) anywhere, and no interpolation left to resolve.

    Raises:
        DataError: naming the file and the offending key.
    """
    if not isinstance(node, dict):
        raise DataError(source, "records no dataset config (a mapping)", field="dataset")
    target = node.get("_target_")
    if target not in LOADERS:
        raise DataError(
            source,
            f"names _target_ {target!r}, which is not one of labelbudget's dataset loaders "
            f"({', '.join(sorted(LOADERS))}); a run folder's config is never run as code. Give "
            "the dataset on the command line instead (dataset=...)",
            field="dataset._target_",
        )
    for key, value in _leaves(node, "dataset"):
        name = key.rsplit(".", 1)[-1]
        if key != "dataset._target_" and name.startswith("_") and name.endswith("_"):
            raise DataError(
                source, "is a Hydra instruction; a run folder's config may not hold one", field=key
            )
        if isinstance(value, str) and "${" in value:
            raise DataError(
                source, "holds an interpolation, which a recorded config may not", field=key
            )
    return node


def _leaves(node: Any, prefix: str):
    """(dotted key, value) for every key of nested mappings and lists, containers included."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        dotted = f"{prefix}.{key}"
        yield dotted, value
        if isinstance(value, (dict, list)):
            yield from _leaves(value, dotted)
