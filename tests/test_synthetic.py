"""The synthetic suite: correct references, determinism, independent task streams, sizes, config."""

from __future__ import annotations

import datetime
import inspect
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from labelbudget.data.synthetic import build_synthetic_suite
from labelbudget.data.synthetic_tasks import CATEGORIES, SYNTHETIC_TASKS, TASK_TABLE
from labelbudget.data.synthetic_vocabulary import WORDS
from labelbudget.errors import ConfigError
from labelbudget.evaluation.rules import resolve_rule, score_prediction

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "dataset" / "synthetic.yaml"
EXPECTED_CATEGORIES = {
    "arithmetic",
    "string_manipulation",
    "classification",
    "extraction",
    "format_conversion",
    "multi_step_reasoning",
}


@pytest.fixture(scope="module")
def suite():
    return build_synthetic_suite()


def examples_of(data, task):
    """(pool, test) examples of one task."""
    return [e for e in data.pool if e.task == task], [e for e in data.test if e.task == task]


def as_json(pool) -> str:
    return json.dumps([e.to_json() for e in pool], ensure_ascii=False)


# --- independent solvers: recompute each reference from the prompt alone ------------------------


def ints(prompt: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", prompt)]


def quoted(prompt: str) -> list[str]:
    return re.findall(r"'([^']*)'", prompt)


def is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
DECADES = {
    word: 10 * (i + 2)
    for i, word in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}


def words_to_int(text: str) -> int:
    total = 0
    for token in text.replace("-", " ").split():
        if token == "hundred":
            total *= 100
        else:
            total += DECADES[token] if token in DECADES else SMALL_NUMBERS.index(token)
    return total


def solve_word_problem(prompt: str) -> str:
    signs = {"buys": 1, "finds": 1, "gets": 1, "gives away": -1, "loses": -1, "sells": -1}
    count = int(re.search(r"has (\d+) ", prompt).group(1))
    events = re.findall(r"(buys|finds|gets|gives away|loses|sells) (\d+)", prompt)
    assert len(events) == 2
    return str(count + sum(signs[verb] * int(n) for verb, n in events))


def solve_order(prompt: str) -> str:
    wanted = re.search(r"Who is the (\w+)\?", prompt).group(1)
    comparative, top = {
        "tallest": ("taller", True),
        "shortest": ("taller", False),
        "oldest": ("older", True),
        "youngest": ("older", False),
        "fastest": ("faster", True),
        "slowest": ("faster", False),
    }[wanted]
    facts = re.findall(rf"(\w+) is {comparative} than (\w+)\.", prompt)
    assert len(facts) == 2
    beaters, beaten = {a for a, _ in facts}, {b for _, b in facts}
    (answer,) = beaters - beaten if top else beaten - beaters
    return answer


def solve_colour(prompt: str) -> str:
    colours = {
        "red",
        "green",
        "blue",
        "yellow",
        "orange",
        "purple",
        "pink",
        "brown",
        "black",
        "white",
        "grey",
    }
    options = re.search(r": (.*)\?", prompt).group(1).split(", ")
    (colour,) = [w for w in options if w in colours]
    assert len(options) == 3
    return colour


def solve_time(prompt: str) -> str:
    time = datetime.datetime.strptime(re.search(r"time (\d\d:\d\d)", prompt).group(1), "%H:%M")
    return time.strftime("%I:%M %p").lstrip("0")


def solve_units(prompt: str) -> str:
    factors = {
        ("meters", "kilometers"): 1000,
        ("grams", "kilograms"): 1000,
        ("centimeters", "meters"): 100,
        ("minutes", "hours"): 60,
        ("seconds", "minutes"): 60,
        ("hours", "days"): 24,
    }
    target, value, source = re.search(r"How many (\w+) are in (\d+) (\w+)\?", prompt).groups()
    return str(int(value) * factors[target, source])


def solve_sequence(prompt: str) -> str:
    terms = ints(prompt)
    steps = {b - a for a, b in zip(terms, terms[1:])}
    assert len(terms) == 4 and len(steps) == 1
    return str(terms[-1] + steps.pop())


SOLVERS = {
    "arith_add_small": lambda p: str(sum(ints(p))),
    "arith_sub_two_digit": lambda p: str(ints(p)[0] - ints(p)[1]),
    "arith_add_three_digit": lambda p: str(sum(ints(p))),
    "arith_mul_two_digit": lambda p: str(math.prod(ints(p))),
    "str_repeat_word": lambda p: quoted(p)[0],
    "str_uppercase_word": lambda p: quoted(p)[0].upper(),
    "str_reverse_letters": lambda p: "".join(reversed(quoted(p)[0])),
    "str_count_letter": lambda p: str(quoted(p)[1].count(quoted(p)[0])),
    "cls_even_odd": lambda p: ("odd", "even")[ints(p)[0] % 2 == 0],
    "cls_colour_word": solve_colour,
    "cls_word_length": lambda p: ("short", "long")[len(quoted(p)[0]) > ints(p)[0]],
    "cls_prime": lambda p: ("no", "yes")[is_prime(ints(p)[0])],
    "extract_json_key": lambda p: str(
        json.loads(re.search(r"\{.*\}", p).group())[re.search(r'value of "(\w+)"', p).group(1)]
    ),
    "extract_price": lambda p: re.search(r"costs (\d+) dollars", p).group(1),
    "extract_person_name": lambda p: re.search(r"On \w+day, (\w+) ", p).group(1),
    "extract_last_word": lambda p: quoted(p)[0].split()[-1],
    "convert_date_iso": lambda p: (
        datetime.datetime.strptime(re.search(r"date (\w+ \d+, \d{4})", p).group(1), "%B %d, %Y")
        .date()
        .isoformat()
    ),
    "convert_words_to_number": lambda p: str(words_to_int(quoted(p)[0])),
    "convert_time_12h": solve_time,
    "convert_units": solve_units,
    "reason_word_problem": solve_word_problem,
    "reason_sort_numbers": lambda p: ", ".join(map(str, sorted(ints(p)))),
    "reason_sequence_next": solve_sequence,
    "reason_order_names": solve_order,
}


# --- the task table ---------------------------------------------------------------------------


def test_table_has_at_least_24_tasks_in_the_six_categories():
    assert len(SYNTHETIC_TASKS) == 24
    assert set(CATEGORIES) == EXPECTED_CATEGORIES
    per_category = Counter(SYNTHETIC_TASKS.values())
    assert per_category == {c: 4 for c in EXPECTED_CATEGORIES}
    assert all(re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", name) for name in SYNTHETIC_TASKS)
    assert len({task.name for task in TASK_TABLE}) == len(TASK_TABLE)


def test_word_list_has_no_duplicates_and_no_colour():
    assert len(set(WORDS)) == len(WORDS)
    assert not {"red", "green", "blue", "orange", "pink", "brown", "black", "white"} & set(WORDS)


def test_every_task_rule_tells_its_reference_from_a_wrong_answer():
    suite = build_synthetic_suite(pool_sizes="equal", pool_per_task=3, test_per_task=2)
    for example in suite.test:
        rule = resolve_rule(example.metadata["rule"])
        assert rule(example.response, example.response) == 1.0, example.task
        assert rule("zzz", example.response) == 0.0, example.task
    assert {e.task for e in suite.test} == {task.name for task in TASK_TABLE}


# --- the examples -----------------------------------------------------------------------------


def test_every_reference_answer_is_correct(suite):
    assert set(SOLVERS) == set(SYNTHETIC_TASKS)
    for example in [*suite.pool, *suite.test]:
        assert example.response == SOLVERS[example.task](example.prompt), example


def test_every_reference_is_short_and_scores_under_its_own_rule(suite):
    for example in [*suite.pool, *suite.test]:
        assert len(example.response.split()) <= 5
        assert score_prediction(example.metadata["rule"], example.response, example.response) == 1.0


def test_examples_carry_task_category_rule_and_a_format_instruction(suite):
    rules = {task.name: task.rule for task in TASK_TABLE}
    for example in [*suite.pool, *suite.test]:
        assert example.metadata == {
            "category": SYNTHETIC_TASKS[example.task],
            "rule": rules[example.task],
        }
        assert "Answer with just" in example.prompt
        assert example.context is None


def test_ids_are_unique_and_say_task_split_and_index(suite):
    ids = suite.pool.ids + suite.test.ids
    assert len(set(ids)) == len(ids)
    for split, pool in (("pool", suite.pool), ("test", suite.test)):
        for task in SYNTHETIC_TASKS:
            task_ids = [e.id for e in pool if e.task == task]
            assert task_ids == [f"{task}-{split}-{i:05d}" for i in range(len(task_ids))]


def test_pool_and_test_are_disjoint_without_duplicate_prompts(suite):
    for task in SYNTHETIC_TASKS:
        pool, test = examples_of(suite, task)
        prompts = [e.prompt for e in pool + test]
        assert len(set(prompts)) == len(prompts), task


def test_labels_are_roughly_balanced_where_drawn_first():
    data = build_synthetic_suite(
        pool_sizes="equal", pool_per_task=100, tasks=["cls_prime", "cls_word_length"]
    )
    for task in ("cls_prime", "cls_word_length"):
        counts = Counter(e.response for e in data.pool if e.task == task)
        assert min(counts.values()) >= 30, counts


def test_sources_name_the_seed(suite):
    assert suite.name == "synthetic"
    assert suite.pool.source == "synthetic(seed=1234)"
    assert "seed=1234" in suite.test.source


# --- determinism and stream independence ------------------------------------------------------


def test_same_seed_gives_byte_identical_examples(suite):
    again = build_synthetic_suite(seed=1234)
    assert as_json(again.pool) == as_json(suite.pool)
    assert as_json(again.test) == as_json(suite.test)


def test_default_suite_is_pinned(suite):
    """Changing the generated data silently would invalidate cached scores and past results:
    a change must be deliberate, updating these examples."""
    pinned = {
        "arith_add_small-pool-00000": ("What is 5 + 10? Answer with just the number.", "15"),
        "str_reverse_letters-test-00000": (
            "Write the letters 'tllgyr' in reverse order. Answer with just the letters.",
            "rygllt",
        ),
        "reason_order_names-pool-00000": (
            "Amara is older than Zara. Emil is older than Amara. Who is the youngest? Answer with just the name.",
            "Zara",
        ),
    }
    by_id = {e.id: e for e in [*suite.pool, *suite.test]}
    assert {i: (by_id[i].prompt, by_id[i].response) for i in pinned} == pinned


def test_another_seed_changes_every_task(suite):
    other = build_synthetic_suite(seed=1235)
    for task in SYNTHETIC_TASKS:
        assert [e.prompt for e in examples_of(other, task)[1]] != [
            e.prompt for e in examples_of(suite, task)[1]
        ]


def test_a_task_built_alone_equals_the_same_task_in_the_full_build(suite):
    for task in ("arith_add_small", "cls_prime", "reason_order_names"):
        alone = build_synthetic_suite(tasks=[task])
        assert as_json(alone.pool) == as_json(examples_of(suite, task)[0])
        assert as_json(alone.test) == as_json(examples_of(suite, task)[1])


def test_category_filter_keeps_the_other_tasks_examples_unchanged(suite):
    extraction = build_synthetic_suite(categories=["extraction"])
    assert set(extraction.pool.tasks) == {
        t for t, c in SYNTHETIC_TASKS.items() if c == "extraction"
    }
    assert as_json(extraction.pool) == as_json(
        [e for e in suite.pool if e.metadata["category"] == "extraction"]
    )


def test_a_larger_pool_extends_a_smaller_one_and_keeps_the_test_split():
    small = build_synthetic_suite(pool_sizes="equal", pool_per_task=10)
    large = build_synthetic_suite(pool_sizes="equal", pool_per_task=30)
    assert as_json(small.test) == as_json(large.test)
    for task in SYNTHETIC_TASKS:
        small_pool, large_pool = examples_of(small, task)[0], examples_of(large, task)[0]
        assert as_json(large_pool[:10]) == as_json(small_pool)


# --- sizes --------------------------------------------------------------------------------------


def test_varied_sizes_span_a_tenth_to_twice_pool_per_task(suite):
    sizes = suite.pool.task_sizes()
    assert set(sizes) == set(SYNTHETIC_TASKS)
    assert min(sizes.values()) == 4 and max(sizes.values()) == 80
    assert sorted(sizes.values()) == [
        4,
        4,
        4,
        10,
        10,
        10,
        20,
        20,
        20,
        20,
        30,
        30,
        40,
        40,
        40,
        40,
        50,
        50,
        60,
        60,
        70,
        80,
        80,
        80,
    ]
    assert sizes["str_reverse_letters"] == 80 and sizes["arith_add_small"] == 40
    assert suite.test.task_sizes() == {task: 20 for task in SYNTHETIC_TASKS}


def test_varied_sizes_never_drop_below_three():
    sizes = build_synthetic_suite(pool_per_task=5, test_per_task=1).pool.task_sizes()
    assert min(sizes.values()) == 3 and max(sizes.values()) == 10


def test_equal_sizes_give_every_task_pool_per_task():
    data = build_synthetic_suite(pool_sizes="equal", pool_per_task=7, test_per_task=3)
    assert data.pool.task_sizes() == {task: 7 for task in SYNTHETIC_TASKS}
    assert data.test.task_sizes() == {task: 3 for task in SYNTHETIC_TASKS}


def test_no_test_split_when_test_per_task_is_zero():
    assert build_synthetic_suite(test_per_task=0, tasks=["cls_even_odd"]).test is None


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"unknown synthetic task 'arith_div'.*valid: arith_add_small, "
    ):
        build_synthetic_suite(tasks=["arith_add_small", "arith_div"])


def test_unknown_category_lists_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"unknown synthetic category 'poetry'.*multi_step_reasoning"
    ):
        build_synthetic_suite(categories=["poetry"])


def test_filters_that_leave_no_task_are_an_error():
    with pytest.raises(ConfigError, match="no synthetic task"):
        build_synthetic_suite(tasks=["arith_add_small"], categories=["extraction"])


@pytest.mark.parametrize(
    "arguments",
    [{"pool_sizes": "random"}, {"pool_per_task": 0}, {"test_per_task": -1}, {"seed": -1}],
)
def test_bad_arguments_are_config_errors(arguments):
    with pytest.raises(ConfigError):
        build_synthetic_suite(**arguments)


def test_asking_for_more_prompts_than_a_task_has_is_an_error():
    # 21 * 21 sums "a + b" with a, b in 0..20 exist; 500 + 20 cannot be distinct.
    with pytest.raises(ConfigError, match="ran out of distinct prompts"):
        build_synthetic_suite(pool_sizes="equal", pool_per_task=500, tasks=["arith_add_small"])


# --- the Hydra config -----------------------------------------------------------------------------


def test_config_keys_are_the_function_arguments_with_the_data_seed_fixed():
    config = OmegaConf.load(CONFIG)
    assert config["_target_"] == "labelbudget.data.synthetic.build_synthetic_suite"
    assert set(config) - {"_target_"} == set(inspect.signature(build_synthetic_suite).parameters)
    assert config.seed == 1234


def test_config_instantiates_the_default_suite(suite):
    data = instantiate(OmegaConf.load(CONFIG))
    assert as_json(data.pool) == as_json(suite.pool)


def test_config_accepts_task_lists_from_overrides():
    config = OmegaConf.merge(
        OmegaConf.load(CONFIG), OmegaConf.from_dotlist(["tasks=[cls_prime,cls_even_odd]"])
    )
    assert set(instantiate(config).pool.tasks) == {"cls_prime", "cls_even_odd"}


def test_a_composition_seed_deals_the_same_sizes_to_other_tasks_and_keeps_the_test_split():
    default = build_synthetic_suite()
    assert build_synthetic_suite(composition_seed=None).pool.record() == default.pool.record()
    dealt = [build_synthetic_suite(composition_seed=c) for c in (1, 2)]
    sizes = default.pool.task_sizes()
    for data in dealt:
        other = data.pool.task_sizes()
        assert sorted(other.values()) == sorted(sizes.values())  # the same sizes ...
        assert sum(other[t] != sizes[t] for t in sizes) >= len(sizes) // 2  # ... to other tasks
        assert [e.id for e in data.test] == [e.id for e in default.test]  # test split unchanged
        assert data.test.record()["sha256"] == default.test.record()["sha256"]
        for task in sizes:  # each task's pool is a prefix of its one stream
            small, large = sorted(
                ([e.prompt for e in d.pool if e.task == task] for d in (default, data)), key=len
            )
            assert large[: len(small)] == small
    assert dealt[0].pool.task_sizes() != dealt[1].pool.task_sizes()
    assert "composition_seed=1" in dealt[0].pool.source
    assert build_synthetic_suite(composition_seed=1).pool.record() == dealt[0].pool.record()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"composition_seed": -1}, "dataset.composition_seed must be null or a non-negative"),
        ({"composition_seed": "a"}, "dataset.composition_seed must be null or a non-negative"),
        ({"composition_seed": 1, "pool_sizes": "equal"}, "with pool_sizes='equal' every task"),
    ],
)
def test_a_bad_composition_seed_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_synthetic_suite(**kwargs)
