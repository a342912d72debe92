"""Held-out evaluation on the pool's own tasks: greedy answers graded by each task's rule.

Generation reuses the scoring pass (same template, same batched greedy decoder, through
`Trainer.predict`), so zero-shot and fine-tuned numbers are produced by identical code.
Reported per task, macro-averaged (tasks weigh alike) and micro-averaged (prompts weigh alike).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import lightning as L
import torch
from torchmetrics.aggregation import MeanMetric

from labelbudget.data.schema import Pool
from labelbudget.evaluation.rules import score_prediction
from labelbudget.models.loading import LoadedModel
from labelbudget.scoring.module import ScoringModule, length_sorted_batches, prompt_loader

DEFAULT_RULE = "exact"  # for examples whose loader names no rule


@dataclass(frozen=True)
class TaskEvalSettings:
    """How held-out tasks are evaluated; logged with every result so numbers stay comparable."""

    max_new_tokens: int = 32
    batch_size: int = 32
    limit_per_task: int | None = None  # the first N test prompts of each task, for quick runs


def limit_per_task(pool: Pool, limit: int | None) -> Pool:
    if limit is None:
        return pool
    kept, seen = [], defaultdict(int)
    for example in pool:
        if seen[example.task] < limit:
            kept.append(example)
            seen[example.task] += 1
    return Pool(kept, pool.source)


def generate_answers(loaded: LoadedModel, pool: Pool, settings: TaskEvalSettings, trainer_factory: Callable[..., L.Trainer]) -> list[str]:
    """Greedy answers for every prompt, in pool order."""
    token_ids = [loaded.template.encode_prompt(loaded.tokenizer, e) for e in pool]
    batches = length_sorted_batches([len(t) for t in token_ids], settings.batch_size)
    module = ScoringModule(loaded.model, settings.max_new_tokens, loaded.eos_token_ids, loaded.tokenizer.pad_token_id, "last")
    outputs = trainer_factory().predict(module, dataloaders=prompt_loader(token_ids, batches, loaded.tokenizer.pad_token_id))
    answers: list[str] = [""] * len(pool)
    for out in outputs:
        for row, tokens in zip(out["rows"].tolist(), out["tokens"]):
            answers[row] = loaded.tokenizer.decode(tokens, skip_special_tokens=True)
    return answers


def grade(pool: Pool, answers: list[str]) -> tuple[dict[str, float], list[float]]:
    """Per-task accuracy plus macro and micro averages (keys `tasks/<task>`, `tasks/macro`,
    `tasks/micro`), and each answer's score."""
    per_task: dict[str, MeanMetric] = defaultdict(MeanMetric)
    micro = MeanMetric()
    scores = []
    for example, answer in zip(pool, answers):
        scores.append(score_prediction(example.metadata.get("rule", DEFAULT_RULE), answer, example.response or ""))
        per_task[example.task].update(torch.tensor(scores[-1]))
        micro.update(torch.tensor(scores[-1]))
    results = {f"tasks/{task}": float(metric.compute()) for task, metric in sorted(per_task.items())}
    results["tasks/macro"] = sum(results.values()) / len(results)
    results["tasks/micro"] = float(micro.compute())
    return results, scores


def predictions_jsonl(pool: Pool, answers: list[str], scores: list[float]) -> str:
    """One line per test prompt: what was asked, expected, answered, and how it scored."""
    lines = [
        json.dumps({"id": e.id, "task": e.task, "prompt": e.prompt, "reference": e.response, "prediction": a, "score": s}, ensure_ascii=False)
        for e, a, s in zip(pool, answers, scores)
    ]
    return "\n".join(lines) + "\n"
