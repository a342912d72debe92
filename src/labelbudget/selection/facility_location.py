"""Facility Location: greedy maximisation of F(S) = sum_i max_{j in S} K(z_i, z_j).

Exact greedy with every candidate's gain kept up to date incrementally: a pick only changes the
cover of the rows it serves better, so only those rows of the kernel are read (see `greedy`).
All of it works on D = 1 - K, the distance from full cover, and each row's `uncovered` = 1 - its
cover: gain_j = sum_i max(uncovered_i - D_ij, 0). D is computed as such (`Pairwise` with
`complement`), so a late gain, a sum of differences of 1e-4 where K lies in [0.992, 1], keeps
its digits in float32. The running gains carry a tracked bound on their float32 rounding; before
each pick, every candidate that could be the best within it (or tie with it) is recomputed from
scratch with float64 sums, so the picks are the exact greedy's for the float32 values of D, ties
(equal to 1e-12 relative) to the lowest pool index. Those values are computed in float64 and
rounded once (`Pairwise` with `stable`), so they, and the picks, are the same for any memory
setting, cached kernel or blocks.
`rng` is not used: the greedy is deterministic.

Kernel: `rbf` exp(-gamma ||z_i - z_j||^2) or `cosine` shifted into [0, 1] as (1 + cos) / 2.
The N x N kernel is cached when it fits `memory_limit_mb`, else computed block by block on the
fly; `knn` keeps a symmetric kNN graph of the kernel only (a sparse kernel for larger pools).
"""

from __future__ import annotations

import logging

import numba
import numpy as np
import torch

from labelbudget.errors import ConfigError
from labelbudget.selection.base import (
    Candidates,
    Selection,
    Selector,
    register,
    register_variant,
)
from labelbudget.selection.kernels import (
    MB,
    CachedPairwise,
    Pairwise,
    block_mb,
    check_kernel,
    check_memory_limit,
    kernel_scale,
    progress,
    resolve_device,
    spans,
)

log = logging.getLogger(__name__)


ROUNDING = float(torch.finfo(torch.float32).eps)  # unit roundoff bound of one float32 operation
EPS64 = float(torch.finfo(torch.float64).eps)
TIE = 1e-12  # relative: gains this close are equal (float64 sums of N terms in another order differ by less)


class DenseKernel:
    """The dense kernel's complement D, read in cache-sized blocks (from the N x N cache or
    computed on the fly) into one reused buffer: fresh large temporaries cost more than the
    arithmetic on a CPU."""

    def __init__(self, blocks: Pairwise | CachedPairwise, block_mb: float):
        self.blocks = blocks
        self.n, self.dtype, self.device = blocks.n, blocks.dtype, blocks.device
        self.cols = spans(self.n, self.dtype.itemsize, block_mb)
        width = self.cols[0].stop - self.cols[0].start
        self.rows_per_block = min(self.n, max(1, int(block_mb * MB) // (width * self.dtype.itemsize)))
        self.buffer = torch.empty(self.rows_per_block * width, dtype=self.dtype, device=self.device)
        self.fused = isinstance(blocks, CachedPairwise) and self.device.type == "cpu"
        # float32 block sums are off by at most (rows summed + 2) roundings of their total; the
        # fused pass sums float32 values in float64: off by at most N float64 roundings
        self.rounding = (self.n + 2) * EPS64 if self.fused else (self.rows_per_block + 2) * ROUNDING

    def _blocks(self, rows: torch.Tensor):
        """(row part, column range, D[rows[part], cols]) in the reused buffer: modify, don't keep."""
        for start in range(0, len(rows), self.rows_per_block):
            part = slice(start, start + self.rows_per_block)
            for cols in self.cols:
                size = (len(rows[part]), cols.stop - cols.start)
                yield part, cols, self.blocks.block(rows[part], cols, out=self.buffer[: size[0] * size[1]].view(size))

    def initial_gains(self) -> torch.Tensor:
        """sum_i (1 - D_ij): every gain for the empty set (D <= 1)."""
        if self.fused:
            return self.n - torch.from_numpy(self.blocks.matrix.numpy().sum(axis=0, dtype=np.float64))
        total = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        for _, cols, block in self._blocks(torch.arange(self.n, device=self.device)):
            total[cols] += block.sum(dim=0)
        return self.n - total

    def improved(self, pick: int, uncovered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows i that the pick covers better than before (D_i,pick < uncovered_i), and D_i,pick there."""
        row = self.blocks.block(torch.tensor([pick], device=self.device))[0].to(torch.float64)  # N values: needed whole
        rows = torch.nonzero(row < uncovered).flatten()
        return rows, row[rows]

    def decrease(self, rows: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """For every column j: sum over the given rows i of clamp(old_i - D_ij, 0, old_i - new_i).
        Block sums in float32 (see `rounding`), their running total in float64; on a CPU with the
        kernel cached, one fused pass in float64 (`fused_decrease`)."""
        if self.fused:
            total = np.zeros(self.n)
            fused_decrease(self.blocks.matrix.numpy(), rows.numpy(), old.numpy(), (old - new).numpy(), total)
            return torch.from_numpy(total)
        total = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        old, width = old.to(self.dtype), (old - new).to(self.dtype)
        for part, cols, block in self._blocks(rows):
            block.neg_().add_(old[part, None]).clamp_(min=0)
            torch.minimum(block, width[part, None], out=block)
            total[cols] += block.sum(dim=0)  # a column sum: faster than a matrix-vector product here
        return total

    def exact_gains(self, cands: torch.Tensor, uncovered: torch.Tensor) -> torch.Tensor:
        """sum_i max(uncovered_i - D_ij, 0) from scratch in float64 (D is symmetric)."""
        total = torch.zeros(len(cands), dtype=torch.float64, device=self.device)
        for part, cols, block in self._blocks(cands):
            total[part] += uncovered[cols].sub(block.to(torch.float64)).clamp_(min=0).sum(dim=1)
        return total

    def uncovered(self, picks: torch.Tensor) -> torch.Tensor:
        """min_{j in picks} D_ij for every i."""
        result = torch.ones(self.n, dtype=torch.float64, device=self.device)
        for _, cols, block in self._blocks(picks):
            torch.minimum(result[cols], block.amin(dim=0).to(torch.float64), out=result[cols])
        return result


FUSED_COLUMNS = 2048  # columns per task of the fused pass: its float64 sums stay in L1/L2


@numba.njit(parallel=True, cache=True)
def fused_decrease(matrix, rows, old, width, total):  # pragma: no cover - compiled; tested through DenseKernel
    """total_j = sum_r clamp(old_r - matrix[rows_r, j], 0, width_r), in float64, in one pass over
    the rows' memory: the torch version makes five passes (subtract, clamp, minimum, sum, add)."""
    n = matrix.shape[1]
    for block in numba.prange((n + FUSED_COLUMNS - 1) // FUSED_COLUMNS):
        start = block * FUSED_COLUMNS
        stop = min(start + FUSED_COLUMNS, n)
        for r in range(rows.shape[0]):
            row, low, cap = matrix[rows[r]], old[r], width[r]
            for j in range(start, stop):  # branch-free, so that it compiles to vector instructions
                total[j] += max(min(low - row[j], cap), 0.0)


class KnnKernel:
    """A symmetric kNN graph of the kernel, stored by row (CSR) as complements D = 1 - K; pairs
    left out count as K = 0, D = 1.

    K_ij is kept when j is among the knn most similar to i, or i among those of j: symmetric, so
    a pick's column is its own row. O(N knn) memory, built in one chunked pass over the kernel,
    for pools whose N x N kernel does not fit memory.
    """

    rounding = 2 * ROUNDING  # float32 terms, float64 sums

    def __init__(self, pairwise: Pairwise, knn: int, block_mb: float):
        n, knn = pairwise.n, min(knn, pairwise.n)
        self.n, self.dtype, self.device = n, pairwise.dtype, pairwise.device
        pairs, values = [], []
        for part in pairwise.row_chunks(n, block_mb):
            rows = torch.arange(part.start, part.stop, device=self.device)
            top = torch.topk(pairwise.block(rows), knn, dim=1, largest=False)  # the smallest D: the most similar
            i, j = rows.repeat_interleave(knn), top.indices.flatten()
            pairs.append(torch.minimum(i, j) * n + torch.maximum(i, j))  # one key per unordered pair
            values.append(top.values.flatten())
        key, order = torch.sort(torch.cat(pairs), stable=True)
        first = torch.ones_like(key, dtype=torch.bool)
        first[1:] = key[1:] != key[:-1]
        key, value = key[first], torch.cat(values)[order][first]
        a, b = torch.div(key, n, rounding_mode="floor"), key % n
        off_diagonal = a != b
        rows = torch.cat([a, b[off_diagonal]])
        by_row = torch.argsort(rows, stable=True)
        self.cols = torch.cat([b, a[off_diagonal]])[by_row]
        self.values = torch.cat([value, value[off_diagonal]])[by_row]
        self.counts = torch.bincount(rows, minlength=n)
        self.starts = torch.cumsum(self.counts, dim=0) - self.counts

    def _entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of the given rows' entries, and which of the given rows owns each."""
        counts = self.counts[rows]
        owner = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        shift = torch.repeat_interleave(self.starts[rows] - (torch.cumsum(counts, dim=0) - counts), counts)
        return torch.arange(len(owner), device=self.device) + shift, owner

    def _sums(self, index: torch.Tensor, terms: torch.Tensor, size: int) -> torch.Tensor:
        return torch.zeros(size, dtype=torch.float64, device=self.device).index_add_(0, index, terms.to(torch.float64))

    def initial_gains(self) -> torch.Tensor:
        return self._sums(self.cols, 1 - self.values.to(torch.float64), self.n)

    def improved(self, pick: int, uncovered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        entries = slice(int(self.starts[pick]), int(self.starts[pick] + self.counts[pick]))
        rows, values = self.cols[entries], self.values[entries].to(torch.float64)
        better = values < uncovered[rows]
        return rows[better], values[better]

    def decrease(self, rows: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        entry, owner = self._entries(rows)
        terms = torch.minimum((old[owner] - self.values[entry]).clamp_(min=0), (old - new)[owner])
        return self._sums(self.cols[entry], terms, self.n)

    def exact_gains(self, cands: torch.Tensor, uncovered: torch.Tensor) -> torch.Tensor:
        entry, owner = self._entries(cands)
        terms = (uncovered[self.cols[entry]] - self.values[entry].to(torch.float64)).clamp_(min=0)
        return self._sums(owner, terms, len(cands))


def verified_argmax(kernel: DenseKernel | KnnKernel, gains: torch.Tensor, error: torch.Tensor, uncovered: torch.Tensor) -> int:
    """The exact greedy pick. `gains` carry accumulated rounding of at most `error`; every
    candidate that could be the best within it is recomputed from scratch in float64 (its error
    reset). Of those, gains equal to 1e-12 relative are ties, and ties go to the lowest index:
    mutual pairs tie exactly, which summation order cannot decide."""
    floor = (gains - error).max()
    contenders = torch.nonzero(gains + error >= floor - floor.abs() * TIE).flatten()  # a tie with the best contends
    if len(contenders) == 1:
        return int(contenders[0])
    exact = kernel.exact_gains(contenders, uncovered)
    gains[contenders] = exact
    error[contenders] = 0.0
    best = exact.max()
    return int(contenders[torch.nonzero(exact >= best - best.abs() * TIE)[0, 0]])


def greedy(kernel: DenseKernel | KnnKernel, budget: int) -> tuple[list[int], torch.Tensor]:
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
    error = kernel.rounding * n * torch.ones_like(gains)  # the sum of D (<= n) behind each initial gain
    picks = []
    with progress(budget, "facility location") as bar:
        for _ in range(budget):
            pick = verified_argmax(kernel, gains, error, uncovered)
            picks.append(pick)
            rows, new = kernel.improved(pick, uncovered)
            decrease = kernel.decrease(rows, uncovered[rows], new)
            gains -= decrease
            error += kernel.rounding * decrease
            gains[pick] = float("-inf")
            uncovered[rows] = new
            bar.update()
    return picks, uncovered


@register
class FacilityLocationSelector(Selector):
    """Facility Location greedy on the prompt embeddings.

    `kernel`: 'rbf' (default) or 'cosine' ((1 + cos) / 2). `gamma`: rbf width (paper: 0.1, 0.002).
    `normalize`: L2-normalise embeddings before the rbf kernel (METHODS leaves it OPEN). Default
    true: gamma then means the same for every model width and pooling, since squared distances
    lie in [0, 4]; gamma * median squared distance is logged and returned either way.
    `knn`: null for the exact dense kernel, or a symmetric kNN graph of the kernel (F over the
    dense kernel is still reported, beside the kNN one it maximised).
    `memory_limit_mb`: the N x N kernel is cached only if it fits, else computed block by block;
    blocks take at most 1/8 of it (4 MB on a CPU).
    """

    name = "facility_location"
    needs_scores = True

    def __init__(self, kernel: str = "rbf", gamma: float = 0.1, normalize: bool = True, knn: int | None = None,
                 memory_limit_mb: float = 2048, device: str = "auto"):
        check_kernel(kernel, gamma, ("rbf", "cosine"))
        check_memory_limit(memory_limit_mb)
        if knn is not None and knn < 1:
            raise ConfigError(f"knn must be null or a positive number of neighbours, got {knn}")
        self.kernel, self.gamma, self.normalize, self.knn = kernel, gamma, normalize, knn
        self.memory_limit_mb, self.device = memory_limit_mb, device

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        embeddings = candidates.require_scores(self.name).embeddings
        pairwise = Pairwise(embeddings, self.kernel, self.gamma, self.normalize, resolve_device(self.device), complement=True,
                            stable=True)
        objective = kernel_scale(pairwise, self.memory_limit_mb, self.name)
        block = block_mb(self.memory_limit_mb, pairwise.device)
        n = pairwise.n
        if self.knn is None:
            blocks = CachedPairwise(pairwise, self.memory_limit_mb) if CachedPairwise.fits(pairwise, self.memory_limit_mb) else pairwise
            picks, uncovered = greedy(DenseKernel(blocks, block), budget)
        else:
            picks, knn_uncovered = greedy(KnnKernel(pairwise, self.knn, block), budget)
            objective["facility_location_knn"] = float(n - knn_uncovered.sum())
            uncovered = DenseKernel(pairwise, block).uncovered(torch.tensor(picks, device=pairwise.device))
        objective["facility_location"] = float(n - uncovered.sum())
        log.info("facility_location: %d picks, F(S) = %.6g", budget, objective["facility_location"])
        return Selection(ids=[candidates.ids[i] for i in picks], objective=objective)


register_variant("facility_location_rbf0002", "facility_location", gamma=0.002)  # the paper's wider kernel
register_variant("facility_location_cosine", "facility_location", kernel="cosine")
