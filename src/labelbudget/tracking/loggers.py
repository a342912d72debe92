"""Experiment trackers: W&B (online with an API key, offline without), CSV, or none.

Everything labelbudget sends to a tracker is here, with `conf/logger/` choosing which: a run's
tracker is opened and named by `open_logger` (dataset/selector/budget as the W&B group, the seed
in the run name, so runs of a multirun line up in W&B without any manual naming) and closed by
`close_logger`; its metrics go through Lightning's logger API, and select's allocation table
and plot through `log_allocation`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from labelbudget.configs import instantiate
from labelbudget.runs import RunIdentity

log = logging.getLogger(__name__)

WANDB_TAG_LIMIT = 64  # characters; W&B refuses a longer tag when the run starts


def wandb_tag(tag: str) -> str:
    """`tag` within W&B's limit: a longer one keeps its first 55 characters and a hash of the
    whole, so that two long pool names stay two tags (the full name is in the run's config)."""
    if len(tag) <= WANDB_TAG_LIMIT:
        return tag
    return f"{tag[:55]}-{hashlib.sha256(tag.encode()).hexdigest()[:8]}"


def tracker_names(identity: RunIdentity) -> dict[str, Any]:
    """The W&B group (dataset/selector/budget), run name (with the seed) and tags of a run."""
    return {
        "group": f"{identity.dataset}/{identity.selector}/{identity.budget}",
        "name": f"{identity.selector}-b{identity.budget}-seed{identity.seed}",
        "tags": [identity.dataset, identity.selector, f"budget={identity.budget}", identity.model],
    }


def wandb_has_credentials() -> bool:
    """Whether W&B can log online: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_logger(
    save_dir: str,
    group: str,
    name: str,
    tags: list[str],
    project: str = "labelbudget",
    entity: str | None = None,
    mode: str | None = None,
):
    """Lightning's WandbLogger; `mode` None picks online when credentials exist, else offline
    (said once in the log). WANDB_MODE in the environment wins, e.g. `disabled` in tests."""
    from lightning.pytorch.loggers import WandbLogger

    mode = (
        os.environ.get("WANDB_MODE") or mode or ("online" if wandb_has_credentials() else "offline")
    )
    if mode == "offline":
        log.info(
            "W&B: no API key found, logging offline under %s/wandb (upload later with `wandb sync`)",
            save_dir,
        )
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        entity=entity,
        group=group,
        name=name,
        tags=[wandb_tag(tag) for tag in tags],
        save_dir=save_dir,
        mode=mode,
    )


def csv_logger(save_dir: str, group: str, name: str, tags: list[str]):
    """Lightning's CSVLogger, for runs without W&B; it takes the naming W&B gets and needs none."""
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=save_dir, name="csv", version="")


def open_logger(cfg: DictConfig, identity: RunIdentity):
    """The tracker the run's `logger` node configures, named from the run's identity and given
    the run's whole config, resolved; None where the node chooses none."""
    if not cfg.get("logger"):
        return None
    logger = instantiate(cfg.logger)(**tracker_names(identity))
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def close_logger() -> None:
    """Close the W&B run if one is open (even one whose opening failed half way), so that each
    job of a multirun is its own run."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def log_allocation(logger, rows: list[Any], plot: Path) -> None:
    """select's allocation table (`TaskRow`s) and plot, for trackers that take them (W&B)."""
    if hasattr(logger, "log_table"):
        columns = ["task", "pool_size", "mean_confidence", "allocated", "selected"]
        logger.log_table(
            key="selection/allocation",
            columns=columns,
            data=[[getattr(r, c) for c in columns] for r in rows],
        )
    if hasattr(logger, "log_image"):
        logger.log_image(key="selection/allocation_plot", images=[str(plot)])
