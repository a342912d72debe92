"""BIG-Bench Hard as a task-labelled pool: one task per `<task>.json` file, each holding
`{"examples": [{"input": ..., "target": ...}, ...]}`."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labelbudget.data.jsonl import read_json
from labelbudget.data.records import FieldMap, as_name_list, example_from_record, existing_path
from labelbudget.data.schema import Example, Pool, TaskData
from labelbudget.errors import ConfigError, DataError


def load_bbh(
    data_dir: str | Path,
    tasks: str | Sequence[str] | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> TaskData:
    """Load the BBH tasks (all of them by default) and split each one into pool and test.

    Within every task, `floor(test_fraction * size)` examples chosen by a generator seeded with
    (`seed`, task name) go to the test split and the rest to the pool, both in file order. Seeding
    per task keeps a task's split the same whichever other tasks are loaded. Ids are "<task>-<i>",
    i the zero-based position in the task file; prompt = input, response = target.
    """
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"dataset.test_fraction must be in [0, 1), got {test_fraction}")
    folder = existing_path(
        data_dir, "BBH folder", "set paths.data_dir, or dataset.data_dir to the <task>.json folder"
    )
    files = _task_files(folder, as_name_list(tasks))
    pool: list[Example] = []
    test: list[Example] = []
    for task, path in files.items():
        examples = _read_task(task, path)
        test_size = int(test_fraction * len(examples))
        test_indices = set(random.Random(f"{seed}:{task}").sample(range(len(examples)), test_size))
        for index, example in enumerate(examples):
            (test if index in test_indices else pool).append(example)
    return TaskData(
        name="bbh", pool=Pool(pool, str(folder)), test=Pool(test, str(folder)) if test else None
    )


def load_bbh_tasks(data_dir: str | Path, tasks: str | Sequence[str] | None = None) -> Pool:
    """Every example of the given tasks (default all), task by task in name order: the benchmark."""
    folder = existing_path(
        data_dir, "BBH folder", "set eval.bbh.data_dir to the folder holding bbh/ and cot-prompts/"
    )
    examples = [
        e
        for task, path in _task_files(folder, as_name_list(tasks)).items()
        for e in _read_task(task, path)
    ]
    return Pool(examples, str(folder))


@dataclass(frozen=True)
class Exemplar:
    """One solved question of a task's few-shot prompt file."""

    question: str
    answer: str  # X of "So the answer is X."
    chain_of_thought: str  # the whole "Q: ...\nA: Let's think step by step. ..." block, as written


def read_exemplars(path: Path) -> tuple[str, list[Exemplar]]:
    """A task's few-shot prompt file (`cot-prompts/<task>.txt`): a header ending in a "-----"
    line, the task description, then "Q: ...\nA: Let's think step by step.\n... So the answer
    is X." exemplars separated by blank lines. Returns the description and the exemplars."""
    text = existing_path(
        path, "BBH few-shot prompt file", "it lives in cot-prompts/ beside the bbh/ folder"
    ).read_text(encoding="utf-8")
    if "\n-----\n" not in text:
        raise DataError(str(path), 'has no "-----" line ending its header')
    description, *blocks = text.split("\n-----\n", 1)[1].strip().split("\n\nQ: ")
    exemplars = []
    for number, block in enumerate(blocks, start=1):
        question, _, reasoning = block.partition("\nA: Let's think step by step.")
        answer = re.search(r"So the answer is (.+?)\.?\s*$", reasoning)
        if not reasoning or answer is None:
            raise DataError(
                str(path),
                f'exemplar {number} lacks "A: Let\'s think step by step." or a final "So the answer is X."',
            )
        exemplars.append(Exemplar(question.strip(), answer.group(1).strip(), f"Q: {block.strip()}"))
    return description.strip(), exemplars


def _task_files(folder: Path, tasks: list[str] | None) -> dict[str, Path]:
    """Task name → file, sorted by name; unknown requested tasks are a config error listing the valid ones."""
    available = {path.stem: path for path in sorted(folder.glob("*.json"))}
    if not available:
        raise DataError(str(folder), "contains no BBH <task>.json files")
    if tasks is None:
        return available
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise ConfigError(f"unknown BBH task(s) {unknown}; valid tasks are: {', '.join(available)}")
    return {task: available[task] for task in sorted(set(tasks))}


def _read_task(task: str, path: Path) -> list[Example]:
    content = read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("examples"), list):
        raise DataError(
            str(path),
            'expected a JSON object with an "examples" list of {"input", "target"} objects',
        )
    fields = FieldMap(prompt="input", response="target", task=None, task_constant=task)
    return [
        example_from_record(
            record, fields, str(path), index, id_prefix=f"{task}-", suggest_config=False
        )
        for index, record in enumerate(content["examples"], start=1)
    ]
