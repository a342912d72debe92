"""K-Center (Sener and Savarese, 2018): greedy furthest-first in embedding space.

Each step adds the point furthest from its nearest chosen centre, which 2-approximates the
smallest covering radius. The first centre is drawn uniformly from `rng` (the empty set leaves
every point equally far); later ties go to the lowest pool index.

Each step updates the vector of squared distances to the nearest centre, on the GPU when there
is one. The distances come from |a|^2 + |b|^2 - 2 a.b, which cancels digits when points are
close: in float32 that decided picks among the points of tight clusters, so they are float64
(twice the time of float32, BENCHMARKS.md), and before each pick every point that could be the
furthest within that formula's worst-case error gets its nearest-centre distance again from its
coordinates, and so does the reported radius.

For embeddings of 64 dimensions or more a step measures only the points the new centre may come
closer to, by the triangle inequality in a low-dimensional projection (`ProjectedBound`); a step
that would measure a quarter of the pool streams its full O(N d) row instead. On clustered
embeddings about one distance in a hundred is computed (`distances_computed_share`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from labelbudget.selection.base import SCORES, Candidates, Selection, Selector, register
from labelbudget.selection.kernels import (
    Pairwise,
    check_memory_limit,
    check_room,
    progress,
    resolve_device,
)
from labelbudget.selection.neighbours import nearest_among

log = logging.getLogger(__name__)


PRUNE_MIN_DIMS = 64  # below this a projection saves too little over the distances themselves
PROJECTED_DIMS = 256  # at most; a quarter of the dimensions for smaller embeddings
FULL_ROW_SHARE = 0.25  # past this share of the points to measure, a streamed full row is faster
ROUNDING = 1e-9  # relative slack on top of the worst-case errors (the basis' orthonormality)


class ProjectedBound:
    """Lower bounds on distances from the embeddings projected onto m orthonormal directions.

    An orthogonal projection never lengthens a vector: ||P(z_i - z_j)|| <= ||z_i - z_j||. A point
    whose projected distance to a new centre exceeds its distance to its nearest centre cannot
    come closer to the new one, so its distance is never computed. The directions span the
    embeddings' leading principal ones (one seeded power step), where clustered embeddings
    differ most. Each bound is lowered by the worst-case rounding of its formula, so a point
    is skipped only when exact arithmetic would skip it too: the picks stay the float64 greedy's.
    """

    def __init__(self, z: torch.Tensor, dims: int):
        generator = torch.Generator(device=z.device).manual_seed(0)
        start = torch.randn(z.shape[1], dims, generator=generator, dtype=z.dtype, device=z.device)
        basis, _ = torch.linalg.qr(z.T @ (z @ start))  # (d, m), orthonormal columns
        projected = z @ basis
        # float32: the bound reads all N rows every pick, and loses only rounding to it
        self.proj = projected.to(torch.float32)
        self.sq_norms = (self.proj.double() ** 2).sum(dim=1).to(torch.float32)
        eps64, eps32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps
        longest = float(projected.norm(dim=1).max())
        # worst-case rounding of a squared distance by |a|^2 + |b|^2 - 2 a.b in float32, and of
        # a distance between two rows by the projection (float64) and their rounding to float32
        self.error = 4 * (dims + 2) * eps32 * 2 * longest**2
        zmax = float((z * z).sum(dim=1).max()) ** 0.5
        self.slack = 2 * dims**0.5 * z.shape[1] * eps64 * zmax + eps32 * longest

    def sq_lower(self, centre: int) -> torch.Tensor:
        """A lower bound on ||z_i - z_centre||^2 for every point i (float64)."""
        sq = torch.addmv(self.sq_norms, self.proj, self.proj[centre], alpha=-2.0).double()
        sq.add_(float(self.sq_norms[centre]) - self.error).clamp_(min=0.0)
        return (sq.sqrt_() - self.slack).clamp_(min=0.0).square_() * (1 - ROUNDING)


def furthest_first(
    pairwise: Pairwise, budget: int, first: int, memory_limit_mb: float
) -> tuple[list[int], torch.Tensor, float]:
    """Greedy picks, the final squared distance of every point to its nearest centre (-inf marks
    the centres themselves, which keeps them out of every later argmax), and the share of the
    N x budget distances the greedy computed (1.0 without pruning)."""
    nearest = torch.full((pairwise.n,), float("inf"), dtype=pairwise.dtype, device=pairwise.device)
    z = pairwise.z64
    dims = min(PROJECTED_DIMS, z.shape[1] // 4)
    bound = ProjectedBound(z, dims) if z.shape[1] >= PRUNE_MIN_DIMS and budget > 1 else None
    computed = 0
    picks, pick = [], first
    with progress(budget, "k-center") as bar:
        for _ in range(budget):
            picks.append(pick)
            near = None
            if bound is not None and len(picks) > 1:
                reach = nearest + pairwise.distance_error  # what a new centre must come within
                near = torch.nonzero(bound.sq_lower(pick) <= reach).flatten()
            if near is None or len(near) > pairwise.n * FULL_ROW_SHARE:
                row = torch.tensor([pick], device=pairwise.device)
                for cols in pairwise.col_chunks(1, memory_limit_mb):
                    torch.minimum(nearest[cols], pairwise.block(row, cols)[0], out=nearest[cols])
                computed += pairwise.n
            else:
                distance = torch.addmv(pairwise.sq_norms[near], z[near], z[pick], alpha=-2.0)
                distance.add_(pairwise.sq_norms[pick]).clamp_(min=0.0)
                nearest[near] = torch.minimum(nearest[near], distance)
                computed += len(near)
            nearest[pick] = float("-inf")
            if len(picks) < budget:
                pick = furthest(pairwise, nearest, picks)
            bar.update()
    return picks, nearest, computed / (pairwise.n * budget)


def furthest(pairwise: Pairwise, nearest: torch.Tensor, picks: list[int]) -> int:
    """The point furthest from its nearest centre: when several are within the block formula's
    error of the largest, they are measured again from their coordinates; ties to the lowest index."""
    contenders = torch.nonzero(nearest >= nearest.max() - 2 * pairwise.distance_error).flatten()
    if len(contenders) == 1:
        return int(contenders[0])
    centres = torch.tensor(picks, device=nearest.device)
    exact = nearest_among(pairwise.z64, contenders, centres, 1).sq[:, 0]
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
        n, d = embeddings.shape
        device = resolve_device(self.device)
        check_room(
            self.name,
            {"the float64 embeddings as rows and as columns": 16 * n * d, "a copy": 8 * n * d},
            device,
            lambda: "a pool this size needs a device with more memory (selector.device=cuda)",
        )
        pairwise = Pairwise(
            embeddings,
            "sqeuclidean",
            normalize=self.normalize,
            device=device,
            dtype=torch.float64,
            exact_distances=True,
        )
        picks, nearest, computed = furthest_first(
            pairwise, budget, int(rng.integers(pairwise.n)), self.memory_limit_mb
        )
        last = (
            torch.tensor([furthest(pairwise, nearest, picks)], device=nearest.device)
            if budget < pairwise.n
            else None
        )
        radius = (
            float(
                nearest_among(pairwise.z64, last, torch.tensor(picks, device=nearest.device), 1).sq
            )
            ** 0.5
            if last is not None
            else 0.0
        )
        distances = nearest.clamp(min=0).to(torch.float64).sqrt()  # centres are at distance 0
        objective = {
            "max_min_distance": radius,
            "mean_min_distance": float(distances.mean()),
            "distances_computed_share": computed,  # of the N x k the greedy without bounds computes
        }
        log.info(
            "kcenter: %d centres, covering radius %.4g; computed %.2f%% of the N x k distances",
            budget,
            objective["max_min_distance"],
            100 * computed,
        )
        return Selection(ids=[candidates.ids[i] for i in picks], objective=objective)
