"""The one example schema every loader produces, and the checks every pool passes."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from labelbudget.errors import DataError, listing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One prompt of a task-labelled pool.

    `response` is the reference answer: hidden from selection and scoring, revealed only to
    simulate annotation and to evaluate. `metadata` carries loader-specific extras
    (e.g. the scoring rule of a synthetic task, MMLU's answer choices).
    """

    id: str
    task: str
    prompt: str
    context: str | None = None
    response: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """What an annotator is shown, hashed: ids derived from it, and the check that an annotated
        id still names the prompt it was annotated for."""
        return content_fingerprint(self.task, self.prompt, self.context)

    def to_json(self) -> dict[str, Any]:
        """Every field as a JSON object: the form `Pool.record` hashes."""
        return {
            "id": self.id,
            "task": self.task,
            "prompt": self.prompt,
            "context": self.context,
            "response": self.response,
            "metadata": self.metadata,
        }


def content_fingerprint(task: str, prompt: str, context: str | None) -> str:
    """16 hex digits of SHA-256 over (task, prompt, context)."""
    return hashlib.sha256(
        json.dumps([task, prompt, context], ensure_ascii=False).encode()
    ).hexdigest()[:16]


def check_example_fields(example: Example, source: str, row: int) -> None:
    """Reject an example whose id, task or prompt is missing or blank."""
    for name in ("id", "task", "prompt"):
        value = getattr(example, name)
        if not isinstance(value, str):
            raise DataError(source, f"must be a string, got {type(value).__name__}", row, name)
        if not value.strip():
            raise DataError(source, "is missing or empty", row, name)


class Pool(Sequence[Example]):
    """An ordered, validated list of examples: ids unique, task and prompt non-empty.

    `source` names where the examples came from (a file path, a hub name) so that every error
    about them can say so; rows are 1-based positions in that source.
    """

    def __init__(self, examples: Iterable[Example], source: str):
        self.examples = list(examples)
        self.source = source
        seen: dict[str, int] = {}
        for row, example in enumerate(self.examples, start=1):
            check_example_fields(example, source, row)
            if example.id in seen:
                first = self.examples[seen[example.id] - 1]
                if first.fingerprint == example.fingerprint and example.id == example.fingerprint:
                    raise DataError(
                        source,
                        f"repeats the task, prompt and context of row {seen[example.id]}, so both get "
                        f"the content id {example.id!r}; remove the repeat, or give every row an id "
                        "(an `id` field, or dataset.fields.id)",
                        row,
                        "id",
                    )
                raise DataError(
                    source,
                    f"duplicate id {example.id!r} (first seen in row {seen[example.id]})",
                    row,
                    "id",
                )
            seen[example.id] = row
        if not self.examples:
            raise DataError(source, "contains no examples")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index):  # type: ignore[override]
        return self.examples[index]

    @property
    def ids(self) -> list[str]:
        """Each example's id, in pool order."""
        return [e.id for e in self.examples]

    @property
    def tasks(self) -> list[str]:
        """Each example's task, in pool order."""
        return [e.task for e in self.examples]

    def unanswered_ids(self) -> list[str]:
        """Ids of the examples without a response (none, or only whitespace)."""
        return [e.id for e in self.examples if not (e.response or "").strip()]

    def task_sizes(self) -> dict[str, int]:
        """Prompts per task, tasks in sorted order."""
        return dict(sorted(Counter(self.tasks).items()))

    def content_hash(self) -> str:
        """Hash of what the model sees (id, task, prompt, context), not of the hidden responses."""
        digest = hashlib.sha256()
        for e in self.examples:
            digest.update(
                json.dumps([e.id, e.task, e.prompt, e.context], ensure_ascii=False).encode()
            )
            digest.update(b"\n")
        return digest.hexdigest()

    def record(self) -> dict[str, Any]:
        """Where the pool came from and a hash of every field, hidden responses and metadata
        (a test's scoring rule) included: what a run's numbers depend on. metrics.json keeps it,
        so that resuming a sweep and the report can tell a pool edited in place."""
        digest = hashlib.sha256()
        for e in self.examples:
            digest.update(
                json.dumps(e.to_json(), ensure_ascii=False, sort_keys=True, default=str).encode()
            )
            digest.update(b"\n")
        return {"source": self.source, "examples": len(self), "sha256": digest.hexdigest()}


@dataclass(frozen=True)
class TaskData:
    """What a dataset config builds: the pool to select from and, where it exists, a held-out test
    split of the same tasks for evaluation, meant to be disjoint from the pool. Published splits
    are not always (MMLU repeats some questions across its splits, BBH some within a task):
    test prompts that repeat a pool prompt are counted in a warning, since a run that selects
    them is graded on what it trained on."""

    name: str
    pool: Pool
    test: Pool | None = None

    def __post_init__(self) -> None:
        if self.test is None:
            return
        shown = {(e.prompt, e.context) for e in self.pool}
        repeats = [e.id for e in self.test if (e.prompt, e.context) in shown]
        if repeats:
            log.warning(
                "%d of %d test prompts of %s repeat a pool prompt of %s (same prompt and context): "
                "%s; a run that selects them is graded on prompts it trained on",
                len(repeats),
                len(self.test),
                self.test.source,
                self.pool.source,
                listing(repeats),
            )

    def record(self) -> dict[str, Any]:
        """The pool's and the test split's `Pool.record`, as metrics.json keeps them."""
        return {
            "pool": self.pool.record(),
            "test": self.test.record() if self.test is not None else None,
        }
