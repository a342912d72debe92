"""The fine-tuning recipe, top to bottom: encode, attach LoRA, fit, hand back the tuned model."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import lightning as L

from labelbudget.data.schema import Example
from labelbudget.models.loading import LoadedModel
from labelbudget.training.data import SFTData, encode_sft
from labelbudget.training.lora import attach_lora
from labelbudget.training.module import SFTModule

log = logging.getLogger(__name__)


def fine_tune(loaded: LoadedModel, examples: list[Example], settings: Any, trainer_factory: Callable[..., L.Trainer],
              logger, seed: int) -> dict[str, float]:
    """LoRA-fine-tune `loaded.model` in place on the annotated examples; returns training stats.

    `settings` is the finetune config (lora, epochs, learning_rate, batch_size,
    accumulate_grad_batches, max_length).
    """
    L.seed_everything(seed, verbose=False)
    tokenizer = loaded.tokenizer
    rows = [encode_sft(loaded.template, tokenizer, e, settings.max_length) for e in examples]
    clipped = sum(len(loaded.template.encode_prompt(tokenizer, e)) + 1 > settings.max_length for e in examples)
    if clipped:
        log.warning("%d of %d examples exceed finetune.max_length=%d and lose the start of their prompt",
                    clipped, len(rows), settings.max_length)
    loaded.model = attach_lora(loaded.model, seed=seed, **settings.lora)
    loaded.model.train()
    trainer = trainer_factory(
        max_epochs=settings.epochs,
        accumulate_grad_batches=settings.accumulate_grad_batches,
        logger=logger if logger is not None else False,
        enable_checkpointing=False,  # the adapter is saved once, by the caller
        log_every_n_steps=1,
        use_distributed_sampler=False,
    )
    start = time.perf_counter()
    trainer.fit(SFTModule(loaded.model, settings.learning_rate), datamodule=SFTData(rows, settings.batch_size, seed, tokenizer.pad_token_id))
    seconds = time.perf_counter() - start
    loaded.model.eval()
    tokens = settings.epochs * sum(len(ids) for ids, _ in rows)
    return {
        "train/last_epoch_loss": float(trainer.callback_metrics["train/loss_epoch"]),
        "train/seconds": seconds,
        "train/tokens_per_s": tokens / seconds,
        "train/examples": float(len(rows)),
    }
