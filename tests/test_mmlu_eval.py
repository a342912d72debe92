"""MMLU evaluation: the batched letter scorer against a per-question brute force, grading against
counts done here, prompt format, leak and config checks, hub copy offline."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import lightning as L
import numpy as np
import pytest
import torch

from labelbudget.data.mmlu import SUBJECT_CATEGORIES, load_mmlu_hub, load_mmlu_split
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import ConfigError, DataError
from labelbudget.evaluation.mmlu import MMLUEvaluation, grade_letters, mmlu_prompt
from labelbudget.inference.letters import letter_token_ids, score_letters
from labelbudget.models.tiny import build_tiny_llama


def cpu_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def question(qid: str, subject: str, text: str, answer: str) -> Example:
    options = [f"{letter}. option {letter.lower()} of {text}" for letter in "ABCD"]
    return Example(
        id=qid, task=subject, prompt="\n".join([text, *options, "Answer:"]), response=answer
    )


def test_batched_letter_scores_equal_one_forward_per_question_and_letter():
    tiny = build_tiny_llama()
    texts = [
        "What is 2+2?",
        "Which planet is the largest one in the solar system, by mass?",
        "Pick one.",
        "A much longer question, " * 6 + "what follows?",
        "Why?",
    ]
    prompts = [mmlu_prompt(question(str(i), "astronomy", t, "A"), []) for i, t in enumerate(texts)]
    token_ids = [tiny.tokenizer(p)["input_ids"] for p in prompts]
    letters = letter_token_ids(tiny.tokenizer, ("A", "B", "C", "D"))
    batched = score_letters(
        tiny, token_ids, letters, batch_size=2, trainer_factory=cpu_trainer
    )  # mixed lengths, left padding
    with torch.no_grad():
        for row, ids in enumerate(token_ids):  # no padding, no batching, full logits
            log_probs = torch.log_softmax(
                tiny.model(input_ids=torch.tensor([ids])).logits[0, -1].double(), dim=-1
            )
            for column, variants in enumerate(letters):
                expected = torch.logsumexp(log_probs[variants], dim=0)
                assert batched[row, column].item() == pytest.approx(expected.item(), abs=1e-5)


class TwoSpellings:
    """A BPE-like vocabulary holding both "A" and " A", and a shared space token."""

    vocab = {"A": 1, " A": 2, "B": 3, " B": 4, " ": 5, "C": 6}

    def encode(self, text, add_special_tokens=False):
        return (
            [self.vocab[text]]
            if text in self.vocab
            else [self.vocab[" "], self.vocab[text.strip()]]
        )

    def decode(self, ids):
        names = {v: k for k, v in self.vocab.items()}
        return "".join(names[i] for i in ids)


def test_letter_variants_cover_both_spellings_and_skip_lone_spaces():
    assert letter_token_ids(TwoSpellings(), ("A", "B", "C")) == [[1, 2], [3, 4], [6]]
    with pytest.raises(ConfigError, match="no single token for the answer letter 'D'"):
        letter_token_ids(SpacesOnly(), ("D",))


class SpacesOnly(TwoSpellings):
    def encode(self, text, add_special_tokens=False):
        return [self.vocab[" "]]


def test_prompt_follows_hendrycks_format_with_shots():
    shot = question("d0", "high_school_physics", "Shot question", "C")
    asked = question("t0", "high_school_physics", "Real question", "B")
    text = mmlu_prompt(asked, [shot])
    assert text == (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        f"{shot.prompt} C\n\n{asked.prompt}"
    )
    assert text.endswith("D. option d of Real question\nAnswer:")


def read_gold(folder, split="test") -> dict[str, list[str]]:
    """Answer letters per subject, read with the csv module alone."""
    gold = {}
    for path in sorted((folder / split).glob(f"*_{split}.csv")):
        with path.open(newline="", encoding="utf-8") as file:
            gold[path.name.removesuffix(f"_{split}.csv")] = [row[-1] for row in csv.reader(file)]
    return gold


def test_gold_answers_score_one_and_a_constant_scores_the_class_prior(shared_data):
    questions = load_mmlu_split(shared_data / "mmlu", "test")
    assert len(questions) == 14_079 and len(questions.task_sizes()) == 57
    perfect = grade_letters(questions, [q.response for q in questions])
    assert set(perfect.values()) == {1.0}
    gold = read_gold(shared_data / "mmlu")
    constant = grade_letters(questions, ["A"] * len(questions))
    every = [a for answers in gold.values() for a in answers]
    assert constant["mmlu/micro"] == pytest.approx(every.count("A") / len(every))
    per_subject = {s: a.count("A") / len(a) for s, a in gold.items()}
    assert constant["mmlu/macro"] == pytest.approx(sum(per_subject.values()) / 57)
    assert constant["mmlu/subject/virology"] == pytest.approx(per_subject["virology"])
    by_category = defaultdict(list)
    for subject, answers in gold.items():
        by_category[SUBJECT_CATEGORIES[subject]] += answers
    for category, answers in by_category.items():
        assert constant[f"mmlu/category/{category}"] == pytest.approx(
            answers.count("A") / len(answers)
        )


def test_prepare_returns_limited_questions_and_dev_shots_and_keeps_nothing(shared_data):
    evaluation = MMLUEvaluation(
        data_dir=str(shared_data / "mmlu"),
        shots=5,
        limit_per_subject=2,
        subjects=["anatomy", "virology"],
    )
    settings = dict(vars(evaluation))
    inputs = evaluation.prepare(None, None)
    assert (
        vars(evaluation) == settings
    )  # the same object can evaluate any model, any number of times
    assert inputs.questions.ids == [
        "anatomy-test-0",
        "anatomy-test-1",
        "virology-test-0",
        "virology-test-1",
    ]
    assert {s: [e.id for e in shots] for s, shots in inputs.shots.items()} == {
        s: [f"{s}-dev-{i}" for i in range(5)] for s in ("anatomy", "virology")
    }


def test_refuses_to_test_on_the_split_it_was_fine_tuned_on(shared_data):
    evaluation = MMLUEvaluation(data_dir=str(shared_data / "mmlu"), split="val")
    with pytest.raises(ConfigError, match="fine-tuned on MMLU's 'val' split"):
        evaluation.prepare(
            None, {"_target_": "labelbudget.data.mmlu.load_mmlu", "pool_split": "val"}
        )
    with pytest.raises(ConfigError, match="shots must be 0-5"):
        MMLUEvaluation(data_dir=str(shared_data / "mmlu"), shots=6).prepare(None, None)


def test_hub_copy_maps_to_the_same_examples(tmp_path, offline_hub):
    rows = [
        {"question": "Q1?", "subject": "virology", "choices": ["w", "x", "y", "z"], "answer": 2},
        {"question": "Q2?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 0},
        {"question": "Q3?", "subject": "virology", "choices": ["1", "2", "3", "4"], "answer": 3},
    ]
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pool = load_mmlu_hub(
        "json", "test", ["virology"], data_files={"test": str(path)}, cache_dir=str(offline_hub)
    )
    assert pool.ids == ["virology-test-0", "virology-test-1"]
    assert [p.response for p in pool] == ["C", "D"]
    assert pool[0].prompt == "Q1?\nA. w\nB. x\nC. y\nD. z\nAnswer:"


def test_hub_row_with_a_bad_answer_names_row_and_field(tmp_path, offline_hub):
    path = tmp_path / "test.jsonl"
    path.write_text(
        json.dumps(
            {"question": "Q?", "subject": "virology", "choices": ["a", "b", "c", "d"], "answer": 7}
        )
        + "\n"
    )
    with pytest.raises(DataError, match=r"row 1.*answer.*index 0-3, got 7"):
        load_mmlu_hub(
            "json", "test", None, data_files={"test": str(path)}, cache_dir=str(offline_hub)
        )


def test_constant_predictions_match_a_pool_counted_by_hand():
    pool = Pool(
        [
            question("1", "anatomy", "x", "A"),
            question("2", "anatomy", "y", "B"),
            question("3", "virology", "z", "A"),
        ],
        "t",
    )
    metrics = grade_letters(pool, ["A", "A", "A"])
    assert metrics["mmlu/micro"] == pytest.approx(2 / 3)
    assert metrics["mmlu/macro"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["mmlu/category/other"] == pytest.approx(2 / 3)  # both subjects are "other"
    assert Counter(k.split("/")[1] for k in metrics) == Counter(
        {"micro": 1, "macro": 1, "category": 1, "subject": 2}
    )


def test_five_shot_evaluation_end_to_end_through_evaluate_py(shared_data, tmp_path):
    """evaluate.py eval=mmlu with 5 shots: each prediction is the argmax letter of one plain forward
    over the 5-shot prompt built here from the CSV files."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "eval"
    command = [
        sys.executable,
        "evaluate.py",
        "model=tiny_llama",
        "eval=mmlu",
        f"eval.data_dir={shared_data / 'mmlu'}",
        "eval.mmlu.shots=5",
        "eval.mmlu.subjects=[anatomy,virology]",
        "eval.limit_per_subject=2",
        f"hydra.run.dir={out}",
    ]
    result = subprocess.run(
        command,
        cwd=repo,
        env={**os.environ, "LABELBUDGET_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    assert (
        record["settings"]["mmlu"]["shots"] == 5 and record["settings"]["mmlu"]["n_questions"] == 4
    )
    predictions = [
        json.loads(line) for line in (out / "mmlu_predictions.jsonl").read_text().splitlines()
    ]

    def rows(subject: str, split: str) -> list[list[str]]:
        with open(
            shared_data / "mmlu" / split / f"{subject}_{split}.csv", newline="", encoding="utf-8"
        ) as handle:
            return list(csv.reader(handle))

    def block(row: list[str]) -> str:
        return "\n".join(
            [
                row[0],
                *(f"{letter}. {option}" for letter, option in zip("ABCD", row[1:5])),
                "Answer:",
            ]
        )

    tiny = build_tiny_llama()
    letters = letter_token_ids(tiny.tokenizer, ("A", "B", "C", "D"))
    expected = []
    for subject in ("anatomy", "virology"):
        header = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
        shots = "".join(f"{block(row)} {row[5]}\n\n" for row in rows(subject, "dev")[:5])
        for row in rows(subject, "test")[:2]:
            with torch.no_grad():
                ids = tiny.tokenizer(header + shots + block(row))["input_ids"]
                log_probs = torch.log_softmax(
                    tiny.model(input_ids=torch.tensor([ids])).logits[0, -1], dim=-1
                )
            expected.append(
                torch.stack([torch.logsumexp(log_probs[v], 0) for v in letters]).tolist()
            )
    for prediction, letter_scores in zip(predictions, expected):
        assert list(prediction["letter_logprobs"].values()) == pytest.approx(
            letter_scores, abs=1e-4
        )
        assert prediction["prediction"] == "ABCD"[int(np.argmax(letter_scores))]
    assert [p["answer"] for p in predictions] == [
        row[5] for s in ("anatomy", "virology") for row in rows(s, "test")[:2]
    ]
    assert record["metrics"]["mmlu/micro"] == pytest.approx(
        sum(p["prediction"] == p["answer"] for p in predictions) / 4
    )
