"""The cache of model passes over a pool, on disk, keyed by what determines them: the model
config, the pool's content and the pass's settings (`ScoringSettings` for the scoring pass). One
discipline (`computed_once`: lock, claim, ranks) serves every cached pass (the scoring pass of
`scoring.scorer`, prompt sensitivity): concurrent jobs (a sweep's seeds, selectors, budgets)
share it, the first to arrive takes a file lock on the key and computes, the others wait for it
and read its result. A job's main process decides for all its ranks: it claims the pass in a
file naming the job, and the other ranks join a pass only when it is their job's claim (else
they wait for the result). A damaged or mismatched file is removed or set aside, never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from filelock import FileLock, Timeout

from labelbudget.data.schema import Pool
from labelbudget.distributed import is_main_process, job_identity
from labelbudget.errors import ConfigError
from labelbudget.io import atomic_write_text
from labelbudget.scoring.scores import FORMAT as SCORES_FORMAT
from labelbudget.scoring.scores import CorruptScores, Scores

log = logging.getLogger(__name__)

T = TypeVar("T")
CLAIM = "claimed-by"  # in a cache folder while a job's pass fills it: which job


@dataclass(frozen=True)
class ScoringSettings:
    """Everything about the scoring pass that changes its numbers (batch size too: padding moves
    floats), and so part of its cache key. It lives beside the key, not the pass, because every
    run records its `_target_`: a study resumes only under the settings it ran with.

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
