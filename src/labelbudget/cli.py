"""What every entry point shares: quiet third-party noise, turn user errors into one clear line."""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path
from typing import Callable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from labelbudget.configs import check_settings
from labelbudget.errors import LabelbudgetError, exit_on, one_line_errors

log = logging.getLogger("labelbudget")


MULTIRUN_FLAGS = ("-m", "--multirun")


def hoist_multirun_flag(argv: list[str]) -> list[str]:
    """Move -m/--multirun before the overrides: `select.py budget=300 -m seed=0,1,2` is how people
    write it, but Hydra's argparse rejects overrides on both sides of a flag."""
    flags = [a for a in argv[1:] if a in MULTIRUN_FLAGS]
    return argv[:1] + flags[:1] + [a for a in argv[1:] if a not in MULTIRUN_FLAGS]


def quiet_libraries() -> None:
    """Silence warnings that say nothing to our users (they concern our own, deliberate choices)."""
    warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.accelerators.cuda").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the annotation client's every request


def run_entry(stage: str, cfg: DictConfig) -> object:
    """Run a stage ("package.module.function"), its settings checked first: a bad value ends the
    run in seconds, before the stage's heavy imports (torch, lightning) and any model. A
    LabelbudgetError (bad input or setup) ends the job with its message alone; in a sweep it ends
    only this job, and the sweeper lists it with the others' failures at the end."""
    quiet_libraries()
    try:
        check_settings(cfg)
        from labelbudget.distributed import barrier, hydra_job

        module, name = stage.rsplit(".", 1)
        function: Callable[[DictConfig], object] = getattr(importlib.import_module(module), name)
        with hydra_job():
            result = function(cfg)
            barrier()  # every rank of the job is done before the next job of a sweep starts
        return result
    except LabelbudgetError as error:
        log.error("%s", error)
        if in_sweep():
            raise
        exit_on(error)


def in_sweep() -> bool:
    """Whether this job runs in a Hydra multirun, where a user error fails only this job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class RefuseFinishedRunFolder(Callback):
    """A single run (not a sweep: its sweeper checks each job folder) into a folder that holds a
    finished run ends before Hydra writes its config there, so that a new run, failed or not,
    never overwrites the old run's config, selection and allocation beside its adapter."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        """End in one line when `hydra.run.dir` holds a finished run."""
        from labelbudget.runs import RunFolder

        folder = OmegaConf.select(config, "hydra.run.dir")
        one_line_errors(RunFolder(Path(str(folder))).refuse_finished)()
