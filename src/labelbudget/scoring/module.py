"""Scoring as a LightningModule run through `Trainer.predict`: devices, precision and (later)
DDP come from the Trainer config, not from this code."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from labelbudget.scoring.generation import greedy_score


class PromptDataset(Dataset):
    """Tokenised prompts; each item remembers its pool row so outputs can be put back in order."""

    def __init__(self, token_ids: list[list[int]]):
        self.token_ids = token_ids

    def __len__(self) -> int:
        return len(self.token_ids)

    def __getitem__(self, row: int) -> tuple[int, list[int]]:
        return row, self.token_ids[row]


class LeftPadCollator:
    """Left-pads a batch, so every prompt's last token sits at the same position for generation."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[tuple[int, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for _, ids in items)
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for i, (_, ids) in enumerate(items):
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, width - len(ids) :] = 1
        rows = torch.tensor([row for row, _ in items], dtype=torch.long)
        return {"rows": rows, "input_ids": input_ids, "attention_mask": attention_mask}


class FixedBatches(Sampler[list[int]]):
    """A precomputed batch plan, replayed as is (Lightning's predict loop wraps batch samplers)."""

    drop_last = False  # every prompt is scored; tells Lightning so

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Rows grouped into batches of similar length (longest first, so memory trouble shows at
    once); ties keep pool order, so the plan depends only on the pool."""
    order = sorted(range(len(lengths)), key=lambda row: (-lengths[row], row))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def prompt_loader(token_ids: list[list[int]], batches: list[list[int]], pad_token_id: int) -> DataLoader:
    """A loader that replays `batches` (lists of rows) of left-padded prompts."""
    return DataLoader(PromptDataset(token_ids), batch_sampler=FixedBatches(batches), collate_fn=LeftPadCollator(pad_token_id))


class PromptProgress(L.Callback):
    """A prompts/s progress bar for an inference pass (Lightning's own bar counts batches)."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc = total, desc

    def on_predict_start(self, trainer, pl_module):
        self.bar = tqdm(total=self.total, desc=self.desc, unit="prompt", dynamic_ncols=True)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.bar.update(len(batch["rows"]))

    def on_predict_end(self, trainer, pl_module):
        self.bar.close()


class ScoringModule(L.LightningModule):
    def __init__(self, model, max_new_tokens: int, eos_token_ids: list[int], pad_token_id: int, pooling: str, stop=None):
        super().__init__()
        self.stop = stop
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.eos_token_ids = eos_token_ids
        self.pad_token_id = pad_token_id
        self.pooling = pooling

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        scores = greedy_score(
            self.model,
            batch["input_ids"],
            batch["attention_mask"],
            max_new_tokens=self.max_new_tokens,
            eos_token_ids=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            pooling=self.pooling,
            stop=self.stop,
        )
        return {"rows": batch["rows"], **scores}
