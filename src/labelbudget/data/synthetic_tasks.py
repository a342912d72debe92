"""The synthetic suite's tasks: 24 generators of (prompt, reference answer) in 6 categories, and
the table that names each with its category, scoring rule and pool-size multiplier. What a task
asks lives here; how the suite draws, sizes and splits them lives in `labelbudget.data.synthetic`.

Tasks range from trivial ("What is 3 + 4?") to hard for a small model (two-digit
multiplication, reversing six letters, sorting five numbers). Every prompt is self-contained, says
how to answer, and has a short reference answer, so 32 new tokens suffice; each task names the
scoring rule of `labelbudget.evaluation.rules` that judges it.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np

from labelbudget.data.synthetic_vocabulary import (
    ACTIONS,
    CITIES,
    COLOURS,
    COMPARISONS,
    COMPOSITES,
    COUNTABLE_ITEMS,
    DAYS,
    GAINS,
    JOBS,
    LONG_WORD_LETTERS,
    LONG_WORDS,
    LOSSES,
    MONTHS,
    NAMES,
    PRIMES,
    PRODUCTS,
    SHORT_WORDS,
    UNIT_CONVERSIONS,
    WORDS,
    number_to_words,
)

T = TypeVar("T")
PromptGenerator = Callable[[np.random.Generator], tuple[str, str]]

_JUST_NUMBER = "Answer with just the number."  # the format instruction most tasks end with


# --- drawing helpers: plain Python values out of a numpy stream ---------------------------------


def _int(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high], both ends included."""
    return int(rng.integers(low, high + 1))


def _pick(rng: np.random.Generator, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def _sample(rng: np.random.Generator, items: Sequence[T], k: int) -> list[T]:
    """k distinct items in random order."""
    return [items[int(i)] for i in rng.choice(len(items), size=k, replace=False)]


def _coin(rng: np.random.Generator) -> bool:
    return bool(rng.integers(2))


# --- task generators: rng -> (prompt, reference answer) ----------------------------------------


def _arith_add_small(rng):
    a, b = _int(rng, 0, 20), _int(rng, 0, 20)
    return f"What is {a} + {b}? {_JUST_NUMBER}", str(a + b)


def _arith_sub_two_digit(rng):
    a, b = _int(rng, 10, 99), _int(rng, 10, 99)
    return f"What is {a} - {b}? {_JUST_NUMBER}", str(a - b)


def _arith_add_three_digit(rng):
    a, b = _int(rng, 100, 999), _int(rng, 100, 999)
    return f"What is {a} + {b}? {_JUST_NUMBER}", str(a + b)


def _arith_mul_two_digit(rng):
    a, b = _int(rng, 12, 99), _int(rng, 12, 99)
    return f"What is {a} * {b}? {_JUST_NUMBER}", str(a * b)


def _str_repeat_word(rng):
    word = _pick(rng, WORDS)
    return f"Repeat the word '{word}'. Answer with just the word.", word


def _str_uppercase_word(rng):
    word = _pick(rng, WORDS)
    return f"Write the word '{word}' in capital letters. Answer with just the word.", word.upper()


def _str_reverse_letters(rng):
    letters = "".join(chr(ord("a") + _int(rng, 0, 25)) for _ in range(6))
    return (
        f"Write the letters '{letters}' in reverse order. Answer with just the letters.",
        letters[::-1],
    )


def _str_count_letter(rng):
    """Mostly a letter of the word, picked by position so repeated letters come up more often;
    sometimes a letter it lacks (answer 0)."""
    word = _pick(rng, WORDS)
    absent = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in word]
    letter = _pick(rng, absent) if _int(rng, 1, 5) == 1 else _pick(rng, word)
    prompt = (
        f"How many times does the letter '{letter}' appear in the word '{word}'? {_JUST_NUMBER}"
    )
    return prompt, str(word.count(letter))


def _cls_even_odd(rng):
    n = _int(rng, 0, 999)
    return f"Is {n} even or odd? Answer with just 'even' or 'odd'.", "even" if n % 2 == 0 else "odd"


def _cls_colour_word(rng):
    colour = _pick(rng, COLOURS)
    listed = ", ".join(_sample(rng, [colour, *_sample(rng, WORDS, 2)], 3))
    return f"Which of these words is a colour: {listed}? Answer with just the word.", colour


def _cls_word_length(rng):
    """Label drawn first, so long and short are balanced."""
    label = "long" if _coin(rng) else "short"
    word = _pick(rng, LONG_WORDS if label == "long" else SHORT_WORDS)
    prompt = (
        f"A word is long if it has more than {LONG_WORD_LETTERS} letters, and short otherwise. "
        f"Is the word '{word}' long or short? Answer with just 'long' or 'short'."
    )
    return prompt, label


def _cls_prime(rng):
    """Label drawn first: primes are rare, and an always-'no' model should score only half."""
    label = "yes" if _coin(rng) else "no"
    n = _pick(rng, PRIMES if label == "yes" else COMPOSITES)
    return f"Is {n} a prime number? Answer with just 'yes' or 'no'.", label


def _extract_json_key(rng):
    record = {
        "name": _pick(rng, NAMES),
        "age": _int(rng, 18, 80),
        "city": _pick(rng, CITIES),
        "job": _pick(rng, JOBS),
    }
    keys = _sample(rng, list(record), len(record))
    key = _pick(rng, keys)
    document = json.dumps({k: record[k] for k in keys})
    prompt = f'Here is a JSON object: {document} What is the value of "{key}"? Answer with just the value.'
    return prompt, str(record[key])


def _extract_price(rng):
    """A second number (delivery days) in the sentence, before or after the price, as a distractor."""
    item, price, days = _pick(rng, PRODUCTS), _int(rng, 5, 500), _int(rng, 2, 30)
    clauses = [f"costs {price} dollars", f"arrives in {days} days"]
    first, second = _sample(rng, clauses, 2)
    sentence = f"The {item} {first} and {second}."
    prompt = f"Read this sentence: '{sentence}' What is the price in dollars? {_JUST_NUMBER}"
    return prompt, str(price)


def _extract_person_name(rng):
    name = _pick(rng, NAMES)
    sentence = f"On {_pick(rng, DAYS)}, {name} {_pick(rng, ACTIONS)} in {_pick(rng, CITIES)}."
    prompt = f"Read this sentence: '{sentence}' What is the name of the person? Answer with just the name."
    return prompt, name


def _extract_last_word(rng):
    words = _sample(rng, WORDS, _int(rng, 4, 7))
    return f"What is the last word in '{' '.join(words)}'? Answer with just the word.", words[-1]


def _convert_date_iso(rng):
    first, last = datetime.date(1950, 1, 1).toordinal(), datetime.date(2030, 12, 31).toordinal()
    date = datetime.date.fromordinal(_int(rng, first, last))
    written = f"{MONTHS[date.month - 1]} {date.day}, {date.year}"
    return (
        f"Write the date {written} in the format YYYY-MM-DD. Answer with just the date.",
        date.isoformat(),
    )


def _convert_words_to_number(rng):
    n = _int(rng, 0, 999)
    return f"Write the number '{number_to_words(n)}' using digits. {_JUST_NUMBER}", str(n)


def _convert_time_12h(rng):
    hour, minute = _int(rng, 0, 23), _int(rng, 0, 59)
    answer = f"{hour % 12 or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"
    prompt = (
        f"Convert the 24-hour time {hour:02d}:{minute:02d} to 12-hour time with AM or PM, like 7:05 PM. "
        "Answer with just the time."
    )
    return prompt, answer


def _convert_units(rng):
    source_unit, target_unit, factor = _pick(rng, UNIT_CONVERSIONS)
    value = _int(rng, 2, 99)
    return f"How many {target_unit} are in {value} {source_unit}? {_JUST_NUMBER}", str(
        value * factor
    )


def _reason_word_problem(rng):
    """Two events, each a gain or a loss; a loss takes at most half, so the count stays positive."""
    name, item, count = _pick(rng, NAMES), _pick(rng, COUNTABLE_ITEMS), _int(rng, 5, 30)
    prompt = f"{name} has {count} {item}."
    for lead in ("Then", "After that,"):
        if _coin(rng):
            n = _int(rng, 2, 20)
            event, count = _pick(rng, GAINS).format(n=n), count + n
        else:
            n = _int(rng, 1, count // 2)
            event, count = _pick(rng, LOSSES).format(n=n), count - n
        prompt += f" {lead} {name} {event}."
    return f"{prompt} How many {item} does {name} have now? {_JUST_NUMBER}", str(count)


def _reason_sort_numbers(rng):
    numbers = _sample(rng, range(1, 100), 5)
    prompt = (
        f"Sort these numbers from smallest to largest: {', '.join(map(str, numbers))}. "
        "Answer with just the numbers, separated by commas."
    )
    return prompt, ", ".join(map(str, sorted(numbers)))


def _reason_sequence_next(rng):
    start, step = _int(rng, 1, 50), _int(rng, 2, 12)
    terms = ", ".join(str(start + i * step) for i in range(4))
    return f"What number comes next in the sequence {terms}? {_JUST_NUMBER}", str(start + 4 * step)


def _reason_order_names(rng):
    """Two chained comparisons, stated in random order; asks for one end of the chain."""
    first, middle, last = _sample(rng, NAMES, 3)
    comparative, most, least = _pick(rng, COMPARISONS)
    facts = [f"{first} is {comparative} than {middle}.", f"{middle} is {comparative} than {last}."]
    facts = _sample(rng, facts, 2)
    superlative, answer = (most, first) if _coin(rng) else (least, last)
    return f"{' '.join(facts)} Who is the {superlative}? Answer with just the name.", answer


# --- the task table --------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticTask:
    """One task: its stable name, category, scoring rule (see `evaluation.rules`), pool-size
    multiplier for `pool_sizes="varied"` and generator of (prompt, reference answer)."""

    name: str
    category: str
    rule: str
    pool_multiplier: float
    generate: PromptGenerator


TASK_TABLE: tuple[SyntheticTask, ...] = (
    SyntheticTask("arith_add_small", "arithmetic", "number", 1.0, _arith_add_small),
    SyntheticTask("arith_sub_two_digit", "arithmetic", "number", 0.5, _arith_sub_two_digit),
    SyntheticTask("arith_add_three_digit", "arithmetic", "number", 1.5, _arith_add_three_digit),
    SyntheticTask("arith_mul_two_digit", "arithmetic", "number", 0.25, _arith_mul_two_digit),
    SyntheticTask("str_repeat_word", "string_manipulation", "exact", 0.1, _str_repeat_word),
    SyntheticTask(
        "str_uppercase_word", "string_manipulation", "exact_case", 0.75, _str_uppercase_word
    ),
    SyntheticTask("str_reverse_letters", "string_manipulation", "exact", 2.0, _str_reverse_letters),
    SyntheticTask("str_count_letter", "string_manipulation", "number", 1.25, _str_count_letter),
    SyntheticTask("cls_even_odd", "classification", "label:even|odd", 2.0, _cls_even_odd),
    SyntheticTask(
        "cls_colour_word", "classification", "label:" + "|".join(COLOURS), 0.5, _cls_colour_word
    ),
    SyntheticTask("cls_word_length", "classification", "label:long|short", 1.0, _cls_word_length),
    SyntheticTask("cls_prime", "classification", "label:yes|no", 0.1, _cls_prime),
    SyntheticTask("extract_json_key", "extraction", "exact", 1.75, _extract_json_key),
    SyntheticTask("extract_price", "extraction", "number", 0.25, _extract_price),
    SyntheticTask("extract_person_name", "extraction", "starts_with", 1.0, _extract_person_name),
    SyntheticTask("extract_last_word", "extraction", "exact", 0.5, _extract_last_word),
    SyntheticTask("convert_date_iso", "format_conversion", "exact", 1.5, _convert_date_iso),
    SyntheticTask(
        "convert_words_to_number", "format_conversion", "number", 0.1, _convert_words_to_number
    ),
    SyntheticTask("convert_time_12h", "format_conversion", "exact", 0.75, _convert_time_12h),
    SyntheticTask("convert_units", "format_conversion", "number", 1.25, _convert_units),
    SyntheticTask(
        "reason_word_problem", "multi_step_reasoning", "number", 2.0, _reason_word_problem
    ),
    SyntheticTask(
        "reason_sort_numbers", "multi_step_reasoning", "list", 0.25, _reason_sort_numbers
    ),
    SyntheticTask(
        "reason_sequence_next", "multi_step_reasoning", "number", 1.0, _reason_sequence_next
    ),
    SyntheticTask(
        "reason_order_names", "multi_step_reasoning", "starts_with", 0.5, _reason_order_names
    ),
)
SYNTHETIC_TASKS: dict[str, str] = {task.name: task.category for task in TASK_TABLE}
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(SYNTHETIC_TASKS.values()))
