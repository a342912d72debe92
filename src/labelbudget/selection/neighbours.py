"""Exact k nearest neighbours, for pools whose N x N matrix does not fit.

"Exact": the k smallest squared distances of each row, each measured in float64 from the
differences of coordinates (no cancellation), ties to the lowest index. Measuring every pair
that way costs N^2 d float64 operations without a matrix product, so the search runs in two
stages. A float32 matrix product over symmetric blocks (each pair once) keeps the `k + extra`
most promising columns of every row. Each estimate is within a proven bound of the measured
value (`product_error`, whatever order the product sums in); a row whose kept candidates
provably hold its k nearest is settled by measuring those candidates alone, and the few others
are searched again with float64 products over all columns (`nearest_among`).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from labelbudget.selection.kernels import spans

BLOCK_ROWS = 2048  # the symmetric pass's blocks: 16 MB of float32 products each
MEASURE_MB = {"cpu": 4.0, "cuda": 256.0}  # differences at once: cache-sized on a CPU (3x faster)
SEARCH_MB = 256.0  # the float64 products of one chunk of rows searched again
UNIT32, UNIT64 = 2.0**-24, 2.0**-53  # unit roundoffs


class Neighbours(NamedTuple):
    """Each row's k nearest columns, nearest first, and their measured squared distances."""

    index: torch.Tensor  # (rows, k) int64
    sq: torch.Tensor  # (rows, k) float64


def product_error(d: int, unit: float, sq_norm_max: float) -> float:
    """A bound on how far |a|^2 + (|b|^2 - 2 a.b), the bracket computed from vectors of length d
    rounded to the unit roundoff `unit` (squared norms at most `sq_norm_max`), may lie from
    ||a - b||^2 measured by `sq_distances`: the product's rounding in any summation order, the
    rounding of the inputs, the norms and the subtraction, and the measurement's own."""
    gamma = d * unit / (1 - d * unit)  # any order of a length-d dot product
    return sq_norm_max * (2.1 * gamma + 9 * unit + 8 * (d + 2) * UNIT64)


@contextlib.contextmanager
def ieee_float32():
    """float32 products as IEEE float32: the bound does not hold for TF32 or bf16 passes, which
    `torch.set_float32_matmul_precision` may have allowed."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def sq_distances(z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """||z[rows[r]] - z[cols[r, c]]||^2 in float64 from coordinates, for (R,) rows, (R, C) cols."""
    out = torch.empty(cols.shape, dtype=torch.float64, device=z.device)
    per_row = max(1, cols.shape[1]) * z.shape[1] * 8
    for part in spans(len(rows), per_row, MEASURE_MB.get(z.device.type, SEARCH_MB)):
        diff = z[cols[part]] - z[rows[part]].unsqueeze(1)
        out[part] = diff.square_().sum(dim=2)
    return out


def k_smallest(index: torch.Tensor, sq: torch.Tensor, k: int) -> Neighbours:
    """The k smallest of each row, ties to the lowest index."""
    by_index, order = index.sort(dim=1)
    sq = sq.gather(1, order)
    ranked, order = sq.sort(dim=1, stable=True)
    return Neighbours(by_index.gather(1, order)[:, :k], ranked[:, :k])


def nearest(z: torch.Tensor, k: int, extra: int) -> Neighbours:
    """The k nearest of every row of z (N, d) float64 among all rows, itself included."""
    n, d = z.shape
    k, keep = min(k, n), min(n, k + extra)
    z32 = z.to(torch.float32)
    sq64 = z.square().sum(dim=1)
    sq32 = sq64.to(torch.float32)
    # float32 estimates of ||z_i - z_j||^2 - |z_i|^2 = |z_j|^2 - 2 z_i.z_j, the row's term left out
    best = torch.full((n, keep), float("inf"), dtype=torch.float32, device=z.device)
    best_index = torch.zeros((n, keep), dtype=torch.int64, device=z.device)
    blocks = [slice(start, min(start + BLOCK_ROWS, n)) for start in range(0, n, BLOCK_ROWS)]
    with ieee_float32():
        for at, rows in enumerate(blocks):
            for cols in blocks[at:]:
                product = z32[rows] @ z32[cols].T
                _merge(best, best_index, rows, sq32[cols] - 2 * product, cols.start)
                if cols != rows:
                    _merge(best, best_index, cols, sq32[rows] - 2 * product.T, rows.start)
    everyone = torch.arange(n, device=z.device)
    found = k_smallest(best_index, sq_distances(z, everyone, best_index), k)
    if keep == n:
        return found
    # what any column not kept measures at least, from its estimate's bound
    left_out_floor = (
        sq64 + best.max(dim=1).values.double() - product_error(d, UNIT32, float(sq64.max()))
    )
    again = torch.nonzero(left_out_floor <= found.sq[:, -1]).flatten()
    if len(again):
        found.index[again], found.sq[again] = nearest_among(z, again, everyone, k)
    return found


def _merge(
    best: torch.Tensor, best_index: torch.Tensor, rows: slice, block: torch.Tensor, first: int
) -> None:
    """Keep, for each of `rows`, the smallest of its kept values and a block of new columns."""
    keep = best.shape[1]
    top = torch.topk(torch.cat([best[rows], block], dim=1), keep, dim=1, largest=False)
    old = top.indices < keep
    kept = best_index[rows].gather(1, top.indices.clamp(max=keep - 1))
    best_index[rows] = torch.where(old, kept, top.indices - keep + first)
    best[rows] = top.values


def nearest_among(z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, k: int) -> Neighbours:
    """The k nearest of `cols` for each of `rows` (indices into z): float64 products over all
    columns, then every column whose estimate is within twice the error of the k-th smallest
    estimate measured from coordinates (at least k columns measure within one error of it)."""
    k = min(k, len(cols))
    zc = z[cols]
    sq_cols = zc.square().sum(dim=1)
    # the bound needs only the norms of the vectors compared, not a pass over all of z
    sq_norm_max = max(float(sq_cols.max()), float(z[rows].square().sum(dim=1).max()))
    error = product_error(z.shape[1], UNIT64, sq_norm_max)
    index = torch.empty((len(rows), k), dtype=torch.int64, device=z.device)
    sq = torch.empty((len(rows), k), dtype=torch.float64, device=z.device)
    for part in spans(len(rows), len(cols) * 8, SEARCH_MB):
        estimate = torch.addmm(sq_cols.unsqueeze(0), z[rows[part]], zc.T, alpha=-2.0)
        kth = estimate.kthvalue(k, dim=1).values
        owner, at = torch.nonzero(estimate <= kth.unsqueeze(1) + 2 * error, as_tuple=True)
        measured = sq_distances(z, rows[part][owner], cols[at].unsqueeze(1))[:, 0]
        # rank each row's candidates by (distance, index): sort by the keys from the last up
        order = torch.argsort(cols[at], stable=True)
        order = order[torch.argsort(measured[order], stable=True)]
        order = order[torch.argsort(owner[order], stable=True)]
        counts = torch.bincount(owner, minlength=part.stop - part.start)
        rank = torch.arange(len(order), device=z.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        first_k = order[rank < k]
        index[part] = cols[at[first_k]].view(-1, k)
        sq[part] = measured[first_k].view(-1, k)
    return Neighbours(index, sq)
