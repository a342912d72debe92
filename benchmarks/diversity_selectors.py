"""K-Center, Facility Location and DPP at scale, with apricot's Facility Location side by side.

    python benchmarks/diversity_selectors.py [--n 20000 --d 576 --k 2000] [--no-apricot]

Embeddings: a seeded Gaussian mixture (200 centres, unit-variance noise at 0.7 of the centre
scale), i.e. random embeddings with task-like clusters. (Isotropic Gaussian embeddings are a
degenerate test: in 576 dimensions all their distances are nearly equal.)

Every measurement runs in its own subprocess, so peak RSS (ru_maxrss) belongs to that run alone.
Timed: each selector end to end (embeddings -> picks), Facility Location's greedy alone on the
cached float32 kernel, and apricot's FacilityLocationSelection (metric='precomputed', lazy
greedy) on the very same kernel. The floor: bytes each algorithm must stream per step, over the
read bandwidth measured here (a large torch sum), and the kernel build's flops over measured
matmul throughput.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import date

import numpy as np
import torch

from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import SCORES, Candidates
from labelbudget.selection.dpp import DPPSelector
from labelbudget.selection.facility_location import (
    FacilityLocationSelector,
    dense_kernel,
    greedy,
)
from labelbudget.selection.kcenter import KCenterSelector
from labelbudget.selection.kernels import (
    CachedPairwise,
    Pairwise,
    block_mb,
    resolve_device,
)

GAMMA = 0.1
MEMORY_LIMIT_MB = 2048
GB = 1e9
CPU = torch.device("cpu")


def clustered_embeddings(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded mixture's embeddings and each one's cluster (0-199)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, d)).astype(np.float32)
    cluster = rng.integers(0, 200, n)
    return centres[cluster] + 0.7 * rng.standard_normal((n, d)).astype(np.float32), cluster


def embeddings(n: int, d: int, seed: int) -> np.ndarray:
    return clustered_embeddings(n, d, seed)[0]


def candidates(x: np.ndarray) -> Candidates:
    ids = [str(i) for i in range(len(x))]
    return Candidates(ids, ["t"] * len(x), {SCORES: Scores.with_columns(ids, x)})


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB


def cached_kernel(
    x: np.ndarray, device: torch.device = CPU, complement: bool = False
) -> tuple[Pairwise, CachedPairwise]:
    """The rbf kernel (apricot's input) or its complement (facility location's), cached whole."""
    pairwise = Pairwise(x, "rbf", GAMMA, normalize=True, device=device, complement=complement)
    return pairwise, CachedPairwise(pairwise, MEMORY_LIMIT_MB)


def peak_gpu_gb() -> float | None:
    """Peak GPU memory of this process (the selectors run on the GPU when there is one)."""
    return torch.cuda.max_memory_allocated() / GB if torch.cuda.is_available() else None


def run_selector(x: np.ndarray, k: int, name: str) -> dict:
    selector = {
        "kcenter": KCenterSelector(),
        "facility_location": FacilityLocationSelector(gamma=GAMMA),
        "dpp": DPPSelector(quality="none"),
    }[name]
    start = time.perf_counter()
    selection = selector.select(candidates(x), k, np.random.default_rng(0))
    return {
        "seconds": time.perf_counter() - start,
        "objective": selection.objective,
        "picks": [int(i) for i in selection.ids],
    }


def run_fl_greedy(x: np.ndarray, k: int) -> dict:
    """Our greedy alone on the cached kernel, counting the rows it read whole. Its compiled
    functions load from numba's cache on the first call in a process: timed apart, on a tiny
    kernel, as apricot's compile is."""
    device = resolve_device("auto")
    start = time.perf_counter()
    greedy(dense_kernel(cached_kernel(x[:50], device, complement=True)[1], 1, MEMORY_LIMIT_MB), 10)
    load = time.perf_counter() - start
    start = time.perf_counter()
    kernel = dense_kernel(
        cached_kernel(x, device, complement=True)[1],
        block_mb(MEMORY_LIMIT_MB, device),
        MEMORY_LIMIT_MB,
    )
    build = time.perf_counter() - start
    start = time.perf_counter()
    picks, uncovered = greedy(kernel, k)
    return {
        "seconds": time.perf_counter() - start,
        "load_seconds": load,
        "kernel_seconds": build,
        "rows_read": kernel.rows_read,
        "objective": float(len(x) - uncovered.sum()),
        "picks": picks,
    }


def run_apricot(x: np.ndarray, k: int) -> dict:
    from apricot import FacilityLocationSelection

    kernel = cached_kernel(x)[1].matrix.numpy()
    FacilityLocationSelection(2, metric="precomputed", optimizer="lazy").fit(
        kernel[:10, :10]
    )  # numba start-up
    start = time.perf_counter()
    FacilityLocationSelection(2, metric="precomputed", optimizer="lazy").fit(kernel[:10, :10])
    compile_seconds = (
        time.perf_counter() - start
    )  # apricot compiles its numba kernels again on every fit
    start = time.perf_counter()
    model = FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(kernel)
    return {
        "seconds": time.perf_counter() - start,
        "compile_seconds": compile_seconds,
        "objective": float(model.gains.sum()),
        "picks": [int(i) for i in model.ranking],
    }


def bandwidth() -> dict:
    """Read bandwidth (sum over 1 GB, best of 5) and float32 matmul throughput."""
    x = torch.ones(int(GB) // 4, dtype=torch.float32)  # 1 GB
    best = min(timed(lambda: x.sum()) for _ in range(5))
    a = torch.randn(4096, 576)
    flops = min(timed(lambda: a @ a.T) for _ in range(3))
    return {
        "read_gb_s": x.numel() * 4 / best / GB,
        "matmul_gflop_s": 2 * 4096 * 4096 * 576 / flops / GB,
    }


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def one(job: str, n: int, d: int, k: int, seed: int) -> None:
    x = embeddings(n, d, seed)
    baseline = peak_rss_gb()
    runs = {
        "fl_greedy": lambda: run_fl_greedy(x, k),
        "apricot": lambda: run_apricot(x, k),
        "bandwidth": bandwidth,
    }
    result = runs[job]() if job in runs else run_selector(x, k, job)
    print(
        json.dumps(
            {
                **result,
                "peak_rss_gb": peak_rss_gb(),
                "rss_before_gb": baseline,
                "peak_gpu_gb": peak_gpu_gb(),
            }
        )
    )


def spawn(job: str, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--one",
        job,
        "--n",
        str(args.n),
        "--d",
        str(args.d),
        "--k",
        str(args.k),
        "--seed",
        str(args.seed),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def floors(r: dict, n: int, d: int, k: int) -> dict:
    """Seconds at the measured read bandwidth for the bytes each algorithm must stream."""
    bw, flops = r["bandwidth"]["read_gb_s"] * GB, r["bandwidth"]["matmul_gflop_s"] * GB
    fl_rows = (
        n + r["fl_greedy"]["rows_read"]
    )  # the first pass reads every row, then the rows each pick covers better
    # (rows kept as short lists of their near columns are not counted)
    return {
        "kcenter": {
            "bytes_per_step": n * d * 4,
            "floor_s": k * n * d * 4 / bw,
            "what": "the (d, N) float32 embeddings, once per step",
        },
        "facility_location_greedy": {
            "bytes_per_step": fl_rows * n * 4 / k,
            "floor_s": fl_rows * n * 4 / bw,
            "what": f"kernel rows: N first, then {r['fl_greedy']['rows_read'] / n:.2f} N rows read whole (rows whose nearest pick changed)",
        },
        "facility_location_kernel": {
            "floor_s": 2 * n * n * d / flops,
            "what": "2 N^2 d flops of the kernel build",
        },
        "dpp": {
            "bytes_per_step": n * d * 8 + k / 2 * n * 8,
            "floor_s": (k * n * d * 8 + k * k / 2 * n * 8) / bw,
            "what": "one float64 kernel row (N d) + the float64 Cholesky factor (t N at step t)",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--d", type=int, default=576)
    parser.add_argument("--k", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-apricot", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.one, args.n, args.d, args.k, args.seed)

    jobs = ["bandwidth", "kcenter", "facility_location", "fl_greedy", "dpp"] + (
        [] if args.no_apricot else ["apricot"]
    )
    r = {job: spawn(job, args) for job in jobs}
    floor = floors(r, args.n, args.d, args.k)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "date": str(date.today()),
        "n": args.n,
        "d": args.d,
        "k": args.k,
        "bandwidth": r["bandwidth"],
        "selectors": {
            name: {
                "seconds": r[name]["seconds"],
                "peak_rss_gb": r[name]["peak_rss_gb"],
                "peak_gpu_gb": r[name]["peak_gpu_gb"],
                "objective": r[name]["objective"],
            }
            for name in ("kcenter", "facility_location", "dpp")
        },
        "fl_greedy_on_cached_kernel": {
            key: r["fl_greedy"][key]
            for key in ("seconds", "load_seconds", "kernel_seconds", "rows_read", "objective")
        },
        "floors": floor,
    }
    summary["selectors"]["facility_location"]["same_picks_as_greedy_on_kernel"] = (
        r["facility_location"]["picks"] == r["fl_greedy"]["picks"]
    )
    if not args.no_apricot:
        ours, theirs = r["fl_greedy"], r["apricot"]
        same = [a == b for a, b in zip(ours["picks"], theirs["picks"])]
        summary["apricot"] = {
            "seconds": theirs["seconds"],
            "compile_seconds": theirs["compile_seconds"],
            "peak_rss_gb": theirs["peak_rss_gb"],
            "objective": theirs["objective"],
            "objective_relative_difference": abs(ours["objective"] - theirs["objective"])
            / abs(theirs["objective"]),
            "identical_picks": all(same),
            "first_differing_pick": None if all(same) else same.index(False),
            "identical_pick_sets": set(ours["picks"]) == set(theirs["picks"]),
            "speedup": (theirs["seconds"] - theirs["compile_seconds"]) / ours["seconds"],
            "speedup_with_compile_and_load": theirs["seconds"]
            / (ours["seconds"] + ours["load_seconds"]),
        }
    print(json.dumps(summary, indent=2))
    print(markdown(summary))


def markdown(s: dict) -> str:
    f = s["floors"]
    rows = [
        ("kcenter (end to end)", s["selectors"]["kcenter"], f["kcenter"]["floor_s"]),
        (
            "facility_location (end to end: kernel + greedy)",
            s["selectors"]["facility_location"],
            f["facility_location_kernel"]["floor_s"] + f["facility_location_greedy"]["floor_s"],
        ),
        (
            "facility_location greedy on the cached kernel",
            {**s["fl_greedy_on_cached_kernel"], "peak_rss_gb": None},
            f["facility_location_greedy"]["floor_s"],
        ),
        ("dpp (end to end)", s["selectors"]["dpp"], f["dpp"]["floor_s"]),
    ]
    lines = [
        f"N={s['n']}, d={s['d']}, k={s['k']}; read bandwidth {s['bandwidth']['read_gb_s']:.1f} GB/s, "
        f"matmul {s['bandwidth']['matmul_gflop_s']:.0f} GFLOP/s",
        "",
        "| run | seconds | x floor | peak RSS GB |",
        "|---|---:|---:|---:|",
    ]
    for name, run, floor_s in rows:
        rss = "" if run["peak_rss_gb"] is None else f"{run['peak_rss_gb']:.2f}"
        if run.get("peak_gpu_gb") is not None:
            rss += f" (GPU peak {run['peak_gpu_gb']:.2f})"
        lines.append(f"| {name} | {run['seconds']:.2f} | {run['seconds'] / floor_s:.1f} | {rss} |")
    if "apricot" in s:
        a = s["apricot"]
        lines.append(
            f"| apricot FacilityLocationSelection lazy, same kernel (numba compile {a['compile_seconds']:.1f} s included) "
            f"| {a['seconds']:.2f} | {a['seconds'] / f['facility_location_greedy']['floor_s']:.1f} | {a['peak_rss_gb']:.2f} |"
        )
        lines += [
            "",
            f"Facility Location objective: ours {s['fl_greedy_on_cached_kernel']['objective']:.6f}, apricot "
            f"{a['objective']:.6f} (relative difference {a['objective_relative_difference']:.1e}; identical picks: "
            f"{a['identical_picks']}, identical sets: {a['identical_pick_sets']}); speedup {a['speedup']:.1f}x without apricot's "
            f"compile and our cache load ({s['fl_greedy_on_cached_kernel']['load_seconds']:.2f} s), "
            f"{a['speedup_with_compile_and_load']:.1f}x with both.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
