"""A deterministic synthetic multi-task suite, generated in-process: the default dataset for demos
and tests, sized for a 135M chat model on CPU.

24 tasks in 6 categories, from trivial ("What is 3 + 4?") to hard for a small model (two-digit
multiplication, reversing six letters, sorting five numbers). Every prompt is self-contained, says
how to answer, and has a short reference answer, so 32 new tokens suffice; each task names the
scoring rule of `labelbudget.evaluation.rules` that judges it.

Each task draws from its own random stream, derived from (seed, task name), so adding, removing or
resizing one task leaves every other task's examples unchanged. Within a task, the test split is
drawn first and the pool continues the same stream: a larger pool extends a smaller one and the
test split does not depend on the pool size. Streams are reproducible for a given numpy version.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np

from labelbudget.data.records import as_name_list
from labelbudget.data.schema import Example, Pool, TaskData
from labelbudget.errors import ConfigError

T = TypeVar("T")
PromptGenerator = Callable[[np.random.Generator], tuple[str, str]]

_JUST_NUMBER = "Answer with just the number."  # the format instruction most tasks end with
# Draws allowed per wanted example before a task is declared out of distinct prompts.
_MAX_DRAWS_PER_EXAMPLE = 50

WORDS = (
    "apple table river chair window garden pencil bottle candle forest "
    "mountain bridge castle rabbit turtle kitten puppy tiger horse camel "
    "basket button carpet pillow blanket mirror ladder hammer bucket shovel "
    "doctor farmer sailor singer pilot baker dancer driver teacher student "
    "island desert valley canyon meadow ocean harbor planet comet rocket "
    "bread butter cheese pepper garlic onion potato tomato carrot noodle "
    "jacket sweater glove scarf boot sandal helmet wallet pocket zipper "
    "guitar violin piano drum flute trumpet banjo cello harp whistle "
    "cloud storm thunder rain snow winter summer autumn spring breeze "
    "paper letter stamp ticket poster magnet sponge towel soap brush "
    "dog cat cow pig fox owl bee ant bat hen "
    "cup pan pot jar box bag hat map pen key "
    "book door lamp desk sofa shelf clock phone radio camera "
    "train truck wagon bicycle canoe yacht engine tunnel station airport "
    "kettle spoon fork knife plate bowl teapot napkin oven fridge "
    "market school church museum library theater stadium hospital factory office "
    "shadow sunset signal sketch puzzle riddle marble pebble feather saddle "
    "banana balloon bubble pickle cookie parrot giraffe hippo llama mammal"
).split()
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white")
NAMES = (
    "Maria Omar Lena Tom Priya Kenji Sofia Lucas Amara Diego Hana Ivan Zara Noah Mei "
    "Felix Nadia Oscar Ruth Sam Tariq Uma Victor Wendy Yusuf Chloe Emil Grace Jonas Leila"
).split()
CITIES = (
    "Oslo Lima Cairo Paris Tokyo Delhi Rome Berlin Madrid Nairobi "
    "Seoul Sydney Toronto Dublin Vienna Lagos Quito Hanoi Prague Lisbon"
).split()
PRODUCTS = (
    "lamp",
    "chair",
    "kettle",
    "jacket",
    "guitar",
    "bicycle",
    "camera",
    "backpack",
    "clock",
    "radio",
    "sofa",
    "helmet",
    "tent",
    "blender",
    "printer",
)
JOBS = (
    "teacher",
    "nurse",
    "chef",
    "pilot",
    "farmer",
    "painter",
    "engineer",
    "baker",
    "lawyer",
    "dentist",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
ACTIONS = (
    "painted the fence",
    "baked a cake",
    "fixed the bike",
    "wrote a letter",
    "planted a tree",
    "washed the car",
    "read a book",
    "cleaned the kitchen",
    "sold a lamp",
    "found a key",
)
COUNTABLE_ITEMS = (
    "apples",
    "marbles",
    "stickers",
    "cookies",
    "pencils",
    "stamps",
    "shells",
    "cards",
    "books",
    "coins",
)
GAINS = ("buys {n} more", "finds {n} more", "gets {n} more from a friend")
LOSSES = ("gives away {n}", "loses {n}", "sells {n}")
COMPARISONS = (  # comparative, superlative of the most, superlative of the least
    ("taller", "tallest", "shortest"),
    ("older", "oldest", "youngest"),
    ("faster", "fastest", "slowest"),
)
UNIT_CONVERSIONS = (  # from unit, to unit, factor
    ("kilometers", "meters", 1000),
    ("kilograms", "grams", 1000),
    ("meters", "centimeters", 100),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("days", "hours", 24),
)
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_LONG_WORD_LETTERS = 5


def _sieve_primes(limit: int) -> list[bool]:
    """is_prime[n] for n < limit, by the sieve of Eratosthenes."""
    is_prime = [n >= 2 for n in range(limit)]
    for n in range(2, int(limit**0.5) + 1):
        if is_prime[n]:
            is_prime[n * n :: n] = [False] * len(range(n * n, limit, n))
    return is_prime


_IS_PRIME = _sieve_primes(1000)
PRIMES = tuple(n for n in range(2, 1000) if _IS_PRIME[n])
COMPOSITES = tuple(n for n in range(4, 1000) if not _IS_PRIME[n])
LONG_WORDS = tuple(w for w in WORDS if len(w) > _LONG_WORD_LETTERS)
SHORT_WORDS = tuple(w for w in WORDS if len(w) <= _LONG_WORD_LETTERS)


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


def number_to_words(n: int) -> str:
    """English words for 0 <= n <= 999, e.g. 342 -> 'three hundred forty-two'."""
    hundreds, rest = divmod(n, 100)
    parts = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        parts.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        parts.append(_ONES[rest])
    return " ".join(parts)


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
        f"A word is long if it has more than {_LONG_WORD_LETTERS} letters, and short otherwise. "
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
POOL_SIZE_MODES = ("varied", "equal")


# --- building the suite ----------------------------------------------------------------------


def task_rng(seed: int, task_name: str) -> np.random.Generator:
    """The task's own random stream. Keyed by a SHA-256 of the name, not `hash()`, which Python
    salts per process."""
    name_key = int.from_bytes(hashlib.sha256(task_name.encode()).digest()[:8], "big")
    return np.random.default_rng(np.random.SeedSequence([seed, name_key]))


def pool_size(multiplier: float, pool_sizes: str, pool_per_task: int) -> int:
    """Pool prompts of one task: `pool_per_task` when "equal"; when "varied", scaled by the task's
    multiplier (0.1x to 2x) so that tasks are unevenly represented, as in real pools, and the
    smallest (never below 3) hold fewer prompts than an equal share of a budget would ask for."""
    if pool_sizes == "equal":
        return pool_per_task
    return max(3, int(multiplier * pool_per_task + 0.5))


def pool_multipliers(tasks: list[SyntheticTask], composition_seed: int | None) -> dict[str, float]:
    """Each task's pool-size multiplier: the table's own (None), or the same multipliers dealt
    to the tasks in an order drawn from `composition_seed`, so that which task is large and
    which is small (and so pool size against learnability) is one draw among many."""
    own = [task.pool_multiplier for task in tasks]
    if composition_seed is None:
        return {task.name: m for task, m in zip(tasks, own)}
    order = np.random.default_rng([composition_seed, 0x636F6D70]).permutation(len(tasks))
    return {task.name: own[j] for task, j in zip(tasks, order)}


def _draw_distinct(
    task: SyntheticTask, rng: np.random.Generator, count: int
) -> list[tuple[str, str]]:
    """`count` (prompt, answer) pairs with distinct prompts, redrawing on collision."""
    drawn: dict[str, str] = {}
    draws = 0
    while len(drawn) < count:
        if draws == count * _MAX_DRAWS_PER_EXAMPLE:
            raise ConfigError(
                f"synthetic task {task.name!r} ran out of distinct prompts: found {len(drawn)} of the "
                f"{count} wanted in {draws} draws; lower pool_per_task or test_per_task"
            )
        prompt, answer = task.generate(rng)
        draws += 1
        drawn.setdefault(prompt, answer)
    return list(drawn.items())


def _examples(task: SyntheticTask, split: str, pairs: Iterable[tuple[str, str]]) -> list[Example]:
    metadata = {"category": task.category, "rule": task.rule}
    return [
        Example(
            id=f"{task.name}-{split}-{i:05d}",
            task=task.name,
            prompt=prompt,
            response=answer,
            metadata=dict(metadata),
        )
        for i, (prompt, answer) in enumerate(pairs)
    ]


def select_tasks(
    tasks: str | Iterable[str] | None = None, categories: str | Iterable[str] | None = None
) -> list[SyntheticTask]:
    """The tasks of the table (in table order) that are named in `tasks` and belong to one of
    `categories`; None means no filter. Unknown names are errors that list the valid ones."""
    task_names, category_names = as_name_list(tasks), as_name_list(categories)
    checks = (
        ("task", task_names, list(SYNTHETIC_TASKS)),
        ("category", category_names, list(CATEGORIES)),
    )
    for kind, given, valid in checks:
        unknown = [name for name in given or [] if name not in valid]
        if unknown:
            listed = ", ".join(map(repr, unknown))
            raise ConfigError(f"unknown synthetic {kind} {listed}; valid: {', '.join(valid)}")
    selected = [
        task
        for task in TASK_TABLE
        if (task_names is None or task.name in task_names)
        and (category_names is None or task.category in category_names)
    ]
    if not selected:
        raise ConfigError(
            f"no synthetic task is among tasks={task_names} and in categories={category_names}"
        )
    return selected


def build_synthetic_suite(
    seed: int = 1234,
    pool_sizes: str = "varied",
    pool_per_task: int = 40,
    test_per_task: int = 20,
    tasks: list[str] | None = None,
    categories: list[str] | None = None,
    composition_seed: int | None = None,
) -> TaskData:
    """The synthetic suite: per task, `test_per_task` test prompts and a pool sized by `pool_sizes`
    ("varied" or "equal", see `pool_size`), disjoint from the test split. `seed` is the data seed:
    the same seed gives byte-identical examples. With `test_per_task=0` there is no test split.
    `composition_seed` deals the varied sizes to other tasks (`pool_multipliers`); each task's
    test prompts, drawn first from its own stream, stay the same, and its pool is a prefix of
    one stream, so a task made larger keeps the prompts it had."""
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    if composition_seed is not None and (
        isinstance(composition_seed, bool)
        or not isinstance(composition_seed, int)
        or composition_seed < 0
    ):
        raise ConfigError(
            f"dataset.composition_seed must be null or a non-negative integer, got {composition_seed!r}"
        )
    if composition_seed is not None and pool_sizes != "varied":
        raise ConfigError(
            "dataset.composition_seed deals the varied pool sizes to other tasks; with "
            f"pool_sizes={pool_sizes!r} every task has the same size: set one or the other"
        )
    if pool_sizes not in POOL_SIZE_MODES:
        raise ConfigError(f"unknown pool_sizes {pool_sizes!r}; valid: {', '.join(POOL_SIZE_MODES)}")
    if pool_per_task < 1 or test_per_task < 0:
        raise ConfigError(
            f"pool_per_task must be >= 1 and test_per_task >= 0, got {pool_per_task} and {test_per_task}"
        )
    pool: list[Example] = []
    test: list[Example] = []
    chosen = select_tasks(tasks, categories)
    multipliers = pool_multipliers(chosen, composition_seed)
    for task in chosen:
        wanted = test_per_task + pool_size(multipliers[task.name], pool_sizes, pool_per_task)
        pairs = _draw_distinct(task, task_rng(seed, task.name), wanted)
        test += _examples(task, "test", pairs[:test_per_task])
        pool += _examples(task, "pool", pairs[test_per_task:])
    source = (
        f"synthetic(seed={seed})"
        if composition_seed is None
        else (f"synthetic(seed={seed}, composition_seed={composition_seed})")
    )
    test_pool = Pool(test, f"{source} test split") if test else None
    return TaskData(name="synthetic", pool=Pool(pool, source), test=test_pool)
