"""A run's folder: the one contract between the stages that write it and its readers.

The readers are the report, `evaluate.py adapter=`, CoS-Low's learning curves and the resumable
sweeper. A train.py, select.py or evaluate.py run writes, in its folder:
- `metrics.json`: the run's identity, its metrics, the settings its evaluations used, and its
  config. Written last and atomically, so its presence means the run finished;
- `adapter/`: the LoRA adapter (train.py at a budget above 0);
- `.hydra/config.yaml`: the composed config, written by Hydra before the run starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from labelbudget.errors import DataError
from labelbudget.io import atomic_write_text

METRICS = "metrics.json"
ADAPTER = "adapter"
SAVED_CONFIG = Path(".hydra") / "config.yaml"


@dataclass(frozen=True)
class RunRecord:
    """What one run measured and under which settings.

    Attributes:
        identity: what the run compares (dataset, selector and its options, budget, seed, model);
            the report's rows and columns and W&B's groups come from it.
        metrics: every number the run measured, by name (`tasks/macro`, `mmlu/accuracy`, ...).
        settings: what each evaluation used that the config does not say (prompt format,
            letter token ids, counts), by evaluation name.
        config: the run's whole config but for where it writes; runs that differ in any of it
            are reported in separate tables.
    """

    identity: dict[str, Any]
    metrics: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None

    def to_json(self) -> str:
        """The metrics.json text: keys sorted, two-space indent, so equal records are equal bytes."""
        record: dict[str, Any] = {
            "run": self.identity,
            "metrics": self.metrics,
            "settings": self.settings,
        }
        if self.config is not None:
            record["config"] = self.config
        return json.dumps(record, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> RunRecord:
        """The record in `text`; a file that is not one is named (`source`) with what it lacks."""
        try:
            record = json.loads(text)
        except ValueError as error:
            raise DataError(source, f"is not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise DataError(source, "is not a labelbudget metrics file")
        for key in ("run", "metrics"):
            if key not in record:
                raise DataError(source, "is not a labelbudget metrics file", field=key)
        return cls(
            record["run"], record["metrics"], record.get("settings", {}), record.get("config")
        )


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: where its files are, whether it finished, and its record."""

    path: Path

    @property
    def metrics_file(self) -> Path:
        """The run's record; written last, so it exists only for a finished run."""
        return self.path / METRICS

    @property
    def adapter(self) -> Path:
        """Where train.py saves the LoRA adapter (budget above 0)."""
        return self.path / ADAPTER

    @property
    def saved_config_file(self) -> Path:
        """The composed config, as Hydra saved it before the run started."""
        return self.path / SAVED_CONFIG

    @property
    def finished(self) -> bool:
        """Whether the run wrote its record (an interrupted run did not)."""
        return self.metrics_file.is_file()

    def read(self) -> RunRecord:
        """The run's record.

        Raises:
            DataError: the file is not a labelbudget record, naming it and what it lacks.
        """
        return RunRecord.from_json(self.metrics_file.read_text(), str(self.metrics_file))

    def write(self, record: RunRecord) -> None:
        """Write the record atomically.

        A reader (the report, the sweeper deciding what is finished) never sees half a record.
        """
        atomic_write_text(self.metrics_file, record.to_json())

    def saved_config(self) -> dict[str, Any] | None:
        """The config Hydra saved for this run, unresolved; None where there is none."""
        if not self.saved_config_file.is_file():
            return None
        return OmegaConf.to_container(OmegaConf.load(self.saved_config_file), resolve=False) or {}

    @classmethod
    def of_adapter(cls, adapter: Path) -> RunFolder:
        """The train.py run that wrote `adapter` (its parent folder)."""
        return cls(Path(adapter).parent)


def finished_runs(folders: list[Path]) -> list[tuple[RunFolder, RunRecord]]:
    """Every finished run below the folders, in path order, with its record.

    Raises:
        DataError: a folder holds no finished run (it is not a run or sweep folder).
    """
    runs = []
    for folder in folders:
        files = sorted(Path(folder).rglob(METRICS))
        if not files:
            raise DataError(
                str(folder), f"contains no {METRICS} (is it a train.py run or multirun folder?)"
            )
        for file in files:
            run = RunFolder(file.parent)
            runs.append((run, run.read()))
    return runs
