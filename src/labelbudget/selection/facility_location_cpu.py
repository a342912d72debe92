"""The compiled CPU path of the Facility Location greedy: with the N x N kernel cached on a CPU,
each pick's update is one numba call, and rows that few columns can still gain through keep
short lists of them. Apart from the torch kernels because it is numpy and numba throughout, and
so that its speed-ups can change without touching what every device runs.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from labelbudget.selection.facility_location_updates import (
    EPS64,
    TIE,
    DenseKernel,
    cpu_possible_best,
)
from labelbudget.selection.kernels import MB, CachedPairwise

LIST_FRACTION = (
    32  # a row keeps a list of its columns once at most N / LIST_FRACTION of them remain
)


class CachedCpuKernel(DenseKernel):
    """The cached kernel on a CPU, where each pick's update is one compiled call (`fused_cover`)
    on numpy views of the greedy's tensors: small torch operations cost ~10x their numpy twins
    on a CPU, and the torch update makes five passes over each block.

    Once a row's uncovered value is small, few columns can still lower a gain through it (those
    with D_ij < uncovered_i, a set that only shrinks). When at most N / LIST_FRACTION remain, the
    row keeps them in a list, read by later picks instead of the row (at N = 20,000, k = 2,000:
    3.7 N rows read whole instead of 6.8 N). A left-out term is an exact zero: the sums only add
    the listed rows after the others, within the same rounding bound.
    The lists take what `memory_limit_mb` leaves after the cache, at most 1/16 of the cache's size.
    """

    def __init__(self, blocks: CachedPairwise, block_mb: float, memory_limit_mb: float):
        super().__init__(blocks, block_mb)
        self.matrix = blocks.matrix.numpy()
        entry = 4 + self.matrix.itemsize  # a column index and its value
        room = int(memory_limit_mb * MB) - self.matrix.nbytes
        capacity = max(0, min(self.n // LIST_FRACTION, room // (entry * self.n)))
        self.list_cols = np.empty((self.n, capacity), dtype=np.int32)
        self.list_values = np.empty((self.n, capacity), dtype=self.matrix.dtype)
        self.list_sizes = np.full(self.n, -1, dtype=np.int64)  # -1: no list, read the row
        self.rounding = (self.n + 2) * EPS64  # float64 sums of at most N terms, each rounded once
        self.threads = numba.get_num_threads()

    def initial_gains(self) -> torch.Tensor:
        """sum_i (1 - D_ij) = sum_i clamp(1 - D_ij, 0, 1), in the same pass (its lists discarded:
        it is not a cover)."""
        total, ones, zeros = np.zeros(self.n), np.ones(self.n), np.zeros(self.n)
        no_lists = np.full(self.n, -1, dtype=np.int64)
        fused_decrease(
            self.matrix,
            np.arange(self.n),
            ones,
            zeros,
            total,
            self.list_cols[:, :0],
            self.list_values[:, :0],
            no_lists,
            self.threads,
        )
        return torch.from_numpy(total)

    def cover(
        self, pick: int, uncovered: torch.Tensor, gains: torch.Tensor, error: torch.Tensor
    ) -> torch.Tensor:
        """`RowUpdates.cover` as one compiled call (`fused_cover`), counting the rows read whole."""
        whole, contenders = fused_cover(
            self.matrix,
            pick,
            uncovered.numpy(),
            gains.numpy(),
            error.numpy(),
            self.rounding,
            self.list_cols,
            self.list_values,
            self.list_sizes,
            self.threads,
        )
        self.rows_read += whole
        return torch.from_numpy(contenders)


@numba.njit(cache=True)
def fused_cover(
    matrix, pick, uncovered, gains, error, rounding, list_cols, list_values, list_sizes, threads
):  # pragma: no cover
    """`RowUpdates.cover` compiled whole; returns the number of rows read whole and the contenders."""
    row = matrix[pick]  # D is symmetric: the pick's column
    rows = np.flatnonzero(row < uncovered)
    old, new = uncovered[rows], row[rows].astype(np.float64)
    decrease = np.zeros(row.shape[0])
    whole = fused_decrease(
        matrix, rows, old, new, decrease, list_cols, list_values, list_sizes, threads
    )
    for j in range(row.shape[0]):
        gains[j] -= decrease[j]
        error[j] += rounding * decrease[j]
    uncovered[rows] = new
    return whole, cpu_possible_best(gains, error, TIE)


@numba.njit(cache=True)
def fused_decrease(
    matrix, rows, old, new, total, list_cols, list_values, list_sizes, threads
):  # pragma: no cover
    """total_j += sum_r clamp(old_r - D[rows_r, j], 0, old_r - new_r) in float64: the rows
    without a list in one streaming pass, split by columns, so that each column sums its rows in
    row order whatever the thread count; then the listed rows, one by one, each keeping only the
    columns with D < new_r (the next pass's `old`); then the unlisted rows with at most
    `capacity` such columns get their list. Returns the number of rows read whole."""
    capacity = list_cols.shape[1]
    listed = list_sizes[rows] >= 0
    whole = np.flatnonzero(~listed)
    if whole.shape[0]:  # a parallel region costs ~10 us to start: late picks read only lists
        near = column_pass(matrix, rows[whole], old[whole], new[whole], total, threads)
        fit = whole[np.flatnonzero(near <= capacity)] if capacity else whole[:0]
    else:
        fit = whole
    for r in np.flatnonzero(listed):
        i, low, keep = rows[r], old[r], new[r]
        cap, kept = low - keep, 0
        for e in range(list_sizes[i]):
            j, value = list_cols[i, e], list_values[i, e]
            total[j] += max(min(low - value, cap), 0.0)
            if value < keep:
                list_cols[i, kept], list_values[i, kept] = j, value
                kept += 1
        list_sizes[i] = kept
    if fit.shape[0]:
        build_lists(matrix, rows[fit], new[fit], list_cols, list_values, list_sizes)
    return whole.shape[0]


@numba.njit(parallel=True, cache=True)
def column_pass(matrix, rows, old, new, total, threads):  # pragma: no cover - compiled
    """`fused_decrease` over whole rows, split by columns; returns each row's count of D < new."""
    n = matrix.shape[1]
    # long columns for long passes
    parts = min(threads if rows.shape[0] > 64 * threads else 4 * threads, n)
    width = (n + parts - 1) // parts
    near = np.zeros((parts, rows.shape[0]), dtype=np.int64)
    for part in numba.prange(parts):
        start, stop = part * width, min(part * width + width, n)
        into = np.zeros(stop - start)
        for r in range(rows.shape[0]):
            row, low, keep = matrix[rows[r], start:stop], old[r], new[r]
            cap, count = low - keep, 0
            for j in range(stop - start):  # branch-free, so that it compiles to vector instructions
                value = row[j]
                into[j] += max(min(low - value, cap), 0.0)
                count += np.int64(value < keep)
            near[part, r] = count
        total[start:stop] += into
    return near.sum(axis=0)


@numba.njit(parallel=True, cache=True)
def build_lists(
    matrix, rows, keep, list_cols, list_values, list_sizes
):  # pragma: no cover - compiled
    """Each row's columns with D < keep, in column order (the caller knows they fit)."""
    for r in numba.prange(rows.shape[0]):
        i, below, kept = rows[r], keep[r], 0
        row = matrix[i]
        for j in range(row.shape[0]):
            if row[j] < below:
                list_cols[i, kept], list_values[i, kept] = j, row[j]
                kept += 1
        list_sizes[i] = kept
