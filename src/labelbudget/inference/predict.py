"""Inference passes as a LightningModule run through `Trainer.predict`: devices, precision and
DDP come from the Trainer config, not from this code. Prompts go in length-sorted, left-padded
batches; each rank predicts its share and every rank gets every output back."""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from labelbudget.distributed import gather
from labelbudget.inference.generation import StopStrings, greedy_score, truncate_at_stop
from labelbudget.models.loading import LoadedModel


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
        """The batch as tensors, padded to its longest prompt, with each item's row."""
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


def prompt_loader(
    token_ids: list[list[int]], batches: list[list[int]], pad_token_id: int
) -> DataLoader:
    """A loader that replays `batches` (lists of rows) of left-padded prompts."""
    return DataLoader(
        PromptDataset(token_ids),
        batch_sampler=FixedBatches(batches),
        collate_fn=LeftPadCollator(pad_token_id),
    )


class RankBatches(L.LightningDataModule):
    """A batch plan in numbered groups, cut across ranks when predict starts (only then is a
    rank known): rank r replays the groups whose number is r modulo the world size, so every
    prompt is predicted exactly once whatever the pool size. A group (a cache shard) is never
    split, so one rank writes it whole."""

    def __init__(
        self, token_ids: list[list[int]], groups: dict[int, list[list[int]]], pad_token_id: int
    ):
        super().__init__()
        self.token_ids = token_ids
        self.groups = groups
        self.pad_token_id = pad_token_id
        self.prompts_here = 0

    def predict_dataloader(self) -> DataLoader:
        """This rank's groups of the plan (known only now), counted for the progress
        bar."""
        rank, world = self.trainer.global_rank, self.trainer.world_size
        mine = [
            batch
            for number, group in self.groups.items()
            if number % world == rank
            for batch in group
        ]
        self.prompts_here = sum(len(batch) for batch in mine)
        return prompt_loader(self.token_ids, mine, self.pad_token_id)


def predict_prompts(
    module: L.LightningModule,
    token_ids: list[list[int]],
    batch_size: int,
    pad_token_id: int,
    trainer_factory: Callable[..., L.Trainer],
    desc: str,
) -> list[dict]:
    """Length-sorted batches of the prompts through `module.predict_step`, each rank its share;
    every rank's outputs (on the CPU) come back on every rank, so all compute the same metrics."""
    batches = length_sorted_batches([len(t) for t in token_ids], batch_size)
    trainer = trainer_factory(callbacks=[PromptProgress(desc)])
    outputs = (
        trainer.predict(
            module,
            datamodule=RankBatches(
                token_ids, {i: [b] for i, b in enumerate(batches)}, pad_token_id
            ),
        )
        or []
    )
    local = [
        {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in out.items()}
        for out in outputs
    ]
    return [out for part in gather(local, trainer.world_size) for out in part]


class PromptProgress(L.Callback):
    """A prompts/s progress bar for an inference pass (Lightning's own bar counts batches); under
    DDP, rank 0 shows its own share."""

    def __init__(self, desc: str):
        self.desc = desc

    def on_predict_start(self, trainer, pl_module):
        """Open the bar, sized to this rank's prompts."""
        desc = (
            self.desc
            if trainer.world_size == 1
            else f"{self.desc} (rank 0 of {trainer.world_size})"
        )
        self.bar = tqdm(
            total=trainer.datamodule.prompts_here,
            desc=desc,
            unit="prompt",
            dynamic_ncols=True,
            disable=not trainer.is_global_zero,
        )

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        """Advance the bar by the batch's prompts."""
        self.bar.update(len(batch["rows"]))

    def on_predict_end(self, trainer, pl_module):
        """Close the bar."""
        self.bar.close()


class GreedyModule(L.LightningModule):
    """Greedy generation as a predict step; `measures=False` for the tokens alone (evaluation),
    True for every score the selectors need (the scoring pass)."""

    def __init__(
        self,
        model,
        max_new_tokens: int,
        eos_token_ids: list[int],
        pad_token_id: int,
        pooling: str = "mean",
        stop=None,
        measures: bool = True,
    ):
        super().__init__()
        self.stop = stop
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.eos_token_ids = eos_token_ids
        self.pad_token_id = pad_token_id
        self.pooling = pooling
        self.measures = measures

    def predict_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """`greedy_score` of the batch, with its rows (to put the outputs back in prompt
        order)."""
        scores = greedy_score(
            self.model,
            batch["input_ids"],
            batch["attention_mask"],
            max_new_tokens=self.max_new_tokens,
            eos_token_ids=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            pooling=self.pooling,
            stop=self.stop,
            measures=self.measures,
        )
        return {"rows": batch["rows"], **scores}


def generate(
    loaded: LoadedModel,
    token_ids: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    trainer_factory: Callable[..., L.Trainer],
    stop_strings: tuple[str, ...] = (),
    desc: str = "generating",
) -> list[str]:
    """Greedy continuations of tokenised prompts, in order, cut before the first stop string;
    length-sorted batches, KV cache, a batch ends when every row hit EOS or a stop string."""
    stop = StopStrings(loaded.tokenizer, stop_strings) if stop_strings else None
    module = GreedyModule(
        loaded.model,
        max_new_tokens,
        loaded.eos_token_ids,
        loaded.tokenizer.pad_token_id,
        stop=stop,
        measures=False,  # the answer's tokens alone
    )
    outputs = predict_prompts(
        module, token_ids, batch_size, loaded.tokenizer.pad_token_id, trainer_factory, desc
    )
    answers: list[str] = [""] * len(token_ids)
    for out in outputs:
        for row, tokens in zip(out["rows"].tolist(), out["tokens"]):
            answers[row] = truncate_at_stop(
                loaded.tokenizer.decode(tokens, skip_special_tokens=True), stop_strings
            )
    return answers
