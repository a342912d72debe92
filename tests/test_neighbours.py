"""Exact k nearest neighbours (`selection.neighbours`) against brute force: every pair measured
from coordinates in float64, ranked by (distance, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import labelbudget.selection.neighbours as neighbours


def brute_force(z: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int):
    sq = ((z[rows][:, None, :] - z[cols][None, :, :]) ** 2).sum(axis=2)
    order = [np.lexsort((cols, row))[:k] for row in sq]  # by distance, then index
    return np.array([cols[o] for o in order]), np.array([s[o] for s, o in zip(sq, order)])


def pool(n: int, d: int, seed: int) -> np.ndarray:
    """Clusters, a group of exact duplicates and a group a hair apart (float32 cannot rank them)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(10, d))[rng.integers(0, 10, n)] + 0.3 * rng.normal(size=(n, d))
    z[10:40] = z[5]
    z[100:110] = z[200] + 1e-9 * rng.normal(size=(10, d))
    return z


@pytest.mark.parametrize(
    "n,d,k,extra,block",
    [(400, 48, 5, 3, 2048), (400, 48, 5, 3, 64), (300, 130, 20, 1, 70), (220, 6, 220, 16, 2048)],
)
def test_nearest_are_the_brute_force_neighbours_ties_to_the_lowest_index(
    n, d, k, extra, block, monkeypatch
):
    """In one block and in several (each pair's product then serves both its rows)."""
    monkeypatch.setattr(neighbours, "BLOCK_ROWS", block)
    z = pool(n, d, seed=d)
    searched_again = []
    among = neighbours.nearest_among
    monkeypatch.setattr(
        neighbours,
        "nearest_among",
        lambda z, rows, cols, k: searched_again.append(len(rows)) or among(z, rows, cols, k),
    )
    found = neighbours.nearest(torch.tensor(z), k, extra)
    index, sq = brute_force(z, np.arange(n), np.arange(n), k)
    assert np.array_equal(found.index.numpy(), index)
    np.testing.assert_allclose(found.sq.numpy(), sq, rtol=1e-12, atol=1e-15)
    if k + extra < n:  # the duplicates' float32 estimates tie: those rows are searched again
        assert searched_again and 30 <= searched_again[0] < n / 2


def test_nearest_among_a_subset_of_columns():
    z = pool(300, 40, seed=1)
    rng = np.random.default_rng(0)
    rows, cols = np.arange(0, 300, 7), np.sort(rng.choice(300, 90, replace=False))
    found = neighbours.nearest_among(torch.tensor(z), torch.tensor(rows), torch.tensor(cols), 3)
    index, sq = brute_force(z, rows, cols, 3)
    assert np.array_equal(found.index.numpy(), index)
    np.testing.assert_allclose(found.sq.numpy(), sq, rtol=1e-12, atol=1e-15)


def test_the_float32_bound_covers_the_worst_rounding_of_a_product():
    """The bound against what float32 products do: the largest error seen over clustered
    vectors stays under it, and it is not so loose as to settle nothing (within 100x)."""
    z = torch.tensor(pool(2000, 256, seed=3))
    z32 = z.float()
    estimate = (z32.square().sum(1)[None, :] - 2 * z32[:500] @ z32.T).double()
    exact = ((z[:500, None, :] - z[None, :, :]) ** 2).sum(2) - z[:500].square().sum(1)[:, None]
    worst = float((estimate - exact).abs().max())
    bound = neighbours.product_error(256, neighbours.UNIT32, float(z.square().sum(1).max()))
    assert worst < bound < 100 * worst
