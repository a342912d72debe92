"""Multiple-choice answers by one forward pass: the next-token log-probability of each answer
letter after the prompt, no generation.

Tokenizers disagree on what follows "Answer:": BPE vocabularies hold both " A" and "A",
SentencePiece ones "▁A", and a chat template starts the answer without a space. A letter's score
is therefore the log of the total probability of every single token that reads as that letter
(logsumexp over its variants), so no tokenizer is penalised for its spelling.
"""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch

from labelbudget.errors import ConfigError
from labelbudget.inference.predict import predict_prompts
from labelbudget.models.loading import LoadedModel


def letter_token_ids(tokenizer, letters: tuple[str, ...]) -> list[list[int]]:
    """For each letter, the distinct token ids that decode to exactly that letter (spaces aside)."""
    variants = []
    for letter in letters:
        ids = set()
        for text in (letter, " " + letter):
            ids.update(
                t
                for t in tokenizer.encode(text, add_special_tokens=False)
                if tokenizer.decode([t]).strip() == letter
            )
        if not ids:
            raise ConfigError(f"the tokenizer has no single token for the answer letter {letter!r}")
        variants.append(sorted(ids))
    shared = set.intersection(*(set(v) for v in variants)) if len(variants) > 1 else set()
    if shared:
        raise ConfigError(f"answer letters {letters} share token ids {sorted(shared)}")
    return variants


class LetterScoringModule(L.LightningModule):
    """One forward per left-padded batch; only the last position's logits are computed."""

    def __init__(self, model, letter_ids: list[list[int]]):
        super().__init__()
        self.model = model
        self.letter_ids = letter_ids

    @torch.no_grad()
    def predict_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """Each row's log-probability of every letter at its last position, with the batch's
        rows (to put them back in prompt order)."""
        mask = batch["attention_mask"]
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        logits = self.model(
            input_ids=batch["input_ids"],
            attention_mask=mask,
            position_ids=position_ids,
            logits_to_keep=1,
        ).logits[:, -1, :]
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        scores = torch.stack(
            [torch.logsumexp(log_probs[:, ids], dim=-1) for ids in self.letter_ids], dim=1
        )
        return {"rows": batch["rows"], "letter_logprobs": scores}


def score_letters(
    loaded: LoadedModel,
    token_ids: list[list[int]],
    letter_ids: list[list[int]],
    batch_size: int,
    trainer_factory: Callable[..., L.Trainer],
    desc: str = "multiple choice",
) -> torch.Tensor:
    """(prompts, letters) log-probabilities, in prompt order; length-sorted batches."""
    module = LetterScoringModule(loaded.model, letter_ids)
    outputs = predict_prompts(
        module, token_ids, batch_size, loaded.tokenizer.pad_token_id, trainer_factory, desc
    )
    scores = torch.empty(len(token_ids), len(letter_ids), dtype=torch.float32)
    for out in outputs:
        scores[out["rows"]] = out["letter_logprobs"].cpu()
    return scores
