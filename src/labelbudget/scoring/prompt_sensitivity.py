"""Prompt sensitivity per task (Kung et al. 2023, the original ActiveIT), cached like the scores.

For a seeded sample of each task's prompts: y_hat = the model's greedy answer to the prompt;
then `n_perturbations` times drop each token of the prompt's own text with probability
`dropout` and measure |p(y_hat | perturbed) - p(y_hat | prompt)|. A task's sensitivity is the
mean over its perturbations and instances; a sensitive task is one the model has not settled.

Decisions: y_hat is generated again (greedy, in this pass) rather than re-tokenised from the
cached text, because decoding drops the end-of-sequence token and re-encoding text need not give
back the generated tokens. Both probabilities come from the same teacher-forced forward, so an
unperturbed copy differs from the original by nothing. Only the example's text is perturbed,
never the template around it (BOS, role markers, '### Response:'): Kung et al. perturb the
instruction, not the format, and dropping the answer cue would swamp the signal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np
import torch

from labelbudget.data.schema import Example, Pool
from labelbudget.distributed import is_main_process
from labelbudget.errors import ConfigError, DataError
from labelbudget.inference.generation import greedy_score
from labelbudget.inference.predict import LeftPadCollator, predict_prompts
from labelbudget.io import atomic_write_text
from labelbudget.models.loading import LoadedModel
from labelbudget.scoring.cache import cache_key, computed_once

# Placeholder texts: what an encoding shares with both is template, not the example's text.
PLACEHOLDERS = ("a", "b")


@dataclass(frozen=True)
class SensitivitySettings:
    """Everything that changes the numbers (batch size too: padding moves floats).

    instances_per_task, n_perturbations, dropout: Kung et al.'s 10, 10 and 0.2.
    max_new_tokens: the cap on y_hat (set it like the scoring pass's).
    batch_size: instances per forward; each brings n_perturbations + 1 rows.
    """

    instances_per_task: int = 10
    n_perturbations: int = 10
    dropout: float = 0.2
    max_new_tokens: int = 32
    seed: int = 0
    batch_size: int = 4

    def __post_init__(self) -> None:
        for name in ("instances_per_task", "n_perturbations", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"prompt sensitivity: {name} must be >= 1, got {getattr(self, name)}"
                )
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"prompt sensitivity: dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class Instance:
    """One sampled prompt: its tokens and, per perturbation, which tokens stay."""

    task: str
    prompt: list[int]
    keep: np.ndarray  # (n_perturbations, len(prompt)) bool

    def perturbed(self) -> list[list[int]]:
        """The prompt's tokens as each perturbation keeps them."""
        tokens = np.asarray(self.prompt)
        return [tokens[k].tolist() for k in self.keep]


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def text_mask(tokens: list[int], placeholders: list[list[int]]) -> np.ndarray:
    """True on the example's own tokens: the template is the head and tail the encoding shares
    with every placeholder's encoding (two placeholders, so text that starts or ends like one
    of them still counts as text)."""
    head = min(common_prefix(tokens, p) for p in placeholders)
    tail = min(common_prefix(tokens[::-1], p[::-1]) for p in placeholders)
    mask = np.zeros(len(tokens), dtype=bool)
    mask[head : max(head, len(tokens) - tail)] = True
    return mask


def perturbation_masks(
    text: np.ndarray, settings: SensitivitySettings, rng: np.random.Generator
) -> np.ndarray:
    """(n_perturbations, n) keep-masks: each text token dropped with probability `dropout`."""
    keep = (rng.random((settings.n_perturbations, len(text))) >= settings.dropout) | ~text
    keep[~keep.any(axis=1), -1] = True  # an empty prompt has no next-token distribution
    return keep


def plan_instances(
    pool: Pool, loaded: LoadedModel, settings: SensitivitySettings
) -> list[Instance]:
    """The sampled prompts and their perturbations, tasks by name: fixed by the seed alone."""
    tokenizer, template = loaded.tokenizer, loaded.template
    placeholders = [
        template.encode_prompt(tokenizer, Example(id="", task="", prompt=p)) for p in PLACEHOLDERS
    ]
    rng = np.random.default_rng(settings.seed)
    tasks = np.asarray(pool.tasks)
    instances = []
    for task in sorted(set(pool.tasks)):
        rows = np.flatnonzero(tasks == task)
        for row in rng.choice(
            rows, size=min(settings.instances_per_task, len(rows)), replace=False
        ):
            tokens = template.encode_prompt(tokenizer, pool[int(row)])
            instances.append(
                Instance(
                    task, tokens, perturbation_masks(text_mask(tokens, placeholders), settings, rng)
                )
            )
    return instances


def left_padded(
    rows: list[list[int]], pad_token_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows as one left-padded batch on `device`: (input ids, attention mask)."""
    batch = LeftPadCollator(pad_token_id)(list(enumerate(rows)))
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def greedy_answers(
    loaded: LoadedModel, prompts: list[list[int]], max_new_tokens: int
) -> list[list[int]]:
    """y_hat for each prompt: its greedy tokens, the end-of-sequence token included if produced."""
    pad = loaded.tokenizer.pad_token_id
    input_ids, mask = left_padded(prompts, pad, loaded.model.device)
    out = greedy_score(
        loaded.model, input_ids, mask, max_new_tokens, loaded.eos_token_ids, pad, measures=False
    )
    return [tokens[:n].tolist() for tokens, n in zip(out["tokens"], out["n_tokens"])]


@torch.no_grad()
def answer_logprob(
    model, prompts: list[list[int]], answers: list[list[int]], pad_token_id: int
) -> torch.Tensor:
    """log p(answer | prompt) per row by teacher forcing, all rows in one left-padded forward.
    The answers end every row, so only the last positions' logits are kept."""
    input_ids, mask = left_padded(
        [p + a for p, a in zip(prompts, answers)], pad_token_id, model.device
    )
    width = max(len(a) for a in answers)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids,
        logits_to_keep=width + 1,
    ).logits
    logits = logits[:, :-1].float()  # position j predicts token j + 1
    targets = input_ids[:, -width:]
    token_logprob = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    lengths = torch.tensor([len(a) for a in answers], device=model.device)
    in_answer = torch.arange(width, device=model.device) >= width - lengths.unsqueeze(1)
    return torch.where(in_answer, token_logprob, 0).double().sum(-1)


@torch.no_grad()
def batch_sensitivity(
    loaded: LoadedModel, batch: list[Instance], max_new_tokens: int
) -> np.ndarray:
    """Mean |p(y_hat | perturbed) - p(y_hat | prompt)| of each instance: one greedy pass, then
    one teacher-forced forward over every instance's original and perturbed prompts."""
    answers = greedy_answers(loaded, [i.prompt for i in batch], max_new_tokens)
    prompts = [p for i in batch for p in [i.prompt, *i.perturbed()]]
    repeated = [a for i, a in zip(batch, answers) for _ in range(len(i.keep) + 1)]
    logprob = answer_logprob(loaded.model, prompts, repeated, loaded.tokenizer.pad_token_id)
    probs = logprob.exp().cpu().numpy().reshape(len(batch), -1)
    return np.abs(probs[:, 1:] - probs[:, :1]).mean(axis=1)


class SensitivityModule(L.LightningModule):
    """The sensitivity of each instance in a batch, as a predict step: the batch's rows name the
    instances (the prompts' tokens only order and split the work across ranks)."""

    def __init__(self, loaded: LoadedModel, instances: list[Instance], max_new_tokens: int):
        super().__init__()
        self.model = loaded.model  # registered, so the Trainer places it
        self.loaded = loaded
        self.instances = instances
        self.max_new_tokens = max_new_tokens

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        """The sensitivity of each instance the batch's rows name, with those rows."""
        chosen = [self.instances[row] for row in batch["rows"].tolist()]
        values = batch_sensitivity(self.loaded, chosen, self.max_new_tokens)
        return {"rows": batch["rows"], "sensitivity": torch.from_numpy(values)}


def compute_prompt_sensitivity(
    loaded: LoadedModel,
    pool: Pool,
    settings: SensitivitySettings,
    trainer_factory: Callable[..., L.Trainer],
) -> dict[str, float]:
    """Sensitivity of every task: instances in length-sorted batches through the inference
    engine (`predict_prompts`: devices, DDP split and progress bar from the Trainer)."""
    instances = plan_instances(pool, loaded, settings)
    outputs = predict_prompts(
        SensitivityModule(loaded, instances, settings.max_new_tokens),
        [i.prompt for i in instances],
        settings.batch_size,
        loaded.tokenizer.pad_token_id,
        trainer_factory,
        "prompt sensitivity",
    )
    values = np.empty(len(instances))
    for out in outputs:
        values[out["rows"].numpy()] = out["sensitivity"].numpy()
    tasks = np.array([i.task for i in instances])
    return {t: float(values[tasks == t].mean()) for t in sorted(set(pool.tasks))}


def sensitivity_path(
    pool: Pool, model_config: dict[str, Any], settings: SensitivitySettings, cache_root: str | Path
) -> Path:
    """The cached result's file, in its own folder under the score cache (with its lock)."""
    key = cache_key(pool, model_config, settings)
    return Path(cache_root).expanduser() / f"prompt-sensitivity-{key}" / "sensitivity.json"


def load_sensitivity(path: Path, pool: Pool) -> dict[str, float] | None:
    """A cached result (None when there is none), refused (with the fix) when it does not cover
    the pool's tasks or is not finite."""
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())["sensitivity"]
        finite = np.isfinite(np.asarray(list(values.values()), dtype=float)).all()
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(
            str(path), f"is not a prompt-sensitivity cache ({error}); delete it to recompute"
        ) from None
    if set(values) != set(pool.tasks) or not finite:
        raise DataError(
            str(path),
            "does not hold a finite sensitivity for every task of the pool; delete it to recompute",
        )
    return values


def prompt_sensitivity(
    pool: Pool,
    loaded: LoadedModel | Callable[[], LoadedModel],
    model_config: dict[str, Any],
    settings: SensitivitySettings,
    cache_root: str | Path,
    trainer_factory: Callable[..., L.Trainer],
) -> dict[str, float]:
    """Per-task sensitivity from the cache when present, else computed and cached, once across
    the jobs and ranks that share the cache (as the scores are: `computed_once`). `loaded` may be
    a zero-argument loader, so a cache hit never loads the model."""
    path = sensitivity_path(pool, model_config, settings, cache_root)

    def compute() -> dict[str, float]:
        model = loaded() if callable(loaded) else loaded
        values = compute_prompt_sensitivity(model, pool, settings, trainer_factory)
        record = {
            "model": model_config,
            "settings": asdict(settings),
            "pool_hash": pool.content_hash(),
            "sensitivity": values,
        }
        if is_main_process():
            atomic_write_text(path, json.dumps(record, indent=2, default=str))
        return values

    return computed_once(path.parent, partial(load_sensitivity, path, pool), compute)
