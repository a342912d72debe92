"""A deterministic synthetic multi-task suite, generated in-process: the default dataset for demos
and tests, sized for a 135M chat model on CPU. This module draws the suite from the task table of
`labelbudget.data.synthetic_tasks`: which tasks, how many prompts each, which are held out.

Each task draws from its own random stream, derived from (seed, task name), so adding, removing or
resizing one task leaves every other task's examples unchanged. Within a task, the test split is
drawn first and the pool continues the same stream: a larger pool extends a smaller one and the
test split does not depend on the pool size. Streams are reproducible for a given numpy version.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

from labelbudget.data.records import as_name_list
from labelbudget.data.schema import Example, Pool, TaskData
from labelbudget.data.synthetic_tasks import (
    CATEGORIES,
    SYNTHETIC_TASKS,
    TASK_TABLE,
    SyntheticTask,
)
from labelbudget.errors import ConfigError

# Draws allowed per wanted example before a task is declared out of distinct prompts.
_MAX_DRAWS_PER_EXAMPLE = 50
POOL_SIZE_MODES = ("varied", "equal")


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
