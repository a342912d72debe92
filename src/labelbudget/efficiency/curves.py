"""Learning curves, their area (the data-efficiency AUC), and the x^p curve predicted from an AUC.

Budgets are compared on the normalised log axis x(n) = log2(max(n, 1)) / log2(n_max): zero-shot
at 0, n_max at 1; accuracies on y = (a - a_first) / (H - a_first), 0 at the curve's start, 1 at
H = max(human score, best accuracy). docs/methods.md section B states every rule used here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from labelbudget.errors import ConfigError

GRID = (50, 100, 200, 500, 1000, 2500, 5000)  # the paper's budgets after zero-shot


def log_budget(n: float, n_max: int) -> float:
    """x(n): 0 for zero-shot (and n = 1), 1 at n_max."""
    return math.log2(max(n, 1)) / math.log2(n_max)


def cleaned_curve(
    budgets: Sequence[int], accuracies: Sequence[float], n_max: int = 5000
) -> list[tuple[int, float]]:
    """(budget, accuracy) points after the paper's clean-up: unmeasured grid budgets up to n_max
    take the accuracy of the largest measured budget below them (forward fill; a missing
    zero-shot point is not filled), then a running maximum makes the curve non-decreasing."""
    if len(budgets) != len(accuracies) or not budgets:
        raise ConfigError(
            f"a curve needs as many accuracies as budgets, at least one: got {len(budgets)} and {len(accuracies)}"
        )
    if len(set(budgets)) != len(budgets) or any(b < 0 or b > n_max for b in budgets):
        raise ConfigError(
            f"budgets must be distinct and within [0, n_max={n_max}], got {list(budgets)}"
        )
    measured = dict(sorted(zip(budgets, accuracies)))
    points = dict(measured)
    for n in GRID:
        below = [b for b in measured if b < n]
        if n <= n_max and n not in measured and below:
            points[n] = measured[max(below)]
    curve, best = [], -math.inf
    for n in sorted(points):
        best = max(best, points[n])
        curve.append((n, best))
    return curve


def data_efficiency_auc(
    budgets: Sequence[int],
    accuracies: Sequence[float],
    human: float | None = None,
    n_max: int = 5000,
) -> float:
    """Area under the normalised curve (trapezoid rule on the cleaned points), in [0, 1]:
    higher learns faster. A curve that never rises has area 0."""
    curve = cleaned_curve(budgets, accuracies, n_max)
    first, best = curve[0][1], curve[-1][1]
    top = max(best, human) if human is not None else best
    if top <= first:
        return 0.0
    xs = [log_budget(n, n_max) for n, _ in curve]
    ys = [(a - first) / (top - first) for _, a in curve]
    return sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))


def curve_exponent(auc: float) -> float:
    """p of the predicted curve y = x^p, whose area on [0, 1] is exactly `auc`."""
    if not 0 < auc < 1:
        raise ConfigError(f"a predicted curve needs 0 < AUC < 1, got {auc}")
    return (1 - auc) / auc


def predicted_performance(n: float, auc: float, n_max: int = 5000) -> float:
    """y_hat(n) = x(n)^p: the normalised performance predicted after n labels (1 from n_max on)."""
    return min(log_budget(n, n_max), 1.0) ** curve_exponent(auc)


def labels_needed(target: float, auc: float, n_max: int = 5000) -> float:
    """n* with y_hat(n*) = target: x* = target^(AUC / (1 - AUC)), n* = n_max^x*."""
    if not 0 < target <= 1:
        raise ConfigError(f"a target normalised performance must be in (0, 1], got {target}")
    return n_max ** (target ** (1 / curve_exponent(auc)))
