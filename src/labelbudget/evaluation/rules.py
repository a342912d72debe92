"""Per-task scoring rules: does a model's free-text answer match the reference answer?

A small chat model rarely answers with the bare token it was asked for: it says "The answer is 7.",
wraps a word in quotes or adds an explanation on the next line. The rules are lenient to that
phrasing the way common evaluation harnesses are (fold case, strip quotes and trailing punctuation,
take the first number or label, stop at the first line) but never let a wrong answer score: a
superstring of the reference is not an exact match, and "7" does not match "70".

A task carries its rule as a string (`Example.metadata["rule"]`). Plain rules live in `RULES`;
`label:<a>|<b>|...` carries the task's allowed labels in the string itself, so every rule has the
same (prediction, reference) signature once resolved.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Callable, Sequence

from labelbudget.errors import ConfigError

Rule = Callable[[str, str], float]

_TRAILING_PUNCTUATION = ".,;:!?"
_WRAPPERS = "\"'`*"  # quotes, backticks and markdown emphasis that chat models put around answers
_NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_LIST_ITEM = re.compile(r"[^\s,;\[\](){}]+")


def normalise(text: str, keep_case: bool = False) -> str:
    """Collapse whitespace and peel off trailing punctuation and wrapping quotes/backticks, so that
    `'Apple'.` and `apple` compare equal; case is folded unless the case is the answer."""
    text = " ".join(text.split())
    previous = None
    while text != previous:
        previous = text
        text = text.rstrip(_TRAILING_PUNCTUATION).strip(_WRAPPERS).strip()
    return text if keep_case else text.lower()


def first_line(text: str) -> str:
    """The first non-blank line: the answer, before any explanation a chat model appends
    (harnesses stop generation at a newline for the same reason)."""
    return next((line for line in text.splitlines() if line.strip()), "")


def exact(prediction: str, reference: str) -> float:
    """Normalised exact match of the answer line; a superstring of the reference does not score."""
    return float(normalise(first_line(prediction)) == normalise(reference))


def exact_case(prediction: str, reference: str) -> float:
    """`exact` without case folding, for tasks whose answer is a change of case."""
    return float(
        normalise(first_line(prediction), keep_case=True) == normalise(reference, keep_case=True)
    )


def starts_with(prediction: str, reference: str) -> float:
    """The normalised prediction begins with the reference as a whole word ("Maria is the tallest."
    scores for "Maria", "Mariana" does not), for models that answer in a sentence."""
    answer, expected = normalise(prediction), normalise(reference)
    if not answer.startswith(expected):
        return 0.0
    return float(len(answer) == len(expected) or not answer[len(expected)].isalnum())


def last_number(text: str) -> Decimal | None:
    """The last number in `text` (sign, decimals and thousands commas allowed), exactly, or None."""
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    return Decimal(matches[-1].replace("\u2212", "-").replace(",", ""))


def number(prediction: str, reference: str) -> float:
    """The last number on the prediction's first line equals the reference numerically.

    The last, as in lm-eval-harness's flexible extraction and GSM8K: chat models write
    "16 + 20 = 36" or "The answer is 7."; the first line only, so a later check or explanation
    ("Check: 3 + 5 = 8") does not count. "70" does not score for 7."""
    expected = last_number(reference)
    if expected is None:
        raise ConfigError(f"rule 'number': the reference {reference!r} is not a number")
    return float(last_number(first_line(prediction)) == expected)


def _list_items(text: str) -> list[str]:
    """Items of the answer line separated by commas, semicolons, spaces or 'and', ignoring brackets
    and a lead-in such as 'Sorted: '."""
    line = first_line(text).rsplit(": ", 1)[-1]
    items = (normalise(item) for item in _LIST_ITEM.findall(line))
    return [item for item in items if item and item != "and"]


def list_items(prediction: str, reference: str) -> float:
    """The same items in the same order as the reference: no item missing, none extra."""
    expected = _list_items(reference)
    return float(bool(expected) and _list_items(prediction) == expected)


def label_rule(labels: Sequence[str]) -> Rule:
    """A rule scoring the first of `labels` that appears in the prediction as a whole word, so that
    "It is odd." scores for odd but a hedge like "even or odd" scores for neither."""
    allowed = sorted({normalise(label) for label in labels}, key=len, reverse=True)
    if len(allowed) < 2 or "" in allowed:
        raise ConfigError(f"rule 'label' needs at least two non-empty labels, got {list(labels)!r}")
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, allowed)) + r")(?!\w)")

    def label(prediction: str, reference: str) -> float:
        expected = normalise(reference)
        if expected not in allowed:
            raise ConfigError(
                f"rule 'label': the reference {reference!r} is not one of {sorted(allowed)}"
            )
        match = pattern.search(prediction.lower())
        return float(match is not None and match.group(1) == expected)

    return label


RULES: dict[str, Rule] = {
    "exact": exact,
    "exact_case": exact_case,
    "list": list_items,
    "number": number,
    "starts_with": starts_with,
}
RULE_NAMES = [*RULES, "label:<label>|<label>|..."]


def resolve_rule(rule: str) -> Rule:
    """The scoring function a rule string names: a plain rule of `RULES` or `label:<a>|<b>|...`."""
    name, has_argument, argument = rule.partition(":")
    if name == "label" and has_argument:
        return label_rule(argument.split("|"))
    if has_argument or name not in RULES:
        raise ConfigError(f"unknown scoring rule {rule!r}; valid rules: {', '.join(RULE_NAMES)}")
    return RULES[name]


def score_prediction(rule: str, prediction: str, reference: str) -> float:
    """1.0 when `prediction` answers `reference` under `rule`, else 0.0."""
    return resolve_rule(rule)(prediction, reference)
