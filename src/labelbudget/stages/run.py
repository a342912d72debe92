"""The run a stage works in, opened once: its folder, identity, model, tracker and record; and
the identity itself, what the run compares (`run_identity`).

A stage first checks everything that can fail on the user's input (the settings, the pool, the
budget, the selector's signals, the evaluations' inputs: no model yet), then opens its run and
reads top to bottom, as lightning-hydra-template's `train()` does:

    with Run.open(cfg, identity) as run:
        loaded = run.model()  # loaded on first use, one copy for scoring, fine-tuning, evaluation
        ...
        run.record(metrics, settings, data, evaluated)  # metrics.json, and the tracker
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig, OmegaConf

from labelbudget.configs import flat_settings, instantiate, recorded_config
from labelbudget.data.schema import Pool, TaskData
from labelbudget.distributed import is_main_process
from labelbudget.evaluation.base import Evaluation
from labelbudget.models.fingerprint import model_identity
from labelbudget.models.loading import LazyModel
from labelbudget.runs import RunFolder, RunIdentity, RunRecord
from labelbudget.scoring.cache import ScoringSettings, cache_folder, load_cached
from labelbudget.scoring.scorer import score_pool
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import Selector
from labelbudget.tracking.loggers import close_logger, open_logger

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One stage's run: what it writes where, under which identity, with which model and tracker.

    Attributes:
        cfg: the stage's composed config.
        identity: what the run compares (the report's row, W&B's group); None for a stage that
            records no run (estimate.py writes files of its own).
        folder: the run folder, `paths.output_dir`.
        model: the model, loaded on first use and kept.
        logger: the tracker the `logger` node chose, or None.
    """

    cfg: DictConfig
    identity: RunIdentity | None
    folder: RunFolder
    model: LazyModel
    logger: Any | None

    @classmethod
    @contextmanager
    def open(cls, cfg: DictConfig, identity: RunIdentity | None = None) -> Iterator[Run]:
        """The run of `cfg`; no model is loaded until `run.model()` is called.

        Args:
            cfg: the stage's composed config; `paths.output_dir` is the run folder, `logger`
                the tracker.
            identity: what the run compares; None for a stage that records no run (no tracker
                is opened then).

        Yields:
            The run, its tracker open; the tracker is closed however the stage ends.
        """
        try:
            logger = open_logger(cfg, identity) if identity is not None else None
            yield cls(
                cfg, identity, RunFolder(Path(cfg.paths.output_dir)), LazyModel(cfg.model), logger
            )
        finally:
            close_logger()

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.cfg.seed)

    @cached_property
    def model_identity(self) -> dict[str, Any]:
        """The model as it determines scores and adapters (`model_identity`)."""
        return model_identity(self.cfg.model, self.cfg.paths.cache_dir)

    def fit_trainer(self) -> Callable:
        """The configured Trainer's factory (`trainer` node), for fine-tuning."""
        return instantiate(self.cfg.trainer)

    def predict_trainer(self) -> Callable:
        """The configured Trainer's factory, set up for inference passes (no logger, our own
        progress bar)."""
        return partial(
            self.fit_trainer(),
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
        )

    def scores(self, pool: Pool, required: bool) -> Scores | None:
        """The pool's scores under this run's model and `scoring` settings.

        Args:
            pool: the prompts to score.
            required: whether to run the scoring pass where the cache lacks them (the model
                loads only then); else the cache's scores or None.

        Returns:
            The scores in pool order, or None where not required and not cached.
        """
        settings: ScoringSettings = instantiate(self.cfg.scoring)
        cache = self.cfg.paths.score_cache_dir
        if not required:
            return load_cached(cache_folder(pool, self.model_identity, settings, cache), pool.ids)
        scores = score_pool(
            pool, self.model, self.model_identity, settings, cache, self.predict_trainer()
        )
        log.info(
            "scores: %d of %d generations hit max_new_tokens",
            int(scores.hit_max_tokens.sum()),
            len(scores),
        )
        return scores

    def record(
        self,
        metrics: dict[str, float],
        settings: dict[str, Any],
        data: TaskData | None = None,
        evaluated: list[tuple[Evaluation, Any]] | None = None,
    ) -> None:
        """metrics.json in the run folder (what the report reads), and the metrics to the tracker.

        Args:
            metrics: every number the run measured.
            settings: what each evaluation used that the config does not say.
            data: the pool and test split, whose hashes tell a pool edited in place.
            evaluated: the evaluations run, whose headlines the report leads with.

        Raises:
            ValueError: the run was opened without an identity (it records no run).
        """
        if self.identity is None:
            raise ValueError("a run opened without an identity records nothing")
        record = RunRecord(
            self.identity,
            metrics,
            settings,
            recorded_config(self.cfg),
            data.record() if data is not None else None,
            tuple(e.headline for e, _ in evaluated) if evaluated is not None else None,
        )
        if is_main_process():
            self.folder.write(record)
        if self.logger is not None:
            self.logger.log_metrics(metrics)


def run_identity(
    cfg: DictConfig,
    dataset: str,
    budget: int = 0,
    selector: Selector | None = None,
    pool_size: int | None = None,
) -> RunIdentity:
    """What a run compares, for W&B grouping, metrics.json and the report. Budget 0 is the
    zero-shot row (the base model, as evaluate.py without an adapter grades it) and the whole
    pool (`pool_size`) the Full row, whatever the selector (all pick the same)."""
    if budget == 0:
        name, options = "zero-shot", {}
    elif budget == pool_size:
        name, options = "full", {}
    elif selector is None:
        raise ValueError(f"a run that buys {budget} labels names the selector that chose them")
    else:
        name, options = selector_choice(cfg, selector)
    return RunIdentity(dataset, name, options, budget, int(cfg.seed), cfg.model.name)


def selector_choice(cfg: DictConfig, selector: Selector) -> tuple[str, dict[str, Any]]:
    """The selector option chosen (`conf/selector/<choice>.yaml`) and the settings this run
    changed from that file, so that two variants of one selector are two rows of the report.
    Outside a Hydra app (a config composed in Python): the selector's registered name."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    if not (HydraConfig.initialized() and GlobalHydra.instance().is_initialized()):
        return selector.name, {}
    choice = HydraConfig.get().runtime.choices.get("selector")
    chosen = flat_settings(OmegaConf.to_container(cfg.selector, resolve=True))
    # the app's config with that option alone, on the run's search path (a selector of the
    # user's own may live outside conf/)
    quoted = [
        "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
        for path in HydraConfig.get().searchpath
    ]
    searchpath = f"hydra.searchpath=[{','.join(quoted)}]"
    app = HydraConfig.get().job.config_name
    default = compose(config_name=app, overrides=[searchpath, f"selector={choice}"]).selector
    default = flat_settings(OmegaConf.to_container(default, resolve=True))
    return choice, {
        key: value for key, value in chosen.items() if default.get(key, "<absent>") != value
    }
