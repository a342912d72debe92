"""How one Facility Location pick updates the greedy's state, for the kernel stored dense or as a
kNN graph: the `RowUpdates` contract that `facility_location.greedy` drives, the torch kernels
that fulfil it, and the rounding bounds that let the greedy verify its picks exactly.

Apart from the greedy so that each storage of D = 1 - K (dense blocks, sparse kNN rows, the
compiled CPU cache of `facility_location_cpu`) can be read, tested and timed on its own.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from labelbudget.selection.kernels import MB, CachedPairwise, Pairwise, spans
from labelbudget.selection.neighbours import nearest, nearest_among

ROUNDING = float(torch.finfo(torch.float32).eps)  # unit roundoff bound of one float32 operation
EPS64 = float(torch.finfo(torch.float64).eps)
MIN_EXTRA = 16  # candidates kept beyond the knn in the float32 pass, at least
TIE = 1e-12  # relative: gains this close are equal (float64 sums of N terms in another order differ by less)


class RowUpdates:
    """A pick's effect on the greedy's state, for a kernel that lists the rows the pick covers
    better (`improved`) and sums their clamped decrease over every column (`decrease`)."""

    rounding: float  # the relative rounding bound of one `decrease` sum
    rows_read = 0  # rows the updates read whole: the benchmark's floor counts their bytes

    def cover(
        self, pick: int, uncovered: torch.Tensor, gains: torch.Tensor, error: torch.Tensor
    ) -> torch.Tensor:
        """Lower every gain (and raise its rounding bound) by what the pick takes from it, then
        lower `uncovered` on the rows the pick covers better; all in place. Returns the
        candidates that could be the next pick (`possible_best`)."""
        rows, new = self.improved(pick, uncovered)
        decrease = self.decrease(rows, uncovered[rows], new)
        gains -= decrease
        error += self.rounding * decrease
        uncovered[rows] = new
        self.rows_read += len(rows)
        return possible_best(gains, error)


class DenseKernel(RowUpdates):
    """The dense kernel's complement D, read in cache-sized blocks (from the N x N cache or
    computed on the fly) into one reused buffer: fresh large temporaries cost more than the
    arithmetic on a CPU."""

    def __init__(self, blocks: Pairwise | CachedPairwise, block_mb: float):
        self.blocks = blocks
        self.n, self.dtype, self.device = blocks.n, blocks.dtype, blocks.device
        self.cols = spans(self.n, self.dtype.itemsize, block_mb)
        width = self.cols[0].stop - self.cols[0].start
        self.rows_per_block = min(
            self.n, max(1, int(block_mb * MB) // (width * self.dtype.itemsize))
        )
        self.buffer = torch.empty(self.rows_per_block * width, dtype=self.dtype, device=self.device)
        self.rounding = (
            self.rows_per_block + 2
        ) * ROUNDING  # float32 block sums: (rows summed + 2) roundings

    def _blocks(self, rows: torch.Tensor):
        """(row part, column range, D[rows[part], cols]) in the reused buffer: modify, don't keep."""
        for start in range(0, len(rows), self.rows_per_block):
            part = slice(start, start + self.rows_per_block)
            for cols in self.cols:
                size = (len(rows[part]), cols.stop - cols.start)
                yield (
                    part,
                    cols,
                    self.blocks.block(
                        rows[part], cols, out=self.buffer[: size[0] * size[1]].view(size)
                    ),
                )

    def initial_gains(self) -> torch.Tensor:
        """sum_i (1 - D_ij): every gain for the empty set (D <= 1)."""
        total = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        for _, cols, block in self._blocks(torch.arange(self.n, device=self.device)):
            total[cols] += block.sum(dim=0)
        return self.n - total

    def improved(self, pick: int, uncovered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows i that the pick covers better than before (D_i,pick < uncovered_i), and D_i,pick there."""
        # N values: needed whole
        row = self.blocks.block(torch.tensor([pick], device=self.device))[0].to(torch.float64)
        rows = torch.nonzero(row < uncovered).flatten()
        return rows, row[rows]

    def decrease(self, rows: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """For every column j: sum over the given rows i of clamp(old_i - D_ij, 0, old_i - new_i).
        Block sums in float32 (see `rounding`), their running total in float64."""
        total = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        old, width = old.to(self.dtype), (old - new).to(self.dtype)
        for part, cols, block in self._blocks(rows):
            block.neg_().add_(old[part, None]).clamp_(min=0)
            torch.minimum(block, width[part, None], out=block)
            # a column sum: faster than a matrix-vector product here
            total[cols] += block.sum(dim=0)
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


class KnnKernel(RowUpdates):
    """A symmetric kNN graph of the kernel, stored by row (CSR) as complements D = 1 - K; pairs
    left out count as K = 0, D = 1.

    K_ij is kept when j is among the knn nearest to i, or i among those of j, and K_ii always:
    symmetric, so a pick's column is its own row. The neighbours are exact (`neighbours.nearest`,
    ties to the lowest index) and each D is computed in float64 from coordinates and rounded
    once. O(N knn) memory and one pass over the pairs, for pools whose N x N kernel does not fit.
    """

    rounding = 2 * ROUNDING  # float32 terms, float64 sums

    def __init__(self, pairwise: Pairwise, knn: int):
        n, knn = pairwise.n, min(knn, pairwise.n)
        self.pairwise, self.n = pairwise, n
        self.dtype, self.device = pairwise.dtype, pairwise.device
        found = nearest(pairwise.z64, knn, extra=max(MIN_EXTRA, knn // 2))
        values = pairwise.from_sq_distances(found.sq)
        self.radius = values[:, -1]  # D of each row's knn-th nearest
        # and each point itself, which knn exact duplicates of lower index would crowd out
        itself = torch.arange(n, device=self.device)
        i = torch.cat([itself, itself.repeat_interleave(knn)])
        j = torch.cat([itself, found.index.flatten()])
        values = torch.cat(
            [torch.zeros(n, dtype=values.dtype, device=self.device), values.flatten()]
        )
        # one key per unordered pair
        key, order = torch.sort(torch.minimum(i, j) * n + torch.maximum(i, j), stable=True)
        first = torch.ones_like(key, dtype=torch.bool)
        first[1:] = key[1:] != key[:-1]
        key, value = key[first], values[order][first]
        a, b = torch.div(key, n, rounding_mode="floor"), key % n
        off_diagonal = a != b
        rows = torch.cat([a, b[off_diagonal]])
        by_row = torch.argsort(rows, stable=True)
        self.cols = torch.cat([b, a[off_diagonal]])[by_row]
        self.values = torch.cat([value, value[off_diagonal]])[by_row]
        self.counts = torch.bincount(rows, minlength=n)
        self.starts = torch.cumsum(self.counts, dim=0) - self.counts

    def dense_uncovered(self, picks: torch.Tensor) -> torch.Tensor:
        """min_{j in picks} D_ij for every i over the dense kernel, exactly: where a row's
        stored picks come within its knn-th nearest, no pick left out of the graph is nearer;
        the other rows are searched among all picks (`neighbours.nearest_among`)."""
        is_pick = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        is_pick[picks] = True
        owner = torch.repeat_interleave(torch.arange(self.n, device=self.device), self.counts)
        stored = is_pick[self.cols]
        result = torch.ones(self.n, dtype=self.dtype, device=self.device)
        result.scatter_reduce_(0, owner[stored], self.values[stored], "amin")
        far = torch.nonzero(result > self.radius).flatten()
        if len(far):
            found = nearest_among(self.pairwise.z64, far, picks, 1)
            result[far] = self.pairwise.from_sq_distances(found.sq[:, 0])
        return result.to(torch.float64)

    def _entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of the given rows' entries, and which of the given rows owns each."""
        counts = self.counts[rows]
        owner = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        shift = torch.repeat_interleave(
            self.starts[rows] - (torch.cumsum(counts, dim=0) - counts), counts
        )
        return torch.arange(len(owner), device=self.device) + shift, owner

    def _sums(self, index: torch.Tensor, terms: torch.Tensor, size: int) -> torch.Tensor:
        return torch.zeros(size, dtype=torch.float64, device=self.device).index_add_(
            0, index, terms.to(torch.float64)
        )

    def initial_gains(self) -> torch.Tensor:
        """sum_i (1 - D_ij) over the stored pairs: a pair left out has D = 1 and adds nothing."""
        return self._sums(self.cols, 1 - self.values.to(torch.float64), self.n)

    def improved(self, pick: int, uncovered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows the pick covers better, read from its own row: the graph is symmetric."""
        entries = slice(int(self.starts[pick]), int(self.starts[pick] + self.counts[pick]))
        rows, values = self.cols[entries], self.values[entries].to(torch.float64)
        better = values < uncovered[rows]
        return rows[better], values[better]

    def decrease(self, rows: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """`DenseKernel.decrease` over the given rows' stored entries only: a left-out D_ij = 1
        is never below old_i, so its term is an exact zero."""
        entry, owner = self._entries(rows)
        terms = torch.minimum((old[owner] - self.values[entry]).clamp_(min=0), (old - new)[owner])
        return self._sums(self.cols[entry], terms, self.n)

    def exact_gains(self, cands: torch.Tensor, uncovered: torch.Tensor) -> torch.Tensor:
        """`DenseKernel.exact_gains` over the candidates' stored entries, for the same reason."""
        entry, owner = self._entries(cands)
        terms = (uncovered[self.cols[entry]] - self.values[entry].to(torch.float64)).clamp_(min=0)
        return self._sums(owner, terms, len(cands))


def possible_best(gains: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """Candidates whose gain could be the largest within the rounding bounds (a tie with the
    largest contends), in index order; compiled on a CPU, where torch's small operations would
    cost more than the whole update."""
    if gains.device.type == "cpu":
        return torch.from_numpy(cpu_possible_best(gains.numpy(), error.numpy(), TIE))
    floor = (gains - error).max()
    return torch.nonzero(gains + error >= floor - floor.abs() * TIE).flatten()


@numba.njit(cache=True)
def cpu_possible_best(
    gains, error, tie
):  # pragma: no cover - compiled; tested through possible_best
    """`possible_best` on numpy arrays: compiled, it costs less than one small torch operation."""
    floor = -np.inf
    for j in range(gains.shape[0]):
        floor = max(floor, gains[j] - error[j])
    return np.flatnonzero(gains + error >= floor - abs(floor) * tie)
