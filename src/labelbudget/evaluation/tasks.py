"""Held-out evaluation on the pool's own tasks: greedy answers graded by each task's rule.

Generation is the scoring pass's (same template, same batched greedy decoder, through
`Trainer.predict`: labelbudget.inference), without its measures; zero-shot and fine-tuned
numbers are produced by identical code.
Reported per task, macro-averaged (tasks weigh alike) and micro-averaged (prompts weigh alike).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

import lightning as L
import torch
from torchmetrics.aggregation import MeanMetric

from labelbudget.data.schema import Example, Pool, TaskData
from labelbudget.errors import ConfigError, DataError, listing
from labelbudget.evaluation.base import EvalContext, EvalResult, Evaluation
from labelbudget.evaluation.rules import score_prediction
from labelbudget.inference.predict import generate
from labelbudget.io import jsonl_text
from labelbudget.models.loading import LoadedModel
from labelbudget.rendering import markdown_table

DEFAULT_RULE = "exact"  # for examples whose loader names no rule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEvaluation(Evaluation):
    """The pool's own tasks on the dataset's held-out test split (`eval=tasks`)."""

    max_new_tokens: int = 32
    batch_size: int = 32
    limit_per_task: int | None = None  # the first N test prompts of each task, for quick runs

    name: ClassVar[str] = "tasks"
    headline: ClassVar[str] = "tasks/macro"
    needs_dataset: ClassVar[bool] = True

    def prepare(self, data: TaskData | None, trained_on: dict[str, Any] | None) -> Pool:
        """The test prompts (the first `limit_per_task` of each task)."""
        if data is None or data.test is None:
            name = data.name if data is not None else "(none)"
            raise ConfigError(
                f"dataset {name!r} has no held-out test split to evaluate on (set dataset.test_path)"
            )
        test = limit_per_task(data.test, self.limit_per_task)
        check_gradable(test)
        return test

    def run(self, context: EvalContext, inputs: Pool) -> EvalResult:
        """Greedy answers graded by each task's rule; every prompt's answer and score go to
        predictions.jsonl."""
        test = inputs
        answers = generate_answers(context.loaded, test, self, context.trainer_factory)
        metrics, scores = grade(test, answers)
        context.write_text("predictions.jsonl", predictions_jsonl(test, answers, scores))
        settings = {
            **asdict(self),
            "n_prompts": len(test),
            "template": type(context.loaded.template).__name__,
        }
        rows = [[name.removeprefix("tasks/"), value] for name, value in metrics.items()]
        return EvalResult(metrics, settings, markdown_table(["task", "accuracy"], rows))


def check_gradable(test: Pool) -> None:
    """Every test prompt can be graded, checked before the model loads rather than after
    generation: a task name that is not a summary's (macro, micro), a reference, and a rule that
    exists and accepts that reference. A reference that does not score against itself can never
    score (a multi-line answer under a rule that reads the first line): warned, with its tasks."""
    summaries = sorted({e.task for e in test} & {"macro", "micro"})
    if summaries:
        raise DataError(
            test.source,
            f"task names {summaries} would overwrite the tasks/macro and tasks/micro averages; "
            "rename those tasks",
            field="task",
        )
    unanswered = test.unanswered_ids()
    if unanswered:
        raise DataError(
            test.source,
            f"{len(unanswered)} test prompts have no reference answer to grade against: "
            f"{listing(unanswered)}",
            field="response",
        )
    never_scored: dict[str, list[str]] = defaultdict(list)
    for example in test:
        try:
            if not score_prediction(rule_of(example), example.response, example.response):
                never_scored[example.task].append(example.id)
        except ConfigError as error:
            raise DataError(
                test.source,
                f"test prompt {example.id!r} (task {example.task!r}): {error}",
                field="rule",
            ) from None
    if never_scored:
        log.warning(
            "%d test references of %s do not score even as their own answer under their task's "
            "rule, so those prompts always score 0 (e.g. a multi-line reference, where the rule "
            "reads an answer's first line): %s",
            sum(map(len, never_scored.values())),
            test.source,
            listing(
                [f"task {t!r} ({len(ids)}, e.g. {ids[0]!r})" for t, ids in never_scored.items()],
                5,
                str,
            ),
        )


def rule_of(example: Example) -> str:
    """The example's scoring rule: its loader's, else `DEFAULT_RULE`."""
    return example.metadata.get("rule", DEFAULT_RULE)


def limit_per_task(pool: Pool, limit: int | None) -> Pool:
    """The first `limit` examples of each task, in pool order (the pool itself for None)."""
    if limit is None:
        return pool
    kept, seen = [], defaultdict(int)
    for example in pool:
        if seen[example.task] < limit:
            kept.append(example)
            seen[example.task] += 1
    return Pool(kept, pool.source)


def generate_answers(
    loaded: LoadedModel,
    pool: Pool,
    settings: TaskEvaluation,
    trainer_factory: Callable[..., L.Trainer],
) -> list[str]:
    """Greedy answers for every prompt (in the model's template), in pool order."""
    token_ids = [loaded.template.encode_prompt(loaded.tokenizer, e) for e in pool]
    return generate(
        loaded, token_ids, settings.max_new_tokens, settings.batch_size, trainer_factory
    )


def grade(pool: Pool, answers: list[str]) -> tuple[dict[str, float], list[float]]:
    """Per-task accuracy plus macro and micro averages (keys `tasks/<task>`, `tasks/macro`,
    `tasks/micro`), and each answer's score."""
    per_task: dict[str, MeanMetric] = defaultdict(MeanMetric)
    micro = MeanMetric()
    scores = []
    for example, answer in zip(pool, answers):
        scores.append(score_prediction(rule_of(example), answer, example.response))
        per_task[example.task].update(torch.tensor(scores[-1]))
        micro.update(torch.tensor(scores[-1]))
    results = {
        f"tasks/{task}": float(metric.compute()) for task, metric in sorted(per_task.items())
    }
    results["tasks/macro"] = sum(results.values()) / len(results)
    results["tasks/micro"] = float(micro.compute())
    return results, scores


def predictions_jsonl(pool: Pool, answers: list[str], scores: list[float]) -> str:
    """One line per test prompt: what was asked, expected, answered, and how it scored."""
    return jsonl_text(
        {
            "id": e.id,
            "task": e.task,
            "prompt": e.prompt,
            "reference": e.response,
            "prediction": a,
            "score": s,
        }
        for e, a, s in zip(pool, answers, scores)
    )
