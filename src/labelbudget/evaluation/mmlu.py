"""MMLU (`eval=mmlu`): 57 subjects, 0-shot or k-shot from the dev split, answered by the
argmax of the next-token log-probabilities over the four answer letters (one forward per
question, see `letters`), as in Hendrycks et al.'s original evaluation.

Prompt: "The following are multiple choice questions (with answers) about {subject}.\\n\\n",
then k solved dev questions ("...\\nAnswer: B\\n\\n"), then the question, its lettered options
and "Answer:". Raw text by default, as the original evaluation and lm-evaluation-harness feed
it; `use_chat_template` wraps it as the user turn of an instruct model's template.

Reported: micro average over questions (the headline, as the field reports MMLU), macro
average over subjects, each subject, and each category (STEM, humanities, social sciences,
other: micro average over the category's questions).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from labelbudget.data.mmlu import CHOICE_LETTERS, SUBJECT_CATEGORIES, load_mmlu_hub, load_mmlu_split
from labelbudget.data.schema import Example, Pool, TaskData
from labelbudget.errors import ConfigError
from labelbudget.evaluation.base import (
    EvalContext,
    EvalResult,
    Evaluation,
    encode,
    trained_loader,
)
from labelbudget.evaluation.tasks import limit_per_task
from labelbudget.inference.letters import letter_token_ids, score_letters
from labelbudget.io import jsonl_text
from labelbudget.rendering import markdown_table

CATEGORIES = ("STEM", "humanities", "social sciences", "other")


def mmlu_prompt(question: Example, shots: list[Example]) -> str:
    """The subject's header, the solved shots ("...\\nAnswer: B"), then the question, ending at
    "Answer:"."""
    subject = question.task.replace("_", " ")
    header = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    return (
        header + "".join(f"{shot.prompt} {shot.response}\n\n" for shot in shots) + question.prompt
    )


def grade_letters(questions: Pool, predicted: list[str]) -> dict[str, float]:
    """Accuracy: micro, macro over subjects, per category, per subject (keys "mmlu/...")."""
    by_subject: dict[str, list[bool]] = defaultdict(list)
    for question, letter in zip(questions, predicted):
        by_subject[question.task].append(letter == question.response)
    by_category: dict[str, list[bool]] = defaultdict(list)
    for subject, hits in by_subject.items():
        by_category[SUBJECT_CATEGORIES[subject]].extend(hits)
    every = [hit for hits in by_subject.values() for hit in hits]
    metrics = {"mmlu/micro": sum(every) / len(every)}
    metrics["mmlu/macro"] = sum(sum(h) / len(h) for h in by_subject.values()) / len(by_subject)
    metrics.update(
        {f"mmlu/category/{c}": sum(h) / len(h) for c in CATEGORIES if (h := by_category.get(c))}
    )
    metrics.update({f"mmlu/subject/{s}": sum(h) / len(h) for s, h in sorted(by_subject.items())})
    return metrics


@dataclass(frozen=True)
class MMLUInputs:
    """The questions to ask, and each subject's solved dev questions shown before them."""

    questions: Pool
    shots: dict[str, list[Example]]


@dataclass
class MMLUEvaluation(Evaluation):
    """MMLU by answer-letter log-probabilities (`eval=mmlu`), from local CSVs or the hub copy."""

    data_dir: str | None = None  # folder of dev/, val/, test/ CSVs; null: the hub copy `hub_id`
    split: str = "test"
    shots: int = (
        0  # solved dev questions of the same subject before each question (the original used 5)
    )
    subjects: list[str] | None = None  # null: all 57
    limit_per_subject: int | None = None  # the first N questions of each subject, for quick runs
    batch_size: int = 16
    use_chat_template: bool = False
    hub_id: str = "cais/mmlu"

    name: ClassVar[str] = "mmlu"
    headline: ClassVar[str] = "mmlu/micro"

    def _load(self, split: str) -> Pool:
        if self.data_dir is None:
            return load_mmlu_hub(self.hub_id, split, self.subjects, name="all")
        return load_mmlu_split(self.data_dir, split, self.subjects)

    def prepare(self, data: TaskData | None, trained_on: dict[str, Any] | None) -> MMLUInputs:
        """Parse every question (and the dev shots) now; refuse to test on the fine-tuning pool."""
        if self.shots < 0 or self.shots > 5:
            raise ConfigError(
                f"eval.mmlu.shots must be 0-5 (the dev split holds 5 per subject), got {self.shots}"
            )
        if trained_loader(trained_on) == "load_mmlu" and trained_on.get("pool_split") == self.split:
            raise ConfigError(
                f"the model was fine-tuned on MMLU's {self.split!r} split; evaluate on another (eval.mmlu.split)"
            )
        questions = limit_per_task(self._load(self.split), self.limit_per_subject)
        shots_of: dict[str, list[Example]] = defaultdict(list)
        if self.shots:
            for example in self._load("dev"):
                if len(shots_of[example.task]) < self.shots:
                    shots_of[example.task].append(example)
            short = sorted(s for s in questions.task_sizes() if len(shots_of[s]) < self.shots)
            if short:
                raise ConfigError(
                    f"eval.mmlu.shots={self.shots} but the dev split has fewer for: {', '.join(short)}"
                )
        return MMLUInputs(questions, dict(shots_of))

    def run(self, context: EvalContext, inputs: MMLUInputs) -> EvalResult:
        """Score the answer letters after every question, grade the best, and write
        mmlu_predictions.jsonl."""
        questions = inputs.questions
        loaded = context.loaded
        token_ids = [
            encode(loaded, mmlu_prompt(q, inputs.shots.get(q.task, [])), self.use_chat_template)
            for q in questions
        ]
        letter_ids = letter_token_ids(loaded.tokenizer, CHOICE_LETTERS)
        scores = score_letters(
            loaded, token_ids, letter_ids, self.batch_size, context.trainer_factory, desc="mmlu"
        )
        predicted = [CHOICE_LETTERS[i] for i in scores.argmax(dim=1).tolist()]
        metrics = grade_letters(questions, predicted)
        context.write_text(
            "mmlu_predictions.jsonl", predictions_jsonl(questions, predicted, scores.tolist())
        )
        settings = {
            **asdict(self),
            "n_questions": len(questions),
            "letter_token_ids": letter_ids,
            "source": questions.source,
            "template": type(loaded.template).__name__ if self.use_chat_template else "raw",
        }
        rows = [
            ["micro (headline)", metrics["mmlu/micro"]],
            ["macro over subjects", metrics["mmlu/macro"]],
        ]
        rows += [
            [name.removeprefix("mmlu/category/"), value]
            for name, value in metrics.items()
            if name.startswith("mmlu/category/")
        ]
        return EvalResult(metrics, settings, markdown_table(["MMLU", "accuracy"], rows))


def predictions_jsonl(questions: Pool, predicted: list[str], scores: list[list[float]]) -> str:
    """One line per question: its answer, the predicted letter, and every letter's
    log-probability."""
    return jsonl_text(
        {
            "id": q.id,
            "subject": q.task,
            "answer": q.response,
            "prediction": p,
            "letter_logprobs": dict(zip(CHOICE_LETTERS, s)),
        }
        for q, p, s in zip(questions, predicted, scores)
    )
