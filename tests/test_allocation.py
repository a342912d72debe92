"""Allocation and Algorithm 1 against hand-worked examples and brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelbudget.selection.allocation import (
    base_allocation,
    round_robin,
    water_filling,
    weighted_allocation,
)

# ---------- hand-worked examples ----------


def test_water_filling_takes_small_tasks_whole_and_levels_the_rest():
    # sizes 2 and 3 fit under the level; the two tasks of 10 share 15 - 5 = 10 equally.
    assert water_filling(np.array([2, 10, 10, 3]), 15).tolist() == [2, 5, 5, 3]
    # no task saturates: 10 / 3 each
    assert water_filling(np.array([9, 9, 9]), 10) == pytest.approx([10 / 3] * 3)


def test_weighted_allocation_is_exactly_inverse_confidence_when_nothing_clamps():
    # weights 1/conf = 2 : 4 : 8, budget 70 -> 10 : 20 : 40
    log_conf = np.log([0.5, 0.25, 0.125])
    assert weighted_allocation(np.array([1000] * 3), log_conf, 70).tolist() == [10, 20, 40]


def test_weighted_allocation_base_and_size_clamps():
    # task 0 has 2 prompts: all of them (its 1/conf is largest, but the size caps it);
    # task 1 is confident: held at the base 5; task 2 takes the rest, ceil(C / 0.1) = 23.
    log_conf = np.log([0.01, 0.9, 0.1])
    assert weighted_allocation(np.array([2, 50, 50]), log_conf, 30).tolist() == [2, 5, 23]


def test_weighted_allocation_overshoots_on_simultaneous_ceilings_and_round_robin_absorbs_it():
    # weights 1 : 2 : 5 on the three large tasks cross integers together just above C = 60:
    # (12, 24, 60) sums to 99 with the 3-prompt task, (13, 25, 61) to 102; no C gives 100.
    sizes = np.array([3, 100, 100, 100])
    allocation = weighted_allocation(sizes, np.log([0.5, 0.5, 0.25, 0.1]), 100)
    assert allocation.tolist() == [3, 13, 25, 61]
    groups = [np.arange(s) + 1000 * t for t, s in enumerate(sizes)]
    picked = round_robin(groups, allocation, 100)
    counts = [sum(1 for p in picked if p // 1000 == t) for t in range(4)]
    # passes 1-3 feed all four tasks, 4-13 three, 14-25 two, then task 3 alone stops at 100
    assert counts == [3, 13, 25, 59]


def test_round_robin_serves_smallest_allocation_first_and_stops_mid_pass():
    groups = [np.array([10, 11, 12, 13, 14]), np.array([20, 21, 22, 23, 24]), np.array([30, 31])]
    # allocation ascending: task0 (1), task1 (2.5 -> 3), task2 (3, but only 2 prompts)
    assert round_robin(groups, np.array([1.0, 2.5, 3.0]), 5) == [10, 20, 30, 21, 31]
    # equal caps of 2: the last pass stops the moment 5 are picked
    assert round_robin(groups, np.array([2, 2, 2]), 5) == [10, 20, 30, 11, 21]


def test_round_robin_refuses_an_allocation_that_cannot_fill_the_budget():
    with pytest.raises(ValueError, match="fewer than the budget"):
        round_robin([np.arange(3)], np.array([2.0]), 3)


# ---------- properties, against brute force ----------

task_sets = st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12)


def brute_force_weighted(sizes: np.ndarray, conf: np.ndarray, budget: int, base: int) -> np.ndarray:
    """The allocation at the smallest breakpoint C = m * conf_t whose clamped sum reaches the budget."""
    floor = np.minimum(sizes, base)

    def at(c: float) -> np.ndarray:
        return np.clip(np.ceil(c / conf - 1e-9), floor, sizes).astype(int)

    breakpoints = sorted({m * c for c, s in zip(conf, sizes) for m in range(0, s + 1)})
    for c in breakpoints:
        if at(c).sum() >= budget:
            return at(c)
    raise AssertionError("unreachable")


@settings(max_examples=200, deadline=None)
@given(sizes=task_sets, data=st.data())
def test_water_filling_is_min_max_optimal(sizes, data):
    sizes = np.array(sizes)
    budget = data.draw(st.integers(1, int(sizes.sum())))
    alpha = water_filling(sizes, budget)
    assert alpha.sum() == pytest.approx(budget)
    assert np.all(alpha <= sizes + 1e-9)
    level = alpha.max()
    # optimality: every unsaturated task sits at the common level (no max can be lowered)
    assert np.allclose(alpha, np.minimum(sizes, level))


@settings(max_examples=200, deadline=None)
@given(sizes=task_sets, data=st.data())
def test_weighted_allocation_matches_brute_force_and_respects_bounds(sizes, data):
    sizes = np.array(sizes)
    # confidences on a grid of powers of two keep breakpoints exact in floating point
    conf = np.array(
        data.draw(
            st.lists(
                st.sampled_from([1 / 2**k for k in range(1, 9)]),
                min_size=len(sizes),
                max_size=len(sizes),
            )
        )
    )
    floor = base_allocation(sizes, 5)
    budget = data.draw(st.integers(int(floor.sum()), int(sizes.sum())))
    alpha = weighted_allocation(sizes, np.log(conf), budget)
    assert alpha.sum() >= budget
    assert np.all(alpha >= floor) and np.all(alpha <= sizes)
    assert alpha.tolist() == brute_force_weighted(sizes, conf, budget, 5).tolist()
    unclamped = (alpha > floor) & (alpha < sizes)
    if unclamped.sum() >= 2:
        # proportional to 1/conf up to the ceiling: one C with C/conf_t in (alpha_t - 1, alpha_t]
        low = ((alpha - 1) * conf)[unclamped].max()
        high = (alpha * conf)[unclamped].min()
        assert low < high + 1e-12


@settings(max_examples=200, deadline=None)
@given(sizes=task_sets, data=st.data())
def test_round_robin_spends_exactly_the_budget_within_caps(sizes, data):
    sizes = np.array(sizes)
    conf = np.array(
        data.draw(st.lists(st.floats(0.001, 1.0), min_size=len(sizes), max_size=len(sizes)))
    )
    floor = base_allocation(sizes, 5)
    budget = data.draw(st.integers(int(floor.sum()), int(sizes.sum())))
    alpha = weighted_allocation(sizes, np.log(conf), budget)
    groups, start = [], 0
    for s in sizes:
        groups.append(np.arange(start, start + s))
        start += s
    picked = round_robin(groups, alpha, budget)
    assert len(picked) == len(set(picked)) == budget
    counts = np.array([np.isin(g, picked).sum() for g in groups])
    assert counts.sum() == budget
    assert np.all(counts >= floor)  # every task gets its base (or all of it)
    caps = np.minimum(np.ceil(alpha), sizes)
    assert np.all(counts <= caps)
    # round robin: a task short of its cap lost at most the final, interrupted pass
    assert np.all(counts >= np.minimum(caps, counts.max() - 1))
