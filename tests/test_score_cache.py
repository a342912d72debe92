"""The score cache: hits skip the model, an interrupted pass resumes to the same numbers,
corrupt files are refused with file, row and field."""

from __future__ import annotations

from dataclasses import fields, replace
from functools import partial

import lightning as L
import numpy as np
import pytest

from conftest import cpu_trainer
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import ConfigError, DataError
from labelbudget.models.templates import PlainTemplate
from labelbudget.models.tiny import build_tiny_llama, byte_level_tokenizer
from labelbudget.scoring.cache import ScoringSettings, cache_folder
from labelbudget.scoring.scorer import score_pool
from labelbudget.scoring.scores import CorruptScores, Scores

SETTINGS = ScoringSettings(max_new_tokens=4, batch_size=4, batches_per_shard=2)
MODEL_ID = {"name": "tiny_llama", "seed": 0}


def make_pool(n: int = 30) -> Pool:
    return Pool(
        [
            Example(id=f"ex{i}", task=f"t{i % 3}", prompt="tok " * (i % 9 + 1) + str(i))
            for i in range(n)
        ],
        "test-pool",
    )


def trainer_factory(extra_callbacks=(), **kwargs):
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), *extra_callbacks]
    return cpu_trainer(**kwargs)


class CrashAfter(L.Callback):
    """Simulates a killed job: raises after `batches` predict batches."""

    def __init__(self, batches: int):
        self.batches, self.seen = batches, 0

    def on_predict_batch_end(self, *args, **kwargs):
        self.seen += 1
        if self.seen == self.batches:
            raise KeyboardInterrupt


class CountPrompts(L.Callback):
    def __init__(self):
        self.prompts = 0

    def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self.prompts += len(batch["rows"])


def assert_same_scores(a: Scores, b: Scores) -> None:
    assert a.ids == b.ids and a.generations == b.generations
    for f in fields(Scores):
        if f.name not in ("ids", "generations"):
            np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)


def test_interrupted_pass_resumes_from_finished_shards_to_identical_scores(tmp_path):
    pool, model = make_pool(), build_tiny_llama()
    reference = score_pool(pool, model, MODEL_ID, SETTINGS, tmp_path / "clean", trainer_factory)
    assert reference.ids == pool.ids

    # 30 prompts, batches of 4 -> 8 batches, 2 per shard -> 4 shards; die in batch 5 (shard 3)
    crashing = partial(trainer_factory, extra_callbacks=[CrashAfter(5)])
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        score_pool(pool, model, MODEL_ID, SETTINGS, tmp_path / "resumed", crashing)
    folder = cache_folder(pool, MODEL_ID, SETTINGS, tmp_path / "resumed")
    assert sorted(p.name for p in folder.glob("shard-*.json")) == [
        "shard-00000.json",
        "shard-00001.json",
    ]

    counter = CountPrompts()
    resumed = score_pool(
        pool,
        model,
        MODEL_ID,
        SETTINGS,
        tmp_path / "resumed",
        partial(trainer_factory, extra_callbacks=[counter]),
    )
    assert counter.prompts == 30 - 16  # only the two unfinished shards were scored again
    assert_same_scores(resumed, reference)
    assert not list(folder.glob("shard-*"))  # merged into scores.*


def test_cache_hit_never_loads_the_model(tmp_path):
    pool = make_pool()
    first = score_pool(pool, build_tiny_llama(), MODEL_ID, SETTINGS, tmp_path, trainer_factory)

    def loader():
        raise AssertionError("the model was loaded on a cache hit")

    assert_same_scores(
        score_pool(pool, loader, MODEL_ID, SETTINGS, tmp_path, trainer_factory), first
    )


def test_key_changes_with_model_pool_and_settings(tmp_path):
    pool = make_pool()
    base = cache_folder(pool, MODEL_ID, SETTINGS, tmp_path)
    assert cache_folder(make_pool(), MODEL_ID, SETTINGS, tmp_path) == base
    assert cache_folder(make_pool(29), MODEL_ID, SETTINGS, tmp_path) != base
    assert cache_folder(pool, {**MODEL_ID, "seed": 1}, SETTINGS, tmp_path) != base
    assert cache_folder(pool, MODEL_ID, replace(SETTINGS, max_new_tokens=5), tmp_path) != base
    # hidden responses do not change what the model sees, so they keep the key
    revealed = Pool([replace(e, response="x") for e in pool], "test-pool")
    assert cache_folder(revealed, MODEL_ID, SETTINGS, tmp_path) == base


def test_non_finite_value_in_cache_is_refused_with_file_row_and_field(tmp_path):
    pool = make_pool(6)
    scores = score_pool(pool, build_tiny_llama(), MODEL_ID, SETTINGS, tmp_path, trainer_factory)
    broken = scores.mean_entropy.copy()
    broken[3] = np.nan
    replace(scores, mean_entropy=broken).save(tmp_path / "bad")
    with pytest.raises(DataError) as error:
        Scores.load(tmp_path / "bad")
    message = str(error.value)
    assert (
        "bad.safetensors" in message
        and "row 4" in message
        and "'mean_entropy'" in message
        and "'ex3'" in message
    )


def test_a_damaged_cache_file_is_named_removed_and_rescored(tmp_path, caplog):
    pool, model = make_pool(), build_tiny_llama()
    reference = score_pool(pool, model, MODEL_ID, SETTINGS, tmp_path / "clean", trainer_factory)
    # an interrupted pass leaves shards 0 and 1; shard 1 is then truncated on disk
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        score_pool(
            pool,
            model,
            MODEL_ID,
            SETTINGS,
            tmp_path / "cache",
            partial(trainer_factory, extra_callbacks=[CrashAfter(5)]),
        )
    folder = cache_folder(pool, MODEL_ID, SETTINGS, tmp_path / "cache")
    shard = folder / "shard-00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:-7])
    counter = CountPrompts()
    with caplog.at_level("WARNING"):
        resumed = score_pool(
            pool,
            model,
            MODEL_ID,
            SETTINGS,
            tmp_path / "cache",
            partial(trainer_factory, extra_callbacks=[counter]),
        )
    assert (
        "shard-00001.safetensors is damaged" in caplog.text
        and "removed, to be scored again" in caplog.text
    )
    assert counter.prompts == 30 - 8  # shard 0 kept; the damaged shard 1 scored again with 2 and 3
    assert_same_scores(resumed, reference)
    # the finished file, one byte flipped: named, removed, rescored, never a traceback on every rerun
    final = folder / "scores.safetensors"
    data = bytearray(final.read_bytes())
    data[-1] ^= 0xFF
    final.write_bytes(bytes(data))
    with pytest.raises(CorruptScores, match="scores.safetensors: is damaged .*SHA-256"):
        Scores.load(folder / "scores")
    assert_same_scores(
        score_pool(pool, model, MODEL_ID, SETTINGS, tmp_path / "cache", trainer_factory), reference
    )


def test_a_score_file_with_reordered_ids_is_named_set_aside_and_rescored(tmp_path, caplog):
    pool, model = make_pool(6), build_tiny_llama()
    reference = score_pool(pool, model, MODEL_ID, SETTINGS, tmp_path, trainer_factory)
    folder = cache_folder(pool, MODEL_ID, SETTINGS, tmp_path)
    reference.take([1, 0, 2, 3, 4, 5]).save(folder / "scores")  # a valid file, ids out of order
    counter = CountPrompts()
    with caplog.at_level("WARNING"):
        rescored = score_pool(
            pool,
            model,
            MODEL_ID,
            SETTINGS,
            tmp_path,
            partial(trainer_factory, extra_callbacks=[counter]),
        )
    assert f"{folder / 'scores.json'} does not hold the pool's ids in pool order" in caplog.text
    assert counter.prompts == 6  # scored again, not read
    assert_same_scores(rescored, reference)
    kept = Scores.load(folder / "scores-set-aside-1")  # the odd file is kept, not deleted
    assert kept.ids == ["ex1", "ex0", "ex2", "ex3", "ex4", "ex5"]


class ReadOnlyLock:
    """A lock file on a read-only cache (a shared, read-only mount): opening it fails."""

    def __init__(self, path):
        self.path = path

    def acquire(self, timeout=None):
        raise PermissionError(13, "Read-only file system", self.path)


def test_a_read_only_cache_serves_what_it_holds_and_names_the_key_for_what_it_lacks(
    tmp_path, monkeypatch
):
    import labelbudget.scoring.cache as cache

    pool, model = make_pool(6), build_tiny_llama()
    reference = score_pool(pool, model, MODEL_ID, SETTINGS, tmp_path, trainer_factory)
    monkeypatch.setattr(cache, "FileLock", ReadOnlyLock)
    hit = score_pool(pool, lambda: None, MODEL_ID, SETTINGS, tmp_path, trainer_factory)
    assert_same_scores(hit, reference)  # every score is there: read without the lock
    with pytest.raises(ConfigError, match=r"^paths.score_cache_dir: .* is not writable"):
        score_pool(make_pool(5), model, MODEL_ID, SETTINGS, tmp_path, trainer_factory)


class NotLoadedYet:
    """A model whose tokenizer comes without its weights; notes whether the clipping warning
    was out when the weights were asked for."""

    def __init__(self, caplog):
        self.caplog, self.warned_before_loading = caplog, None
        self.tokenizer, self.template = byte_level_tokenizer(), PlainTemplate()

    def __call__(self):
        self.warned_before_loading = "longer than scoring.max_prompt_tokens" in self.caplog.text
        return build_tiny_llama()


def test_a_huge_prompt_is_clipped_from_the_left_and_counted_before_the_model_loads(
    tmp_path, caplog
):
    pool = Pool(
        [*make_pool(5), Example(id="huge", task="t", prompt="word " * 20_000 + "What is 2+2?")],
        "test-pool",
    )
    settings = replace(SETTINGS, max_prompt_tokens=64)
    model = NotLoadedYet(caplog)
    with caplog.at_level("WARNING"):
        scores = score_pool(pool, model, MODEL_ID, settings, tmp_path, trainer_factory)
    assert (
        "1 of 6 prompts are longer than scoring.max_prompt_tokens=64 tokens: they keep their last 64"
        in caplog.text
    )
    assert model.warned_before_loading is True
    assert scores.ids == pool.ids and np.isfinite(scores.embeddings).all()
    # the other prompts, all shorter than 64 tokens, score as they do unclipped
    unclipped = score_pool(
        make_pool(5), build_tiny_llama(), MODEL_ID, SETTINGS, tmp_path / "plain", trainer_factory
    )
    np.testing.assert_allclose(scores.embeddings[:5], unclipped.embeddings, atol=1e-5)
