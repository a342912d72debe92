"""How a budget is split across tasks, and how Algorithm 1 spends it (docs/methods.md, section A).

Allocations are per task, in the caller's task order. They may be fractional (task diversity)
or over-allocate through ceilings (weighted); `round_robin` always spends exactly the budget.
"""

from __future__ import annotations

import math

import numpy as np


def water_filling(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Task Diversity: minimise max_t alpha_t s.t. sum alpha_t = budget, alpha_t <= |X_t|.

    Small tasks are taken whole; the rest share the remainder equally at a (fractional) level L.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    if not 0 < budget <= sizes.sum():
        raise ValueError(f"budget {budget} must be in 1..{int(sizes.sum())}")
    remaining, open_tasks = float(budget), len(sizes)
    for size in np.sort(sizes):
        level = remaining / open_tasks
        if size >= level:
            return np.minimum(sizes, level)
        remaining -= size
        open_tasks -= 1
    return sizes.copy()


def base_allocation(sizes: np.ndarray, base: int) -> np.ndarray:
    """Every task's floor: `base` examples, or the whole task when it is smaller."""
    return np.minimum(np.asarray(sizes, dtype=np.int64), base)


def weighted_allocation(
    sizes: np.ndarray, log_confidence: np.ndarray, budget: int, base: int = 5
) -> np.ndarray:
    """Weighted Task Diversity: alpha_t = clamp(ceil(C / conf_t), min(base, |X_t|), |X_t|).

    C is the smallest constant whose allocation reaches the budget, found by bisection on log C
    (confidences are products of many probabilities, so 1/conf_t is handled in log space). When
    several tasks cross a ceiling at the same C the sum can overshoot the budget by a few; the
    round robin then spends exactly the budget, as the paper's Algorithm 1 does.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    log_weight = -np.asarray(log_confidence, dtype=np.float64)
    log_weight = log_weight - log_weight.max()  # weights in (0, 1]; C absorbs the scale
    floor = base_allocation(sizes, base)
    if not floor.sum() <= budget <= sizes.sum():
        raise ValueError(f"budget {budget} must be in {floor.sum()}..{sizes.sum()}")

    def allocate(log_c: float) -> np.ndarray:
        scaled = np.exp(np.minimum(log_c + log_weight, 700.0))
        return np.clip(np.ceil(scaled), floor, sizes).astype(np.int64)

    low, high = -1.0, math.log(sizes.max()) - log_weight.min() + 1.0
    if allocate(low).sum() >= budget:
        return allocate(low)
    for _ in range(200):
        middle = (low + high) / 2
        if allocate(middle).sum() >= budget:
            high = middle
        else:
            low = middle
        if high - low < 1e-12:
            break
    return allocate(high)


def round_robin(groups: list[np.ndarray], allocation: np.ndarray, budget: int) -> list[int]:
    """Algorithm 1: one pick per task per pass, smallest allocation first, until `budget` picks.

    `groups[t]` are task t's candidate rows already in random order (so taking them in order is
    uniform sampling without replacement); a task stops at ceil(alpha_t) or when exhausted.
    Returns rows in pick order. Ties in allocation keep the caller's task order.
    """
    caps = [min(math.ceil(a - 1e-9), len(g)) for a, g in zip(allocation, groups)]
    if sum(caps) < budget:
        raise ValueError(
            f"allocation covers only {sum(caps)} examples, fewer than the budget {budget}"
        )
    order = sorted(range(len(groups)), key=lambda t: allocation[t])  # stable: ties keep task order
    picked: list[int] = []
    for depth in range(max(caps)):
        for t in order:
            if depth < caps[t]:
                picked.append(int(groups[t][depth]))
                if len(picked) == budget:
                    return picked
    raise AssertionError("unreachable: caps sum to at least the budget")
