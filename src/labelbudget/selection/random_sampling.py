"""Random: uniform without replacement, the baseline every method must beat."""

from __future__ import annotations

import numpy as np

from labelbudget.selection.base import Candidates, Selection, Selector, register


@register
class RandomSelector(Selector):
    name = "random"
    needs_scores = False

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        rows = rng.permutation(len(candidates.ids))[:budget]
        return Selection(ids=[candidates.ids[i] for i in rows])
