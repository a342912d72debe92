"""Supervised fine-tuning data: prompt + response tokens, loss on the response only.

The prompt goes through the same template as scoring and evaluation; the response is followed
by the tokenizer's end-of-sequence token so the model learns to stop. Batches are padded only to
their own longest row and built from rows of similar length (seeded), which on CPU and GPU alike
cuts the padding that would otherwise dominate short-answer data.
"""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from labelbudget.data.schema import Example
from labelbudget.errors import ConfigError
from labelbudget.models.templates import PromptTemplate

IGNORE_INDEX = -100  # label of prompt and padding tokens: no loss

log = logging.getLogger(__name__)


def _sft_tokens(
    template: PromptTemplate, tokenizer, example: Example
) -> tuple[list[int], list[int]]:
    """The prompt's tokens and the response's, the latter ending in end-of-sequence; uncut."""
    prompt = template.encode_prompt(tokenizer, example)
    response = tokenizer(example.response, add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    return prompt, response


def _fitted(prompt: list[int], response: list[int], max_length: int) -> tuple[list[int], list[int]]:
    response = response[:max_length]
    prompt = prompt[max(0, len(prompt) + len(response) - max_length) :]
    return prompt + response, [IGNORE_INDEX] * len(prompt) + response


def encode_sft(
    template: PromptTemplate, tokenizer, example: Example, max_length: int
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one example; the prompt is cut from the left if the row is too long,
    so the response (what is learned) is kept whole whenever it fits."""
    return _fitted(*_sft_tokens(template, tokenizer, example), max_length)


def encode_sft_rows(
    template: PromptTemplate, tokenizer, examples: list[Example], max_length: int, key: str
) -> list[tuple[list[int], list[int]]]:
    """`encode_sft` for every example, with one warning that counts the rows cut to fit; `key`
    names the config setting to raise."""
    rows, cut, response_cut = [], 0, 0
    for example in examples:
        prompt, response = _sft_tokens(template, tokenizer, example)
        cut += len(prompt) + len(response) > max_length
        response_cut += len(response) > max_length
        rows.append(_fitted(prompt, response, max_length))
    if cut:
        log.warning(
            "%d of %d examples exceed %s=%d (prompt + response tokens) and lose the start of their "
            "prompt%s",
            cut,
            len(examples),
            key,
            max_length,
            f"; in {response_cut} of them the response alone is longer, so the prompt is dropped "
            "whole and the response loses its end (and its end-of-sequence token)"
            if response_cut
            else "",
        )
    return rows


class SFTDataset(Dataset):
    """(input_ids, labels) rows, as `encode_sft_rows` makes them."""

    def __init__(self, rows: list[tuple[list[int], list[int]]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        return self.rows[index]


class RightPadCollator:
    """Pads each batch to its own longest row (dynamic padding); labels pad with IGNORE_INDEX."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        """The rows as input_ids, attention_mask and labels, right-padded to the batch's
        longest."""
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, target) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(target)] = torch.tensor(target)
            attention_mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class LengthGroupedBatches(Sampler[list[int]]):
    """Seeded batches of similar-length rows, in a fresh random order every epoch.

    Rows are shuffled, cut into mega-batches of `group` batches, sorted by length inside each,
    then batched; the batch order is shuffled again. The order is drawn from (seed, epoch), and
    Lightning sets the epoch through `sampler` (below).

    Under DDP `batch_size` stays the effective (global) batch: every rank draws the same global
    batches (same seed) and takes every world-th row of each, so one optimiser step sees the same
    rows as on one device. A last batch with fewer rows than ranks joins the batch before it.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        group: int = 50,
        rank: int = 0,
        world_size: int = 1,
    ):
        if len(lengths) < world_size:
            raise ConfigError(
                f"{len(lengths)} training examples cannot be shared by {world_size} ranks"
            )
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    @property
    def sampler(self) -> LengthGroupedBatches:
        """Lightning calls `set_epoch` on `dataloader.sampler` and `batch_sampler.sampler`, never on
        the batch sampler itself: this attribute is how each epoch reaches `set_epoch` here."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Lightning's call each epoch: the next draw of batches is from (seed, epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.global_batches())

    def global_batches(self) -> list[list[int]]:
        """This epoch's global batches, in order, before each rank takes its rows: the same
        on every rank."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        mega = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), mega):
            chunk = order[start : start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [
                chunk[i : i + self.batch_size].tolist()
                for i in range(0, len(chunk), self.batch_size)
            ]
        if len(batches) > 1 and len(batches[-1]) < self.world_size:
            last = batches.pop()
            batches[-1] += last
        return [batches[b] for b in rng.permutation(len(batches))]

    def __iter__(self):
        for batch in self.global_batches():
            yield batch[self.rank :: self.world_size]


class SFTData(L.LightningDataModule):
    """The training rows, batched once the Trainer knows this process's rank and the world size."""

    def __init__(
        self, rows: list[tuple[list[int], list[int]]], batch_size: int, seed: int, pad_token_id: int
    ):
        super().__init__()
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.pad_token_id = pad_token_id

    def train_dataloader(self) -> DataLoader:
        """Length-grouped batches of this rank's rows, each right-padded to its longest."""
        batches = LengthGroupedBatches(
            [len(ids) for ids, _ in self.rows],
            self.batch_size,
            self.seed,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
        )
        return DataLoader(
            SFTDataset(self.rows),
            batch_sampler=batches,
            collate_fn=RightPadCollator(self.pad_token_id),
        )
