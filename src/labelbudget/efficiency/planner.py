"""The budget planner (neither paper has it): split a total label budget across tasks to maximise
the mean predicted normalised performance, each task following its predicted curve
y = x(n)^p (see `curves`), no task given more labels than its pool holds.

Greedy on marginal predicted gain, `step` labels at a time: y is concave in log n, and a single
label gains nothing (x(1) = 0), so the gain of the next `step` is what ranks the tasks.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from labelbudget.efficiency.curves import predicted_performance
from labelbudget.errors import ConfigError


def plan_budget(predicted_auc: Mapping[str, float], pool_sizes: Mapping[str, int], budget: int,
                n_max: int = 5000, step: int = 10) -> dict[str, int]:
    """Labels per task, summing to min(budget, total pool). Ties go to the task first by name."""
    missing = sorted(set(pool_sizes) - set(predicted_auc))
    if missing:
        raise ConfigError(f"no predicted AUC for task(s) {missing}")
    if budget < 0 or step < 1:
        raise ConfigError(f"budget must be >= 0 and step >= 1, got {budget} and {step}")
    budget = min(budget, sum(pool_sizes.values()))
    counts = {task: 0 for task in sorted(pool_sizes)}

    def gain(task: str) -> tuple[float, int]:
        size = min(step, pool_sizes[task] - counts[task])
        after = predicted_performance(counts[task] + size, predicted_auc[task], n_max)
        return after - predicted_performance(counts[task], predicted_auc[task], n_max), size

    heap = [(-gain(t)[0], t) for t in counts if pool_sizes[t] > 0]
    heapq.heapify(heap)
    spent = 0
    while spent < budget and heap:
        _, task = heapq.heappop(heap)
        size = min(gain(task)[1], budget - spent)
        counts[task] += size
        spent += size
        if counts[task] < pool_sizes[task]:
            heapq.heappush(heap, (-gain(task)[0], task))
    return counts


def mean_predicted_performance(counts: Mapping[str, int], predicted_auc: Mapping[str, float], n_max: int = 5000) -> float:
    return sum(predicted_performance(n, predicted_auc[t], n_max) for t, n in counts.items()) / len(counts)
