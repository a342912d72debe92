"""CoS-Low: batched per-example gradients equal an independent computation, one example at a
time; the pairwise median is the median of the 496 pairs computed directly; the low-confidence
sample is the documented one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from labelbudget.data.schema import Example
from labelbudget.efficiency.coslow import (
    gradient_signals,
    low_confidence_sample,
    pairwise_cosines,
    per_example_gradients,
)
from labelbudget.errors import ConfigError
from labelbudget.models.tiny import build_tiny_llama
from labelbudget.training.data import IGNORE_INDEX, RightPadCollator, encode_sft
from labelbudget.training.lora import attach_lora

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_batch(b_init_zero: bool):
    tiny = build_tiny_llama()
    model = attach_lora(
        tiny.model, rank=4, alpha=8, dropout=0.0, target_modules=ALL_PROJECTIONS, seed=3
    ).eval()
    if not b_init_zero:  # a trained adapter: lora_A gets gradient too
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    examples = [
        Example(id=str(i), task="t", prompt=p, response=r)
        for i, (p, r) in enumerate(
            [
                ("2+2=", "4"),
                ("Name a colour please.", "red or blue"),
                ("x", "a much longer answer here"),
                ("Hi", "yo"),
            ]
        )
    ]
    rows = [encode_sft(tiny.template, tiny.tokenizer, e, 64) for e in examples]
    return model, RightPadCollator(tiny.tokenizer.pad_token_id)(rows)


def reference_gradients(model, batch) -> torch.Tensor:
    """Written here, apart from src: each example alone, unpadded; its loss is the mean of
    -log p(token) over the answer tokens, the logits at t predicting the token at t + 1."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        ids, labels = ids[mask.bool()], labels[mask.bool()]
        log_probs = torch.log_softmax(model(input_ids=ids[None]).logits[0].double(), dim=-1)
        answer = [t for t in range(1, len(ids)) if labels[t] != IGNORE_INDEX]
        loss = -sum(log_probs[t - 1, ids[t]] for t in answer) / len(answer)
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]).float())
    return torch.stack(rows)


@pytest.mark.parametrize("b_init_zero", [True, False])
def test_batched_per_example_gradients_equal_an_independent_computation(b_init_zero):
    model, batch = lora_batch(b_init_zero)
    batched = per_example_gradients(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    reference = reference_gradients(model, batch)
    assert batched.shape == reference.shape and batched.shape[0] == 4
    assert reference.abs().max() > 0
    torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-4)
    n_a = sum(p.numel() for n, p in model.named_parameters() if "lora_A" in n)
    if b_init_zero:  # fresh adapters: only lora_B carries gradient (docs/methods.md, section B)
        assert (batched.abs().sum(0) > 0).sum() <= batched.shape[1] - n_a


def test_median_over_the_496_pairs_equals_a_direct_computation():
    vectors = torch.randn(32, 50, generator=torch.Generator().manual_seed(0))
    direct = [
        float(torch.nn.functional.cosine_similarity(vectors[i], vectors[j], dim=0))
        for i, j in itertools.combinations(range(32), 2)
    ]
    assert len(pairwise_cosines(vectors)) == 496
    np.testing.assert_allclose(np.sort(pairwise_cosines(vectors)), np.sort(direct), atol=1e-6)
    signals = gradient_signals(vectors)
    assert (
        signals.cosine == pytest.approx(float(np.median(direct)), abs=1e-6)
        and signals.n_pairs == 496
    )
    assert signals.mean_gradient_norm == pytest.approx(float(vectors.norm(dim=1).mean()), rel=1e-6)


def test_identical_and_opposite_gradients():
    v = torch.tensor([[1.0, 2.0], [2.0, 4.0], [-1.0, -2.0]])
    assert pairwise_cosines(v).tolist() == pytest.approx([1.0, -1.0, -1.0])


def test_low_confidence_sample_draws_from_the_lowest_fraction():
    confidence = np.arange(100, dtype=float)[::-1] / 100  # row 99 is the least confident
    rows = low_confidence_sample(confidence, 0.1, 5, np.random.default_rng(0))
    assert len(set(rows)) == 5 and set(rows) <= set(range(90, 100))
    assert list(rows) == list(low_confidence_sample(confidence, 0.1, 5, np.random.default_rng(0)))
    # 10% of 100 is 10 < 32: the 32 least confident, all of them
    assert set(low_confidence_sample(confidence, 0.1, 32, np.random.default_rng(1))) == set(
        range(68, 100)
    )
    with pytest.raises(ConfigError, match="needs 32 examples but the task has 20"):
        low_confidence_sample(confidence[:20], 0.1, 32, np.random.default_rng(0))
