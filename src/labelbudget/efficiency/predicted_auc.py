"""The predicted data efficiency of each task, as `estimate.py mode=coslow` writes it and the
budget planner (`mode=plan`, `selector=predicted_efficiency`) reads it:
{"n_max": 5000, "tasks": {"<task>": 0.42, ...}}, AUCs in (0, 1) on the budget axis up to n_max."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labelbudget.data.records import existing_path
from labelbudget.errors import DataError
from labelbudget.io import atomic_write_text


@dataclass(frozen=True)
class PredictedAUC:
    """Task -> predicted AUC, and the budget axis's n_max the AUCs refer to; `source` names the
    file in errors."""

    tasks: dict[str, float]
    n_max: int
    source: str = "predicted AUC"

    def write(self, path: Path) -> None:
        """Write the file `read` reads (tasks sorted by name), atomically."""
        record = {"n_max": self.n_max, "tasks": dict(sorted(self.tasks.items()))}
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> PredictedAUC:
        """The file's predictions, each value checked; a bad one is named by field."""
        file = existing_path(
            path,
            "predicted AUC file",
            "write it with: python estimate.py mode=coslow fit=<fit.json>",
        )
        try:
            content = json.loads(file.read_text())
        except ValueError as error:
            raise DataError(str(file), f"is not valid JSON: {error}") from error
        tasks, n_max = (
            (content.get("tasks"), content.get("n_max"))
            if isinstance(content, dict)
            else (None, None)
        )
        if not isinstance(tasks, dict) or not tasks:
            raise DataError(
                str(file),
                'must be a JSON object {"n_max": ..., "tasks": {task: predicted AUC}}',
                field="tasks",
            )
        if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 2:
            raise DataError(
                str(file), f"must be an integer budget of at least 2, got {n_max!r}", field="n_max"
            )
        for task, auc in tasks.items():
            if isinstance(auc, bool) or not isinstance(auc, (int, float)) or not 0 < auc < 1:
                raise DataError(str(file), f"must be a number in (0, 1), got {auc!r}", field=task)
        return cls({task: float(auc) for task, auc in tasks.items()}, n_max, str(file))

    def check_covers(self, tasks: Iterable[str]) -> None:
        """Refuse a pool with a task that has no prediction, naming the tasks."""
        missing = sorted(set(tasks) - set(self.tasks))
        if missing:
            raise DataError(self.source, f"has no predicted AUC for the pool's task(s) {missing}")
