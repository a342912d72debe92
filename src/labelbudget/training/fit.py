"""The fine-tuning recipe, top to bottom: encode, attach LoRA, fit, hand back the tuned model."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Callable

import lightning as L
import torch

from labelbudget.data.schema import Example
from labelbudget.distributed import is_main_process
from labelbudget.models.loading import LoadedModel
from labelbudget.training.data import SFTData, encode_sft_rows
from labelbudget.training.lora import attach_lora
from labelbudget.training.memory import GIB, MemoryPlan, plan_memory
from labelbudget.training.module import SFTModule

log = logging.getLogger(__name__)


def fine_tune(
    base: LoadedModel,
    examples: list[Example],
    settings: Any,
    trainer_factory: Callable[..., L.Trainer],
    logger,
    seed: int,
) -> tuple[LoadedModel, dict[str, float]]:
    """LoRA-fine-tune the base model on the annotated examples.

    `settings` is the finetune config (lora, epochs, learning_rate, batch_size,
    accumulate_grad_batches, max_length, gradient_checkpointing).

    Returns:
        The tuned model, and training stats. The weights are shared: peft puts the adapters
        into the base's own modules, so score the base before, or inside
        `tuned.model.disable_adapter()`, never through `base` afterwards.
    """
    L.seed_everything(seed, verbose=False)
    tokenizer, model = base.tokenizer, base.model
    rows = encode_sft_rows(
        base.template, tokenizer, examples, settings.max_length, "finetune.max_length"
    )
    # keep each layer's input only; recompute the rest in backward
    checkpointing = {"use_reentrant": False}
    # QLoRA: norms in fp32, checkpointing as asked
    if getattr(model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=settings.gradient_checkpointing,
            gradient_checkpointing_kwargs=checkpointing,
        )
    elif settings.gradient_checkpointing:
        enable_checkpointing(model, checkpointing)
    trainer = trainer_factory(
        max_epochs=settings.epochs,
        accumulate_grad_batches=settings.accumulate_grad_batches,
        logger=logger if logger is not None else False,
        enable_checkpointing=False,  # the adapter is saved once, by the caller
        log_every_n_steps=1,
        use_distributed_sampler=False,
    )
    plan = (
        memory_plan(model, settings, rows, trainer.num_devices * trainer.num_nodes)
        if is_main_process()
        else None
    )
    if plan is not None:
        print(plan.table())
    tuned = attach_lora(model, seed=seed, **settings.lora)
    tuned.train()
    start = time.perf_counter()
    trainer.fit(
        SFTModule(tuned, settings.learning_rate),
        datamodule=SFTData(rows, settings.batch_size, seed, tokenizer.pad_token_id),
    )
    seconds = time.perf_counter() - start
    tuned.eval()
    tokens = settings.epochs * sum(len(ids) for ids, _ in rows)
    stats = {
        "train/last_epoch_loss": float(trainer.callback_metrics["train/loss_epoch"]),
        "train/seconds": seconds,
        "train/tokens_per_s": tokens / seconds,
        "train/examples": float(len(rows)),
        **({"train/planned_memory_gib": plan.total_bytes / GIB} if plan is not None else {}),
        **(
            {"train/peak_memory_gib": torch.cuda.max_memory_allocated() / GIB}
            if torch.cuda.is_available()
            else {}
        ),
    }
    return replace(base, model=tuned), stats


def enable_checkpointing(model, kwargs: dict) -> None:
    """Activation checkpointing under its current name (transformers 5.x renamed
    `gradient_checkpointing_enable`, which warns there), or the old one before."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def memory_plan(model, settings: Any, rows: list, devices: int) -> MemoryPlan | None:
    """The plan for this fine-tune: the longest batch a device can get (its share of the
    longest rows), the model's own architecture, dtype and quantisation. None, with a warning,
    for an architecture that cannot be built on the meta device: a plan never stops a fine-tune."""
    per_device = -(-settings.batch_size // devices)
    tokens = sorted((len(ids) for ids, _ in rows), reverse=True)[:per_device]
    try:
        return plan_memory(
            model.config,
            model.dtype,
            dict(settings.lora),
            len(tokens),
            max(tokens),
            settings.gradient_checkpointing,
            getattr(model, "is_loaded_in_4bit", False),
        )
    except Exception as error:  # noqa: BLE001 - any failure here only costs the plan
        log.warning("no memory plan for %s: %s", type(model).__name__, error)
        return None
