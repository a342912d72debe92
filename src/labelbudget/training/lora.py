"""Attaching seeded LoRA adapters with peft (the paper: LoRA on LLaMA-2 7B)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def attach_lora(
    model,
    rank: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: list[str] | None = None,
    seed: int = 0,
):
    """Wrap `model` with fresh LoRA adapters; the seed fixes lora_A's random init."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules)
        if target_modules
        else ["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    torch.manual_seed(seed)
    return get_peft_model(model, config)


@contextmanager
def fresh_adapters(model, **settings) -> Iterator:
    """`model` with fresh LoRA adapters (`attach_lora`'s settings) for the `with` block, then
    the base model as it was: peft puts the adapters into the base's own modules, and unloading
    takes them out again, so the same object serves the next block."""
    tuned = attach_lora(model, **settings)
    try:
        yield tuned
    finally:
        tuned.unload()
