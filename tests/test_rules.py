"""Scoring rules on hand-written chat-model answers: lenient to phrasing, never to wrong answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelbudget.errors import ConfigError
from labelbudget.evaluation.rules import RULES, normalise, resolve_rule, score_prediction

COLOURS = "label:red|green|blue|yellow"


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        ("apple", "apple", 1.0),
        ("  Apple. ", "apple", 1.0),
        ("'apple'", "apple", 1.0),
        ("`apple`.", "apple", 1.0),
        ('"Apple"!', "apple", 1.0),
        ("**apple**", "apple", 1.0),
        ("apple\nThat is the word you asked for.", "apple", 1.0),
        ("1998-12-21", "1998-12-21", 1.0),
        ("1:02 pm", "1:02 PM", 1.0),
        ("apples", "apple", 0.0),
        ("apple pie", "apple", 0.0),
        ("pineapple", "apple", 0.0),
        ("The answer is apple", "apple", 0.0),
        ("", "apple", 0.0),
        ("1998-12-2", "1998-12-21", 0.0),
    ],
)
def test_exact(prediction, reference, expected):
    assert score_prediction("exact", prediction, reference) == expected


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        ("APPLE", "APPLE", 1.0),
        ("'APPLE'.", "APPLE", 1.0),
        ("apple", "APPLE", 0.0),
        ("Apple", "APPLE", 0.0),
    ],
)
def test_exact_case_keeps_case(prediction, reference, expected):
    assert score_prediction("exact_case", prediction, reference) == expected


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        ("7", "7", 1.0),
        ("The answer is 7.", "7", 1.0),
        ("7.", "7", 1.0),
        ("7.0", "7", 1.0),
        ("Answer: +7", "7", 1.0),
        ("70", "7", 0.0),
        ("0.7", "7", 0.0),
        ("-12", "-12", 1.0),
        ("The difference is \u221212.", "-12", 1.0),
        ("12", "-12", 0.0),
        ("-12", "12", 0.0),
        ("1,234", "1234", 1.0),
        ("It comes to 1,234,567 in total", "1234567", 1.0),
        ("3.50", "3.5", 1.0),
        ("2.5", "2", 0.0),
        ("8 or 7", "8", 0.0),
        ("16 + 20 = 36", "36", 1.0),
        ("3 + 4 = 8", "7", 0.0),
        ("The answer is 7.\nCheck: 3 + 5 = 8", "7", 1.0),
        ("no idea", "7", 0.0),
        ("", "0", 0.0),
        ("0", "0", 1.0),
    ],
)
def test_number(prediction, reference, expected):
    assert score_prediction("number", prediction, reference) == expected


def test_number_rejects_a_reference_that_is_not_a_number():
    with pytest.raises(ConfigError, match="not a number"):
        score_prediction("number", "7", "seven")


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_number_reads_any_integer_in_a_sentence(n):
    assert score_prediction("number", f"The answer is {n:,}.", str(n)) == 1.0
    assert score_prediction("number", f"The answer is {n + 1:,}.", str(n)) == 0.0


@pytest.mark.parametrize(
    "rule, prediction, reference, expected",
    [
        ("label:even|odd", "odd", "odd", 1.0),
        ("label:even|odd", "The number is Odd.", "odd", 1.0),
        ("label:even|odd", "odd, definitely odd", "odd", 1.0),
        ("label:even|odd", "It is even or odd? I think odd.", "odd", 0.0),
        ("label:even|odd", "oddly, it is even", "even", 1.0),
        ("label:even|odd", "It is even", "odd", 0.0),
        ("label:even|odd", "", "odd", 0.0),
        (COLOURS, "The word green is a colour.", "green", 1.0),
        (COLOURS, "greenhouse", "green", 0.0),
        (COLOURS, "'blue'", "blue", 1.0),
        ("label:yes|no", "No, it is not prime.", "no", 1.0),
        ("label:yes|no", "Noted: yes", "yes", 1.0),
    ],
)
def test_label_takes_the_first_allowed_label_as_a_whole_word(rule, prediction, reference, expected):
    assert score_prediction(rule, prediction, reference) == expected


def test_label_rejects_a_reference_outside_its_labels():
    with pytest.raises(ConfigError, match="not one of"):
        score_prediction("label:even|odd", "even", "maybe")


@pytest.mark.parametrize("rule", ["label:", "label:yes", "label:yes|", "label"])
def test_label_needs_two_labels(rule):
    with pytest.raises(ConfigError):
        resolve_rule(rule)


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        ("Maria", "Maria", 1.0),
        ("'Maria'.", "Maria", 1.0),
        ("Maria is the tallest.", "Maria", 1.0),
        ("Maria, because she is taller than Tom.", "Maria", 1.0),
        ("Mariana", "Maria", 0.0),
        ("It is Maria", "Maria", 0.0),
        ("", "Maria", 0.0),
    ],
)
def test_starts_with_needs_a_whole_word(prediction, reference, expected):
    assert score_prediction("starts_with", prediction, reference) == expected


@pytest.mark.parametrize(
    "prediction, expected",
    [
        ("3, 7, 19, 42, 88", 1.0),
        ("3,7,19,42,88", 1.0),
        ("3 7 19 42 88", 1.0),
        ("[3, 7, 19, 42, 88].", 1.0),
        ("3, 7, 19, 42 and 88", 1.0),
        ("Sorted: 3, 7, 19, 42, 88", 1.0),
        ("3, 7, 19, 42, 88\nI sorted them from smallest to largest.", 1.0),
        ("3, 7, 19, 42", 0.0),
        ("3, 7, 19, 42, 88, 100", 0.0),
        ("7, 3, 19, 42, 88", 0.0),
        ("88, 42, 19, 7, 3", 0.0),
        ("", 0.0),
    ],
)
def test_list_needs_the_same_items_in_order(prediction, expected):
    assert score_prediction("list", prediction, "3, 7, 19, 42, 88") == expected


@pytest.mark.parametrize("rule", ["fuzzy", "exact:strict", "Number", ""])
def test_unknown_rule_lists_the_valid_ones(rule):
    with pytest.raises(
        ConfigError, match="valid rules: exact, exact_case, list, number, starts_with, label:"
    ):
        score_prediction(rule, "7", "7")


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
    st.sampled_from(["x", "s", " x"]),
)
def test_exact_accepts_quoting_but_never_a_superstring(word, suffix):
    assert score_prediction("exact", f"'{word.upper()}'.", word) == 1.0
    assert score_prediction("exact", word + suffix, word) == 0.0


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_plain_rule_scores_a_reference_against_itself(rule):
    reference = {"number": "-3.5", "list": "a, b"}.get(rule, "Word")
    assert score_prediction(rule, reference, reference) == 1.0


def test_normalise_strips_wrappers_in_any_nesting():
    assert normalise(' "`Hello   World`". ') == "hello world"
    assert normalise("'Hello'.", keep_case=True) == "Hello"
