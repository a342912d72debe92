"""Random: uniform without replacement, the baseline every method must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelbudget.selection.base import Candidates, Selection, Selector, register


@register
class RandomSelector(Selector):
    """Uniform without replacement over the whole pool, tasks ignored.

    The picks are a prefix of one seeded shuffle, so a seed's subsets nest across budgets: the
    100-label run of a learning curve holds the 50-label run's examples (docs/methods.md,
    section B).
    """

    name = "random"

    def signals(self) -> dict[str, Any]:
        """None: no scoring pass."""
        return {}

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """The first `budget` rows of a seeded shuffle of the pool."""
        rows = rng.permutation(len(candidates.ids))[:budget]
        return Selection(ids=[candidates.ids[i] for i in rows])
