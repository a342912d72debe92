"""Score a pool once and cache the result on disk, keyed by what determines it; the same
discipline (`computed_once`: lock, claim, ranks) serves every cached model pass (prompt
sensitivity too).

Key = hash(model config, pool content, scoring settings). A pass writes one shard per group of
batches as soon as the group is done (atomically), so an interrupted pass resumes from its last
finished shard; the finished pass merges the shards into `scores.*` in pool order.

Under DDP each rank scores and writes the shards whose number is its rank modulo the world size;
rank 0 merges. Concurrent jobs (a sweep's seeds, selectors, budgets) share the cache: the first
to arrive takes a file lock on the key and scores, the others wait for it and read its result.
A job's main process decides for all its ranks: it claims the pass in a file naming the job, and
the other ranks join a pass only when it is their job's claim (else they wait for the scores).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import lightning as L
import numpy as np
from filelock import FileLock, Timeout

from labelbudget.data.schema import Pool
from labelbudget.distributed import barrier, is_main_process, job_identity
from labelbudget.errors import ConfigError
from labelbudget.inference.predict import (
    GreedyModule,
    PromptProgress,
    RankBatches,
    length_sorted_batches,
)
from labelbudget.io import atomic_write_text
from labelbudget.models.loading import LazyLoaded, LoadedModel
from labelbudget.scoring.scores import FORMAT as SCORES_FORMAT
from labelbudget.scoring.scores import NUMERIC_FIELDS, CorruptScores, Scores

log = logging.getLogger(__name__)

T = TypeVar("T")
CLAIM = "claimed-by"  # in a cache folder while a job's pass fills it: which job


@dataclass(frozen=True)
class ScoringSettings:
    """Everything about the pass that changes its numbers (batch size too: padding moves floats).

    max_new_tokens: the generation cap (OPEN in the paper; the data-efficiency paper uses 30).
    pooling: prompt embedding from the penultimate layer, 'mean' over prompt tokens or 'last'.
    max_prompt_tokens: longer prompts keep their last this many tokens (the end holds the
    question and the template's turn marker), so that one huge prompt cannot take the memory of
    a whole batch of its length.
    """

    max_new_tokens: int = 32
    pooling: str = "mean"
    batch_size: int = 32
    batches_per_shard: int = 8
    max_prompt_tokens: int = 2048


def clip_prompts(token_ids: list[list[int]], limit: int, setting: str) -> list[list[int]]:
    """Each prompt's last `limit` tokens; how many were cut is said once."""
    long = sum(len(ids) > limit for ids in token_ids)
    if long:
        log.warning(
            "%d of %d prompts are longer than %s=%d tokens: they keep their last %d",
            long,
            len(token_ids),
            setting,
            limit,
            limit,
        )
    return [ids[-limit:] for ids in token_ids]


def cache_key(pool: Pool, model_config: dict[str, Any], settings: Any) -> str:
    """Hash of what determines a model pass over the pool: the model, the pool, the settings (a dataclass)."""
    payload = json.dumps(
        {
            "format": SCORES_FORMAT,
            "model": model_config,
            "pool": pool.content_hash(),
            "scoring": asdict(settings),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class ShardWriter(L.Callback):
    """Collects predict outputs and writes each shard the moment its last batch arrives."""

    def __init__(self, folder: Path, shards: list[list[int]], ids: list[str], decode: Callable):
        self.folder = folder
        self.shard_of_row = {row: s for s, rows in enumerate(shards) for row in rows}
        self.missing = {s: len(rows) for s, rows in enumerate(shards)}
        self.pending: dict[int, list[dict]] = {}
        self.ids = ids
        self.decode = decode

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        """Keep the batch's scores; write its shard once every row of the shard is in."""
        shard = self.shard_of_row[int(outputs["rows"][0])]
        self.pending.setdefault(shard, []).append({k: v.cpu() for k, v in outputs.items()})
        self.missing[shard] -= len(outputs["rows"])
        if self.missing[shard] == 0:
            self._write(shard, self.pending.pop(shard))

    def _write(self, shard: int, outputs: list[dict]) -> None:
        rows = np.concatenate([o["rows"].numpy() for o in outputs])
        generations = [self.decode(t) for o in outputs for t in o["tokens"]]
        columns = {
            name: np.concatenate([o[name].numpy() for o in outputs])
            for name in (*NUMERIC_FIELDS, "embeddings")
        }
        Scores(ids=[self.ids[r] for r in rows], generations=generations, **columns).save(
            shard_stem(self.folder, shard)
        )


def shard_stem(folder: Path, shard: int) -> Path:
    """A shard's files' common path, without their suffix."""
    return folder / f"shard-{shard:05d}"


def cache_folder(
    pool: Pool, model_config: dict[str, Any], settings: ScoringSettings, cache_root: str | Path
) -> Path:
    """Where the pool's scores under this model and these settings are cached."""
    return Path(cache_root).expanduser() / cache_key(pool, model_config, settings)


def load_cached(folder: Path, ids: list[str]) -> Scores | None:
    """The finished scores of the pool with these `ids` in a cache folder, or None when the pool
    was not fully scored there. A damaged file is removed, and one whose ids are not the pool's
    in pool order is set aside (both with a warning): the pool is scored again, instead of every
    rerun failing on it."""
    stem = folder / "scores"
    scores = readable(stem)
    if scores is None or scores.ids == ids:
        return scores
    aside = set_aside(stem)
    log.warning(
        "%s does not hold the pool's ids in pool order (%d ids, the pool has %d): moved to %s, "
        "to be scored again",
        stem.with_suffix(".json"),
        len(scores.ids),
        len(ids),
        aside.with_suffix(".json"),
    )
    return None


def set_aside(stem: Path) -> Path:
    """Rename a score set's two files to the first free `<stem>-set-aside-<k>` stem, keeping it
    for inspection without it being read again."""
    k = 1
    while (aside := stem.with_name(f"{stem.name}-set-aside-{k}")).with_suffix(".json").exists():
        k += 1
    for suffix in (".safetensors", ".json"):
        if stem.with_suffix(suffix).exists():
            stem.with_suffix(suffix).rename(aside.with_suffix(suffix))
    return aside


def readable(stem: Path) -> Scores | None:
    """The score set saved at `stem`, or None when there is none or it is damaged (then removed,
    so that it is computed again instead of failing on every rerun)."""
    if not stem.with_suffix(".json").is_file():
        return None
    try:
        return Scores.load(stem)
    except CorruptScores as error:
        log.warning(
            "%s is damaged (%s): removed, to be scored again", error.source, error.__cause__
        )
        for suffix in (".json", ".safetensors"):
            stem.with_suffix(suffix).unlink(missing_ok=True)
        return None


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold the cache key's file lock while checking and filling it (a job's main process only:
    its other ranks take part in its pass, see `follow_main_process`)."""
    lock = FileLock(str(folder / ".lock"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except PermissionError as error:
        raise ConfigError(
            f"paths.score_cache_dir: {folder} is not writable ({error.strerror}), and the "
            "result it caches is not there yet; point paths.score_cache_dir at a writable folder"
        ) from error
    except Timeout:
        log.info("another job is computing %s; waiting for its result", folder)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def follow_main_process(
    folder: Path, read: Callable[[], T | None], poll_s: float = 1.0
) -> T | None:
    """A non-main rank's view of the cache: the result once published, or None as soon as its
    own job's main process has claimed the pass, so that this rank takes its share. Ranks
    started by a scheduler all at once must not decide alone: another job may be computing the
    same result."""
    while True:
        cached = read()
        if cached is not None:
            return cached
        claim = folder / CLAIM
        if claim.is_file() and claim.read_text() == job_identity():
            return None
        time.sleep(poll_s)


def computed_once(folder: Path, read: Callable[[], T | None], compute: Callable[[], T]) -> T:
    """The result cached in `folder` (`read`: None when absent), computed once across jobs and
    ranks: a job's main process takes the folder's lock, reads, and otherwise claims and computes;
    a job waiting on the lock reads the result the holder published. The job's other ranks take
    their share of their main process's pass (`compute` runs on every rank of the job: a
    Trainer pass split across them), or read the result another job published."""
    if not is_main_process():
        cached = follow_main_process(folder, read)
        return cached if cached is not None else compute()
    cached = read()  # a finished result needs no lock: a read-only cache serves it
    if cached is not None:
        return cached
    with exclusive(folder):
        cached = read()
        if cached is not None:
            return cached
        atomic_write_text(folder / CLAIM, job_identity())
        try:
            return compute()
        finally:
            (folder / CLAIM).unlink(missing_ok=True)


def score_pool(
    pool: Pool,
    loaded: LoadedModel | LazyLoaded,
    model_config: dict[str, Any],
    settings: ScoringSettings,
    cache_root: str | Path,
    trainer_factory: Callable[..., L.Trainer],
) -> Scores:
    """Scores for every pool prompt, in pool order: from the cache when present, else computed
    (resuming any finished shards). `loaded` may be a model not loaded yet, so that a cache hit
    never loads it and long prompts are found with its tokenizer alone."""
    folder = cache_folder(pool, model_config, settings, cache_root)
    return computed_once(
        folder,
        partial(load_cached, folder, pool.ids),
        partial(_score_into, folder, pool, loaded, model_config, settings, trainer_factory),
    )


def _score_into(
    folder: Path,
    pool: Pool,
    loaded: LoadedModel | LazyLoaded,
    model_config: dict[str, Any],
    settings: ScoringSettings,
    trainer_factory: Callable[..., L.Trainer],
) -> Scores:
    """The pass itself: the shards not yet on disk, each rank its own; rank 0 merges and publishes.
    The prompts are tokenized, and long ones clipped with a warning, before the weights load."""
    token_ids = clip_prompts(
        [loaded.template.encode_prompt(loaded.tokenizer, example) for example in pool],
        settings.max_prompt_tokens,
        "scoring.max_prompt_tokens",
    )
    batches = length_sorted_batches([len(t) for t in token_ids], settings.batch_size)
    step = settings.batches_per_shard
    shards = [batches[i : i + step] for i in range(0, len(batches), step)]
    todo = {s: group for s, group in enumerate(shards) if readable(shard_stem(folder, s)) is None}

    folder.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        meta = {
            "model": model_config,
            "scoring": asdict(settings),
            "pool_hash": pool.content_hash(),
            "n": len(pool),
        }
        atomic_write_text(folder / "meta.json", json.dumps(meta, indent=2, default=str))
    if todo:
        if not isinstance(loaded, LoadedModel):
            loaded = loaded()
        tokenizer = loaded.tokenizer
        rows_of_shard = [[row for batch in group for row in batch] for group in shards]
        decode = partial(tokenizer.decode, skip_special_tokens=True)
        trainer = trainer_factory(
            callbacks=[
                ShardWriter(folder, rows_of_shard, pool.ids, decode),
                PromptProgress("scoring"),
            ]
        )
        module = GreedyModule(
            loaded.model,
            settings.max_new_tokens,
            loaded.eos_token_ids,
            tokenizer.pad_token_id,
            settings.pooling,
        )
        trainer.predict(
            module,
            datamodule=RankBatches(token_ids, todo, tokenizer.pad_token_id),
            return_predictions=False,
        )
        barrier()  # every rank's shards are on disk
    if is_main_process():
        merged = Scores.concat([Scores.load(shard_stem(folder, s)) for s in range(len(shards))])
        position = {id_: i for i, id_ in enumerate(merged.ids)}
        merged.take([position[id_] for id_ in pool.ids]).save(folder / "scores")
        for s in range(len(shards)):
            for suffix in (".json", ".safetensors"):
                shard_stem(folder, s).with_suffix(suffix).unlink()
    barrier()  # the merged scores are published
    return load_cached(folder, pool.ids)
