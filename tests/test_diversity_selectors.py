"""K-Center, Facility Location and DPP against independent references on small random pools.

Each reference recomputes its greedy step from scratch in float64 numpy (no incremental state),
so it shares nothing with the fast selectors but the definition of the objective.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from conftest import compose_config
from labelbudget.configs import instantiate
from labelbudget.errors import ConfigError
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import SCORES, SELECTORS, Candidates
from labelbudget.selection.dpp import DPPSelector, greedy_map
from labelbudget.selection.facility_location import (
    FacilityLocationSelector,
    dense_kernel,
    greedy,
)
from labelbudget.selection.facility_location_cpu import CachedCpuKernel, fused_decrease
from labelbudget.selection.kcenter import KCenterSelector, furthest_first
from labelbudget.selection.kernels import CachedPairwise, Pairwise


def pool(embeddings: np.ndarray, mean_logprob: np.ndarray | None = None) -> Candidates:
    n = len(embeddings)
    scores = Scores.with_columns(
        [f"p{i}" for i in range(n)],
        embeddings,
        mean_logprob=np.linspace(-3.0, -0.05, n) if mean_logprob is None else mean_logprob,
    )
    return Candidates(scores.ids, ["t"] * n, {SCORES: scores})


def random_pool(n: int, d: int, seed: int = 0) -> tuple[Candidates, np.ndarray]:
    embeddings = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return pool(embeddings), embeddings.astype(np.float64)


def rows(selection) -> list[int]:
    return [int(i[1:]) for i in selection.ids]


def sq_distances(x: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rbf(x: np.ndarray, gamma: float) -> np.ndarray:
    return np.exp(-gamma * sq_distances(unit(x)))


def cosine01(x: np.ndarray) -> np.ndarray:
    u = unit(x)
    return (1 + u @ u.T) / 2


# ---- references: every step from scratch ----


def first_max(values) -> int:
    """Lowest index among the largest values, equal up to float64 summation error (mutual pairs
    tie exactly in exact arithmetic, and summation order decides them at random otherwise)."""
    values = np.asarray(values, dtype=np.float64)
    best = values.max()
    return int(np.flatnonzero(values >= best - 1e-12 * abs(best))[0])


def kcenter_reference(x: np.ndarray, budget: int, first: int) -> tuple[list[int], float]:
    """Furthest-first in float64 from differences of coordinates, every distance computed."""
    picks = [first]
    nearest = ((x - x[first]) ** 2).sum(1)
    while True:
        nearest[picks] = -1.0
        if len(picks) == budget:
            return picks, float(np.sqrt(nearest.max()))
        picks.append(first_max(nearest))
        nearest = np.minimum(nearest, ((x - x[picks[-1]]) ** 2).sum(1))


def facility_location_reference(kernel: np.ndarray, budget: int) -> tuple[list[int], float]:
    picks: list[int] = []
    for _ in range(budget):
        value = [
            kernel[:, picks + [j]].max(axis=1).sum() if j not in picks else -np.inf
            for j in range(len(kernel))
        ]
        picks.append(first_max(value))
    return picks, float(kernel[:, picks].max(axis=1).sum())


def dpp_reference(ensemble: np.ndarray, budget: int, first: int | None = None) -> list[int]:
    picks = [int(np.argmax(np.diag(ensemble)))] if first is None else [first]
    while len(picks) < budget:
        logdets = [
            np.linalg.slogdet(ensemble[np.ix_(picks + [j], picks + [j])])[1]
            if j not in picks
            else -np.inf
            for j in range(len(ensemble))
        ]
        picks.append(first_max(logdets))
    return picks


def knn_graph(kernel: np.ndarray, knn: int) -> np.ndarray:
    """Symmetric kNN graph: K_ij kept when j is among i's knn most similar or i among j's, and
    K_ii."""
    nearest = np.argsort(-kernel, axis=1, kind="stable")[:, :knn]
    keep = np.eye(len(kernel), dtype=bool)
    keep[np.arange(len(kernel))[:, None], nearest] = True
    return np.where(keep | keep.T, kernel, 0.0)


# ---- K-Center ----


def test_kcenter_matches_from_scratch_greedy():
    candidates, x = random_pool(120, 6)
    selection = KCenterSelector().select(candidates, 25, np.random.default_rng(3))
    picks, radius = kcenter_reference(x, 25, first=rows(selection)[0])
    assert rows(selection) == picks
    assert selection.objective["max_min_distance"] == pytest.approx(radius, rel=1e-5)


def test_kcenter_first_centre_comes_from_rng():
    candidates, _ = random_pool(200, 4)
    firsts = {
        rows(KCenterSelector().select(candidates, 3, np.random.default_rng(seed)))[0]
        for seed in range(20)
    }
    assert len(firsts) > 10


# ---- Facility Location ----


@pytest.mark.parametrize(
    "kernel,gamma,reference",
    [
        ("rbf", 0.5, lambda x: rbf(x, 0.5)),
        ("rbf", 4.0, lambda x: rbf(x, 4.0)),
        ("cosine", 0.1, cosine01),
    ],
)
def test_facility_location_matches_from_scratch_greedy(kernel, gamma, reference):
    candidates, x = random_pool(90, 5, seed=1)
    selection = FacilityLocationSelector(kernel=kernel, gamma=gamma).select(
        candidates, 20, np.random.default_rng(0)
    )
    picks, value = facility_location_reference(reference(x), 20)
    assert rows(selection) == picks
    assert selection.objective["facility_location"] == pytest.approx(value, rel=1e-6)


def duplicated_pool() -> tuple[Candidates, np.ndarray]:
    """Nine copies of one point, more than knn = 6: the graph's ties go to the lowest index,
    as in the reference."""
    x = np.random.default_rng(6).normal(size=(60, 4))
    x[20:29] = x[3]
    candidates = pool(x)
    return candidates, np.asarray(candidates.signals[SCORES].embeddings, dtype=np.float64)


@pytest.mark.parametrize(
    "kernel,reference,make_pool",
    [
        ("rbf", lambda x: rbf(x, 1.0), lambda: random_pool(80, 5, seed=2)),
        ("cosine", cosine01, lambda: random_pool(80, 5, seed=5)),
        ("rbf", lambda x: rbf(x, 1.0), duplicated_pool),
    ],
)
def test_facility_location_knn_matches_greedy_on_the_knn_graph(kernel, reference, make_pool):
    candidates, x = make_pool()
    dense = reference(x)
    selection = FacilityLocationSelector(kernel=kernel, gamma=1.0, knn=6).select(
        candidates, 15, np.random.default_rng(0)
    )
    picks, value = facility_location_reference(knn_graph(dense, 6), 15)
    assert rows(selection) == picks
    assert selection.objective["facility_location_knn"] == pytest.approx(value, rel=1e-6)
    assert selection.objective["facility_location"] == pytest.approx(
        dense[:, picks].max(axis=1).sum(), rel=1e-6
    )


def test_facility_location_whose_kernel_would_not_fit_is_refused_before_any_work(monkeypatch):
    import labelbudget.selection.facility_location as facility_location
    import labelbudget.selection.kernels as kernels

    monkeypatch.setattr(kernels, "available_bytes", lambda device: 100_000)  # 90 KB usable
    monkeypatch.setattr(facility_location, "Pairwise", lambda *a, **k: pytest.fail("work started"))
    candidates, _ = random_pool(160, 8)  # a 102,400-byte kernel
    with pytest.raises(
        ConfigError,
        match=r"^facility_location needs 0\.0 GiB \(its N x N kernel 0\.0 GiB, the float64 "
        r"embeddings, .* on the fly instead would take under a minute here; set selector\.knn=64 "
        r".* selector\.memory_limit_mb=1$",
    ):
        FacilityLocationSelector().select(candidates, 10, np.random.default_rng(0))
    monkeypatch.setattr(kernels, "available_bytes", lambda device: 1_000_000)
    with pytest.raises(pytest.fail.Exception, match="work started"):  # it fits now
        FacilityLocationSelector().select(candidates, 10, np.random.default_rng(0))


def test_facility_location_over_its_memory_limit_warns_and_picks_the_same(caplog):
    candidates, _ = random_pool(300, 6, seed=4)
    cached = FacilityLocationSelector().select(candidates, 30, np.random.default_rng(0))
    with caplog.at_level(logging.WARNING):
        recomputed = FacilityLocationSelector(memory_limit_mb=0.2).select(
            candidates, 30, np.random.default_rng(0)
        )
    assert "recomputed on the fly" in caplog.text and "memory_limit_mb=1 caches it" in caplog.text
    assert recomputed.ids == cached.ids


def test_facility_location_equals_apricot_on_the_same_kernel():
    apricot = pytest.importorskip("apricot")
    candidates, x = random_pool(150, 6, seed=4)
    selection = FacilityLocationSelector(gamma=0.5).select(candidates, 30, np.random.default_rng(0))
    kernel = (
        CachedPairwise(Pairwise(x, "rbf", 0.5, normalize=True), 64)
        .matrix.numpy()
        .astype(np.float64)
    )
    reference = apricot.FacilityLocationSelection(30, metric="precomputed", optimizer="lazy").fit(
        kernel
    )
    assert rows(selection) == [int(i) for i in reference.ranking]
    assert selection.objective["facility_location"] == pytest.approx(
        float(reference.gains.sum()), rel=1e-6
    )


def test_facility_location_logs_gamma_times_median_squared_distance():
    candidates, x = random_pool(70, 4, seed=5)
    objective = (
        FacilityLocationSelector(gamma=0.1)
        .select(candidates, 5, np.random.default_rng(0))
        .objective
    )
    distances = sq_distances(unit(x))[np.triu_indices(70, k=1)]
    assert objective["gamma_times_median_sq_dist"] == pytest.approx(
        0.1 * np.median(distances), rel=1e-5
    )


def test_a_nearly_linear_rbf_kernel_is_warned_of_and_selects_as_cosine_does(caplog):
    # unit vectors: d^2 = 2 - 2 cos, so at gamma * d^2 << 1 exp(-gamma d^2) ~ 1 - 2 gamma + 2 gamma
    # cos, an increasing affine map of (1 + cos) / 2; facility location's greedy ranks gains
    # alike under such a map, so the picks are the cosine kernel's
    candidates, _ = random_pool(60, 4, seed=7)
    with caplog.at_level("WARNING", logger="labelbudget"):
        tiny = FacilityLocationSelector(gamma=1e-4).select(candidates, 12, np.random.default_rng(0))
    cosine = FacilityLocationSelector(kernel="cosine").select(
        candidates, 12, np.random.default_rng(0)
    )
    assert rows(tiny) == rows(cosine)
    assert "nearly the linear" in caplog.text and "picks as with the cosine kernel" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="labelbudget"):
        FacilityLocationSelector(gamma=1e4).select(candidates, 12, np.random.default_rng(0))
    assert "sees only near-duplicates" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="labelbudget"):
        FacilityLocationSelector(gamma=1.0).select(candidates, 12, np.random.default_rng(0))
    assert "rbf gamma" not in caplog.text


def test_median_is_estimated_on_a_sample_for_large_pools():
    candidates, x = random_pool(700, 3, seed=6)  # 244,650 pairs > the 100,000 sampled
    objective = (
        FacilityLocationSelector(gamma=1.0)
        .select(candidates, 2, np.random.default_rng(0))
        .objective
    )
    exact = np.median(sq_distances(unit(x))[np.triu_indices(700, k=1)])
    assert objective["median_sq_dist"] == pytest.approx(exact, rel=0.02)


# ---- DPP ----


@pytest.mark.parametrize("kernel,normalize", [("rbf", True), ("linear", False), ("cosine", True)])
def test_dpp_matches_from_scratch_greedy_with_uncertainty_quality(kernel, normalize):
    candidates, x = random_pool(45, 6, seed=7)
    q = np.clip(-np.expm1(candidates.signals[SCORES].mean_logprob), 0.01, 1)
    base = {"rbf": rbf(x, 1.0), "linear": x @ x.T, "cosine": cosine01(x)}[kernel]
    ensemble = q[:, None] * base * q[None, :]
    ensemble += 1e-6 * np.diag(ensemble).mean() * np.eye(45)
    selection = DPPSelector(kernel=kernel, normalize=normalize, quality="uncertainty").select(
        candidates, 12, np.random.default_rng(0)
    )
    picks = dpp_reference(ensemble, 12)
    assert rows(selection) == picks
    expected = torch.logdet(torch.from_numpy(ensemble[np.ix_(picks, picks)])).item()
    assert selection.objective["log_det"] == pytest.approx(expected, rel=1e-6)


def test_dpp_first_pick_among_equal_singletons_comes_from_rng():
    candidates, x = random_pool(40, 5, seed=8)
    ensemble = rbf(x, 1.0) + 1e-6 * np.eye(40)
    selections = [
        DPPSelector(quality="none").select(candidates, 10, np.random.default_rng(seed))
        for seed in range(6)
    ]
    assert len({rows(s)[0] for s in selections}) > 1
    for selection in selections:
        picks = dpp_reference(ensemble, 10, first=rows(selection)[0])
        assert rows(selection) == picks
        expected = torch.logdet(torch.from_numpy(ensemble[np.ix_(picks, picks)])).item()
        assert selection.objective["log_det"] == pytest.approx(expected, rel=1e-6)


def test_dpp_runs_past_the_rank_of_a_linear_kernel():
    candidates, x = random_pool(60, 3, seed=9)
    selection = DPPSelector(kernel="linear", normalize=False, quality="none").select(
        candidates, 50, np.random.default_rng(0)
    )
    ensemble = x @ x.T
    ensemble += 1e-6 * np.diag(ensemble).mean() * np.eye(60)
    picks = rows(selection)
    assert len(set(picks)) == 50
    expected = torch.logdet(torch.from_numpy(ensemble[np.ix_(picks, picks)])).item()
    assert selection.objective["log_det"] == pytest.approx(expected, rel=1e-5)


class IndefiniteKernel:
    """A symmetric matrix with unit diagonal and eigenvalues far below 0: no DPP kernel, but the
    greedy must still return k distinct picks when the numbers break down."""

    def __init__(self, n: int, shift: float):
        x = np.random.default_rng(10).standard_normal((n, 3))
        self.matrix = torch.from_numpy(x @ x.T / 3 - shift * np.eye(n))
        self.n, self.device = n, torch.device("cpu")

    def diag(self) -> torch.Tensor:
        return torch.diagonal(self.matrix).clone()

    def block(self, rows: torch.Tensor, cols: slice = slice(None)) -> torch.Tensor:
        return self.matrix[rows, cols]

    def col_chunks(self, n_rows: int, memory_limit_mb: float) -> list[slice]:
        return [slice(0, self.n)]


@pytest.mark.parametrize("shift", [1e-5, 0.5])
def test_dpp_raises_the_jitter_when_the_kernel_is_not_positive_semidefinite(shift):
    kernel = IndefiniteKernel(40, shift)
    assert torch.linalg.eigvalsh(kernel.matrix).min() < -shift / 2
    picks, gains, eps, raised = greedy_map(
        kernel, torch.ones(40, dtype=torch.float64), 40, 1e-6, np.random.default_rng(0), 2048
    )
    assert sorted(picks) == list(range(40))
    assert raised > 0 and min(gains) >= eps / 2 and np.isfinite(np.log(gains).sum())


# ---- all three ----

SELECTOR_SETTINGS = [
    (KCenterSelector, {}),
    (FacilityLocationSelector, {}),
    (FacilityLocationSelector, {"kernel": "cosine"}),
    (FacilityLocationSelector, {"knn": 4}),
    (DPPSelector, {}),
    (DPPSelector, {"kernel": "linear", "quality": "uncertainty"}),
    (DPPSelector, {"kernel": "cosine"}),
]


@pytest.mark.parametrize("cls,settings", SELECTOR_SETTINGS)
@pytest.mark.parametrize("n,d,budget", [(60, 3, 50), (40, 8, 39), (40, 8, 40)])
def test_exactly_budget_distinct_pool_ids(cls, settings, n, d, budget):
    candidates, _ = random_pool(n, d, seed=11)
    selection = cls(**settings).select(candidates, budget, np.random.default_rng(0))
    assert len(selection.ids) == len(set(selection.ids)) == budget
    assert set(selection.ids) <= set(candidates.ids)
    assert all(np.isfinite(v) for v in selection.objective.values())


@pytest.mark.parametrize("cls,settings", SELECTOR_SETTINGS)
def test_duplicate_points_still_give_budget_distinct_ids(cls, settings):
    base = np.random.default_rng(12).standard_normal((8, 4)).astype(np.float32)
    candidates = pool(np.repeat(base, 5, axis=0))  # 40 rows, 8 distinct points
    selection = cls(**settings).select(candidates, 40, np.random.default_rng(0))
    assert len(set(selection.ids)) == 40


@pytest.mark.parametrize("cls,settings", SELECTOR_SETTINGS)
def test_tiny_memory_limit_chunks_without_changing_picks(cls, settings):
    candidates, _ = random_pool(150, 6, seed=13)
    whole = cls(**settings).select(candidates, 30, np.random.default_rng(5))
    chunked = cls(**settings, memory_limit_mb=0.0005).select(
        candidates, 30, np.random.default_rng(5)
    )  # 512 bytes
    assert chunked.ids == whole.ids
    for key, value in whole.objective.items():
        assert chunked.objective[key] == pytest.approx(value, rel=1e-5), key


@pytest.mark.parametrize("cls,settings", SELECTOR_SETTINGS)
def test_same_seed_same_picks(cls, settings):
    candidates, _ = random_pool(100, 5, seed=14)
    first = cls(**settings).select(candidates, 20, np.random.default_rng(21))
    again = cls(**settings).select(candidates, 20, np.random.default_rng(21))
    assert first.ids == again.ids and first.objective == again.objective


@pytest.mark.parametrize(
    "name,cls,settings",
    [
        ("kcenter", KCenterSelector, {}),
        (
            "facility_location",
            FacilityLocationSelector,
            {"kernel": "rbf", "gamma": 0.1, "normalize": True, "knn": None},
        ),
        ("facility_location_rbf0002", FacilityLocationSelector, {"kernel": "rbf", "gamma": 0.002}),
        ("facility_location_cosine", FacilityLocationSelector, {"kernel": "cosine"}),
        ("dpp", DPPSelector, {"kernel": "rbf", "quality": "uncertainty"}),
    ],
)
def test_configs_build_the_selectors(name, cls, settings):
    selector = instantiate(compose_config("select", f"selector={name}").selector)
    assert (
        type(selector) is cls and SELECTORS[cls.name] is cls and set(selector.signals()) == {SCORES}
    )
    assert all(getattr(selector, key) == value for key, value in settings.items())


@pytest.mark.parametrize(
    "cls,settings,message",
    [
        (FacilityLocationSelector, {"kernel": "linear"}, "kernel must be one of"),
        (FacilityLocationSelector, {"gamma": 0.0}, "gamma > 0"),
        (FacilityLocationSelector, {"knn": 0}, "knn must be"),
        (KCenterSelector, {"memory_limit_mb": 0}, "memory_limit_mb"),
        (DPPSelector, {"quality": "confidence"}, "quality must be"),
        (DPPSelector, {"jitter": 1e-12}, "jitter must be >="),
    ],
)
def test_bad_settings_fail_at_construction(cls, settings, message):
    with pytest.raises(ConfigError, match=message):
        cls(**settings)


def test_dpp_refuses_a_factor_beyond_its_memory_cap():
    candidates, _ = random_pool(100, 4)
    with pytest.raises(ConfigError, match="max_factor_mb"):
        DPPSelector(max_factor_mb=0.01).select(candidates, 50, np.random.default_rng(0))


def test_dpp_that_would_not_fit_the_free_memory_is_refused_before_any_work_saying_what_fits(
    monkeypatch,
):
    import labelbudget.selection.dpp as dpp
    import labelbudget.selection.kernels as kernels

    free = 2 * 2**20  # bytes; the factor takes 8 x budget x 1000, the embeddings 2 x 8 x 1000 x 8
    monkeypatch.setattr(kernels, "available_bytes", lambda device: free)
    monkeypatch.setattr(dpp, "available_bytes", lambda device: free)
    monkeypatch.setattr(dpp, "Pairwise", lambda *a, **k: pytest.fail("work started"))
    candidates, _ = random_pool(1000, 8)
    # (0.9 x 2 MiB - 128,000) // 8,000 = 219 picks fit
    with pytest.raises(ConfigError, match=r"^dpp needs 0\.0 GiB .* a budget of at most 219 fits"):
        DPPSelector().select(candidates, 220, np.random.default_rng(0))
    with pytest.raises(pytest.fail.Exception, match="work started"):  # 219 passes the check
        DPPSelector().select(candidates, 219, np.random.default_rng(0))


def clustered_pool(n: int, d: int, seed: int) -> tuple[Candidates, np.ndarray]:
    """Task-like clusters; the reference reads the float32 embeddings the selector sees."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    candidates = pool(centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, d)))
    return candidates, np.asarray(candidates.signals[SCORES].embeddings, dtype=np.float64)


def facility_location_float64(kernel: np.ndarray, budget: int) -> list[int]:
    """The greedy step by step in float64, every gain from scratch (vectorised over candidates)."""
    cover, picks = np.zeros(len(kernel)), []
    for _ in range(budget):
        gains = np.maximum(kernel - cover[:, None], 0).sum(axis=0)
        gains[picks] = -np.inf
        picks.append(first_max(gains))
        cover = np.maximum(cover, kernel[:, picks[-1]])
    return picks


@pytest.mark.parametrize(
    "memory_limit_mb", [2048, 0.5, 0.05]
)  # the cached kernel, then blocks of two sizes
@pytest.mark.parametrize("kernel,gamma", [("rbf", 0.1), ("rbf", 0.002), ("cosine", 0.1)])
def test_facility_location_is_the_float64_greedy_for_any_memory_setting(
    kernel, gamma, memory_limit_mb
):
    # at gamma 0.002 every kernel value lies in [0.99, 1]: late gains are sums of differences of
    # 1e-4, which a float32 kernel holds to a few digits; its complement 1 - K holds them all.
    # Blocks of other shapes round a float32 product differently: the values are float64, rounded once.
    candidates, x = clustered_pool(600, 32, seed=0)
    reference = facility_location_float64(rbf(x, gamma) if kernel == "rbf" else cosine01(x), 250)
    selector = FacilityLocationSelector(kernel=kernel, gamma=gamma, memory_limit_mb=memory_limit_mb)
    assert rows(selector.select(candidates, 250, np.random.default_rng(0))) == reference


@pytest.mark.parametrize("d", [2, 64])
def test_kcenter_picks_and_radius_are_the_float64_greedy(d):
    # far from the origin and close together: |a|^2 + |b|^2 - 2 a.b cancels most float32 digits
    rng = np.random.default_rng(d)
    candidates = pool(
        rng.normal(size=(1500, d)) * 0.01
        + rng.normal(size=(20, d))[rng.integers(0, 20, 1500)] * 3
        + 50
    )
    x = np.asarray(candidates.signals[SCORES].embeddings, dtype=np.float64)
    selection = KCenterSelector().select(candidates, 120, np.random.default_rng(1))
    picks, radius = kcenter_reference(x, 120, first=rows(selection)[0])
    assert rows(selection) == picks
    assert selection.objective["max_min_distance"] == pytest.approx(radius, rel=1e-12)


def test_kcenter_skips_the_distances_a_projection_rules_out_and_keeps_the_exact_picks():
    # 20 tight clusters in 256 dimensions, a third of the pool picked, with exact duplicates
    # (ties every step): past the cells' anchors a centre only meets its own cluster's points
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 256))[rng.integers(0, 20, 3000)] * 3 + rng.normal(size=(3000, 256))
    x[2500:] = x[:500]
    candidates = pool(x)
    x = np.asarray(candidates.signals[SCORES].embeddings, dtype=np.float64)
    pairwise = Pairwise(x, "sqeuclidean", dtype=torch.float64, exact_distances=True)
    picks, nearest, computed = furthest_first(pairwise, 1000, 17, 2048)
    expected, radius = kcenter_reference(x, 1000, first=17)
    assert picks == expected
    assert float(nearest.max()) ** 0.5 == pytest.approx(radius, rel=1e-9)
    assert computed < 0.2  # of the 3000 x 1000 distances the greedy without bounds computes


def test_kcenter_without_structure_to_prune_computes_most_distances_and_the_same_picks():
    candidates, x = random_pool(600, 128, seed=2)  # isotropic: distances nearly equal
    pairwise = Pairwise(x, "sqeuclidean", dtype=torch.float64, exact_distances=True)
    picks, _, computed = furthest_first(pairwise, 300, 0, 2048)
    assert picks == kcenter_reference(x, 300, first=0)[0] and computed > 0.5


@pytest.mark.parametrize("memory_limit_mb", [2048, 0.05])
@pytest.mark.parametrize("kernel,gamma", [("rbf", 0.1), ("rbf", 0.002), ("cosine", 1.0)])
def test_dpp_is_the_float64_greedy_for_any_memory_setting(kernel, gamma, memory_limit_mb):
    candidates, x = clustered_pool(200, 16, seed=3)
    q = np.clip(-np.expm1(candidates.signals[SCORES].mean_logprob.astype(np.float64)), 0.01, 1)
    base = rbf(x, gamma) if kernel == "rbf" else cosine01(x)
    ensemble = q[:, None] * base * q[None, :]
    ensemble += 1e-6 * np.diag(ensemble).mean() * np.eye(200)
    selection = DPPSelector(kernel=kernel, gamma=gamma, memory_limit_mb=memory_limit_mb).select(
        candidates, 30, np.random.default_rng(0)
    )
    assert rows(selection) == dpp_reference(ensemble, 30)


def test_compiled_greedy_reads_short_lists_and_stays_the_float64_greedy():
    # the cached CPU kernel keeps, per row, the few columns that can still lower a gain through
    # it; late picks read those lists instead of whole rows, and change no pick
    candidates, x = clustered_pool(600, 32, seed=1)
    pairwise = Pairwise(
        np.asarray(candidates.signals[SCORES].embeddings),
        "rbf",
        0.1,
        normalize=True,
        device=torch.device("cpu"),
        complement=True,
        stable=True,
    )
    kernel = dense_kernel(CachedPairwise(pairwise, 2048), 4, 2048)
    assert isinstance(kernel, CachedCpuKernel)
    picks, _ = greedy(kernel, 250)
    assert picks == facility_location_float64(rbf(x, 0.1), 250)
    assert (kernel.list_sizes >= 0).sum() > 300  # most rows ended with a list
    assert kernel.rows_read < 250 * 600 / 10  # and far fewer rows were read whole than picks x N
    # a memory limit that only holds the cache leaves no room for lists: rows read whole, same picks
    cached = CachedPairwise(pairwise, 2048)
    tight = dense_kernel(cached, 4, cached.matrix.numel() * 4 / 2**20)
    assert tight.list_cols.shape[1] == 0
    assert greedy(tight, 250)[0] == picks
    assert tight.rows_read > kernel.rows_read * 1.3


def test_compiled_decrease_sums_the_same_bits_for_any_thread_count():
    # each column sums its rows in row order, however the columns are split among threads
    rng = np.random.default_rng(3)
    matrix = rng.random((300, 257), dtype=np.float32)
    rows = rng.choice(300, 200, replace=False)
    old = rng.random(200)
    new = old * rng.random(200)
    reference = np.clip(
        np.minimum(old[:, None] - matrix[rows].astype(np.float64), (old - new)[:, None]), 0, None
    ).sum(axis=0)
    totals = []
    for threads in (1, 2, 3, 8):
        total = np.zeros(257)
        no_lists = np.full(300, -1, dtype=np.int64)
        fused_decrease(
            matrix,
            rows,
            old,
            new,
            total,
            np.empty((300, 0), np.int32),
            np.empty((300, 0), np.float32),
            no_lists,
            threads,
        )
        totals.append(total)
    assert all(t.tobytes() == totals[0].tobytes() for t in totals)
    np.testing.assert_allclose(totals[0], reference, rtol=1e-13)


def test_time_estimates_divide_the_bytes_streamed_by_the_measured_bandwidth(monkeypatch):
    import labelbudget.selection.kernels as kernels

    cpu = torch.device("cpu")
    assert kernels.read_gb_s(cpu) > 0.1  # the real measurement
    monkeypatch.setattr(kernels, "read_gb_s", lambda device: 10.0)
    assert kernels.hours_streaming(3.6e13, cpu) == "about 1.0 h"  # 3,600 s at 10 GB/s
    assert kernels.hours_streaming(1.2e12, cpu) == "about 2 min"
