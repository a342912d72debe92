"""CoS-Low: how alike are the gradients of a task's least confident examples?

1. Rank the task's prompts by confidence (mean top-1 probability over the greedy answer), keep
   the lowest `fraction`, sample `n` of them (seeded): those get annotated.
2. Attach fresh, seeded LoRA adapters and take one gradient per example: of the mean
   cross-entropy over its answer tokens, flattened over every LoRA parameter.
3. CoS-Low = the median cosine similarity over all pairs (496 for 32 examples).

Per-example gradients come from one batched forward and backward, not a loop: every LoRA
matrix is a linear layer, and the gradient of a sum of per-example losses with respect to a
linear layer's output at example b is example b's own, so example b's weight gradient is
sum_t grad_out[b, t] (x) input[b, t] (two hooks and an einsum per layer).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from labelbudget.errors import ConfigError
from labelbudget.models.loading import LoadedModel
from labelbudget.training.data import IGNORE_INDEX, RightPadCollator, encode_sft_rows
from labelbudget.training.lora import fresh_adapters


def low_confidence_sample(
    confidence: np.ndarray, fraction: float, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows of `n` examples drawn without replacement from the lowest `fraction` by confidence
    (ties by position). When that fraction holds fewer than `n`, the `n` least confident."""
    if not 0 < fraction <= 1 or n < 2:
        raise ConfigError(
            f"CoS-Low needs 0 < fraction <= 1 and at least 2 examples, got {fraction} and {n}"
        )
    if len(confidence) < n:
        raise ConfigError(f"CoS-Low needs {n} examples but the task has {len(confidence)}")
    order = np.argsort(confidence, kind="stable")
    low = order[: max(math.ceil(fraction * len(confidence)), n)]
    return np.sort(rng.choice(low, size=n, replace=False))


def lora_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The trainable linear layers of the LoRA adapters (lora_A and lora_B), by name."""
    found = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and ("lora_A" in name or "lora_B" in name)
        and module.weight.requires_grad
    }
    if not found:
        raise ConfigError("the model has no trainable LoRA layers: attach adapters first")
    return found


def example_losses(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Each example's mean cross-entropy over its answer tokens (labels != IGNORE_INDEX)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    token_loss = nn.functional.cross_entropy(
        logits.transpose(1, 2), targets.clamp(min=0), reduction="none"
    )
    mask = (targets != IGNORE_INDEX).float()
    return (token_loss * mask).sum(1) / mask.sum(1).clamp(min=1)


@contextmanager
def _capture(linears: dict[str, nn.Linear]):
    """Record each layer's input on the forward pass and its output gradient on the backward."""
    inputs: dict[str, torch.Tensor] = {}
    grads: dict[str, torch.Tensor] = {}
    handles = []
    for name, layer in linears.items():

        def forward_hook(module, args, output, name=name):
            inputs[name] = args[0].detach()
            output.register_hook(lambda grad, name=name: grads.__setitem__(name, grad.detach()))

        handles.append(layer.register_forward_hook(forward_hook))
    try:
        yield inputs, grads
    finally:
        for handle in handles:
            handle.remove()


def per_example_gradients(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """(batch, parameters) float32: row b is the flattened gradient of example b's loss with
    respect to every LoRA weight, in `lora_linears` order (the order `Module.parameters` gives)."""
    linears = lora_linears(model)
    with _capture(linears) as (inputs, grads):
        example_losses(model, input_ids, attention_mask, labels).sum().backward()
    parts = [
        torch.einsum("b...o,b...i->boi", grads[name].float(), inputs[name].float()).flatten(1)
        for name in linears
    ]
    model.zero_grad(set_to_none=True)
    return torch.cat(parts, dim=1)


def pairwise_cosines(vectors: torch.Tensor) -> np.ndarray:
    """Cosine similarity of every pair i < j (n (n - 1) / 2 values), in float64."""
    v = vectors.double()
    gram = v @ v.T
    norms = gram.diagonal().sqrt().clamp(min=1e-300)
    cosine = gram / norms[:, None] / norms[None, :]
    i, j = np.triu_indices(len(v), k=1)
    return cosine[i, j].numpy()


@dataclass(frozen=True)
class GradientSignals:
    """What one sample of examples says about a task."""

    cosine: float  # the aggregate (median by default) pairwise cosine: CoS-Low on a low-confidence sample
    mean_gradient_norm: float
    n_pairs: int


def gradient_signals(vectors: torch.Tensor, aggregate: str = "median") -> GradientSignals:
    """The sample's pairwise gradient cosines reduced by `aggregate` (CoS-Low's 'median', or
    'mean'), with the gradients' mean norm."""
    cosines = pairwise_cosines(vectors)
    reduce = {"median": np.median, "mean": np.mean}
    if aggregate not in reduce:
        raise ConfigError(f"aggregate must be 'median' or 'mean', got {aggregate!r}")
    norms = vectors.double().norm(dim=1)
    return GradientSignals(float(reduce[aggregate](cosines)), float(norms.mean()), len(cosines))


def task_gradients(loaded: LoadedModel, examples, settings: Any, seed: int) -> torch.Tensor:
    """Per-example LoRA gradients of the examples' answers, under fresh adapters seeded by `seed`;
    `settings` has CoS-Low's max_length, rank, alpha, target_modules and batch_size."""
    rows = encode_sft_rows(
        loaded.template, loaded.tokenizer, examples, settings.max_length, "coslow.max_length"
    )
    lora = {"rank": settings.rank, "alpha": settings.alpha, "dropout": 0.0}
    with fresh_adapters(
        loaded.model, **lora, target_modules=list(settings.target_modules), seed=seed
    ) as model:
        model.eval()
        collate = RightPadCollator(loaded.tokenizer.pad_token_id)
        parts = []
        for start in range(0, len(rows), settings.batch_size):
            batch = collate(rows[start : start + settings.batch_size])
            parts.append(
                per_example_gradients(
                    model, batch["input_ids"], batch["attention_mask"], batch["labels"]
                )
            )
        return torch.cat(parts)
