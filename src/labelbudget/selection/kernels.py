"""What K-Center, Facility Location and DPP share: the device, embedding preparation, pairwise
blocks computed on the fly under a memory limit, the kernel-scale diagnostic, progress bars.

Everything here works on (rows x column-range) blocks of an N x N pairwise matrix, so no
selector ever holds N x N values unless it chose to cache them within `memory_limit_mb`.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from labelbudget.errors import ConfigError

log = logging.getLogger(__name__)

MB = 2**20
KINDS = ("sqeuclidean", "rbf", "cosine", "linear")
MEDIAN_PAIRS = 100_000  # pairs sampled for the median squared distance when the pool is large
PROGRESS_MIN = 500  # show progress bars only for runs with at least this many picks
CPU_BLOCK_MB = 4.0  # CPU working blocks stay cache-sized (L3); see block_mb
ROOM_SHARE = 0.9  # of the device's free memory a selector's arrays may take


def resolve_device(device: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU; anything else is passed to torch, and
    a GPU this torch cannot reach is refused here (at construction), not after scoring."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device is {device!r}, but torch {torch.__version__} finds no CUDA GPU here; "
            "use device=auto (the GPU when there is one) or device=cpu"
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device is {device!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s)"
        )
    return resolved


def check_kernel(kind: str, gamma: float, allowed: tuple[str, ...]) -> None:
    """Fail at construction, not after scoring, on a kernel the selector cannot use."""
    if kind not in allowed:
        raise ConfigError(f"kernel must be one of {', '.join(allowed)}, got {kind!r}")
    if kind == "rbf" and not gamma > 0:
        raise ConfigError(f"the rbf kernel needs gamma > 0, got {gamma}")


def check_memory_limit(memory_limit_mb: float) -> None:
    """Refuse a memory limit that is not positive, at construction."""
    if not memory_limit_mb > 0:
        raise ConfigError(f"memory_limit_mb must be > 0, got {memory_limit_mb}")


def available_bytes(device: torch.device) -> int | None:
    """What the device can still give: a GPU's free memory, or the machine's MemAvailable (None
    where the system does not say)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def best_seconds(work: Callable[[], object], device: torch.device, repeats: int = 3) -> float:
    """The fastest of `repeats` runs of `work`, which ends by reading its result back."""
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def read_gb_s(device: torch.device) -> float:
    """This device's read bandwidth, measured once (the best of three sums over 256 MB), for the
    time estimates of selectors that stream arrays step after step."""
    data = torch.ones(2**26, dtype=torch.float32, device=device)
    return data.numel() * 4 / best_seconds(lambda: data.sum().item(), device) / 1e9


@functools.cache
def matmul_gflop_s(device: torch.device, dtype: torch.dtype) -> float:
    """This device's matrix-product rate in `dtype`, measured once (the best of three products
    of 1024 x 4096 by 4096 x 1024), for the time estimates of selectors bound by products."""
    a = torch.ones((1024, 4096), dtype=dtype, device=device)
    return 2 * 1024 * 1024 * 4096 / best_seconds(lambda: float((a @ a.T)[0, 0]), device) / 1e9


def duration(seconds: float) -> str:
    """'about N h', 'about N min' or 'under a minute'."""
    if seconds >= 3600:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 60:.0f} min" if seconds >= 30 else "under a minute"


def hours_streaming(total_bytes: float, device: torch.device) -> str:
    """How long streaming `total_bytes` takes at the device's measured read bandwidth."""
    return duration(total_bytes / (read_gb_s(device) * 1e9))


def check_room(
    who: str, needed: dict[str, int], device: torch.device, fix: Callable[[], str]
) -> None:
    """Refuse, before any work, a run whose arrays would not fit the device's free memory (the
    OS would kill it part way, or the GPU fail), naming each array's size and what makes it fit.

    Args:
        who: the selector, for the message.
        needed: bytes by what holds them.
        device: where they would live.
        fix: says the setting or size that makes the run fit (called only on a refusal).
    """
    free = available_bytes(device)
    total = sum(needed.values())
    if free is None or total <= ROOM_SHARE * free:
        return
    parts = ", ".join(f"{what} {size / 2**30:.1f} GiB" for what, size in needed.items())
    raise ConfigError(
        f"{who} needs {total / 2**30:.1f} GiB ({parts}) and the {device.type} has "
        f"{free / 2**30:.1f} GiB free: {fix()}"
    )


def block_mb(memory_limit_mb: float, device: torch.device) -> float:
    """Size of one working block: an eighth of the limit, and cache-sized on a CPU (a block that
    spills the last-level cache is read from memory twice); a GPU wants large blocks."""
    share = memory_limit_mb / 8
    return min(share, CPU_BLOCK_MB) if device.type == "cpu" else share


def spans(total: int, bytes_per_item: int, memory_limit_mb: float) -> list[slice]:
    """Consecutive ranges covering 0..total, each holding at most memory_limit_mb of items
    (at least one item per range, so a tiny limit means many small chunks, never a failure)."""
    width = max(1, int(memory_limit_mb * MB) // max(1, bytes_per_item))
    return [slice(start, min(start + width, total)) for start in range(0, total, width)]


class Pairwise:
    """f(z_i, z_j) for one kind of pairwise function, computed block by block.

    sqeuclidean: ||z_i - z_j||^2.  rbf: exp(-gamma ||z_i - z_j||^2).
    cosine: (1 + cos(z_i, z_j)) / 2, shifted into [0, 1] so facility location stays non-negative
    (still positive semi-definite: 1/2 (J + cosine Gram), so DPPs may use it too).
    linear: z_i . z_j (after L2 normalisation when `normalize`, i.e. plain cosine).

    Distances come from |a|^2 + |b|^2 - 2 a.b (one matrix product per block). The embeddings are
    centred first for the distance kinds: distances do not change, but the norms shrink, and with
    them the float32 cancellation error of that expansion.

    `complement`: 1 - f for rbf and cosine, computed as such (-expm1(-gamma d^2), (1 - cos) / 2).
    Near 1 a float32 kernel keeps few digits of what matters (at gamma 0.002 every value lies in
    [0.992, 1], and a late facility-location gain is a sum of differences of 1e-4); its complement
    keeps them all. `stable`: every value computed in float64 and rounded once to `dtype`, so it
    is the same whichever block it is computed in (a float32 product rounds differently for other
    block shapes, and near-ties would then fall differently for other memory settings).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        kind: str,
        gamma: float = 1.0,
        normalize: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        complement: bool = False,
        exact_distances: bool = False,
        stable: bool = False,
    ):
        if kind not in KINDS:
            raise ConfigError(f"pairwise kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if complement and kind not in ("rbf", "cosine"):
            raise ConfigError(f"only the rbf and cosine kernels have a complement, not {kind!r}")
        z = torch.as_tensor(np.asarray(embeddings), device=device).to(torch.float64)
        if z.ndim != 2 or len(z) == 0:
            raise ConfigError(
                f"embeddings must be a non-empty (N, d) array, got shape {tuple(z.shape)}"
            )
        if len(z) > 1 and bool((z == z[0]).all()):
            log.warning(
                "every one of the %d embeddings is identical: a diversity selector can only break ties, so its "
                "picks carry no information; check the scores (scoring.pooling) or the pool",
                len(z),
            )
        if normalize or kind == "cosine":
            z = z / z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        if kind in ("sqeuclidean", "rbf"):
            z = z - z.mean(dim=0)
        self.kind, self.gamma, self.complement, self.stable, self._dtype = (
            kind,
            float(gamma),
            complement,
            stable,
            dtype,
        )
        compute = torch.float64 if stable else dtype
        # stored transposed, (d, N): one row of f against all N is then a product that streams
        # through memory in order
        self.zt = z.T.to(compute).contiguous()
        self.sq_norms = (z * z).sum(dim=1).to(compute)
        self.z64 = z if exact_distances else None  # distances measured from coordinates
        # worst-case rounding of one squared distance by the block formula, |a|^2 + |b|^2 - 2 a.b
        self.distance_error = (
            4 * (z.shape[1] + 2) * torch.finfo(dtype).eps * 2 * float(self.sq_norms.max())
        )
        self._diag = self._exact_diag()

    @property
    def n(self) -> int:
        """The number of embeddings, N."""
        return self.zt.shape[1]

    @property
    def device(self) -> torch.device:
        """Where the embeddings, and so every block, live."""
        return self.zt.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the blocks handed out."""
        return self._dtype

    def diag(self) -> torch.Tensor:
        """f(z_i, z_i), exactly (the block formula is off by rounding on the diagonal)."""
        return self._diag

    def _exact_diag(self) -> torch.Tensor:
        if self.kind == "sqeuclidean" or self.complement:
            return torch.zeros_like(self.sq_norms)
        if self.kind == "linear":
            return self.sq_norms.clone()
        return torch.ones_like(self.sq_norms)

    def block(
        self, rows: torch.Tensor, cols: slice = slice(None), out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """f(z_rows, z_cols) as a (len(rows), width) array; `out` may be a view to fill in place."""
        start, stop, _ = cols.indices(self.n)
        b = self._values(
            self.zt.index_select(1, rows).T,
            self.zt[:, start:stop],
            self.sq_norms[rows],
            self.sq_norms[start:stop],
            None if self.stable else out,
        )
        inside = torch.nonzero((rows >= start) & (rows < stop)).flatten()
        b[inside, rows[inside] - start] = self._diag[rows[inside]]
        if not self.stable:
            return b
        return out.copy_(b) if out is not None else b.to(self._dtype)

    def _values(
        self,
        zr: torch.Tensor,
        zc: torch.Tensor,
        row_norms: torch.Tensor,
        col_norms: torch.Tensor,
        out: torch.Tensor | None,
    ) -> torch.Tensor:
        """The pairwise function of rows zr against columns zc (given as (d, width))."""
        if self.kind in ("cosine", "linear"):
            b = torch.mm(zr, zc, out=out)
            if self.kind == "cosine":  # (1 + cos) / 2, or its complement (1 - cos) / 2
                if self.complement:
                    b.neg_()
                b.add_(1.0).mul_(0.5)
            return b
        b = torch.addmm(col_norms.unsqueeze(0), zr, zc, alpha=-2.0, out=out)
        b.add_(row_norms.unsqueeze(1)).clamp_(min=0.0)
        # exp(-gamma d2), or its complement 1 - exp(-gamma d2) = -expm1(-gamma d2), exact near 0
        if self.kind == "rbf":
            b.mul_(-self.gamma)
            if self.complement:
                b.expm1_().neg_()
            else:
                b.exp_()
        return b

    def from_sq_distances(self, sq: torch.Tensor) -> torch.Tensor:
        """The function's values from float64 squared distances in its space (the complements
        for rbf and cosine), rounded once to the blocks' dtype. Cosine embeddings are unit
        vectors, so (1 - cos) / 2 = ||a - b||^2 / 4."""
        if self.kind == "linear":
            raise ValueError("the linear kernel is not a function of distances")
        if self.kind == "rbf":
            values = (
                (-self.gamma * sq).expm1_().neg_() if self.complement else (-self.gamma * sq).exp_()
            )
        elif self.kind == "cosine":
            values = sq / 4 if self.complement else 1 - sq / 4
        else:
            values = sq
        return values.to(self._dtype)

    def row_chunks(self, width: int, memory_limit_mb: float) -> list[slice]:
        """Row ranges whose (rows x width) blocks fit the memory limit."""
        return spans(self.n, width * self.dtype.itemsize, memory_limit_mb)

    def col_chunks(self, n_rows: int, memory_limit_mb: float) -> list[slice]:
        """Column ranges whose (n_rows x columns) blocks fit the memory limit."""
        return spans(self.n, n_rows * self.dtype.itemsize, memory_limit_mb)


class CachedPairwise:
    """The whole N x N matrix, filled block by block in place: worth it when it fits the limit
    and the caller reads rows many times (the facility location greedy)."""

    def __init__(self, pairwise: Pairwise, memory_limit_mb: float):
        n = pairwise.n
        self.n, self.device, self.dtype = n, pairwise.device, pairwise.dtype
        self.matrix = torch.empty((n, n), dtype=pairwise.dtype, device=pairwise.device)
        # written in place: large blocks are fine
        for rows in pairwise.row_chunks(n, memory_limit_mb / 8):
            pairwise.block(
                torch.arange(rows.start, rows.stop, device=self.device), out=self.matrix[rows]
            )

    @staticmethod
    def nbytes(n: int, dtype: torch.dtype) -> int:
        """The whole N x N matrix's size."""
        return n * n * dtype.itemsize

    @staticmethod
    def fits(pairwise: Pairwise, memory_limit_mb: float) -> bool:
        """Whether the whole N x N matrix fits within `memory_limit_mb` and the device's free
        memory (a limit set above what is free must not get the run killed)."""
        size = CachedPairwise.nbytes(pairwise.n, pairwise.dtype)
        free = available_bytes(pairwise.device)
        return size <= memory_limit_mb * MB and (free is None or size <= ROOM_SHARE * free)

    def block(
        self, rows: torch.Tensor, cols: slice = slice(None), out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A copy of K[rows, cols] (into `out` when given), safe to modify in place."""
        return torch.index_select(self.matrix[:, cols], 0, rows, out=out)


def median_sq_distance(pairwise: Pairwise, memory_limit_mb: float) -> float:
    """Median of ||z_i - z_j||^2 over distinct pairs, in the space the kernel sees.

    All pairs when there are at most MEDIAN_PAIRS, else that many pairs drawn with a fixed seed:
    a diagnostic must neither depend on nor consume the selection's random stream.
    """
    n = pairwise.n
    if n < 2:
        return 0.0
    if n * (n - 1) // 2 <= MEDIAN_PAIRS:
        i, j = np.triu_indices(n, k=1)
    else:
        sample = np.random.default_rng(0)
        i = sample.integers(0, n, MEDIAN_PAIRS)
        j = (i + sample.integers(1, n, MEDIAN_PAIRS)) % n  # j != i
    i, j = torch.as_tensor(i, device=pairwise.device), torch.as_tensor(j, device=pairwise.device)
    zt = pairwise.zt
    # a few dimensions of every pair at a time: each gather then reads one stored row of N
    # values, which stays in cache (a few pairs at a time over all dimensions reads a cache line
    # per value: 12 s at 100,000 pairs of 4,096 dimensions, against 1.7 s)
    sq = torch.zeros(len(i), dtype=torch.float64, device=pairwise.device)
    for dims in spans(
        zt.shape[0], 3 * len(i) * zt.element_size(), block_mb(memory_limit_mb, pairwise.device)
    ):
        sq += (zt[dims][:, i] - zt[dims][:, j]).pow(2).sum(dim=0, dtype=torch.float64)
    return float(torch.quantile(sq, 0.5))


# outside these, gamma * median squared distance leaves the rbf kernel nearly linear or nearly 0
LINEAR_SCALE, SATURATED_SCALE = 0.01, 100.0


def kernel_scale(pairwise: Pairwise, memory_limit_mb: float, who: str) -> dict[str, float]:
    """gamma * median squared distance for rbf kernels (docs/methods.md asks to log it: gamma only means
    something relative to the embedding scale; ~1 is a kernel that neither saturates nor flattens)."""
    if pairwise.kind != "rbf":
        return {}
    median = median_sq_distance(pairwise, memory_limit_mb)
    scale = pairwise.gamma * median
    if median == 0:  # one embedding, or at least half the pairs coincide: no scale to give
        if pairwise.n > 1:
            log.warning(
                "%s: the median squared distance between embeddings is 0 (most of them "
                "coincide): the rbf kernel cannot be scaled, and the picks among coinciding "
                "prompts are ties",
                who,
            )
        return {"median_sq_dist": 0.0, "gamma_times_median_sq_dist": 0.0}
    log.info(
        "%s: rbf gamma=%g, median squared distance %.4g, gamma * median = %.4g",
        who,
        pairwise.gamma,
        median,
        scale,
    )
    if scale < LINEAR_SCALE:
        log.warning(
            "%s: rbf gamma * median squared distance is only %.2g: exp(-gamma d^2) is nearly the linear "
            "1 - gamma d^2 here (for normalised embeddings an increasing affine map of the cosine), so "
            "gamma barely matters and facility location picks as with the cosine kernel; gamma = %.3g "
            "would give a scale of 1",
            who,
            scale,
            1 / median,
        )
    elif scale > SATURATED_SCALE:
        log.warning(
            "%s: rbf gamma * median squared distance is %.3g: nearly every pair has similarity 0, "
            "so the kernel sees only near-duplicates; gamma = %.3g would give a scale of 1",
            who,
            scale,
            1 / median,
        )
    return {"median_sq_dist": median, "gamma_times_median_sq_dist": scale}


def progress(total: int, desc: str) -> tqdm:
    """A bar of picks, shown only from PROGRESS_MIN picks on."""
    return tqdm(
        total=total,
        desc=desc,
        unit="pick",
        leave=False,
        mininterval=1.0,
        disable=total < PROGRESS_MIN,
    )
