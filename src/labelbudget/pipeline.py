"""The stages in order, driven by a composed config. Entry points only call these.

Every check that can fail on the user's input runs before the model is loaded.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from labelbudget.data.schema import Pool, TaskData
from labelbudget.errors import ConfigError, LabelbudgetError
from labelbudget.scoring.cache import ScoringSettings, cache_folder, load_cached, score_pool
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import Candidates, Selection, Selector
from labelbudget.tracking.selection_report import write_selection_outputs

log = logging.getLogger(__name__)


def instantiate(node: Any, *args, **kwargs) -> Any:
    """Hydra's instantiate, but our own errors reach the user as they are, not wrapped."""
    try:
        return hydra_instantiate(node, *args, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, LabelbudgetError):
            raise error.__cause__ from None
        raise


def resolve_budget(budget: Any, pool_size: int) -> int:
    """An integer count, or a fraction of the pool when 0 < budget < 1 (rounded, at least 1)."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise ConfigError(f"budget must be a number, got {budget!r}")
    if isinstance(budget, float) and 0 < budget < 1:
        return max(1, round(budget * pool_size))
    if isinstance(budget, float) and not budget.is_integer():
        raise ConfigError(f"budget must be an integer count or a fraction below 1, got {budget}")
    budget = int(budget)
    if budget <= 0:
        raise ConfigError(f"budget must be positive, got {budget}")
    if budget > pool_size:
        raise ConfigError(f"budget {budget} is larger than the pool ({pool_size} prompts)")
    return budget


def model_identity(model_cfg: DictConfig) -> dict[str, Any]:
    """The model config as it determines scores: local cache locations do not count."""

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "cache_dir"}
        return node

    return strip(OmegaConf.to_container(model_cfg, resolve=True))


def pool_scores(cfg: DictConfig, pool: Pool, required: bool) -> Scores | None:
    """Scores from the cache, or from a scoring pass when `required` (loading the model only then)."""
    settings: ScoringSettings = instantiate(cfg.scoring)
    identity = model_identity(cfg.model)
    if not required:
        return load_cached(cache_folder(pool, identity, settings, cfg.paths.score_cache_dir))
    trainer_factory = partial(
        instantiate(cfg.trainer), logger=False, enable_progress_bar=False, enable_checkpointing=False, use_distributed_sampler=False
    )
    return score_pool(pool, instantiate(cfg.model.loader), identity, settings, cfg.paths.score_cache_dir, trainer_factory)


def run_select(cfg: DictConfig) -> Selection:
    """Load and validate the pool, check the budget, score (cached), select, write the files."""
    data: TaskData = instantiate(cfg.dataset)
    pool = data.pool
    budget = resolve_budget(cfg.budget, len(pool))
    selector: Selector = instantiate(cfg.selector)
    selector.check_budget(pool.task_sizes(), budget)
    log.info("pool: %d prompts in %d tasks (%s); budget %d", len(pool), len(pool.task_sizes()), pool.source, budget)

    scores = pool_scores(cfg, pool, required=selector.needs_scores)
    if scores is not None:
        capped = int(scores.hit_max_tokens.sum())
        log.info("scores: %d of %d generations hit max_new_tokens", capped, len(scores))
    selection = selector.select(Candidates(pool.ids, pool.tasks, scores), budget, np.random.default_rng(cfg.seed))
    _check_selection(selection, pool, budget, selector.name)

    folder = Path(cfg.paths.output_dir)
    summary = write_selection_outputs(folder, pool, selection, scores, selector.name, budget)
    print(summary)
    print(f"wrote {folder / 'selection.jsonl'}, allocation.csv and allocation.png")
    return selection


def _check_selection(selection: Selection, pool: Pool, budget: int, name: str) -> None:
    """A selector bug must never reach annotators: exactly `budget` distinct, known ids."""
    known = set(pool.ids)
    if len(selection.ids) != budget or len(set(selection.ids)) != budget or not known.issuperset(selection.ids):
        raise AssertionError(f"selector {name} returned {len(selection.ids)} ids, not {budget} distinct pool ids")
