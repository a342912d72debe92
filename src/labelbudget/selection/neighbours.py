"""Exact k nearest neighbours of every embedding, for pools whose N x N matrix does not fit.

"Exact": the k smallest squared distances of each row, each measured in float64 from the
differences of coordinates (no cancellation), ties to the lowest index. Measuring every pair
that way costs N^2 d float64 operations without a matrix product, so the search runs in two
stages. A float32 matrix product over symmetric blocks (each pair once) keeps the `k + extra`
most promising columns of every row. Each estimate is within a proven bound of the float64
value (`product_error`, whatever order the product sums in); a row whose kept candidates
provably hold its k nearest is settled by measuring those candidates alone, and the few others
are searched again in float64 over all columns (`nearest_among`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from labelbudget.selection.kernels import spans

BLOCK_ROWS = 2048  # the symmetric pass's blocks: 16 MB of float32 products each
MEASURE_MB = 4.0  # the coordinate differences measured at once: cache-sized, 3x faster than 32
SEARCH_MB = 256.0  # the float64 products of one chunk of rows searched again
UNIT32, UNIT64 = 2.0**-24, 2.0**-53  # unit roundoffs


class Neighbours(NamedTuple):
    """Each row's k nearest columns, nearest first, and their float64 squared distances."""

    index: torch.Tensor  # (rows, k) int64
    sq: torch.Tensor  # (rows, k) float64


def product_error(d: int, unit: float, sq_norm_max: float) -> float:
    """A bound on the error of |b|^2 - 2 a.b computed from vectors of length d rounded to a
    unit roundoff `unit` (their squared norms at most `sq_norm_max`), with the float64
    difference formula's own error on top: how far an estimate may lie from what is measured."""
    gamma = d * unit / (1 - d * unit)  # any order of a length-d dot product
    return sq_norm_max * (2.1 * gamma + 9 * unit + 8 * (d + 2) * UNIT64)


def measure(z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """||z_rows[r] - z_cols[r, c]||^2 in float64 from coordinates, for (R,) rows and (R, C) cols."""
    out = torch.empty(cols.shape, dtype=torch.float64, device=z.device)
    per_row = max(1, cols.shape[1]) * z.shape[1] * 8
    for part in spans(len(rows), per_row, MEASURE_MB):
        diff = z[cols[part]] - z[rows[part]].unsqueeze(1)
        out[part] = diff.square_().sum(dim=2)
    return out


def nearest_first(index: torch.Tensor, sq: torch.Tensor, k: int) -> Neighbours:
    """The k smallest of each row, ties to the lowest index."""
    by_index, order = index.sort(dim=1)
    sq = sq.gather(1, order)
    ranked, order = sq.sort(dim=1, stable=True)
    return Neighbours(by_index.gather(1, order)[:, :k], ranked[:, :k])


def nearest(z: torch.Tensor, k: int, extra: int) -> Neighbours:
    """The k nearest of every row of z (N, d) float64 among all rows, itself included."""
    n, d = z.shape
    k = min(k, n)
    keep = min(n, k + extra)
    z32 = z.to(torch.float32)
    sq64 = z.square().sum(dim=1)
    sq32 = sq64.to(torch.float32)
    # float32 estimates of ||z_i - z_j||^2 - |z_i|^2 = |z_j|^2 - 2 z_i.z_j, the row's term left out
    best = torch.full((n, keep), float("inf"), dtype=torch.float32, device=z.device)
    best_index = torch.zeros((n, keep), dtype=torch.int64, device=z.device)
    blocks = [slice(start, min(start + BLOCK_ROWS, n)) for start in range(0, n, BLOCK_ROWS)]
    for at, rows in enumerate(blocks):
        for cols in blocks[at:]:
            product = z32[rows] @ z32[cols].T
            _merge(best, best_index, rows, sq32[cols] - 2 * product, cols.start)
            if cols != rows:
                _merge(best, best_index, cols, sq32[rows] - 2 * product.T, rows.start)
    index = torch.empty((n, k), dtype=torch.int64, device=z.device)
    sq = torch.empty((n, k), dtype=torch.float64, device=z.device)
    error = product_error(d, UNIT32, float(sq64.max()))
    unsettled = []
    for part in spans(n, keep * d * 8, SEARCH_MB):
        rows = torch.arange(part.start, part.stop, device=z.device)
        found = nearest_first(best_index[part], measure(z, rows, best_index[part]), k)
        index[part], sq[part] = found
        # no column left out can be nearer than its estimate's lower bound
        left_out = sq64[part] + best[part].max(dim=1).values.double() - error
        settled = left_out > found.sq[:, -1] if keep < n else torch.ones_like(rows, dtype=bool)
        unsettled.append(rows[~settled])
    again = torch.cat(unsettled)
    if len(again):
        index[again], sq[again] = nearest_among(z, again, torch.arange(n, device=z.device), k)
    return Neighbours(index, sq)


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
    columns, then every column within their error of the k-th measured from coordinates."""
    k = min(k, len(cols))
    zc = z[cols]
    sq_cols = zc.square().sum(dim=1)
    error = product_error(z.shape[1], UNIT64, float(z.square().sum(dim=1).max()))
    index = torch.empty((len(rows), k), dtype=torch.int64, device=z.device)
    sq = torch.empty((len(rows), k), dtype=torch.float64, device=z.device)
    for part in spans(len(rows), len(cols) * 8, SEARCH_MB):
        estimate = torch.addmm(sq_cols.unsqueeze(0), z[rows[part]], zc.T, alpha=-2.0)
        kth = estimate.kthvalue(k, dim=1).values
        for offset in range(part.stop - part.start):
            at = part.start + offset
            near = torch.nonzero(estimate[offset] <= kth[offset] + 2 * error)
            candidates = cols[near.T]
            found = nearest_first(candidates, measure(z, rows[at : at + 1], candidates), k)
            index[at], sq[at] = found.index[0], found.sq[0]
    return Neighbours(index, sq)
