"""BIG-Bench Hard (`eval=bbh`): 27 task files, 3-shot, greedy decoding, exact match.

Prompt (Suzgun et al.'s): the task description, the exemplars of `cot-prompts/<task>.txt`
(with their chain of thought, or, with `cot: false`, only "Q: ...\\nA: X"), then
"Q: {input}\\nA: Let's think step by step." (or "A:"). Generation stops at a blank line or a
new "Q:" (chain of thought) or at the end of the line (direct), or at `max_new_tokens`.

Scoring: the answer is what follows the first "the answer is" (to the end of its line), else
the whole output; it matches the target when equal after folding case, whitespace and
punctuation. Targets made only of punctuation (dyck_languages: "] ) }") keep their punctuation,
since stripping it would make every empty answer correct. Reported: macro average over tasks
(the headline, as Suzgun et al. report), micro average over examples, and each task.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from labelbudget.data.bbh import Exemplar, load_bbh, load_bbh_tasks, read_exemplars
from labelbudget.data.schema import Pool, TaskData
from labelbudget.errors import ConfigError
from labelbudget.evaluation.base import (
    EvalContext,
    EvalResult,
    Evaluation,
    encode,
    trained_loader,
)
from labelbudget.evaluation.tasks import limit_per_task
from labelbudget.inference.predict import generate
from labelbudget.io import jsonl_text
from labelbudget.rendering import markdown_table

COT_CUE = "Let's think step by step."
COT_STOPS = ("\n\n", "\nQ:")
DIRECT_STOPS = ("\n",)
_ANSWER = re.compile(r"the answer is\s*(.*)", re.IGNORECASE)
_PUNCTUATION = str.maketrans("", "", string.punctuation.replace("-", ""))
_SIGN = re.compile(r"-(?!\d)")  # every hyphen but a minus sign


def extract_answer(output: str) -> str:
    """What follows the first "the answer is" up to the end of its line (a final period
    dropped); without that phrase, the whole output."""
    found = _ANSWER.search(output)
    answer = found.group(1).splitlines()[0] if found and found.group(1) else output
    return answer.strip().removesuffix(".").strip()


def normalise_answer(text: str, target: str) -> str:
    """Case and whitespace folded; punctuation dropped unless the target is only punctuation,
    except a minus sign before a digit: "8" must not match "-8"."""
    text = " ".join(text.lower().split())
    if any(c.isalnum() for c in target):
        text = _SIGN.sub("", text.translate(_PUNCTUATION))
        text = " ".join(text.split())
    return text


def is_correct(output: str, target: str) -> bool:
    """Whether the output's answer equals the target once both are normalised for that target."""
    return normalise_answer(extract_answer(output), target) == normalise_answer(target, target)


def bbh_prompt(description: str, exemplars: list[Exemplar], question: str, cot: bool) -> str:
    """The task description, the exemplars (with their chain of thought where `cot`), then the
    question and its answer cue."""
    shots = [e.chain_of_thought if cot else f"Q: {e.question}\nA: {e.answer}" for e in exemplars]
    cue = f"A: {COT_CUE}" if cot else "A:"
    return "\n\n".join([description, *shots, f"Q: {question}\n{cue}"])


def grade_outputs(examples: Pool, outputs: list[str]) -> tuple[dict[str, float], list[bool]]:
    """Exact match per task ("bbh/task/<task>"), its macro and micro averages, and each
    output's verdict."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    correct = [is_correct(o, e.response) for e, o in zip(examples, outputs)]
    for example, hit in zip(examples, correct):
        by_task[example.task].append(hit)
    metrics = {
        "bbh/macro": sum(sum(h) / len(h) for h in by_task.values()) / len(by_task),
        "bbh/micro": sum(correct) / len(correct),
    }
    metrics.update({f"bbh/task/{t}": sum(h) / len(h) for t, h in sorted(by_task.items())})
    return metrics, correct


@dataclass(frozen=True)
class BBHInputs:
    """The questions to ask, and each task's description and exemplars."""

    examples: Pool
    prompts: dict[str, tuple[str, list[Exemplar]]]


@dataclass
class BBHEvaluation(Evaluation):
    """BIG-Bench Hard (`eval=bbh`): the whole benchmark, or with `split=heldout` the test half of
    `dataset=bbh`'s split, for a model fine-tuned on the other half."""

    data_dir: str  # holds bbh/<task>.json and cot-prompts/<task>.txt
    tasks: list[str] | None = None  # null: all 27
    cot: bool = (
        True  # chain-of-thought exemplars (Suzgun et al.'s CoT setting); false: direct answers
    )
    shots: int = 3
    max_new_tokens: int = 256
    max_examples_per_task: int | None = None  # the first N of each task, for quick runs
    split: str = "all"  # "all" (the benchmark) or "heldout": the test half of dataset=bbh's split
    test_fraction: float = 0.5  # for split=heldout: must match the dataset's
    seed: int = 0  # for split=heldout: must match the dataset's
    batch_size: int = 8
    use_chat_template: bool = False

    name: ClassVar[str] = "bbh"
    headline: ClassVar[str] = "bbh/macro"

    def prepare(self, data: TaskData | None, trained_on: dict[str, Any] | None) -> BBHInputs:
        """Read every task and its exemplars now; refuse to test on the fine-tuning pool."""
        if self.split not in ("all", "heldout"):
            raise ConfigError(f"eval.bbh.split must be 'all' or 'heldout', got {self.split!r}")
        if self.split == "heldout" and not 0 < self.test_fraction < 1:
            raise ConfigError(
                "eval.bbh.split=heldout grades the dataset's test half: eval.bbh.test_fraction "
                f"must be in (0, 1), got {self.test_fraction}"
            )
        if not 0 <= self.shots <= 3:
            raise ConfigError(
                f"eval.bbh.shots must be 0-3 (each task file has 3 exemplars), got {self.shots}"
            )
        if trained_loader(trained_on) == "load_bbh":
            if self.split == "all":
                raise ConfigError(
                    "the model was fine-tuned on a BBH pool: evaluate on the other half with eval.bbh.split=heldout"
                )
            if (trained_on.get("test_fraction"), trained_on.get("seed")) != (
                self.test_fraction,
                self.seed,
            ):
                raise ConfigError(
                    "eval.bbh.test_fraction and eval.bbh.seed must equal the dataset's, or the halves overlap"
                )
        folder = Path(self.data_dir)
        if self.split == "all":
            examples = load_bbh_tasks(folder / "bbh", self.tasks)
        else:
            examples = load_bbh(folder / "bbh", self.tasks, self.test_fraction, self.seed).test
        examples = limit_per_task(examples, self.max_examples_per_task)
        prompts = {
            task: read_exemplars(folder / "cot-prompts" / f"{task}.txt")
            for task in examples.task_sizes()
        }
        return BBHInputs(examples, prompts)

    def run(self, context: EvalContext, inputs: BBHInputs) -> EvalResult:
        """Generate, grade and write bbh_predictions.jsonl; the table shows the macro and micro
        averages and each task."""
        examples, prompts = inputs.examples, inputs.prompts
        loaded = context.loaded
        texts = [
            bbh_prompt(prompts[e.task][0], prompts[e.task][1][: self.shots], e.prompt, self.cot)
            for e in examples
        ]
        token_ids = [encode(loaded, text, self.use_chat_template) for text in texts]
        stops = COT_STOPS if self.cot else DIRECT_STOPS
        outputs = generate(
            loaded,
            token_ids,
            self.max_new_tokens,
            self.batch_size,
            context.trainer_factory,
            stops,
            desc="bbh",
        )
        metrics, correct = grade_outputs(examples, outputs)
        context.write_text("bbh_predictions.jsonl", predictions_jsonl(examples, outputs, correct))
        settings = {
            **asdict(self),
            "n_examples": len(examples),
            "stop_strings": list(stops),
            "template": type(loaded.template).__name__ if self.use_chat_template else "raw",
        }
        rows = [
            ["macro over tasks (headline)", metrics["bbh/macro"]],
            ["micro over examples", metrics["bbh/micro"]],
        ]
        rows += [
            [k.removeprefix("bbh/task/"), v]
            for k, v in metrics.items()
            if k.startswith("bbh/task/")
        ]
        return EvalResult(metrics, settings, markdown_table(["BBH", "exact match"], rows))


def predictions_jsonl(examples: Pool, outputs: list[str], correct: list[bool]) -> str:
    """One line per question: its target, the output, the answer read from it and whether it
    matched."""
    return jsonl_text(
        {
            "id": e.id,
            "task": e.task,
            "target": e.response,
            "output": o,
            "answer": extract_answer(o),
            "correct": c,
        }
        for e, o, c in zip(examples, outputs, correct)
    )
