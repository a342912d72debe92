"""What the stages share: building objects from config, the model that loads on first use, the
trainer for inference passes, the run's identity, logger and metrics.json, and the evaluations.

Every check that can fail on the user's input runs before any model is loaded: the settings,
the pool, the budget and the selector's signals in `stages.select.prepare`, the evaluations'
inputs in `prepare_evaluations`.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, Callable

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from labelbudget.configs import flat_settings, recorded_config
from labelbudget.data.schema import Pool, TaskData
from labelbudget.distributed import is_main_process, print_once
from labelbudget.errors import ConfigError, LabelbudgetError
from labelbudget.evaluation.base import EvalContext, Evaluation
from labelbudget.models.fingerprint import checkpoint_digest
from labelbudget.models.loading import LoadedModel
from labelbudget.runs import RunFolder, RunIdentity, RunRecord
from labelbudget.scoring.cache import (
    ScoringSettings,
    cache_folder,
    load_cached,
    score_pool,
)
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import Selector
from labelbudget.tracking.loggers import tracker_names

log = logging.getLogger(__name__)


def instantiate(node: Any, *args, **kwargs) -> Any:
    """Hydra's instantiate, but our own errors reach the user as they are, not wrapped."""
    try:
        return hydra_instantiate(node, *args, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, LabelbudgetError):
            raise error.__cause__ from None
        raise


def model_identity(model_cfg: DictConfig, cache_dir: str | Path) -> dict[str, Any]:
    """The model config as it determines scores: local cache locations, the list of linear
    layers (a check on LoRA settings) and the tokenizer-only loader (`LazyModel` checks that it
    loads the loader's own tokenizer) do not count. A local checkpoint (`name_or_path` a folder
    or file) counts by its content, weights and tokenizer files (`checkpoint_digest`, memo in
    `cache_dir`), so that files replaced in place are new scores, not the old model's."""

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "cache_dir"}
        return node

    model = OmegaConf.to_container(model_cfg, resolve=True)
    identity = strip({k: v for k, v in model.items() if k not in ("linear_layers", "tokenizer")})
    for part, key in (("loader", "checkpoint_sha256"), ("tokenizer", "tokenizer_sha256")):
        local = (model.get(part) or {}).get("name_or_path")
        if part == "tokenizer" and local == model["loader"].get("name_or_path"):
            continue  # the checkpoint's own tokenizer, hashed with it
        if isinstance(local, str) and Path(local).expanduser().exists():
            identity[key] = checkpoint_digest(Path(local).expanduser(), Path(cache_dir))
    return identity


class LazyModel:
    """Loads the model on first use and keeps it: scoring (on a cache miss), fine-tuning and
    evaluation share one copy, and a run that needs none never loads it. Its tokenizer and
    template come without the weights (`LazyLoaded`), from `model.tokenizer` where the model
    config has one."""

    def __init__(self, model_cfg: DictConfig):
        self.model_cfg = model_cfg
        self.loaded: LoadedModel | None = None
        self._tokenizer = None
        self._template = None

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, without loading the weights where `model.tokenizer` names one."""
        if self.loaded is not None:
            return self.loaded.tokenizer
        if self._tokenizer is None:
            if self.model_cfg.get("tokenizer") is None:
                return self().tokenizer
            self._tokenizer = instantiate(self.model_cfg.tokenizer)()
        return self._tokenizer

    @property
    def template(self) -> Any:
        """The prompt template, without loading the weights."""
        if self.loaded is not None:
            return self.loaded.template
        if self._template is None:
            self._template = instantiate(self.model_cfg.loader.template)
        return self._template

    def __call__(self) -> LoadedModel:
        """The model, loaded on the first call and kept."""
        if self.loaded is None:
            log.info("loading model %s", self.model_cfg.name)
            self.loaded = instantiate(self.model_cfg.loader)()
            if (
                self._tokenizer is not None
                and self._tokenizer.get_vocab() != self.loaded.tokenizer.get_vocab()
            ):
                raise ConfigError(
                    "model.tokenizer loads another tokenizer than model.loader's model: "
                    "point it at the same model (it only serves to check prompt lengths early)"
                )
        return self.loaded


def predict_trainer(cfg: DictConfig) -> Callable:
    """The configured Trainer, set up for inference passes (no logger, our own progress bar)."""
    return partial(
        instantiate(cfg.trainer),
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )


def pool_scores(
    cfg: DictConfig, pool: Pool, required: bool, model: LazyModel | None = None
) -> Scores | None:
    """Scores from the cache, or from a scoring pass when `required` (loading the model only then)."""
    settings: ScoringSettings = instantiate(cfg.scoring)
    identity = model_identity(cfg.model, cfg.paths.cache_dir)
    if not required:
        return load_cached(
            cache_folder(pool, identity, settings, cfg.paths.score_cache_dir), pool.ids
        )
    scores = score_pool(
        pool,
        model or LazyModel(cfg.model),
        identity,
        settings,
        cfg.paths.score_cache_dir,
        predict_trainer(cfg),
    )
    log.info(
        "scores: %d of %d generations hit max_new_tokens",
        int(scores.hit_max_tokens.sum()),
        len(scores),
    )
    return scores


def run_identity(cfg: DictConfig, data: TaskData, budget: int, selector: Selector) -> RunIdentity:
    """What a run compares, for W&B grouping, metrics.json and the report. Budget 0 is the
    zero-shot row and the whole pool the Full row, whatever the selector (all pick the same)."""
    name, options = selector_choice(cfg, selector)
    if budget in (0, len(data.pool)):
        name, options = ("zero-shot" if budget == 0 else "full"), {}
    return RunIdentity(data.name, name, options, budget, int(cfg.seed), cfg.model.name)


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


def make_logger(cfg: DictConfig, identity: RunIdentity):
    """The configured tracker (`logger` node), named from the run's identity; None without one."""
    if not cfg.get("logger"):
        return None
    logger = instantiate(cfg.logger)(**tracker_names(identity))
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def write_metrics(
    folder: Path,
    identity: RunIdentity,
    metrics: dict[str, float],
    settings: dict[str, Any],
    logger,
    cfg: DictConfig | None = None,
    data: TaskData | None = None,
    evaluated: list[tuple[Evaluation, Any]] | None = None,
) -> None:
    """metrics.json in the run folder (what the report reads) and the same numbers to the tracker.
    `config` is the run's whole config but for where it writes (paths, logger): the report puts
    runs that differ in any of it into separate tables; `data`'s hashes tell a pool edited in
    place, which the config cannot; `evaluated` names the headlines the report leads with."""
    record = RunRecord(
        identity,
        metrics,
        settings,
        recorded_config(cfg) if cfg is not None else None,
        data.record() if data is not None else None,
        tuple(e.headline for e, _ in evaluated) if evaluated is not None else None,
    )
    if is_main_process():
        RunFolder(folder).write(record)
    if logger is not None:
        logger.log_metrics(metrics)


def evaluations(cfg: DictConfig) -> list[Evaluation]:
    """The evaluations named in the `eval` node, in order (`eval=[tasks,mmlu,bbh]`).

    Plain keys beside them (`eval.data_dir`, `eval.limit_per_subject`) are shortcuts for the
    settings of the one evaluation chosen: `python evaluate.py eval=mmlu eval.data_dir=...`.
    With several they would be ambiguous, so they are refused there.
    """
    node = cfg.get("eval") or {}
    names = [key for key, value in node.items() if isinstance(value, DictConfig)]
    shortcuts = {
        key: value
        for key, value in node.items()
        if not isinstance(value, DictConfig) and value is not None
    }
    if shortcuts and len(names) != 1:
        key = next(iter(shortcuts))
        raise ConfigError(
            f"eval.{key} is a shortcut for a single evaluation; with {names} set eval.<name>.{key} instead"
        )
    built = [instantiate(node[name], _convert_="all", **shortcuts) for name in names]
    for name, evaluation in zip(names, built):
        if not isinstance(getattr(evaluation, "headline", None), str):
            raise ConfigError(
                f"eval.{name}: {type(evaluation).__name__} names no `headline` metric "
                "(a class attribute, e.g. headline = 'mmlu/micro')"
            )
    return built


def prepare_evaluations(
    evals: list[Evaluation], data: TaskData | None, trained_on: dict[str, Any] | None
) -> list[tuple[Evaluation, Any]]:
    """Each evaluation with its inputs, checked and loaded before any model loads."""
    if not evals:
        raise ConfigError(
            "no evaluation chosen: add eval=tasks, eval=mmlu, eval=bbh or eval=[tasks,mmlu,bbh]"
        )
    return [(evaluation, evaluation.prepare(data, trained_on)) for evaluation in evals]


def run_evaluations(
    cfg: DictConfig, prepared: list[tuple[Evaluation, Any]], loaded: LoadedModel
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run each evaluation on `loaded`, print its table; all metrics and each one's settings."""
    context = EvalContext(loaded, predict_trainer(cfg), Path(cfg.paths.output_dir))
    metrics: dict[str, float] = {}
    settings: dict[str, Any] = {}
    for evaluation, inputs in prepared:
        result = evaluation.run(context, inputs)
        print_once(f"\n{evaluation.name}\n{result.table}")
        metrics.update(result.metrics)
        settings[evaluation.name] = result.settings
    return metrics, settings


def headline(prepared: list[tuple[Evaluation, Any]], metrics: dict[str, float]) -> str:
    """The one-line summary: each evaluation's headline number."""
    shown = [e.headline for e, _ in prepared if e.headline in metrics]
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in shown) or "no headline metric"
