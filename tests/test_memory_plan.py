"""The memory plan, measured on the meta device, against a real forward pass and hand counts."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from labelbudget.training.lora import attach_lora
from labelbudget.training.memory import OPTIMISER_BYTES, plan_memory

# grouped-query attention (4 heads sharing 2 key/value heads), untied head, SwiGLU MLP
CONFIG = LlamaConfig(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    tie_word_embeddings=False,
)
ATTENTION = {
    "rank": 8,
    "alpha": 16,
    "dropout": 0.05,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
EVERYTHING = {
    "rank": 4,
    "alpha": 8,
    "dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def kept_for_backward(dtype: torch.dtype, lora: dict, batch: int = 3, length: int = 40) -> float:
    """Bytes per token autograd keeps in a real CPU training forward (PyTorch's fused attention)."""
    model = attach_lora(
        LlamaForCausalLM._from_config(CONFIG, attn_implementation="sdpa", dtype=dtype), **lora
    )
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in params:
            kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    ids = torch.randint(0, CONFIG.vocab_size, (batch, length))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    return sum(kept.values()) / (batch * length)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lora", [ATTENTION, EVERYTHING], ids=["attention", "every-projection"])
def test_planned_activations_are_what_a_real_forward_keeps(dtype, lora):
    plan = plan_memory(CONFIG, dtype, lora, batch_size=2, max_length=100)
    assert plan.activation_bytes_per_token == pytest.approx(
        kept_for_backward(dtype, lora), rel=1e-2
    )  # 1%: small per-sequence tensors
    assert plan.activation_bytes == pytest.approx(plan.activation_bytes_per_token * 200)


def test_weights_and_adapter_state_are_counted_by_hand():
    plan = plan_memory(CONFIG, torch.float32, ATTENTION, batch_size=1, max_length=10)
    h, kv, i, v, layers = 64, 32, 160, 300, 3
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h  # q, o; k, v; gate, up, down; two norms
    assert plan.parameters == layers * per_layer + 2 * v * h + h  # + embeddings, head, final norm
    assert plan.weight_bytes == 4 * plan.parameters
    lora = layers * 8 * ((h + h) * 2 + (h + kv) * 2)  # rank x (in + out) for q, o, k, v
    assert plan.trainable == lora and plan.lora_bytes == OPTIMISER_BYTES * lora
    four_bit = plan_memory(CONFIG, torch.bfloat16, ATTENTION, 1, 10, load_in_4bit=True)
    linear = layers * (
        per_layer - 2 * h
    )  # decoder projections are quantised; norms, embeddings, head are not
    assert four_bit.weight_bytes == int(linear * (0.5 + 1 / 64) + 2 * (plan.parameters - linear))


def test_checkpointing_keeps_layer_inputs_and_one_layer():
    full = plan_memory(CONFIG, torch.float32, ATTENTION, 1, 10)
    checkpointed = plan_memory(CONFIG, torch.float32, ATTENTION, 1, 10, gradient_checkpointing=True)
    # three layers' activations become three layer inputs (h floats) plus one layer's activations
    per_layer = (
        full.activation_bytes_per_token - checkpointed.activation_bytes_per_token + 3 * 64 * 4
    ) / 2
    assert 0 < checkpointed.activation_bytes_per_token < full.activation_bytes_per_token
    assert per_layer > 64 * 4 * 5  # a layer keeps several hidden-sized tensors per token
    assert "(checkpointed)" in checkpointed.table() and "GiB" in checkpointed.table()


def test_an_architecture_the_meta_device_cannot_build_gets_a_warning_not_a_failure(caplog):
    from types import SimpleNamespace

    from transformers import PretrainedConfig

    from labelbudget.training.fit import memory_plan

    unknown = SimpleNamespace(
        model=SimpleNamespace(
            config=PretrainedConfig(model_type="no_such_architecture"), dtype=torch.float32
        )
    )
    settings = SimpleNamespace(batch_size=2, lora=ATTENTION, gradient_checkpointing=False)
    with caplog.at_level("WARNING"):
        assert memory_plan(unknown, settings, [([1, 2, 3], [1, 2, 3])], devices=1) is None
    assert "no memory plan for SimpleNamespace" in caplog.text
