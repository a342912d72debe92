"""The GPU measurements in one call of at most 8 minutes, on a bare machine.

    python benchmarks/gpu_suite.py [--out DIR] [--dry-run] [--skip scoring,training,selection]

- scoring: the batched engine against the naive generate loop, on a model of Llama-2 7B's
  shape (benchmarks/llama2-7b-config) with random bf16 weights (the real weights cannot travel);
- training: LoRA tokens/s of our fine-tune against the HF Trainer + peft, and our memory plan
  against torch.cuda.max_memory_allocated;
- selection: k-center, DPP and Facility Location (dense kernel cached on the GPU, and on the
  kNN graph) at the paper's scale, 90,000 x 4,096 embeddings and k = 29,700.

It needs torch, transformers, peft, lightning and labelbudget alone: no hydra-core, omegaconf or
wandb (tests/test_gpu_suite.py runs the dry run without them). Each part writes its results to
gpu_suite.json as soon as it ends, so a part cut short keeps the others; gpu_suite.md holds the
table for BENCHMARKS.md. `--dry-run`: toy sizes on the CPU (a 2-layer model, 600 embeddings).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from diversity_selectors import clustered_embeddings
from scoring_throughput import naive, one_pass
from training_throughput import hugging_face, ours

from labelbudget.data.synthetic import build_synthetic_suite
from labelbudget.models.loading import LoadedModel, ready_for_inference
from labelbudget.models.templates import PlainTemplate
from labelbudget.models.tiny import byte_level_tokenizer
from labelbudget.scoring.scores import Scores
from labelbudget.selection.base import SCORES, Candidates
from labelbudget.selection.dpp import DPPSelector
from labelbudget.selection.facility_location import FacilityLocationSelector
from labelbudget.selection.kcenter import KCenterSelector
from labelbudget.training.data import encode_sft

CONFIG = Path(__file__).resolve().parent / "llama2-7b-config" / "config.json"
TOY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
TOY |= {"num_attention_heads": 4, "num_key_value_heads": 4}
GIB = 2**30


def sizes(dry_run: bool) -> SimpleNamespace:
    """What each part runs on: the paper's scale, or toys for the CPU."""
    if dry_run:
        return SimpleNamespace(naive=4, batched=16, train=8, n=600, d=64, k=200)
    return SimpleNamespace(naive=16, batched=256, train=64, n=90_000, d=4096, k=29_700)


def seven_b_shaped(dry_run: bool, device: torch.device) -> LoadedModel:
    """Llama-2 7B's architecture with seeded random weights, bf16 on the GPU (the toy: float32)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_level_tokenizer()
    settings = {k: v for k, v in json.loads(CONFIG.read_text()).items() if not k.startswith("_")}
    settings |= TOY if dry_run else {}
    settings |= {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    dtype = torch.float32 if dry_run else torch.bfloat16
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(LlamaConfig(**settings), torch_dtype=dtype)
    return ready_for_inference(model, tokenizer, PlainTemplate())


def scoring(base: LoadedModel, size: SimpleNamespace) -> dict:
    pool = list(build_synthetic_suite().pool)
    prompts = [base.template.encode_prompt(base.tokenizer, e) for e in pool[: size.batched]]
    naive_s, naive_tokens = naive(base, prompts[: size.naive], 32)
    batched_s, batched_tokens = one_pass(base, prompts, 32, 32)
    naive_rate, batched_rate = size.naive / naive_s, size.batched / batched_s
    return {
        "naive_prompts_per_s": naive_rate,
        "batched_prompts_per_s": batched_rate,
        "speedup": batched_rate / naive_rate,
        "generated_tokens": {"naive": naive_tokens, "batched": batched_tokens},
    }


def training(base: LoadedModel, size: SimpleNamespace, gpu: bool) -> dict:
    pool = build_synthetic_suite().pool
    rng = np.random.default_rng(0)
    examples = [pool[int(i)] for i in rng.permutation(len(pool))[: size.train]]
    tokens = sum(len(encode_sft(base.template, base.tokenizer, e, 512)[0]) for e in examples)
    args = SimpleNamespace(epochs=1, batch_size=8, gpu=gpu)
    ours_s, stats = ours(copy.deepcopy(base), examples, args)
    if gpu:
        torch.cuda.empty_cache()
    hf_s = hugging_face(copy.deepcopy(base), examples, args, group_by_length=False)
    result = {
        "ours_tokens_per_s": tokens / ours_s,
        "hf_trainer_tokens_per_s": tokens / hf_s,
        "speedup": hf_s / ours_s,
        "planned_memory_gib": stats.get("train/planned_memory_gib"),
        "peak_memory_gib": stats.get("train/peak_memory_gib"),
    }
    if result["peak_memory_gib"]:
        result["plan_over_peak"] = result["planned_memory_gib"] / result["peak_memory_gib"]
    return result


def selection(size: SimpleNamespace, device: str) -> dict:
    x, _ = clustered_embeddings(size.n, size.d, 0)
    ids = [str(i) for i in range(size.n)]
    candidates = Candidates(ids, ["t"] * size.n, {SCORES: Scores.with_columns(ids, x)})
    selectors = {
        "kcenter": KCenterSelector(device=device),
        "dpp": DPPSelector(quality="none", device=device),
        "facility_location": FacilityLocationSelector(memory_limit_mb=60_000, device=device),
        "facility_location_knn": FacilityLocationSelector(knn=64, device=device),
    }
    results = {}
    for name, selector in selectors.items():
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        picked = selector.select(candidates, size.k, np.random.default_rng(0))
        results[name] = {
            "seconds": time.perf_counter() - start,
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / GIB if device == "cuda" else None,
            "objective": picked.objective,
        }
        print(name, results[name], flush=True)
    return results


def markdown(summary: dict) -> str:
    lines = [
        f"{summary['device']}, {summary['date']}{' (dry run)' if summary['dry_run'] else ''}",
        "",
        "| measurement | ours | baseline | ratio |",
        "|---|---:|---:|---:|",
    ]
    if "scoring" in summary:
        s = summary["scoring"]
        lines.append(
            f"| scoring, 7B-shaped, prompts/s | {s['batched_prompts_per_s']:.2f} | "
            f"{s['naive_prompts_per_s']:.2f} (naive loop) | {s['speedup']:.1f}x |"
        )
    if "training" in summary:
        t = summary["training"]
        lines.append(
            f"| LoRA training, tokens/s | {t['ours_tokens_per_s']:.0f} | "
            f"{t['hf_trainer_tokens_per_s']:.0f} (HF Trainer) | {t['speedup']:.2f}x |"
        )
        if t.get("peak_memory_gib"):
            lines.append(
                f"| memory plan, GiB | {t['planned_memory_gib']:.2f} | "
                f"{t['peak_memory_gib']:.2f} (max_memory_allocated) | {t['plan_over_peak']:.2f} |"
            )
    for name, r in summary.get("selection", {}).items():
        peak = f", peak {r['peak_gpu_gib']:.1f} GiB" if r["peak_gpu_gib"] is not None else ""
        lines.append(
            f"| {name}, N={summary['sizes']['n']:,}, seconds{peak} | {r['seconds']:.1f} | | |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out")
    args = parser.parse_args()
    gpu = torch.cuda.is_available() and not args.dry_run
    device = torch.device("cuda" if gpu else "cpu")
    size = sizes(args.dry_run)
    summary = {
        "date": str(date.today()),
        "device": torch.cuda.get_device_name() if gpu else f"{platform.machine()} CPU",
        "dry_run": args.dry_run,
        "sizes": vars(size),
    }
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        (args.out / "gpu_suite.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.out / "gpu_suite.md").write_text(markdown(summary))

    skip = set(filter(None, args.skip.split(",")))
    if not {"scoring", "training"} <= skip:
        base = seven_b_shaped(args.dry_run, device)
        if "scoring" not in skip:
            summary["scoring"] = scoring(base, size)
            save()
        if "training" not in skip:
            summary["training"] = training(base, size, gpu)
            save()
        del base
        if gpu:
            torch.cuda.empty_cache()
    if "selection" not in skip:
        summary["selection"] = selection(size, device.type)
        save()
    print(markdown(summary))


if __name__ == "__main__":
    main()
