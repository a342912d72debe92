"""DPP: deterministic greedy MAP of log det L_S, with L_ij = q_i K(z_i, z_j) q_j + eps [i = j].

Fast greedy MAP (Chen, Zhang and Zhou, NeurIPS 2018): an incremental Cholesky factor holds, for
every candidate i, its residual variance d_i^2 = det L_{S+i} / det L_S, the exact marginal gain of
log det. A step reads one kernel row and the factor (t x N at step t) and updates all d_i^2 in
O(t N). The factor is float64: d_i^2 is a difference of nearly equal numbers once S spans most of
the kernel, and float32 loses it. Kernel rows come from float64 embeddings for the same reason.

Never fewer than k picks: eps = jitter * mean(diag L) is added to the diagonal, so in exact
arithmetic every d_i^2 >= eps even when the kernel's rank (<= d + 1 for linear or cosine kernels)
is smaller than k. If rounding (or a kernel that is not quite positive semi-definite) still drives
the best remaining d_i^2 below eps / 2, the remaining candidates' diagonal is raised so the best is
back at eps (a consistent change of L that leaves the factor valid); `jitter_raised` counts those
steps. Should the numbers break down altogether (a clearly indefinite kernel: no finite d_i^2
left), the remaining picks are the lowest unpicked indices, each counted at gain eps.

The first pick is drawn from `rng` among the largest diagonal entries (all equal without quality
weights); later ties go to the lowest index.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from labelbudget.errors import ConfigError
from labelbudget.selection.base import SCORES, Candidates, Selection, Selector, register
from labelbudget.selection.kernels import (
    MB,
    ROOM_SHARE,
    Pairwise,
    available_bytes,
    check_kernel,
    check_memory_limit,
    check_room,
    hours_streaming,
    kernel_scale,
    progress,
    resolve_device,
)

log = logging.getLogger(__name__)

MIN_JITTER = 1e-10  # relative; float64 rounding of the factor grows to ~k * 1e-16


def uncertainty_quality(mean_logprob: np.ndarray, min_quality: float) -> np.ndarray:
    """q = 1 - (per-token geometric-mean confidence), floored at min_quality so that no prompt's
    row of L vanishes (a zero row makes every set containing it worth log 0 = -inf)."""
    return np.clip(-np.expm1(mean_logprob), min_quality, 1.0)


def random_among_max(values: torch.Tensor, rng: np.random.Generator) -> int:
    """Uniform (from rng) among the positions of the largest value."""
    ties = torch.nonzero(values == values.max()).flatten().cpu().numpy()
    return int(ties[rng.integers(len(ties))])


def next_pick(residual: torch.Tensor, picked: torch.Tensor) -> int:
    """The largest residual (first of equals); if the numbers broke down and no finite residual
    is left, the lowest unpicked index."""
    pick = int(torch.argmax(residual.nan_to_num_(nan=float("-inf"))))
    return int(torch.nonzero(~picked)[0]) if picked[pick] else pick


def greedy_map(
    pairwise: Pairwise,
    quality: torch.Tensor,
    budget: int,
    jitter: float,
    rng: np.random.Generator,
    memory_limit_mb: float,
) -> tuple[list[int], list[float], float, int]:
    """Picks, their gains d_j^2 at pick time (log det L_S = sum of their logs), eps, and how often
    the jitter had to be raised."""
    n, device = pairwise.n, pairwise.device
    diag = quality.square() * pairwise.diag()
    eps = jitter * float(diag.mean())
    residual = diag + eps
    # row t: e_t over all candidates
    factor = torch.empty((budget, n), dtype=torch.float64, device=device)
    chunks = pairwise.col_chunks(1, memory_limit_mb)
    picks, gains, raised = [], [], 0
    picked = torch.zeros(n, dtype=torch.bool, device=device)
    with progress(budget, "dpp") as bar:
        for t in range(budget):
            pick = random_among_max(residual, rng) if t == 0 else next_pick(residual, picked)
            # rounding ate the jitter: raise it for the remaining candidates
            if not residual[pick] >= eps / 2:
                if torch.isfinite(residual[pick]):
                    residual += eps - residual[pick]
                residual[pick] = eps  # exactly, whatever the addition rounded away
                raised += 1
            gain = float(residual[pick])
            picks.append(pick)
            gains.append(gain)
            row = torch.tensor([pick], device=device)
            for cols in chunks:
                kernel_row = pairwise.block(row, cols)[0] * quality[pick] * quality[cols]
                e = (kernel_row - factor[:t, pick] @ factor[:t, cols]) / math.sqrt(gain)
                factor[t, cols] = e
                residual[cols] -= e.square()
            residual[pick] = float("-inf")
            picked[pick] = True
            bar.update()
    return picks, gains, eps, raised


@register
class DPPSelector(Selector):
    """Greedy MAP DPP on the prompt embeddings, optionally quality-weighted.

    `kernel`: 'rbf' (default; full rank, so no stall), 'cosine' ((1 + cos) / 2) or 'linear'
    (inner products; cosine similarity when `normalize`); both of the latter have rank <= d + 1.
    `gamma`: rbf width on L2-normalised embeddings (default 1: gamma * median squared distance
    near 1-2 for spread-out embeddings; it is logged and returned). `quality`: 'none', or
    'uncertainty' with q = 1 - exp(mean_logprob) (the paper folds confidence in; the exact q is
    OPEN), floored at `min_quality`. `jitter`: eps relative to the mean of diag L.
    `memory_limit_mb` bounds kernel-row chunks; the t x N float64 factor (8 k N bytes) must fit
    on the device, and is refused beyond `max_factor_mb`.
    """

    name = "dpp"

    def __init__(
        self,
        kernel: str = "rbf",
        gamma: float = 1.0,
        normalize: bool = True,
        quality: str = "uncertainty",
        min_quality: float = 0.01,
        jitter: float = 1e-6,
        memory_limit_mb: float = 2048,
        max_factor_mb: float = 32768,
        device: str = "auto",
    ):
        check_kernel(kernel, gamma, ("rbf", "cosine", "linear"))
        check_memory_limit(memory_limit_mb)
        resolve_device(device)  # a GPU asked for and absent fails now, not after scoring
        if quality not in ("none", "uncertainty"):
            raise ConfigError(f"quality must be 'none' or 'uncertainty', got {quality!r}")
        if not 0 < min_quality <= 1:
            raise ConfigError(f"min_quality must be in (0, 1], got {min_quality}")
        if not jitter >= MIN_JITTER:
            raise ConfigError(
                f"jitter must be >= {MIN_JITTER:g} (it keeps every step's gain above the float64 "
                f"rounding of the incremental Cholesky), got {jitter}"
            )
        self.kernel, self.gamma, self.normalize = kernel, gamma, normalize
        self.quality, self.min_quality, self.jitter = quality, min_quality, jitter
        self.memory_limit_mb, self.max_factor_mb, self.device = (
            memory_limit_mb,
            max_factor_mb,
            device,
        )

    def select(self, candidates: Candidates, budget: int, rng: np.random.Generator) -> Selection:
        """The greedy MAP picks (see the module), refused before any work where the Cholesky
        factor would exceed `max_factor_mb`."""
        scores = candidates.signal(SCORES, self.name)
        factor_mb = 8 * budget * len(scores) / MB
        if factor_mb > self.max_factor_mb:
            raise ConfigError(
                f"dpp needs a {factor_mb:.0f} MB Cholesky factor (8 bytes x budget x pool), above "
                f"max_factor_mb={self.max_factor_mb}; raise it if the device has the memory"
            )
        device = resolve_device(self.device)
        n, d = scores.embeddings.shape
        embedding_bytes = 2 * 8 * n * d  # float64, and its transposed copy while it is built
        # each step reads the factor so far and one kernel row: k^2 N / 2 and k N d float64s
        streamed = 8 * (budget * budget * n / 2 + budget * n * d)
        fits = int((ROOM_SHARE * (available_bytes(device) or 0) - embedding_bytes) // (8 * n))
        check_room(
            self.name,
            {
                "the float64 Cholesky factor": 8 * budget * n,
                "the float64 embeddings": embedding_bytes,
            },
            device,
            lambda: (
                f"a budget of at most {max(fits, 0)} fits this pool here, or a device with more "
                f"memory (selector.device=cuda); at this budget the greedy streams {streamed / 1e12:.1f} "
                f"TB, {hours_streaming(streamed, device)} here"
            ),
        )
        if streamed > 1e12:  # a long run says so before it starts
            log.info(
                "dpp: the greedy streams %.1f TB, %s",
                streamed / 1e12,
                hours_streaming(streamed, device),
            )
        pairwise = Pairwise(
            scores.embeddings, self.kernel, self.gamma, self.normalize, device, dtype=torch.float64
        )
        quality = (
            np.ones(len(scores))
            if self.quality == "none"
            else uncertainty_quality(scores.mean_logprob, self.min_quality)
        )
        objective = kernel_scale(pairwise, self.memory_limit_mb, self.name)
        picks, gains, eps, raised = greedy_map(
            pairwise,
            torch.as_tensor(quality, device=device),
            budget,
            self.jitter,
            rng,
            self.memory_limit_mb,
        )
        if raised:
            log.warning(
                "dpp: rounding ate the jitter at %d of %d steps; raised it there (consider a larger jitter)",
                raised,
                budget,
            )
        objective.update(
            log_det=float(np.log(gains).sum()),
            min_gain=min(gains),
            jitter_eps=eps,
            jitter_raised=float(raised),
        )
        log.info(
            "dpp: %d picks, log det %.6g, smallest gain %.3g",
            budget,
            objective["log_det"],
            objective["min_gain"],
        )
        return Selection(ids=[candidates.ids[i] for i in picks], objective=objective)
