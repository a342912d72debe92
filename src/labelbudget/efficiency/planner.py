"""The budget planner (neither paper has it): split a total label budget across tasks to maximise
the mean predicted normalised performance, each task following its predicted curve
y = x(n)^p (see `curves`), no task given more labels than its pool holds.

Exact, by dynamic programming over whole labels: y is not concave in n (a single label gains
nothing, x(1) = 0, and p > 1 curves rise late), so a greedy on marginal gains can miss the
optimum. Tasks are added one at a time; best[b] is the best total over the tasks so far with
exactly b labels spent. Cost: one vector pass of length budget per (task, count), which is about
3 x 10^9 element operations, seconds, for FLAN's 1,691 tasks at a 30,000-label budget.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from labelbudget.efficiency.curves import predicted_performance
from labelbudget.errors import ConfigError


def plan_budget(
    predicted_auc: Mapping[str, float],
    pool_sizes: Mapping[str, int],
    budget: int,
    n_max: int = 5000,
    start: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Labels per task, summing to min(budget, total pool), with the largest mean predicted
    performance. Among equal plans, later tasks (by name) get fewer labels.

    `start`: labels each task holds already (a probe's), counted in `budget`: every task gets at
    least its start, and the plan splits what remains.
    """
    missing = sorted(set(pool_sizes) - set(predicted_auc))
    if missing:
        raise ConfigError(f"no predicted AUC for task(s) {missing}")
    if budget < 0:
        raise ConfigError(f"budget must be >= 0, got {budget}")
    start = {task: 0 for task in pool_sizes} | dict(start or {})
    over = {t: n for t, n in start.items() if not 0 <= n <= pool_sizes.get(t, -1)}
    if over:
        raise ConfigError(f"a task cannot start from more labels than its pool holds: {over}")
    tasks = sorted(pool_sizes)
    budget = min(budget, sum(pool_sizes.values()))
    if sum(start.values()) > budget:
        raise ConfigError(
            f"the budget {budget} is below the {sum(start.values())} labels the tasks start from"
        )
    best = np.full(budget + 1, -np.inf)
    best[0] = 0.0
    choices = []  # per task: the count it takes at each total spent
    for task in tasks:
        size = min(pool_sizes[task], budget)
        value = [predicted_performance(n, predicted_auc[task], n_max) for n in range(size + 1)]
        new = np.full(budget + 1, -np.inf)
        choice = np.zeros(budget + 1, dtype=np.int32)
        for n in range(start[task], size + 1):
            candidate = np.full(budget + 1, -np.inf)
            candidate[n:] = best[: budget + 1 - n] + value[n]
            better = candidate > new
            new[better], choice[better] = candidate[better], n
        best = new
        choices.append(choice)
    counts, spent = {}, budget
    for task, choice in zip(reversed(tasks), reversed(choices)):
        counts[task] = int(choice[spent])
        spent -= counts[task]
    return dict(sorted(counts.items()))


def mean_predicted_performance(
    counts: Mapping[str, int], predicted_auc: Mapping[str, float], n_max: int = 5000
) -> float:
    """The planner's objective for `counts`: the mean over its tasks of the predicted
    normalised performance at each task's count."""
    return sum(predicted_performance(n, predicted_auc[t], n_max) for t, n in counts.items()) / len(
        counts
    )
