"""The report's statistics: means and standard errors, the crossed bootstrap over tasks and
seeds with its minimum detectable effect, and Spearman's rho with a permutation p-value."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labelbudget.efficiency.predictor import rank

# the true difference a paired comparison finds 80% of the time at the two-sided 5% level
MDE_Z = 1.959964 + 0.841621


BOOTSTRAP_DRAWS = 10_000


PERMUTATIONS = 10_000


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n)); 0 error for one run."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


@dataclass(frozen=True)
class Paired:
    """A paired comparison: the mean difference, its 95% interval (low, high), the table's size and
    the minimum detectable effect."""

    mean: float
    low: float
    high: float
    tasks: int
    seeds: int  # cells: seeds, or (`--cells` settings, seed) pairs
    mde: float  # minimum detectable effect: MDE_Z bootstrap standard errors

    @property
    def verdict(self) -> str:
        """ "not shown" where the interval holds 0: no difference is shown, and none is proved."""
        return "better" if self.low > 0 else "worse" if self.high < 0 else "not shown"


def crossed_bootstrap(
    differences: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> Paired:
    """Mean of a (task x seed) table of paired differences and its 95% percentile interval, from
    resampling tasks and seeds independently with replacement: each draw's mean is
    sum_ts c_t d_ts e_s / (T S), c and e the times each task and seed was drawn."""
    n_tasks, n_seeds = differences.shape
    rng = np.random.default_rng(seed)
    task_counts, seed_counts = (draw_counts(rng, n, draws) for n in (n_tasks, n_seeds))
    means = np.einsum("dt,ts,ds->d", task_counts, differences, seed_counts) / (n_tasks * n_seeds)
    low, high = np.percentile(means, [2.5, 97.5])
    mde = MDE_Z * float(means.std())
    return Paired(float(differences.mean()), float(low), float(high), n_tasks, n_seeds, mde)


def draw_counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """(draws, n): how often each of n items is drawn in each of `draws` resamples of size n."""
    picks = rng.integers(0, n, (draws, n)) + n * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n)


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho over `tasks` tasks, and its permutation p-value."""

    rho: float
    p: float
    tasks: int


def spearman(
    x: np.ndarray, y: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0
) -> Correlation | None:
    """Spearman's rho (Pearson's on average ranks) and a two-sided permutation p-value,
    (1 + #{|rho of y's ranks permuted| >= |rho|}) / (1 + permutations); None when a side is
    constant or there are fewer than 3 points."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rx, ry = rank(x), rank(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = np.sqrt((rx**2).sum() * (ry**2).sum())
    rho = float(rx @ ry / scale)
    rng = np.random.default_rng(seed)
    shuffled = ry[np.argsort(rng.random((permutations, len(ry))), axis=1)]
    extreme = int((np.abs(shuffled @ rx / scale) >= abs(rho) - 1e-12).sum())
    return Correlation(rho, (1 + extreme) / (1 + permutations), len(x))
