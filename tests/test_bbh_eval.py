"""BBH evaluation: answer extraction and normalisation on hand-written outputs, grading against
counts done here, prompts built from the real exemplar files, stop strings, leak checks."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import torch

from labelbudget.data.bbh import read_exemplars
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import ConfigError, DataError
from labelbudget.evaluation.bbh import (
    BBHEvaluation,
    bbh_prompt,
    extract_answer,
    grade_outputs,
    is_correct,
)
from labelbudget.inference.generation import StopStrings, greedy_score, truncate_at_stop
from labelbudget.models.tiny import build_tiny_llama


@pytest.mark.parametrize(
    "output, target, correct",
    [
        ("Let's see. X is first. So the answer is (B).", "(B)", True),
        ("So the answer is B.", "(B)", True),  # the letter alone
        ("The answer is Yes.", "yes", True),  # case
        ("so THE ANSWER IS valid.\nQ: next question", "valid", True),  # only its own line
        ("So the answer is invalid.", "valid", False),  # a superstring is not a match
        ("So the answer is (C).", "(B)", False),
        ("False", "False", True),  # no phrase: the raw output
        ("The answer is 24.", "24", True),
        ("So the answer is -219.", "-219", True),
        ("So the answer is 8.", "-8", False),  # the sign counts
        ("So the answer is -8.", "8", False),
        (
            "So the answer is ] ) }.",
            "] ) }",
            True,
        ),  # punctuation-only targets keep their punctuation
        ("So the answer is ] }.", "] ) }", False),
        ("", "] ]", False),  # an empty answer never matches a punctuation target
        ("So the answer is costume counterpart oven.", "costume counterpart oven", True),
    ],
)
def test_answer_extraction_and_normalisation(output, target, correct):
    assert is_correct(output, target) is correct


def test_extract_answer_takes_the_first_phrase_and_drops_the_final_period():
    assert (
        extract_answer("A then B. So the answer is (A). Wait, the answer is (B).")
        == "(A). Wait, the answer is (B)"
    )
    assert extract_answer("  plain text.  ") == "plain text"


def test_gold_outputs_score_one_and_a_constant_scores_each_tasks_prior(shared_data):
    evaluation = BBHEvaluation(data_dir=str(shared_data / "bbh"))
    examples = evaluation.prepare(None, None).examples
    assert len(examples) == 6_511 and len(examples.task_sizes()) == 27
    perfect, _ = grade_outputs(examples, [f"So the answer is {e.response}." for e in examples])
    assert set(perfect.values()) == {1.0}
    targets = defaultdict(list)
    for task_file in sorted((shared_data / "bbh" / "bbh").glob("*.json")):
        targets[task_file.stem] = [
            e["target"] for e in json.loads(task_file.read_text())["examples"]
        ]
    constant, _ = grade_outputs(examples, ["(A)"] * len(examples))
    prior = {t: v.count("(A)") / len(v) for t, v in targets.items()}
    assert constant["bbh/macro"] == pytest.approx(sum(prior.values()) / 27)
    assert constant["bbh/task/date_understanding"] == pytest.approx(prior["date_understanding"])
    every = [t for v in targets.values() for t in v]
    assert constant["bbh/micro"] == pytest.approx(every.count("(A)") / len(every))


def test_prompts_use_the_real_exemplars(shared_data):
    description, exemplars = read_exemplars(
        shared_data / "bbh" / "cot-prompts" / "date_understanding.txt"
    )
    assert description == "Infer the date from context." and [e.answer for e in exemplars] == [
        "(D)",
        "(B)",
        "(B)",
    ]
    cot = bbh_prompt(description, exemplars, "Today is X. What day is it?", cot=True)
    assert (
        cot.startswith("Infer the date from context.\n\nQ: ")
        and exemplars[2].chain_of_thought in cot
    )
    assert cot.endswith("\n\nQ: Today is X. What day is it?\nA: Let's think step by step.")
    direct = bbh_prompt(description, exemplars[:2], "Q?", cot=False)
    assert (
        direct
        == f"Infer the date from context.\n\nQ: {exemplars[0].question}\nA: (D)\n\nQ: {exemplars[1].question}\nA: (B)\n\nQ: Q?\nA:"
    )


def test_exemplar_file_without_header_names_the_file(tmp_path):
    path = tmp_path / "task.txt"
    path.write_text("Q: no header\nA: Let's think step by step. So the answer is x.")
    with pytest.raises(DataError, match="task.txt.*-----"):
        read_exemplars(path)


def test_heldout_split_is_the_dataset_test_half_and_leaks_are_refused(shared_data):
    trained_on = {"_target_": "labelbudget.data.bbh.load_bbh", "test_fraction": 0.5, "seed": 0}
    with pytest.raises(ConfigError, match="split=heldout"):
        BBHEvaluation(data_dir=str(shared_data / "bbh")).prepare(None, trained_on)
    with pytest.raises(ConfigError, match="must equal the dataset's"):
        BBHEvaluation(data_dir=str(shared_data / "bbh"), split="heldout", seed=1).prepare(
            None, trained_on
        )
    from labelbudget.data.bbh import load_bbh

    heldout = BBHEvaluation(data_dir=str(shared_data / "bbh"), split="heldout", tasks=["navigate"])
    examples = heldout.prepare(None, trained_on).examples
    split = load_bbh(shared_data / "bbh" / "bbh", ["navigate"], 0.5, 0)
    assert examples.ids == split.test.ids and not set(examples.ids) & set(split.pool.ids)


def test_truncate_at_the_earliest_stop_string():
    assert truncate_at_stop("step one\nso (A)\n\nQ: more", ("\n\n", "\nQ:")) == "step one\nso (A)"
    assert truncate_at_stop("no stop", ("\n",)) == "no stop"


def test_a_row_stops_when_its_text_holds_a_stop_string():
    tiny = build_tiny_llama()
    ids = tiny.tokenizer("Say something", return_tensors="pt")
    batch = {k: v.repeat(2, 1) for k, v in ids.items()}
    free = greedy_score(
        tiny.model, batch["input_ids"], batch["attention_mask"], 12, [], tiny.tokenizer.pad_token_id
    )
    text = tiny.tokenizer.decode(free["tokens"][0][:3])
    stopped = greedy_score(
        tiny.model,
        batch["input_ids"],
        batch["attention_mask"],
        12,
        [],
        tiny.tokenizer.pad_token_id,
        stop=StopStrings(tiny.tokenizer, [text]),
    )
    assert stopped["n_tokens"].tolist() == [3, 3]  # the third token completes the stop text
    assert torch.equal(stopped["tokens"][:, :3], free["tokens"][:, :3])


def test_grading_weighs_tasks_alike_in_macro():
    pool = Pool(
        [
            Example(id="1", task="a", prompt="p", response="(A)"),
            Example(id="2", task="a", prompt="p", response="(B)"),
            Example(id="3", task="b", prompt="p", response="yes"),
        ],
        "t",
    )
    metrics, correct = grade_outputs(pool, ["So the answer is (A).", "the answer is (A)", "Yes"])
    assert correct == [True, False, True]
    assert metrics == pytest.approx(
        {"bbh/macro": 0.75, "bbh/micro": 2 / 3, "bbh/task/a": 0.5, "bbh/task/b": 1.0}
    )


@pytest.mark.parametrize("fraction", [0, 1.0])
def test_a_heldout_split_without_a_test_half_is_refused_before_reading(tmp_path, fraction):
    evaluation = BBHEvaluation(
        data_dir=str(tmp_path / "absent"), split="heldout", test_fraction=fraction
    )
    with pytest.raises(ConfigError, match=r"eval.bbh.test_fraction must be in \(0, 1\)"):
        evaluation.prepare(None, None)
