"""The embedded model end to end: GGUF conversion (cached), chat template, real scores."""

from __future__ import annotations

import os
from functools import partial

import lightning as L
import numpy as np
import pytest

from labelbudget.data.synthetic import build_synthetic_suite
from labelbudget.models.loading import convert_smollm2, load_smollm2
from labelbudget.models.templates import ChatTemplate
from labelbudget.scoring.cache import ScoringSettings
from labelbudget.scoring.scorer import score_pool

pytestmark = pytest.mark.slow
MODEL_CACHE = os.path.join(
    os.environ.get("LABELBUDGET_CACHE", os.path.expanduser("~/.cache/labelbudget")), "models"
)


@pytest.fixture(scope="module")
def smollm2():
    return load_smollm2(MODEL_CACHE, ChatTemplate())


def test_conversion_is_cached_and_reloads_as_plain_checkpoint(smollm2):
    folder = convert_smollm2(MODEL_CACHE)
    assert (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))
    assert smollm2.model.config.num_hidden_layers == 30 and smollm2.model.config.hidden_size == 576
    assert smollm2.eos_token_ids == [smollm2.tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_chat_template_wraps_the_prompt_as_a_user_turn(smollm2):
    example = build_synthetic_suite(tasks=["arith_add_small"]).pool[0]
    text = smollm2.tokenizer.decode(smollm2.template.encode_prompt(smollm2.tokenizer, example))
    assert text.endswith(f"<|im_start|>user\n{example.prompt}<|im_end|>\n<|im_start|>assistant\n")


def test_scores_of_real_prompts(smollm2, tmp_path):
    suite = build_synthetic_suite(
        tasks=["str_repeat_word", "arith_mul_two_digit"], pool_sizes="equal", pool_per_task=4
    )
    trainer = partial(
        L.Trainer,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    scores = score_pool(
        suite.pool,
        smollm2,
        {"name": "smollm2"},
        ScoringSettings(max_new_tokens=16, batch_size=4),
        tmp_path,
        trainer,
    )
    assert scores.ids == suite.pool.ids
    assert scores.embeddings.shape == (8, 576)
    assert (
        np.all(scores.seq_logprob <= 0)
        and np.all(scores.n_tokens >= 1)
        and np.all(scores.n_tokens <= 16)
    )
    assert np.all((scores.min_margin >= 0) & (scores.min_margin <= scores.mean_margin + 1e-9))
    assert all(g.strip() for g in scores.generations)
    np.testing.assert_allclose(scores.mean_logprob * scores.n_tokens, scores.seq_logprob, rtol=1e-9)
    # the chat model ends its turn with <|im_end|>: short answers stop before the cap
    repeat = np.array([i.startswith("str_repeat_word") for i in scores.ids])
    assert not scores.hit_max_tokens[repeat].any()
