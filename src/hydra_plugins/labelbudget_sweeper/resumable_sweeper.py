"""The project's Hydra sweeper: studies as a union of grids, and sweeps that resume.

Hydra's basic sweeper runs one cartesian product and rewrites every job folder it meets. A
study needs more: rows at one budget only (a union of grids), and days of jobs that survive a
stopped machine. This sweeper, before it launches anything, composes every job's config and
looks in the job's folder:

- `metrics.json` there, the same settings in `.hydra/config.yaml` and the same data (the pool's
  and the test split's content hashes that metrics.json recorded): finished, skipped;
- `metrics.json` there and other settings or other data (a pool file edited in place):
  refused, naming the folder and what differs, so that no result is ever overwritten by, or
  reported beside, a run of other settings or data;
- no `metrics.json` but the sweeper's mark (`.labelbudget-job`, written before each job starts):
  interrupted, the files labelbudget writes removed and the job rerun. A `metrics.json` that does
  not parse as a record or lacks its evaluations' metrics (cut short) is named, renamed to
  `metrics.json.damaged` (kept, never deleted) and its job counts as interrupted. A folder that holds
  anything else, or files without the mark, was not written by this sweep: it is refused, and
  nothing in it is ever deleted.

A job that fails does not stop the ones after it; every failure is listed at the end and the
sweep exits non-zero. Jobs keep their number in the full list, so `hydra.job.num` folders stay
put when some are skipped.

Hydra finds plugins only in the `hydra_plugins` namespace package, hence this home; it loads
this module without registering it, so no `from __future__ import annotations` (dataclasses).
"""

import contextlib
import copy
import functools
import itertools
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from labelbudget.configs import differing_keys
from labelbudget.errors import LabelbudgetError
from labelbudget.io import atomic_write_text
from labelbudget.runs import JOB_MARK, METRICS, SAVED_CONFIG, RunFolder, changed_data

log = logging.getLogger(__name__)


@dataclass
class ResumableSweeperConf:
    """The config node of `hydra/sweeper=resumable`; Hydra builds the sweeper from it."""

    _target_: str = "hydra_plugins.labelbudget_sweeper.resumable_sweeper.ResumableSweeper"
    max_batch_size: Optional[int] = None
    # swept in every job, outermost first (seeds here run every row of seed 0 before seed 1)
    params: Optional[Dict[str, str]] = None
    # a union of grids: each a mapping of key -> value or comma-separated sweep, like params
    grids: Optional[List[Dict[str, Any]]] = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="resumable", node=ResumableSweeperConf, provider="labelbudget"
)


class JobExited(Exception):
    """A job that called sys.exit with an error code: it fails like a job that raised, and the
    jobs after it still run (Hydra lets SystemExit end the whole sweep)."""


def exit_as_failure(task_function: TaskFunction, config: DictConfig) -> Any:
    """Run one job; a sys.exit with an error code is raised as JobExited, so that the job
    fails and the sweep goes on (a clean exit returns None)."""
    try:
        return task_function(config)
    except SystemExit as stop:
        if stop.code in (0, None):
            return None
        raise JobExited(f"exited with code {stop.code}") from stop


class SweepRefused(Exception):
    """A job folder holds a run of other settings."""


def overrides_of(mapping: Optional[Dict[str, Any]]) -> List[str]:
    """Override strings from a mapping of the config (YAML null is Hydra's `null`)."""
    return [f"{key}={'null' if value is None else value}" for key, value in (mapping or {}).items()]


def job_state(
    folder: Path, task_config: Dict[str, Any], data_now: Callable[[], Dict[str, Any]]
) -> str:
    """'new', 'finished' or 'interrupted'; SweepRefused where the folder holds the results of
    other settings or other data (`data_now`: the job's `TaskData.record`, computed only here),
    or files that labelbudget did not write there."""
    run = RunFolder(folder)
    damage = run.damage() if run.finished else None
    if damage is not None:
        if not run.marked:
            raise SweepRefused(
                f"{damage}; and {folder} has no {JOB_MARK}, so this sweep did not write it: "
                "move it away or choose another hydra.sweep.dir"
            )
        log.warning("%s; set aside as %s, and the job reruns", damage, run.set_aside_damaged())
    if not run.finished:
        if not (folder.exists() and any(folder.iterdir())):
            return "new"
        problem = run.not_clearable()
        if problem is not None:
            raise SweepRefused(f"{folder} {problem}")
        return "interrupted"
    try:
        saved = run.saved_config()
    except LabelbudgetError as error:
        raise SweepRefused(str(error)) from None
    if saved is None:
        raise SweepRefused(
            f"{folder} holds a {METRICS} without its {SAVED_CONFIG}, so its settings are unknown; "
            "move it away or choose another hydra.sweep.dir"
        )
    differences = differing_keys(saved, task_config)
    if differences:
        shown = "; ".join(differences[:5]) + (
            f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
        )
        raise SweepRefused(
            f"{folder} holds a run of other settings ({shown}); move it away or choose another hydra.sweep.dir"
        )
    try:
        recorded = run.read().data
    except LabelbudgetError as error:
        raise SweepRefused(str(error)) from None
    if recorded is None:
        log.warning(
            "%s was recorded without its data's hashes (an older labelbudget): whether its pool "
            "has changed since cannot be checked",
            run.metrics_file,
        )
    changes = changed_data(recorded, data_now()) if recorded is not None else []
    if changes:
        raise SweepRefused(
            f"{folder} holds a run on other data: {'; '.join(changes)}; restore the file, or move "
            "the folder away or choose another hydra.sweep.dir (a run on the old data is never "
            "reported beside one on the new)"
        )
    return "finished"


def mark(folder: Path, number: int, overrides: Sequence[str]) -> None:
    """The sweeper's mark in a job's folder, before the job starts: only a folder so marked is
    ever cleared as an interrupted job's."""
    atomic_write_text(
        folder / JOB_MARK,
        json.dumps({"job": number, "overrides": list(overrides)}, indent=2) + "\n",
    )


@contextlib.contextmanager
def as_job(config: DictConfig) -> Iterator[None]:
    """Hydra's view set to the job's config while resolving it (`${hydra:...}` interpolations)."""
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = previous


class ResumableSweeper(Sweeper):
    """Launches the union of grids in batches, after checking every job's folder: finished
    jobs skipped, interrupted ones cleared and rerun, foreign folders refused (see the module)."""

    def __init__(
        self,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, str]] = None,
        grids: Optional[List[Dict[str, Any]]] = None,
    ) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.grids = [dict(grid) for grid in grids or [{}]]
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None
        self.data_records: Dict[str, Dict[str, Any]] = {}

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Keep Hydra's context and config, and a launcher whose jobs fail rather than exit."""
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context,
            task_function=functools.partial(exit_as_failure, task_function),
            config=config,
        )

    def product(self, lines: List[str]) -> List[List[str]]:
        """Every job of one grid of overrides; a later key replaces an earlier one in place."""
        swept: Dict[str, List[str]] = {}
        for override in OverridesParser.create(
            config_loader=self.hydra_context.config_loader
        ).parse_overrides(lines):
            key = override.get_key_element()
            values = (
                override.sweep_string_iterator()
                if override.is_sweep_override()
                else [override.get_value_element_as_str()]
            )
            # `+key` and `key` name one setting: the later one wins, in the earlier one's place
            swept[key.lstrip("+")] = [f"{key}={value}" for value in values]
        return [list(job) for job in itertools.product(*swept.values())]

    def jobs(self, arguments: List[str]) -> List[List[str]]:
        """params outermost, then each grid in order, the command line last (it wins); no job twice."""
        jobs, seen = [], set()
        for outer in self.product(overrides_of(self.params)):
            for grid in self.grids:
                for job in self.product(outer + overrides_of(grid) + list(arguments)):
                    if tuple(sorted(job)) not in seen:
                        seen.add(tuple(sorted(job)))
                        jobs.append(job)
        return jobs

    def job_config(self, overrides: Sequence[str], number: int) -> DictConfig:
        """Job `number`'s composed config, numbered by its place in the full list, so its
        folder stays put when other jobs are skipped."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = number
            config.hydra.job.num = number
        return config

    def job_folder(self, config: DictConfig) -> Path:
        """`hydra.sweep.dir`/`hydra.sweep.subdir`, resolved as the job itself resolves them."""
        with as_job(config):  # resolves ${hydra:...} in the folder names
            return Path(str(OmegaConf.select(config, "hydra.sweep.dir"))) / str(
                OmegaConf.select(config, "hydra.sweep.subdir")
            )

    def job_data(self, config: DictConfig) -> Dict[str, Any]:
        """The job's `TaskData.record`: its dataset built as the job will build it, once per
        distinct dataset config (a study shares one)."""
        with as_job(config):
            dataset = OmegaConf.to_container(config.dataset, resolve=True)
        key = json.dumps(dataset, sort_keys=True, default=str)
        if key not in self.data_records:
            from labelbudget.configs import instantiate

            self.data_records[key] = instantiate(dataset).record()
        return self.data_records[key]

    def plan(self, jobs: List[List[str]]) -> List[int]:
        """The numbers of the jobs to run. Everything is checked before anything is touched: a
        refusal leaves every folder as it was."""
        to_run, refused, interrupted, owner = [], [], [], {}
        for number, overrides in enumerate(jobs):
            config = self.job_config(overrides, number)
            folder = self.job_folder(config)
            if folder in owner:
                refused.append(
                    f"jobs #{owner[folder]} and #{number} ({' '.join(overrides)}) would share {folder}; "
                    "make hydra.sweep.subdir tell them apart (hydra.job.config.override_dirname.exclude_keys)"
                )
                continue
            owner[folder] = number
            task_config = copy.deepcopy(config)
            with open_dict(task_config):
                del task_config["hydra"]
            try:
                state = job_state(
                    folder,
                    OmegaConf.to_container(task_config),
                    functools.partial(self.job_data, config),
                )
            except SweepRefused as error:
                refused.append(str(error))
                continue
            if state == "finished":
                log.info("skip #%d %s: finished (%s with the same config)", number, folder, METRICS)
                continue
            if state == "interrupted":
                interrupted.append((number, folder))
            to_run.append(number)
        if refused:
            raise SweepRefused("\n".join(refused))
        for number, folder in interrupted:
            log.info(
                "rerun #%d %s from the start: interrupted (no %s); its files are removed",
                number,
                folder,
                METRICS,
            )
            RunFolder(folder).clear()
        return to_run

    def batches(self, numbers: List[int]) -> List[List[int]]:
        """Runs of consecutive job numbers (a launcher numbers a batch consecutively), capped in size."""
        batches: List[List[int]] = []
        for number in numbers:
            if (
                batches
                and batches[-1][-1] == number - 1
                and len(batches[-1]) != self.max_batch_size
            ):
                batches[-1].append(number)
            else:
                batches.append([number])
        return batches

    def sweep(self, arguments: List[str]) -> Any:
        """Plan every job, then launch those not finished. Exits 2 on a refusal (no folder
        touched) and 1 once all have run if any failed; else returns the launcher's results, one
        list per batch."""
        jobs = self.jobs(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            to_run = self.plan(jobs)
        except (SweepRefused, LabelbudgetError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        log.info(
            "%d jobs: %d finished already, %d to run",
            len(jobs),
            len(jobs) - len(to_run),
            len(to_run),
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        failures, returns = [], []
        for batch in self.batches(to_run):
            for number in batch:
                mark(self.job_folder(self.job_config(jobs[number], number)), number, jobs[number])
            results = self.launcher.launch([jobs[n] for n in batch], initial_job_idx=batch[0])
            for number, result in zip(batch, results):
                if result.status == JobStatus.FAILED:
                    error = result._return_value  # the exception; `return_value` would raise it
                    if not isinstance(error, LabelbudgetError):  # a bug: its traceback, in full
                        log.error("job #%d failed", number, exc_info=error)
                    failures.append(f"#{number} {' '.join(jobs[number])}: {error}")
            returns.append(results)
        if failures:
            print(
                f"error: {len(failures)} of {len(to_run)} jobs failed:\n  " + "\n  ".join(failures),
                file=sys.stderr,
            )
            sys.exit(1)
        return returns
