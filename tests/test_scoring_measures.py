"""The one-pass scorer against an independent recomputation from a tiny model's full forward."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import transformers.utils.logging  # noqa: F401  (adds Logger.warning_once)

from labelbudget.inference.generation import greedy_score
from labelbudget.models.tiny import build_tiny_llama


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_llama(seed=3)


def encode(tiny, texts):
    return tiny.tokenizer(texts, padding=True, return_tensors="pt")


def reference_measures(model, prompt_ids: list[int], generated: list[int]):
    """Recompute by hand: one forward over prompt + answer (no cache), softmax in float64."""
    ids = torch.tensor([prompt_ids + generated])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    logits = (
        out.logits[0, len(prompt_ids) - 1 : len(prompt_ids) - 1 + len(generated)].double().numpy()
    )
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    chosen = probs[np.arange(len(generated)), generated]
    top2 = np.sort(probs, axis=-1)[:, -2:]
    embedding = out.hidden_states[-2][0, : len(prompt_ids)].double().numpy().mean(0)
    return {
        "argmax": probs.argmax(-1),
        "seq_logprob": np.log(chosen).sum(),
        "mean_prob": chosen.mean(),
        "mean_entropy": (-(probs * np.log(np.clip(probs, 1e-300, None))).sum(-1)).mean(),
        "mean_margin": (top2[:, 1] - top2[:, 0]).mean(),
        "min_margin": (top2[:, 1] - top2[:, 0]).min(),
        "embedding": embedding,
    }


def test_scores_equal_hand_computation_from_logits(tiny):
    texts = ["The quick brown fox", "hi", "What is 2 + 2?"]
    batch = encode(tiny, texts)
    result = greedy_score(
        tiny.model,
        batch["input_ids"],
        batch["attention_mask"],
        6,
        [10**6],
        tiny.tokenizer.pad_token_id,
    )
    for row, text in enumerate(texts):
        prompt = tiny.tokenizer(text)["input_ids"]
        generated = result["tokens"][row].tolist()
        ref = reference_measures(tiny.model, prompt, generated)
        assert generated == ref["argmax"].tolist()  # greedy: each token is the argmax
        assert result["seq_logprob"][row].item() == pytest.approx(ref["seq_logprob"], rel=1e-4)
        assert result["mean_logprob"][row].item() == pytest.approx(ref["seq_logprob"] / 6, rel=1e-4)
        assert result["mean_prob"][row].item() == pytest.approx(ref["mean_prob"], rel=1e-4)
        assert result["mean_entropy"][row].item() == pytest.approx(ref["mean_entropy"], rel=1e-4)
        assert result["mean_margin"][row].item() == pytest.approx(
            ref["mean_margin"], rel=1e-3, abs=1e-6
        )
        assert result["min_margin"][row].item() == pytest.approx(
            ref["min_margin"], rel=1e-3, abs=1e-6
        )
        np.testing.assert_allclose(
            result["embeddings"][row].numpy(), ref["embedding"], rtol=1e-4, atol=1e-5
        )
    assert result["n_tokens"].tolist() == [6, 6, 6]
    assert result["hit_max_tokens"].tolist() == [True, True, True]


def test_generation_stops_at_end_of_sequence_and_counts_it(tiny):
    batch = encode(tiny, ["The quick brown fox", "hi"])
    free = greedy_score(
        tiny.model,
        batch["input_ids"],
        batch["attention_mask"],
        6,
        [10**6],
        tiny.tokenizer.pad_token_id,
    )
    # declare row 0's third generated token an end-of-sequence token: row 0 must stop there
    eos = int(free["tokens"][0, 2])
    stopped = greedy_score(
        tiny.model,
        batch["input_ids"],
        batch["attention_mask"],
        6,
        [eos],
        tiny.tokenizer.pad_token_id,
    )
    first_eos_1 = [i for i, t in enumerate(free["tokens"][1].tolist()) if t == eos]
    first_eos_0 = free["tokens"][0].tolist().index(eos)
    assert stopped["n_tokens"][0].item() == first_eos_0 + 1
    assert not stopped["hit_max_tokens"][0]
    assert stopped["tokens"][0, first_eos_0 + 1 :].eq(tiny.tokenizer.pad_token_id).all()
    expected_logprob = free["seq_logprob"][0].item()
    # the stopped row's measures are the prefix of the free run's (same greedy path)
    prefix = reference_measures(
        tiny.model,
        tiny.tokenizer("The quick brown fox")["input_ids"],
        free["tokens"][0, : first_eos_0 + 1].tolist(),
    )
    assert stopped["seq_logprob"][0].item() == pytest.approx(prefix["seq_logprob"], rel=1e-4)
    assert stopped["seq_logprob"][0].item() >= expected_logprob  # fewer tokens, larger log-prob
    assert stopped["n_tokens"][1].item() == (first_eos_1[0] + 1 if first_eos_1 else 6)


def test_padding_does_not_change_a_prompts_scores(tiny):
    alone = encode(tiny, ["hi"])
    padded = encode(tiny, ["a much longer neighbour prompt", "hi"])
    one = greedy_score(tiny.model, alone["input_ids"], alone["attention_mask"], 5, [10**6], 0)
    two = greedy_score(tiny.model, padded["input_ids"], padded["attention_mask"], 5, [10**6], 0)
    assert one["tokens"][0].tolist() == two["tokens"][1].tolist()
    assert one["seq_logprob"][0].item() == pytest.approx(two["seq_logprob"][1].item(), rel=1e-5)
    np.testing.assert_allclose(
        one["embeddings"][0].numpy(), two["embeddings"][1].numpy(), rtol=1e-4, atol=1e-5
    )


def test_last_token_pooling(tiny):
    batch = encode(tiny, ["abc", "hello world"])
    result = greedy_score(
        tiny.model, batch["input_ids"], batch["attention_mask"], 1, [10**6], 0, pooling="last"
    )
    with torch.no_grad():
        out = tiny.model(
            input_ids=torch.tensor([tiny.tokenizer("abc")["input_ids"]]), output_hidden_states=True
        )
    np.testing.assert_allclose(
        result["embeddings"][0].numpy(), out.hidden_states[-2][0, -1].numpy(), rtol=1e-4, atol=1e-5
    )


def test_generation_passes_the_kv_cache_under_its_current_name(tiny, caplog):
    # transformers 5.x renamed `past_key_values` to `cache` and warns on the old name
    input_ids = torch.tensor([[1, 40, 41, 42], [0, 1, 43, 44]])
    attention_mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
    logging.Logger.warning_once.cache_clear()  # it warns once per process: make this the first time
    with caplog.at_level("WARNING", logger="transformers"):
        out = greedy_score(tiny.model, input_ids, attention_mask, 6, [2], 0)
    assert out["tokens"].shape == (2, 6)
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]


def test_without_measures_the_same_tokens_come_back_and_nothing_else(tiny, monkeypatch):
    """Evaluation asks for tokens alone: the same greedy path, the same counts, no hidden states
    requested from the model and no per-token measures computed."""
    batch = encode(tiny, ["The quick brown fox", "hi", "What is 2 + 2?"])
    args = (tiny.model, batch["input_ids"], batch["attention_mask"], 7, [5], 0)
    full = greedy_score(*args)
    asked = []
    forward = tiny.model.forward
    monkeypatch.setattr(
        tiny.model,
        "forward",
        lambda *a, **k: asked.append(k.get("output_hidden_states")) or forward(*a, **k),
    )
    measured = []
    import labelbudget.inference.generation as generation

    monkeypatch.setattr(generation, "token_measures", lambda logits: measured.append(1) or None)
    lean = greedy_score(*args, measures=False)
    assert set(lean) == {"tokens", "n_tokens", "hit_max_tokens"}
    assert torch.equal(lean["tokens"], full["tokens"])
    assert torch.equal(lean["n_tokens"], full["n_tokens"])
    assert torch.equal(lean["hit_max_tokens"], full["hit_max_tokens"])
    assert asked and not any(asked) and not measured
