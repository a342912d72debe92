"""A run's folder: the one contract between the stages that write it and its readers.

The readers are the report, `evaluate.py adapter=`, CoS-Low's learning curves and the resumable
sweeper. A train.py, select.py or evaluate.py run writes, in its folder:
- `metrics.json`: the run's identity, its metrics, the settings its evaluations used, and its
  config. Written last and atomically, so its presence means the run finished;
- `adapter/`: the LoRA adapter (train.py at a budget above 0);
- `.hydra/config.yaml`: the composed config, written by Hydra before the run starts;
- `.labelbudget-job`: in a sweep's job folder, the sweeper's mark, written before the job
  starts: only a marked folder without `metrics.json` is an interrupted job, and only the files
  of `RUN_FILES` are ever removed from it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from labelbudget.errors import ConfigError, DataError, listing
from labelbudget.io import atomic_write_text

METRICS = "metrics.json"
ADAPTER = "adapter"
SAVED_CONFIG = Path(".hydra") / "config.yaml"
JOB_MARK = ".labelbudget-job"
# a metrics.json that is no finished run's record, renamed so: kept beside the rerun, never removed
DAMAGED = METRICS + ".damaged"
# every file and folder a stage, Hydra, a logger or the sweeper writes in a run folder: the
# only entries an interrupted job's folder may hold before it is cleared for a rerun
RUN_FILES = frozenset(
    {
        JOB_MARK,
        METRICS,
        ADAPTER,
        ".hydra",
        "multirun.yaml",
        "train.log",
        "select.log",
        "evaluate.log",
        "estimate.log",
        "selection.jsonl",
        "allocation.csv",
        "allocation.png",
        "allocation_round1.csv",
        "first_round.jsonl",
        "probe_auc.json",
        "round_gains.json",
        "predictions.jsonl",
        "mmlu_predictions.jsonl",
        "bbh_predictions.jsonl",
        "model_outputs.json",
        "alpaca_eval",
        "wandb",
        "csv",
    }
)


@dataclass(frozen=True)
class RunIdentity:
    """What a run compares: the report's rows and columns, W&B's groups and names come from it.

    Attributes:
        dataset: the pool's name.
        selector: the `conf/selector` option chosen; `zero-shot` at budget 0 and `full` for the
            whole pool, whatever the selector (all pick the same).
        selector_options: the selector settings this run changed from that option's file, so
            that two variants of one selector are two rows.
        budget: labels bought.
        seed: the run's seed.
        model: the model config's name.
    """

    dataset: str
    selector: str
    selector_options: dict[str, Any]
    budget: int
    seed: int
    model: str

    def as_dict(self) -> dict[str, Any]:
        """The identity as metrics.json holds it (`run`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Any, source: str) -> RunIdentity:
        """The identity in a metrics.json's `run`; what it lacks is named with `source`.

        Records of labelbudget before selector options were kept have none: they read as {}.
        """
        if not isinstance(record, dict):
            raise DataError(source, "is not a labelbudget metrics file", field="run")
        record = {"selector_options": {}, **record}
        names = [f.name for f in fields(cls)]
        for name in names:
            if name not in record:
                raise DataError(source, "is not a labelbudget metrics file", field=f"run.{name}")
        unknown = sorted(set(record) - set(names))
        if unknown:
            raise DataError(
                source, f"holds run keys no labelbudget run writes: {unknown}", field="run"
            )
        return cls(**{f.name: record[f.name] for f in fields(cls)})


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
        data: the pool's and the test split's source, size and content hash
            (`TaskData.record`); None in records written before labelbudget kept it.
        headlines: each evaluation's `headline` metric, in the order run, so that the report
            knows an evaluation of a user's own; None where no evaluation ran (select.py) and in
            records written before labelbudget kept them.
    """

    identity: RunIdentity
    metrics: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headlines: tuple[str, ...] | None = None

    def to_json(self) -> str:
        """The metrics.json text: keys sorted, two-space indent, so equal records are equal bytes."""
        record: dict[str, Any] = {
            "run": self.identity.as_dict(),
            "metrics": self.metrics,
            "settings": self.settings,
        }
        if self.config is not None:
            record["config"] = self.config
        if self.data is not None:
            record["data"] = self.data
        if self.headlines is not None:
            record["headlines"] = list(self.headlines)
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
            RunIdentity.from_dict(record["run"], source),
            record["metrics"],
            record.get("settings", {}),
            record.get("config"),
            record.get("data"),
            _headlines(record.get("headlines"), source),
        )


def _headlines(value: Any, source: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(source, "must be a list of metric names", field="headlines")
    return tuple(value)


def changed_data(saved: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """How the data a run recorded differs from the data now (`TaskData.record`).

    One line per split that changed, naming its source; empty where they agree. A record
    without data (older labelbudget) cannot be compared and gives nothing.
    """
    if saved is None:
        return []
    changes = []
    for split in ("pool", "test"):
        there, here = saved.get(split), now.get(split)
        if (there or {}).get("sha256") != (here or {}).get("sha256"):
            changes.append(
                f"the {split} {(here or there or {}).get('source')} has changed "
                f"({_described(there)} there, {_described(here)} now)"
            )
    return changes


def _described(split: dict[str, Any] | None) -> str:
    if split is None:
        return "none"
    return f"{split['examples']} examples, sha256 {split['sha256'][:12]}"


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

    def damage(self) -> str | None:
        """Why this folder's metrics.json is no finished run's record, or None where it is one.

        It must parse as a record, and hold metrics under each evaluation its config chose
        (`tasks/...` for eval.tasks): a file cut short by a full disk or a copy fails either.
        """
        try:
            record = self.read()
        except DataError as error:
            return str(error)
        if not isinstance(record.metrics, dict):
            return f"{self.metrics_file}: holds no metrics table"
        # the evaluations are the mappings under `eval`; plain keys beside them are shortcuts
        chosen = [
            name
            for name, value in ((record.config or {}).get("eval") or {}).items()
            if isinstance(value, dict)
        ]
        missing = [
            name
            for name in chosen
            if not any(str(key).startswith(f"{name}/") for key in record.metrics)
        ]
        if missing:
            return f"{self.metrics_file}: holds no metrics of the evaluation(s) {missing} it ran"
        return None

    def set_aside_damaged(self) -> Path:
        """Rename the damaged metrics.json to metrics.json.damaged (-2, -3, ... where taken).

        The job can then rerun while the file stays for a person to look at.
        """
        target, number = self.path / DAMAGED, 1
        while target.exists():
            number += 1
            target = self.path / f"{DAMAGED}-{number}"
        self.metrics_file.rename(target)
        return target

    def write(self, record: RunRecord) -> None:
        """Write the record atomically.

        A reader (the report, the sweeper deciding what is finished) never sees half a record.
        """
        atomic_write_text(self.metrics_file, record.to_json())

    def saved_config(self) -> dict[str, Any] | None:
        """The config Hydra saved for this run, unresolved; None where there is none.

        Raises:
            DataError: the file is not a YAML mapping (damaged), naming it.
        """
        if not self.saved_config_file.is_file():
            return None
        try:
            saved = OmegaConf.load(self.saved_config_file)
        except Exception as error:  # yaml's and omegaconf's errors share no base class
            raise DataError(
                str(self.saved_config_file), f"is not a readable config ({error})"
            ) from None
        if not OmegaConf.is_dict(saved):
            raise DataError(str(self.saved_config_file), "is not a config (a YAML mapping)")
        return OmegaConf.to_container(saved, resolve=False)

    @property
    def marked(self) -> bool:
        """Whether the sweeper marked this folder as one of its jobs' before the job started."""
        return (self.path / JOB_MARK).is_file()

    def foreign_entries(self) -> list[str]:
        """Entries of the folder that labelbudget does not write: a user's, never removed.

        labelbudget writes `RUN_FILES` and the hidden temporary files of its atomic writes; the
        damaged records it set aside are its own too, and are kept.
        """
        return sorted(
            entry.name
            for entry in self.path.iterdir()
            if entry.name not in RUN_FILES
            and not (entry.name.startswith(".") and entry.name.endswith(".tmp"))
            and not _set_aside(entry)
        )

    def not_clearable(self) -> str | None:
        """Why this unfinished run's folder may not be cleared for a rerun, or None where it may.

        It may not when it is unmarked, or holds files labelbudget did not write.
        """
        if not self.marked:
            return (
                f"holds files but no {METRICS} and no {JOB_MARK}: no job of a labelbudget sweep "
                "started here, so nothing in it is deleted; move it away or choose another "
                "hydra.sweep.dir"
            )
        foreign = self.foreign_entries()
        if foreign:
            return (
                f"is an interrupted job's folder but also holds {listing(foreign, 5)}, which "
                "labelbudget did not write; move them away or choose another hydra.sweep.dir"
            )
        return None

    def clear(self) -> None:
        """Remove what an interrupted job wrote, so that it reruns from the start.

        Only from a marked folder that holds labelbudget's files alone.

        Raises:
            DataError: the folder may not be cleared (`not_clearable`), naming it.
        """
        problem = self.not_clearable()
        if problem is not None:
            raise DataError(str(self.path), problem)
        for entry in self.path.iterdir():
            if _set_aside(entry):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def refuse_finished(self) -> None:
        """A run may not start in a finished run's folder.

        It would overwrite its selection, allocation and config beside the old adapter and
        metrics.

        Raises:
            ConfigError: the folder holds a metrics.json, naming it.
        """
        if self.finished:
            raise ConfigError(
                f"{self.path} holds a finished run ({METRICS}); a new run there would overwrite "
                "its files: choose another hydra.run.dir (or paths.output_dir), or move it away"
            )

    @classmethod
    def of_adapter(cls, adapter: Path) -> RunFolder:
        """The train.py run that wrote `adapter` (its parent folder)."""
        return cls(Path(adapter).parent)


def _set_aside(entry: Path) -> bool:
    return entry.is_file() and entry.name.startswith(DAMAGED)


def finished_runs(
    folders: list[Path], skipped: list[DataError] | None = None
) -> list[tuple[RunFolder, RunRecord]]:
    """Every finished run below the folders, in path order, with its record.

    `skipped`: where given, an unreadable metrics.json is left out and its error appended to it,
    rather than raised.

    Raises:
        DataError: a folder holds no finished run (it is not a run or sweep folder), or a
            metrics.json is unreadable and `skipped` is None.
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
            try:
                runs.append((run, run.read()))
            except DataError as error:
                if skipped is None:
                    raise
                skipped.append(error)
    if not runs:  # every one unreadable
        first = skipped[0]
        raise DataError(
            first.source,
            f"{first.message}; and no other {METRICS} is readable",
            first.row,
            first.field,
        )
    return runs
