"""A memory plan for a LoRA fine-tune, from the model's architecture alone (no weights loaded).

The model is built on PyTorch's meta device (shapes without storage: seconds, even for 7B), the
LoRA adapters are attached as configured, and one training forward with the loss runs there
while a saved-tensor hook adds up what autograd keeps for the backward pass. The activations are
thus measured for this architecture and this transformers version rather than modelled by a
formula. Attention is the one thing the meta device cannot run as GPUs do: it runs through a
stand-in that keeps what the fused kernels (flash, memory-efficient, PyTorch's CPU flash) keep
for their backward pass: queries, keys, values, output and the log-sum-exp, never the T x T weights.

    python -m labelbudget.training.memory meta-llama/Llama-2-7b-hf --dtype bfloat16 --batch-size 8 --max-length 512
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass

import torch
from transformers import AttentionInterface

from labelbudget.rendering import markdown_table

GIB = 2**30
OPTIMISER_BYTES = 16  # per trainable parameter: fp32 weight, gradient and Adam's two moments


@dataclass(frozen=True)
class MemoryPlan:
    """A LoRA fine-tune's memory per device, by part, in bytes; `table` shows it in GiB."""

    parameters: int
    trainable: int
    weight_bytes: int  # the frozen base model, as loaded
    lora_bytes: int  # adapters, their gradients and Adam state
    activation_bytes_per_token: float  # what the backward pass keeps, per training token
    tokens_per_step: int  # batch rows (per device) x longest row
    gradient_checkpointing: bool

    @property
    def activation_bytes(self) -> float:
        """What the backward pass keeps for one step's tokens."""
        return self.activation_bytes_per_token * self.tokens_per_step

    @property
    def total_bytes(self) -> float:
        """Weights, adapters with their optimiser state, and one step's activations."""
        return self.weight_bytes + self.lora_bytes + self.activation_bytes

    def table(self) -> str:
        """The plan as a markdown table, in GiB."""
        rows = [
            ["base weights", f"{self.parameters / 1e6:,.1f}M parameters", self.weight_bytes / GIB],
            [
                "LoRA + gradients + Adam",
                f"{self.trainable / 1e6:,.2f}M trainable",
                self.lora_bytes / GIB,
            ],
            [
                "activations",
                f"{self.activation_bytes_per_token / 2**10:,.1f} KiB/token x {self.tokens_per_step:,} tokens"
                + (" (checkpointed)" if self.gradient_checkpointing else ""),
                self.activation_bytes / GIB,
            ],
            [
                "total (per device, before CUDA context and allocator slack)",
                "",
                self.total_bytes / GIB,
            ],
        ]
        return markdown_table(["memory plan", "what", "GiB"], rows)


def plan_memory(
    config,
    dtype: torch.dtype,
    lora: dict,
    batch_size: int,
    max_length: int,
    gradient_checkpointing: bool = False,
    load_in_4bit: bool = False,
) -> MemoryPlan:
    """The plan for `config` (a transformers model config) trained with `lora` (rank, alpha,
    dropout, target_modules) on batches of `batch_size` rows of up to `max_length` tokens."""
    from transformers import AutoModelForCausalLM

    from labelbudget.training.lora import attach_lora

    # from_config records the attention choice in the config it is given
    config = copy.deepcopy(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            config, dtype=dtype, attn_implementation="labelbudget_memory_plan"
        )
    base = sum(p.numel() for p in model.parameters())
    weight_bytes = _weight_bytes(model, load_in_4bit)
    model = attach_lora(model, **lora)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    per_token = activation_bytes_per_token(model, config, gradient_checkpointing)
    return MemoryPlan(
        base,
        trainable,
        weight_bytes,
        trainable * OPTIMISER_BYTES,
        per_token,
        batch_size * max_length,
        gradient_checkpointing,
    )


def _weight_bytes(model, load_in_4bit: bool) -> int:
    """As loaded: 4-bit NF4 (bitsandbytes) packs each decoder Linear into half a byte per weight
    plus a quantisation constant per 64 (one byte with double quantisation); the rest as is."""
    total = 0
    for name, module in model.named_modules():
        for param in module.parameters(recurse=False):
            quantised = (
                load_in_4bit and isinstance(module, torch.nn.Linear) and "lm_head" not in name
            )
            total += (
                param.numel() * (0.5 + 1 / 64)
                if quantised
                else param.numel() * param.element_size()
            )
    return int(total)


class FusedAttentionStandIn(torch.autograd.Function):
    """Shapes only: attention that saves for backward exactly what a fused kernel saves."""

    @staticmethod
    def forward(ctx, query, key, value):
        """An empty output and log-sum-exp, saved with the queries, keys and values as a
        fused kernel saves them."""
        output = torch.empty_like(query)
        log_sum_exp = query.new_empty(query.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(query, key, value, output, log_sum_exp)
        return output

    @staticmethod
    def backward(ctx, grad):
        """Never runs: a memory plan measures the forward pass alone."""
        raise NotImplementedError("a memory plan runs no backward pass")


def fused_attention_stand_in(module, query, key, value, attention_mask, **kwargs):
    """transformers' attention interface: (batch, heads, tokens, dim) in, (batch, tokens, heads, dim) out."""
    return FusedAttentionStandIn.apply(query, key, value).transpose(1, 2), None


AttentionInterface.register("labelbudget_memory_plan", fused_attention_stand_in)


def activation_bytes_per_token(
    model, config, gradient_checkpointing: bool, batch: int = 2, length: int = 64
) -> float:
    """Bytes autograd keeps per token of a training forward with the loss, measured on the meta device.

    With checkpointing only each decoder layer's input is kept, and one layer's activations are
    rebuilt at a time during the backward pass."""
    layers = _decoder_layers(model)
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    kept: dict[
        int, int
    ] = {}  # storage -> bytes: views of one tensor count once (the graph keeps them alive)
    layer_bytes: list[int] = []

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in params:
            kept[storage._cdata] = storage.nbytes()
        return tensor

    def layer_starts(module, args):
        layer_bytes.append(-sum(kept.values()))

    def layer_ends(module, args, output):
        layer_bytes[-1] += sum(kept.values())

    hooks = [
        h
        for layer in layers
        for h in (
            layer.register_forward_pre_hook(layer_starts),
            layer.register_forward_hook(layer_ends),
        )
    ]
    ids = torch.zeros(batch, length, dtype=torch.long, device="meta")
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(input_ids=ids, labels=ids)
    finally:
        for hook in hooks:
            hook.remove()
    tokens = batch * length
    outside = sum(kept.values()) - sum(layer_bytes)  # embeddings, final norm, logits and loss
    if gradient_checkpointing:
        layer_inputs = len(layers) * tokens * config.hidden_size * _activation_size(model)
        return (outside + layer_inputs + max(layer_bytes)) / tokens
    return (outside + sum(layer_bytes)) / tokens


def _activation_size(model) -> int:
    return next(p for p in model.parameters() if not p.requires_grad).element_size()


def _decoder_layers(model) -> list[torch.nn.Module]:
    """The repeated blocks: the largest ModuleList in the model."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no list of decoder layers to plan for")
    return list(max(lists, key=len))


def main(argv: list[str] | None = None) -> None:
    """Print the plan for a hub id or local folder: only its config.json is read."""
    from transformers import AutoConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="hub id or local folder, e.g. meta-llama/Llama-2-7b-hf")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=int, default=8, help="rows per device and step")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=int, default=16)
    parser.add_argument(
        "--target-modules", nargs="+", default=["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--load-in-4bit", action="store_true")
    args = parser.parse_args(argv)
    lora = {
        "rank": args.rank,
        "alpha": args.alpha,
        "dropout": 0.05,
        "target_modules": args.target_modules,
    }
    plan = plan_memory(
        AutoConfig.from_pretrained(args.model),
        getattr(torch, args.dtype),
        lora,
        args.batch_size,
        args.max_length,
        args.gradient_checkpointing,
        args.load_in_4bit,
    )
    print(plan.table())


if __name__ == "__main__":
    main()
