"""K-Center (Sener and Savarese, 2018): greedy furthest-first in embedding space.

Each step adds the point furthest from its nearest chosen centre, which 2-approximates the
smallest covering radius. The first centre is drawn uniformly from `rng` (the empty set leaves
every point equally far); later ties go to the lowest pool index. One O(N d) distance row per
step updates the vector of squared distances to the nearest centre, on the GPU when there is
one. They come from |a|^2 + |b|^2 - 2 a.b, which cancels digits when points are close: in
float32 that decided picks among the points of tight clusters, so they are float64 (twice the
time of float32, BENCHMARKS.md), and before each pick every point that could be the furthest
within that formula's worst-case error gets its nearest-centre distance again from its
coordinates, and so does the reported radius.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from labelbudget.selection.base import SCORES, Candidates, Selection, Selector, register
from labelbudget.selection.kernels import Pairwise, check_memory_limit, progress, resolve_device

log = logging.getLogger(__name__)


def furthest_first(
    pairwise: Pairwise, budget: int, first: int, memory_limit_mb: float
) -> tuple[list[int], torch.Tensor]:
    """Greedy picks and the final squared distance of every point to its nearest centre
    (-inf marks the centres themselves, which keeps them out of every later argmax)."""
    nearest = torch.full((pairwise.n,), float("inf"), dtype=pairwise.dtype, device=pairwise.device)
    chunks = pairwise.col_chunks(1, memory_limit_mb)
    picks, pick = [], first
    with progress(budget, "k-center") as bar:
        for _ in range(budget):
            picks.append(pick)
            row = torch.tensor([pick], device=pairwise.device)
            for cols in chunks:
                torch.minimum(nearest[cols], pairwise.block(row, cols)[0], out=nearest[cols])
            nearest[pick] = float("-inf")
            if len(picks) < budget:
                pick = furthest(pairwise, nearest, picks)
            bar.update()
    return picks, nearest


def furthest(pairwise: Pairwise, nearest: torch.Tensor, picks: list[int]) -> int:
    """The point furthest from its nearest centre: when several are within the block formula's
    error of the largest, they are measured again from their coordinates; ties to the lowest index."""
    contenders = torch.nonzero(nearest >= nearest.max() - 2 * pairwise.distance_error).flatten()
    if len(contenders) == 1:
        return int(contenders[0])
    exact = pairwise.exact_nearest(contenders, torch.tensor(picks, device=nearest.device))
    return int(contenders[torch.nonzero(exact >= exact.max() * (1 - 1e-12))[0, 0]])


@register
class KCenterSelector(Selector):
    """K-Center greedy on the prompt embeddings, Euclidean distance.

    `normalize`: L2-normalise embeddings first (default false: the paper's plain Euclidean
    distance; greedy K-Center is invariant to a global scale, so this only matters when norms vary).
    `memory_limit_mb`: bound on one block of distances. `device`: 'auto', 'cpu' or 'cuda'.
    """

    name = "kcenter"

    def __init__(
        self, normalize: bool = False, memory_limit_mb: float = 2048, device: str = "auto"
    ):
        check_memory_limit(memory_limit_mb)
        resolve_device(device)  # a GPU asked for and absent fails now, not after scoring
        self.normalize = normalize
        self.memory_limit_mb = memory_limit_mb
        self.device = device

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """Furthest-first centres from a seeded first one; the objective holds the covering
        radius (measured exactly) and the mean distance to the nearest centre."""
        embeddings = candidates.signal(SCORES, self.name).embeddings
        pairwise = Pairwise(
            embeddings,
            "sqeuclidean",
            normalize=self.normalize,
            device=resolve_device(self.device),
            dtype=torch.float64,
            exact_distances=True,
        )
        picks, nearest = furthest_first(
            pairwise, budget, int(rng.integers(pairwise.n)), self.memory_limit_mb
        )
        last = (
            torch.tensor([furthest(pairwise, nearest, picks)], device=nearest.device)
            if budget < pairwise.n
            else None
        )
        radius = (
            float(pairwise.exact_nearest(last, torch.tensor(picks, device=nearest.device))[0])
            ** 0.5
            if last is not None
            else 0.0
        )
        distances = nearest.clamp(min=0).to(torch.float64).sqrt()  # centres are at distance 0
        objective = {"max_min_distance": radius, "mean_min_distance": float(distances.mean())}
        log.info("kcenter: %d centres, covering radius %.4g", budget, objective["max_min_distance"])
        return Selection(ids=[candidates.ids[i] for i in picks], objective=objective)
