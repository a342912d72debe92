"""One job on several processes (Lightning DDP), and many jobs in one sweep (Hydra).

Lightning's DDP launcher starts a job's other ranks at its first distributed Trainer call, by
running the script again with LOCAL_RANK set (torchrun and SLURM start them all up front). Every
rank then runs the whole stage and makes the same Trainer calls in the same order. What that
needs from us: one rank writes the files, an inference pass is cut across ranks and put back
together, and a Hydra multirun gets two repairs (`hydra_job`).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import torch.distributed as dist
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from labelbudget.errors import ConfigError

# what Lightning's launcher puts in the environment of the process that starts the ranks
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def is_main_process() -> bool:
    """Global rank 0, or a plain single-process run: the process that writes files and prints.
    Lightning keeps `rank_zero_only.rank` right, from the environment a rank is started with."""
    return rank_zero_only.rank == 0


print_once = rank_zero_only(print)  # what the terminal shows once, not once per rank


def job_identity() -> str:
    """The same on every rank of one job, different between jobs running at once: the scheduler's
    job id, or the main process's pid (Lightning starts the other ranks as its children)."""
    for key in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"):
        if key in os.environ:
            return f"{key}={os.environ[key]}/{os.environ.get('SLURM_STEP_ID', '')}"
    return f"pid={os.getpid() if is_main_process() else os.getppid()}"


def check_strategy(trainer_cfg: Any) -> None:
    """Refuse the spawn/fork strategies: their ranks run only the Trainer call, in copies of the
    objects, so the rest of a stage (gathering, merging, writing) would see one rank's work."""
    strategy = trainer_cfg.get("strategy") or ""
    name = strategy if isinstance(strategy, str) else str(strategy.get("start_method", ""))
    if any(word in name for word in ("spawn", "fork", "notebook")):
        raise ConfigError(
            f"trainer.strategy={name!r} is not supported: use trainer=ddp (Lightning's subprocess launcher), "
            "torchrun or SLURM"
        )


def gather(obj: Any, world_size: int) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank ([obj] in a single process)."""
    if world_size == 1 or not dist.is_initialized():
        return [obj]
    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, obj)
    return parts


def barrier() -> None:
    """Wait for every rank of the job; nothing to wait for in a single process."""
    if dist.is_initialized():
        dist.barrier()


@contextmanager
def hydra_job() -> Iterator[None]:
    """Around one Hydra job, so that DDP works inside a multirun.

    Lightning starts the other ranks with the command line and `hydra.run.dir`: in a multirun
    that command is the whole sweep (each rank would start every job) and run.dir is not the
    job's folder (extra output folders). Here the other ranks get this job's overrides and its
    folder. Afterwards the launcher's traces go (process group, LOCAL_RANK, the port), so the
    next job of the sweep starts its own ranks instead of waiting for the finished ones.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import read_write

    if "LOCAL_RANK" in os.environ or not HydraConfig.initialized():  # a rank someone else started
        yield
        return
    hydra = HydraConfig.get()
    argv, env = sys.argv, {key: os.environ.get(key) for key in LAUNCH_ENV}
    sys.argv = [argv[0], *hydra.overrides.task]
    with read_write(hydra):
        hydra.run.dir = hydra.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        if dist.is_initialized():
            dist.destroy_process_group()
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
