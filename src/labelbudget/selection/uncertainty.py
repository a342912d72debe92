"""Uncertainty baselines: one-shot top-k of one per-prompt score from the scoring pass.

Least Confidence (the k lowest confidences), Mean Entropy (the k highest), Mean Margin and
Min Margin (the k lowest). One class does the ranking; each baseline only says which score it
reads and which end of it is uncertain.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from labelbudget.errors import ConfigError
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import SCORES, Candidates, Selection, Selector, register

CONFIDENCE_KINDS = ("sequence", "token_geomean")


def checked_confidence(kind: str) -> str:
    """Refuse an unknown confidence kind when the config is built, before any model loads."""
    if kind not in CONFIDENCE_KINDS:
        raise ConfigError(f"confidence must be 'sequence' or 'token_geomean', got {kind!r}")
    return kind


def most_uncertain_first(uncertainty: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows by decreasing uncertainty; ties in a seeded random order rather than pool order."""
    return np.lexsort((rng.permutation(len(uncertainty)), -uncertainty))


class TopUncertainSelector(Selector):
    """The `budget` prompts whose score `field` is most uncertain, most uncertain first.

    `higher_is_uncertain`: True for entropy, False for confidence and margins.
    """

    field: ClassVar[str]
    higher_is_uncertain: ClassVar[bool]

    def values(self, scores: Scores) -> np.ndarray:
        """The per-prompt score ranked: the scores' `field`."""
        return getattr(scores, self.field)

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """The `budget` most uncertain rows, ties in seeded order; the objective is their mean
        score."""
        values = self.values(candidates.signal(SCORES, self.name))
        rows = most_uncertain_first(values if self.higher_is_uncertain else -values, rng)[:budget]
        return Selection(
            ids=[candidates.ids[i] for i in rows],
            objective={f"selected_mean/{self.field}": float(values[rows].mean())},
        )


@register
class LeastConfidenceSelector(TopUncertainSelector):
    """The k lowest confidences. `confidence`: 'sequence' is the paper's product of token
    probabilities; 'token_geomean' (per-token geometric mean) removes its length bias."""

    name = "least_confidence"
    field = "log_confidence"
    higher_is_uncertain = False

    def __init__(self, confidence: str = "sequence"):
        self.confidence = checked_confidence(confidence)

    def values(self, scores: Scores) -> np.ndarray:
        """Each prompt's log confidence, of the configured kind."""
        return scores.log_confidence(self.confidence)


@register
class MeanEntropySelector(TopUncertainSelector):
    """The k highest mean token entropies over the greedy answers."""

    name = "mean_entropy"
    field = "mean_entropy"
    higher_is_uncertain = True


@register
class MeanMarginSelector(TopUncertainSelector):
    """The k lowest mean margins (p_top1 - p_top2) over the greedy answers' tokens."""

    name = "mean_margin"
    field = "mean_margin"
    higher_is_uncertain = False


@register
class MinMarginSelector(TopUncertainSelector):
    """The k lowest minimum margins (p_top1 - p_top2) over the greedy answers' tokens."""

    name = "min_margin"
    field = "min_margin"
    higher_is_uncertain = False
