"""Every selector of conf/selector at growing pool sizes: wall time, peak memory, floors, a plot.

    python benchmarks/selection_scaling.py --n 10000,30000,90000 --d 4096 --k-fraction 0.33 \
        [--selectors kcenter,dpp] [--timeout-min 20] [--memory-limit-mb MB] [--no-apricot] \
        [--out DIR] [--report]

The paper selects from FLAN's 90K prompts with 4,096-dimensional embeddings. Embeddings: the
seeded 200-cluster mixture of `diversity_selectors.py`, each cluster one task. The other signals
a selector reads are synthetic and seeded: sequence confidences, per-task prompt sensitivity and
predicted AUCs, and for the two-round selector its first round and round gains. Only the
selection step is timed (the scoring pass and fine-tunes are measured in their own benchmarks).

Every selector runs in its own subprocess (peak RSS is its own; a run killed by the OS is
recorded, not fatal), with a time limit. A selector that refuses the run before it starts (too
little memory) is recorded with its message. For the diversity selectors the floor is the bytes
they must stream over the measured read bandwidth. apricot's FacilityLocationSelection runs on
the dense float32 kernel where that fits in memory. Writes scaling.json and scaling.png in --out
and prints a markdown table. Each finished run is appended to runs.jsonl in --out at once, so
the same command, run again after a stop, resumes where it stopped; `--report` redraws the
table and the plot from scaling.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import torch
from diversity_selectors import bandwidth, clustered_embeddings, peak_rss_gb, run_apricot
from hydra import compose, initialize_config_dir

from labelbudget.configs import instantiate
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.errors import ConfigError
from labelbudget.rendering import png_bytes, pyplot
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import (
    FIRST_ROUND,
    PREDICTED_AUC,
    PROMPT_SENSITIVITY,
    ROUND_GAINS,
    SCORES,
    Candidates,
)
from labelbudget.selection.kcenter import PROJECTED_DIMS, PRUNE_MIN_DIMS
from labelbudget.selection.kernels import available_bytes

REPO = Path(__file__).resolve().parents[1]
GB = 1e9
N_MAX = 5000  # the budget axis of the synthetic predicted AUCs
RUNS = "runs.jsonl"  # every finished run, one line each: a rerun of the same command resumes


def selector_names() -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / "selector").glob("*.yaml"))


def build(name: str, predictions: Path, memory_limit_mb: float | None):
    """The selector `select.py selector=<name>` builds, with `selector.memory_limit_mb` set
    where given and the selector has it."""
    overrides = [f"selector={name}", "paths.output_dir=unused"]
    if name == "predicted_efficiency":
        overrides.append(f"selector.predictions={predictions}")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        config = compose("select", overrides=overrides).selector
        if memory_limit_mb is not None and "memory_limit_mb" in config:
            config.memory_limit_mb = memory_limit_mb
        return instantiate(config)


def synthetic_signals(x: np.ndarray, cluster: np.ndarray, seed: int) -> dict:
    """Every signal a selector may read, seeded; each cluster is a task."""
    rng = np.random.default_rng(seed)
    n = len(x)
    ids = [str(i) for i in range(n)]
    tasks = sorted({f"task{c:03d}" for c in cluster})
    mean_logprob = -rng.gamma(2.0, 0.5, n)
    scores = Scores.with_columns(
        ids,
        x,
        mean_logprob=mean_logprob,
        seq_logprob=mean_logprob * 8,
        mean_entropy=rng.gamma(2.0, 0.5, n),
        mean_margin=rng.random(n),
        min_margin=rng.random(n) * 0.5,
    )
    auc = PredictedAUC(
        {t: float(v) for t, v in zip(tasks, rng.uniform(0.2, 0.8, len(tasks)))}, N_MAX
    )
    return {
        SCORES: scores,
        PROMPT_SENSITIVITY: {t: float(v) for t, v in zip(tasks, rng.random(len(tasks)))},
        PREDICTED_AUC: auc,
        ROUND_GAINS: auc,
    }


def one(name: str, n: int, d: int, k: int, seed: int, memory_limit_mb: float | None) -> dict:
    """One selector's selection step at one size (in this process alone)."""
    x, cluster = clustered_embeddings(n, d, seed)
    signals = synthetic_signals(x, cluster, seed)
    ids = [str(i) for i in range(n)]
    tasks = [f"task{c:03d}" for c in cluster]
    if name == "apricot":
        return run_apricot(x, k)
    with tempfile.TemporaryDirectory() as folder:
        predictions = Path(folder) / "predicted_auc.json"
        signals[PREDICTED_AUC].write(predictions)
        selector = build(name, predictions, memory_limit_mb)
    rng = np.random.default_rng(seed)
    before = peak_rss_gb()
    start = time.perf_counter()
    try:
        selector.check_budget(dict(Counter(tasks)), k)
        asked = {key: signals[key] for key in selector.signals()}
        candidates = Candidates(ids, tasks, asked)
        first = selector.first_round(candidates, k, rng)
        if first is not None:
            learned = {key: signals[key] for key in selector.learns()}
            candidates = Candidates(ids, tasks, {**asked, **learned, FIRST_ROUND: first})
        selection = selector.select(candidates, k, rng)
    except ConfigError as error:
        return {"refused": str(error)}
    return {
        "seconds": time.perf_counter() - start,
        "rss_before_gb": before,
        "objective": selection.objective,
        "picks": len(selection.ids),
    }


def spawn(job: str, n: int, args) -> dict:
    k = round(args.k_fraction * n)
    command = [sys.executable, __file__, "--one", job, "--n", str(n), "--d", str(args.d)]
    command += ["--k-fraction", str(args.k_fraction), "--seed", str(args.seed)]
    if args.memory_limit_mb is not None:
        command += ["--memory-limit-mb", str(args.memory_limit_mb)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout_min * 60
        )
    except subprocess.TimeoutExpired:
        return {"n": n, "k": k, "stopped_after_min": args.timeout_min}
    if done.returncode != 0:
        return {"n": n, "k": k, "failed": done.returncode, "stderr": done.stderr[-2000:]}
    return {"n": n, "k": k, **json.loads(done.stdout.strip().splitlines()[-1])}


def settings(args) -> dict:
    """What a finished run must share with the one asked for to stand in for it: the sizes,
    the seed, the memory limit and the code (a rerun of the same command from the same commit)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    keys = ("d", "k_fraction", "seed", "memory_limit_mb")
    return {**{key: getattr(args, key) for key in keys}, "commit": commit or None}


def finished_runs(path: Path, wanted: dict, timeout_min: float) -> dict[tuple[str, int], dict]:
    """The runs RUNS already holds for these settings, so that a stopped benchmark resumes. A
    run that failed is run again, and so is one stopped sooner than `timeout_min`; a last line
    cut short by the stop is left out."""
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            continue
        if {key: run.get(key) for key in wanted} != wanted or "failed" in run:
            continue
        if run.get("stopped_after_min", timeout_min) < timeout_min:
            continue
        done[run["name"], run["n"]] = {
            key: value for key, value in run.items() if key not in wanted and key != "name"
        }
    return done


def apricot_fits(n: int) -> bool:
    """apricot builds the dense float32 kernel, and our code builds it first: twice N^2 x 4."""
    free = available_bytes(torch.device("cpu"))
    return free is None or 2 * 4 * n * n < 0.9 * free


def floor_seconds(name: str, run: dict, n: int, d: int, measured: dict) -> float | None:
    """The bytes a diversity selector must stream over the measured read bandwidth (the kernel's
    flops over the measured matmul rate for facility location)."""
    if "seconds" not in run:
        return None
    k, read_gb_s = run["k"], measured["read_gb_s"]
    if name == "facility_location_knn":  # every pair once: N^2 d flops
        return n * n * d / (measured["matmul_gflop_s"] * GB)
    if name.startswith("facility_location"):  # every kernel entry, once: 2 N^2 d flops
        return 2 * n * n * d / (measured["matmul_gflop_s"] * GB)
    if name == "kcenter":  # the float64 rows it measures, and the projected bound's rows
        share = run["objective"].get("distances_computed_share", 1.0)
        projected = min(PROJECTED_DIMS, d // 4) if d >= PRUNE_MIN_DIMS else 0
        return (share * k * n * d * 8 + k * n * projected * 4) / (read_gb_s * GB)
    if name == "dpp":  # one float64 kernel row and the t x N factor at step t
        return (k * n * d * 8 + k * k / 2 * n * 8) / (read_gb_s * GB)
    return None


def exponent(points: list[tuple[int, float]]) -> float | None:
    """The slope of log time against log N (time ~ N^slope), from two sizes on."""
    if len(points) < 2:
        return None
    ns, ts = zip(*points)
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def plot(results: dict) -> bytes:
    """Seconds against N on log-log axes, a line per selector (each its own colour), labelled
    with its fitted exponent and the sizes at which it did not run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    colours = plt.get_cmap("tab20").colors
    for at, (name, runs) in enumerate(sorted(results.items())):
        points = [(r["n"], r["seconds"]) for r in runs if "seconds" in r]
        if not points:
            continue
        slope = exponent(points)
        label = name + (f" (N^{slope:.2f})" if slope is not None else "")
        missing = [f"{r['n']:,}" for r in runs if "seconds" not in r]
        if missing:
            label += f"; none at N={', '.join(missing)}"
        style = "o-" if name in ("kcenter", "dpp", "apricot") or "facility" in name else "s--"
        ax.plot(*zip(*points), style, color=colours[at % len(colours)], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pool size N")
    ax.set_ylabel("selection seconds")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return png_bytes(fig, dpi=110)


def cell(name: str, run: dict, floor: float | None) -> str:
    if "seconds" in run:
        ratio = f", {run['seconds'] / floor:.1f}x floor" if floor else ""
        return f"{run['seconds']:.2f} s, {run['peak_rss_gb']:.1f} GB{ratio}"
    if "refused" in run:
        return "refused (below)"
    if "stopped_after_min" in run:
        return f"over {run['stopped_after_min']:g} min (stopped)"
    return f"failed (exit {run['failed']})"


def markdown(summary: dict) -> str:
    sizes = summary["n"]
    lines = [
        f"d={summary['d']}, k = {summary['k_fraction']} N; {summary['machine']}; read "
        f"bandwidth {summary['bandwidth']['read_gb_s']:.1f} GB/s, matmul "
        f"{summary['bandwidth']['matmul_gflop_s']:.0f} GFLOP/s; {summary['date']}",
        "",
        "| selector | " + " | ".join(f"N={n:,}" for n in sizes) + " | time ~ N^x |",
        "|---|" + "---|" * len(sizes) + "---:|",
    ]
    for name, runs in sorted(summary["results"].items()):
        by_n = {r["n"]: r for r in runs}
        cells = [
            cell(name, by_n[n], floor_seconds(name, by_n[n], n, summary["d"], summary["bandwidth"]))
            if n in by_n
            else "-"
            for n in sizes
        ]
        slope = exponent([(r["n"], r["seconds"]) for r in runs if "seconds" in r])
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {'' if slope is None else f'{slope:.2f}'} |"
        )
    refusals = [
        f"- {name} at N={run['n']:,}: {run['refused']}"
        for name, runs in sorted(summary["results"].items())
        for run in runs
        if "refused" in run
    ]
    return "\n".join(lines + ([""] + refusals if refusals else []))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", default="10000,30000,90000")
    parser.add_argument("--d", type=int, default=4096)
    parser.add_argument("--k-fraction", type=float, default=0.33)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--selectors", default=None, help="comma-separated; default: all")
    parser.add_argument("--timeout-min", type=float, default=20.0)
    parser.add_argument("--no-apricot", action="store_true")
    parser.add_argument(
        "--memory-limit-mb",
        type=float,
        default=None,
        help="selector.memory_limit_mb for every selector that has it (default: conf's)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--report", action="store_true", help="only redraw the table and plot from --out"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        if not (args.out / "scaling.json").exists():
            parser.error(
                f"--report: there is no {args.out / 'scaling.json'}; run the benchmark first"
            )
        summary = json.loads((args.out / "scaling.json").read_text())
        (args.out / "scaling.png").write_bytes(plot(summary["results"]))
        print(markdown(summary))
        return
    if args.one:
        if args.one == "bandwidth":
            result = bandwidth()
        else:
            n = int(args.n)
            k = round(args.k_fraction * n)
            result = one(args.one, n, args.d, k, args.seed, args.memory_limit_mb)
        print(json.dumps({**result, "peak_rss_gb": peak_rss_gb()}))
        return
    sizes = [int(n) for n in args.n.split(",")]
    names = args.selectors.split(",") if args.selectors else selector_names()
    if not args.no_apricot:
        names.append("apricot")
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = settings(args)
    done = finished_runs(args.out / RUNS, wanted, args.timeout_min)
    results: dict[str, list[dict]] = {}
    for n in sizes:
        for name in names:
            if (name, n) in done:
                run = done[name, n]
            elif name == "apricot" and not apricot_fits(n):
                run = {"n": n, "k": round(args.k_fraction * n)}
                run["refused"] = f"its dense float32 kernel takes {4 * n * n / GB:.0f} GB"
            else:
                run = spawn(name, n, args)
                with open(args.out / RUNS, "a") as runs:
                    runs.write(json.dumps({"name": name, **wanted, **run}) + "\n")
            results.setdefault(name, []).append(run)
            print(f"N={n} {name}: {cell(name, run, None)}", file=sys.stderr, flush=True)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "date": str(date.today()),
        "n": sizes,
        "d": args.d,
        "k_fraction": args.k_fraction,
        "bandwidth": spawn("bandwidth", sizes[0], args),
        "results": results,
    }
    (args.out / "scaling.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "scaling.png").write_bytes(plot(results))
    print(markdown(summary))


if __name__ == "__main__":
    main()
