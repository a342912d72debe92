"""MMLU as a task-labelled pool: one task per subject, from header-less CSVs
`<data_dir>/<split>/<subject>_<split>.csv` with columns question, A, B, C, D, answer letter."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from labelbudget.data.records import as_name_list, existing_path
from labelbudget.data.schema import Example, Pool, TaskData
from labelbudget.errors import ConfigError, DataError

CHOICE_LETTERS = ("A", "B", "C", "D")
COLUMNS = ("question", *CHOICE_LETTERS, "answer")

# The grouping of hendrycks/test's categories.py: subject → one of its four top-level categories.
SUBJECT_CATEGORIES = {
    "abstract_algebra": "STEM",
    "anatomy": "other",
    "astronomy": "STEM",
    "business_ethics": "other",
    "clinical_knowledge": "other",
    "college_biology": "STEM",
    "college_chemistry": "STEM",
    "college_computer_science": "STEM",
    "college_mathematics": "STEM",
    "college_medicine": "other",
    "college_physics": "STEM",
    "computer_security": "STEM",
    "conceptual_physics": "STEM",
    "econometrics": "social sciences",
    "electrical_engineering": "STEM",
    "elementary_mathematics": "STEM",
    "formal_logic": "humanities",
    "global_facts": "other",
    "high_school_biology": "STEM",
    "high_school_chemistry": "STEM",
    "high_school_computer_science": "STEM",
    "high_school_european_history": "humanities",
    "high_school_geography": "social sciences",
    "high_school_government_and_politics": "social sciences",
    "high_school_macroeconomics": "social sciences",
    "high_school_mathematics": "STEM",
    "high_school_microeconomics": "social sciences",
    "high_school_physics": "STEM",
    "high_school_psychology": "social sciences",
    "high_school_statistics": "STEM",
    "high_school_us_history": "humanities",
    "high_school_world_history": "humanities",
    "human_aging": "other",
    "human_sexuality": "social sciences",
    "international_law": "humanities",
    "jurisprudence": "humanities",
    "logical_fallacies": "humanities",
    "machine_learning": "STEM",
    "management": "other",
    "marketing": "other",
    "medical_genetics": "other",
    "miscellaneous": "other",
    "moral_disputes": "humanities",
    "moral_scenarios": "humanities",
    "nutrition": "other",
    "philosophy": "humanities",
    "prehistory": "humanities",
    "professional_accounting": "other",
    "professional_law": "humanities",
    "professional_medicine": "other",
    "professional_psychology": "social sciences",
    "public_relations": "social sciences",
    "security_studies": "social sciences",
    "sociology": "social sciences",
    "us_foreign_policy": "social sciences",
    "virology": "other",
    "world_religions": "humanities",
}


def load_mmlu(
    data_dir: str | Path,
    pool_split: str = "val",
    test_split: str | None = "test",
    subjects: str | Sequence[str] | None = None,
) -> TaskData:
    """Load `pool_split` as the pool and `test_split` (null: none) as the test split, for the
    given subjects (default: every subject of the pool split).

    The prompt is the question, the lettered options ("A. ...") and "Answer:"; the response is
    the answer letter. Ids are "<subject>-<split>-<row - 1>". Metadata keeps the choices, the
    subject and its category (STEM, humanities, social sciences, other).
    """
    if pool_split == test_split:
        raise ConfigError(
            f"dataset.pool_split and dataset.test_split are both {pool_split!r}; they must differ"
        )
    folder = existing_path(
        data_dir, "MMLU folder", "set paths.data_dir, or dataset.data_dir to the folder of splits"
    )
    chosen = _choose_subjects(folder, pool_split, as_name_list(subjects))
    test = _load_split(folder, test_split, chosen) if test_split is not None else None
    return TaskData(name="mmlu", pool=_load_split(folder, pool_split, chosen), test=test)


def load_mmlu_split(
    data_dir: str | Path, split: str, subjects: str | Sequence[str] | None = None
) -> Pool:
    """One split of the local release (dev, val or test), every subject or those given."""
    folder = existing_path(
        data_dir, "MMLU folder", "set eval.mmlu.data_dir to the folder holding dev/, val/ and test/"
    )
    return _load_split(folder, split, _choose_subjects(folder, split, as_name_list(subjects)))


HUB_SPLITS = {"dev": "dev", "val": "validation", "test": "test"}  # our split names -> cais/mmlu's


def load_mmlu_hub(
    name: str, split: str, subjects: str | Sequence[str] | None = None, **load_kwargs
) -> Pool:
    """The same split from the hub copy (cais/mmlu, config "all": question, subject, choices,
    answer index), mapped to the same examples as the CSV release."""
    from labelbudget.data.hub import download

    if split not in HUB_SPLITS:
        raise ConfigError(f"MMLU split must be one of {', '.join(HUB_SPLITS)}, got {split!r}")
    source = f"{name} (split {HUB_SPLITS[split]!r})"
    wanted = set(as_name_list(subjects) or SUBJECT_CATEGORIES)
    unknown = sorted(wanted - set(SUBJECT_CATEGORIES))
    if unknown:
        raise ConfigError(
            f"unknown MMLU subject(s) {unknown}; valid subjects are: {', '.join(SUBJECT_CATEGORIES)}"
        )
    examples, rows_seen = [], defaultdict(int)
    for row, record in enumerate(download(name, HUB_SPLITS[split], load_kwargs), start=1):
        for key in ("question", "subject", "choices", "answer"):
            if key not in record:
                raise DataError(source, "is missing", row, key)
        subject, answer = record["subject"], record["answer"]
        if subject not in wanted:
            continue
        if not isinstance(answer, int) or not 0 <= answer < len(CHOICE_LETTERS):
            raise DataError(source, f"must be an index 0-3, got {answer!r}", row, "answer")
        rows_seen[subject] += 1
        cells = [record["question"], *record["choices"], CHOICE_LETTERS[answer]]
        examples.append(_example(cells, subject, split, source, row, position=rows_seen[subject]))
    return Pool(examples, source)


def _choose_subjects(folder: Path, split: str, requested: list[str] | None) -> list[str]:
    """The subjects to load, sorted: those requested (each must exist in `split`) or all of `split`'s."""
    split_dir = existing_path(
        folder / split, f"MMLU {split!r} split", "splits are folders named dev, val and test"
    )
    available = sorted(
        path.name.removesuffix(f"_{split}.csv") for path in split_dir.glob(f"*_{split}.csv")
    )
    if not available:
        raise DataError(str(split_dir), f"contains no <subject>_{split}.csv files")
    if requested is None:
        return available
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise ConfigError(
            f"unknown MMLU subject(s) {unknown}; valid subjects are: {', '.join(available)}"
        )
    return sorted(set(requested))


def _load_split(folder: Path, split: str, subjects: list[str]) -> Pool:
    examples: list[Example] = []
    for subject in subjects:
        path = existing_path(
            folder / split / f"{subject}_{split}.csv", f"MMLU {split!r} file of subject {subject!r}"
        )
        examples.extend(_read_subject(path, subject, split))
    return Pool(examples, str(folder / split))


def _read_subject(path: Path, subject: str, split: str) -> list[Example]:
    """The examples of one subject file; the csv module, since questions hold commas, quotes and newlines."""
    if subject not in SUBJECT_CATEGORIES:
        raise DataError(
            str(path), f"{subject!r} is not one of the 57 MMLU subjects, so its category is unknown"
        )
    with path.open(encoding="utf-8", newline="") as file:
        return [
            _example(cells, subject, split, str(path), row)
            for row, cells in enumerate(csv.reader(file), start=1)
        ]


def _example(
    cells: list[str], subject: str, split: str, source: str, row: int, position: int | None = None
) -> Example:
    """`row` locates errors in the source; `position` (1-based, within the subject; default
    `row`) makes the id, so the hub copy and the CSV release give the same ids."""
    if len(cells) != len(COLUMNS):
        first_missing = COLUMNS[len(cells)] if len(cells) < len(COLUMNS) else None
        expected = f"expected {len(COLUMNS)}: {', '.join(COLUMNS)}"
        raise DataError(source, f"has {len(cells)} columns, {expected}", row, first_missing)
    question, *choices, answer = cells
    if not question.strip():
        raise DataError(source, "is empty", row, "question")
    if answer.strip() not in CHOICE_LETTERS:
        raise DataError(
            source, f"must be one of {', '.join(CHOICE_LETTERS)}, got {answer!r}", row, "answer"
        )
    options = [f"{letter}. {choice}" for letter, choice in zip(CHOICE_LETTERS, choices)]
    return Example(
        id=f"{subject}-{split}-{(position or row) - 1}",
        task=subject,
        prompt="\n".join([question, *options, "Answer:"]),
        response=answer.strip(),
        metadata={"choices": choices, "subject": subject, "category": SUBJECT_CATEGORIES[subject]},
    )
