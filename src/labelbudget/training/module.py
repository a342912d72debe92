"""The SFT LightningModule: a LoRA-wrapped causal LM trained on response tokens.

Only the adapter's parameters are optimised (Adam, the paper's lr 1e-4 by default). Devices,
precision, gradient accumulation and the strategy come from the Trainer config.
"""

from __future__ import annotations

import lightning as L
import torch

from labelbudget.errors import ConfigError
from labelbudget.training.data import IGNORE_INDEX


class SFTModule(L.LightningModule):
    """The LoRA-wrapped causal LM, trained on response tokens; only the adapter is optimised."""

    def __init__(self, model, learning_rate: float = 1e-4):
        super().__init__()
        self.model = model
        self.learning_rate = learning_rate

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The batch's loss, logged with its response-token count; a loss that is not finite on
        any rank stops every rank with a ConfigError."""
        loss = self.model(**batch).loss
        # NaN or inf: every later step would only spread it. Decided by all ranks together, so
        # that under DDP they stop together instead of waiting for one that stopped.
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            raise ConfigError(
                f"the training loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}): lower finetune.learning_rate, or raise finetune.max_length so that "
                "every example keeps answer tokens"
            )
        tokens = (batch["labels"] != IGNORE_INDEX).sum()
        size = batch["input_ids"].shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log(
            "train/response_tokens",
            tokens.float(),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            batch_size=size,
        )
        return loss

    def configure_optimizers(self):
        """Adam at `learning_rate` over the trainable (adapter) parameters."""
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(trainable, lr=self.learning_rate)
