"""Facility Location: greedy maximisation of F(S) = sum_i max_{j in S} K(z_i, z_j).

Exact greedy with every candidate's gain kept up to date incrementally: a pick only changes the
cover of the rows it serves better, so only those rows of the kernel are read (see `greedy`).
All of it works on D = 1 - K, the distance from full cover, and each row's `uncovered` = 1 - its
cover: gain_j = sum_i max(uncovered_i - D_ij, 0). D is computed as such (`Pairwise` with
`complement`), so a late gain, a sum of differences of 1e-4 where K lies in [0.992, 1], keeps
its digits in float32. The running gains carry a tracked bound on their rounding (float32 block
sums, or float64 on the compiled CPU path); before
each pick, every candidate that could be the best within it (or tie with it) is recomputed from
scratch with float64 sums, so the picks are the exact greedy's for the float32 values of D, ties
(equal to 1e-12 relative) to the lowest pool index. Those values are computed in float64 and
rounded once (`Pairwise` with `stable`), so they, and the picks, are the same for any memory
setting, cached kernel or blocks. On a CPU with the kernel cached, each update is one compiled
call (numba) that late in the greedy reads short per-row lists instead of whole rows
(`CachedCpuKernel`).
`rng` is not used: the greedy is deterministic.

Kernel: `rbf` exp(-gamma ||z_i - z_j||^2) or `cosine` shifted into [0, 1] as (1 + cos) / 2.
The N x N kernel is cached when it fits `memory_limit_mb` and the free memory, else its blocks
are recomputed on the fly (a warning says how long that takes), and a kernel the device could
not hold is refused before any work. `knn` keeps a symmetric kNN graph of the kernel only
(`facility_location_knn`, for pools beyond memory: FLAN's 90K).

This module holds the greedy and the selector; how a pick updates the greedy's state is in
`facility_location_updates` (dense and kNN kernels, torch) and `facility_location_cpu` (the
compiled CPU path).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from labelbudget.errors import ConfigError
from labelbudget.selection.base import (
    SCORES,
    Candidates,
    Selection,
    Selector,
    register,
    register_variant,
)
from labelbudget.selection.facility_location_cpu import CachedCpuKernel
from labelbudget.selection.facility_location_updates import (
    TIE,
    DenseKernel,
    KnnKernel,
    RowUpdates,
    possible_best,
)
from labelbudget.selection.kernels import (
    MB,
    CachedPairwise,
    Pairwise,
    block_mb,
    check_kernel,
    check_memory_limit,
    check_room,
    duration,
    kernel_scale,
    matmul_gflop_s,
    progress,
    resolve_device,
)

log = logging.getLogger(__name__)

# the kNN graph of `facility_location_knn`, the variant for pools beyond memory
KNN_FOR_LARGE_POOLS = 64


def dense_kernel(
    blocks: Pairwise | CachedPairwise, block_mb: float, memory_limit_mb: float
) -> DenseKernel:
    """The compiled kernel where it applies (cached, on a CPU), else the torch one."""
    if isinstance(blocks, CachedPairwise) and blocks.device.type == "cpu":
        return CachedCpuKernel(blocks, block_mb, memory_limit_mb)
    return DenseKernel(blocks, block_mb)


def verified_argmax(
    kernel: RowUpdates,
    contenders: torch.Tensor,
    gains: torch.Tensor,
    error: torch.Tensor,
    uncovered: torch.Tensor,
) -> int:
    """The exact greedy pick. `gains` carry accumulated rounding of at most `error`; every
    candidate that could be the best within it (`contenders`) is recomputed from scratch in
    float64 (its error reset). Of those, gains equal to 1e-12 relative are ties, and ties go to the lowest index:
    mutual pairs tie exactly, which summation order cannot decide."""
    if len(contenders) == 1:
        return int(contenders[0])
    exact = kernel.exact_gains(contenders, uncovered)
    gains[contenders] = exact
    error[contenders] = 0.0
    best = exact.max()
    return int(contenders[torch.nonzero(exact >= best - best.abs() * TIE)[0, 0]])


def greedy(kernel: RowUpdates, budget: int) -> tuple[list[int], torch.Tensor]:
    """Exact greedy with every candidate's gain kept up to date: gain_j = sum_i max(u_i - D_ij, 0),
    u_i = 1 - cover_i (`uncovered`, float64).

    A pick lowers u_i only on the rows R it covers better, and lowers gain_j by
    sum_{i in R} clamp(u_old_i - D_ij, 0, u_old_i - u_new_i), one (|R| x N) pass. R is the set of
    points whose nearest pick changed: about N ln k rows in all (6.8 N at N = 20,000, k = 2,000,
    where lazy evaluation needed ~11 N row evaluations: a flat kernel keeps every bound loose).
    Returns the picks and the final `uncovered`.
    """
    n, device = kernel.n, kernel.device
    uncovered = torch.ones(n, dtype=torch.float64, device=device)
    gains = kernel.initial_gains()
    # the sum of D (<= n) behind each initial gain
    error = kernel.rounding * n * torch.ones_like(gains)
    picks, contenders = [], possible_best(gains, error)
    with progress(budget, "facility location") as bar:
        for _ in range(budget):
            pick = verified_argmax(kernel, contenders, gains, error, uncovered)
            picks.append(pick)
            gains[pick] = float("-inf")
            contenders = kernel.cover(pick, uncovered, gains, error)
            bar.update()
    return picks, uncovered


def caching_limit_mb(n: int) -> int:
    """A `memory_limit_mb` that caches the N x N float32 kernel, with a tenth to spare."""
    return math.ceil(CachedPairwise.nbytes(n, torch.float32) * 1.1 / MB)


def recomputing(n: int, d: int, budget: int, device: torch.device) -> str:
    """How long the exact greedy takes with its kernel recomputed on the fly: N rows for the
    first gains and about N ln k for the updates (`greedy`), 2 N d float64 flops each."""
    flops = 2 * n * n * d * (1 + math.log(max(budget, 1)))
    return duration(flops / (matmul_gflop_s(device, torch.float64) * 1e9))


@register
class FacilityLocationSelector(Selector):
    """Facility Location greedy on the prompt embeddings.

    `kernel`: 'rbf' (default) or 'cosine' ((1 + cos) / 2). `gamma`: rbf width (paper: 0.1, 0.002).
    `normalize`: L2-normalise embeddings before the rbf kernel (docs/methods.md leaves it OPEN). Default
    true: gamma then means the same for every model width and pooling, since squared distances
    lie in [0, 4]; gamma * median squared distance is logged and returned either way.
    `knn`: null for the exact dense kernel, or a symmetric kNN graph of the kernel (F over the
    dense kernel is still reported, beside the kNN one it maximised).
    `memory_limit_mb`: the N x N kernel is cached only if it fits (and the free memory), else
    its blocks are recomputed; blocks take at most 1/8 of it (4 MB on a CPU).
    """

    name = "facility_location"

    def __init__(
        self,
        kernel: str = "rbf",
        gamma: float = 0.1,
        normalize: bool = True,
        knn: int | None = None,
        memory_limit_mb: float = 2048,
        device: str = "auto",
    ):
        check_kernel(kernel, gamma, ("rbf", "cosine"))
        check_memory_limit(memory_limit_mb)
        resolve_device(device)  # a GPU asked for and absent fails now, not after scoring
        if knn is not None and knn < 1:
            raise ConfigError(f"knn must be null or a positive number of neighbours, got {knn}")
        self.kernel, self.gamma, self.normalize, self.knn = kernel, gamma, normalize, knn
        self.memory_limit_mb, self.device = memory_limit_mb, device

    def check_dense_kernel(self, n: int, d: int, budget: int, device: torch.device) -> None:
        """Refuse, before any work, a kernel this device could not hold at any memory limit
        (FLAN's 90K takes 30 GiB): recomputing it on the fly instead takes hours there."""
        check_room(
            self.name,
            {
                "its N x N kernel": CachedPairwise.nbytes(n, torch.float32),
                "the float64 embeddings, twice while it is built": 16 * n * d,
            },
            device,
            lambda: (
                f"recomputing its blocks on the fly instead would take "
                f"{recomputing(n, d, budget, device)} here; set selector.knn={KNN_FOR_LARGE_POOLS} "
                "(the exact greedy on the kernel's kNN graph; BENCHMARKS.md gives what it costs "
                f"in F) or use a device with more memory and selector.memory_limit_mb={caching_limit_mb(n)}"
            ),
        )

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """The greedy's `budget` picks; the objective reports F(S) over the dense kernel, and
        over the kNN graph too when that is the one the greedy maximised."""
        embeddings = candidates.signal(SCORES, self.name).embeddings
        device = resolve_device(self.device)
        if self.knn is None:
            self.check_dense_kernel(*embeddings.shape, budget, device)
        pairwise = Pairwise(
            embeddings,
            self.kernel,
            self.gamma,
            self.normalize,
            device,
            complement=True,
            exact_distances=self.knn is not None,
            stable=True,
        )
        objective = kernel_scale(pairwise, self.memory_limit_mb, self.name)
        block = block_mb(self.memory_limit_mb, pairwise.device)
        n = pairwise.n
        if self.knn is None:
            if CachedPairwise.fits(pairwise, self.memory_limit_mb):
                blocks = CachedPairwise(pairwise, self.memory_limit_mb)
            else:
                size = CachedPairwise.nbytes(n, pairwise.dtype)
                log.warning(
                    "%s: the %.1f GiB kernel is over memory_limit_mb=%g or the free memory: its "
                    "blocks are recomputed on the fly, %s here; selector.memory_limit_mb=%d "
                    "caches it where that much is free (the picks are the same)",
                    self.name,
                    size / 2**30,
                    self.memory_limit_mb,
                    recomputing(n, embeddings.shape[1], budget, pairwise.device),
                    caching_limit_mb(n),
                )
                blocks = pairwise
            picks, uncovered = greedy(dense_kernel(blocks, block, self.memory_limit_mb), budget)
        else:
            graph = KnnKernel(pairwise, self.knn)
            picks, knn_uncovered = greedy(graph, budget)
            objective["facility_location_knn"] = float(n - knn_uncovered.sum())
            uncovered = graph.dense_uncovered(torch.tensor(picks, device=pairwise.device))
        objective["facility_location"] = float(n - uncovered.sum())
        log.info("facility_location: %d picks, F(S) = %.6g", budget, objective["facility_location"])
        return Selection(ids=[candidates.ids[i] for i in picks], objective=objective)


# the paper's wider kernel
register_variant("facility_location_rbf0002", "facility_location", gamma=0.002)
register_variant("facility_location_cosine", "facility_location", kernel="cosine")
# for pools whose N x N kernel does not fit memory (FLAN's 90K)
register_variant("facility_location_knn", "facility_location", knn=KNN_FOR_LARGE_POOLS)
