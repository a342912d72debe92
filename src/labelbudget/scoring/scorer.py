"""The scoring pass: each pool prompt's greedy answer, its confidences and its embedding, from
one batched generation, cached (`scoring.cache`).

A pass writes one shard per group of batches as soon as the group is done (atomically), so an
interrupted pass resumes from its last finished shard; the finished pass merges the shards into
`scores.*` in pool order. Under DDP each rank scores and writes the shards whose number is its
rank modulo the world size; rank 0 merges.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np

from labelbudget.data.schema import Pool
from labelbudget.distributed import barrier, is_main_process
from labelbudget.inference.predict import (
    GreedyModule,
    PromptProgress,
    RankBatches,
    length_sorted_batches,
)
from labelbudget.io import atomic_write_text
from labelbudget.models.loading import LazyLoaded, LoadedModel
from labelbudget.scoring.cache import (
    ScoringSettings,
    cache_folder,
    computed_once,
    load_cached,
    readable,
    shard_stem,
)
from labelbudget.scoring.scores import NUMERIC_FIELDS, Scores

log = logging.getLogger(__name__)


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
