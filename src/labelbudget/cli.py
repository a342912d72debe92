"""What every entry point shares: quiet third-party noise, turn user errors into one clear line."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Callable

from omegaconf import DictConfig

from labelbudget.errors import LabelbudgetError

log = logging.getLogger("labelbudget")


def quiet_libraries() -> None:
    """Silence warnings that say nothing to our users (they concern our own, deliberate choices)."""
    warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.accelerators.cuda").setLevel(logging.WARNING)


def run_entry(stage: Callable[[DictConfig], object], cfg: DictConfig) -> object:
    """Run a stage; a LabelbudgetError (bad input or setup) ends the job with its message alone."""
    quiet_libraries()
    try:
        return stage(cfg)
    except LabelbudgetError as error:
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
