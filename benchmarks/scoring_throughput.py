"""One-pass scorer against the naive loop, on the same prompts, side by side in one run.

naive: per prompt, `model.generate` (greedy, KV cache, scores returned) and then a second
forward over the prompt for the embedding: what a first implementation usually does.
ours: length-sorted batches, one prefill for embedding + first token, cached decoding.

    python benchmarks/scoring_throughput.py --n 256 [--model smollm2_135m|tiny_llama] [--gpu]   # --gpu: CUDA, bf16
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import torch

from labelbudget.data.synthetic import build_synthetic_suite
from labelbudget.inference.generation import greedy_score, pool_hidden
from labelbudget.inference.predict import LeftPadCollator, length_sorted_batches
from labelbudget.models.loading import load_smollm2
from labelbudget.models.templates import ChatTemplate
from labelbudget.models.tiny import build_tiny_llama


def naive(loaded, prompts: list[list[int]], max_new_tokens: int) -> tuple[float, int]:
    model, tok = loaded.model, loaded.tokenizer
    generated = 0
    start = time.perf_counter()
    with torch.no_grad():
        for ids in prompts:
            input_ids = torch.tensor([ids], device=model.device)
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                eos_token_id=loaded.eos_token_ids,
                pad_token_id=tok.pad_token_id,
            )
            log_probs = (
                torch.stack(out.scores, 1).float().log_softmax(-1)
            )  # confidence, entropy, margins
            log_probs.max(-1).values.sum()
            hidden = model(input_ids=input_ids, output_hidden_states=True).hidden_states[-2]
            pool_hidden(hidden, torch.ones_like(input_ids), "mean")
            generated += len(out.scores)
    return time.perf_counter() - start, generated


def one_pass(
    loaded, prompts: list[list[int]], max_new_tokens: int, batch_size: int
) -> tuple[float, int]:
    collate = LeftPadCollator(loaded.tokenizer.pad_token_id)
    generated = 0
    start = time.perf_counter()
    for batch_rows in length_sorted_batches([len(p) for p in prompts], batch_size):
        batch = {
            k: v.to(loaded.model.device)
            for k, v in collate([(r, prompts[r]) for r in batch_rows]).items()
        }
        out = greedy_score(
            loaded.model,
            batch["input_ids"],
            batch["attention_mask"],
            max_new_tokens,
            loaded.eos_token_ids,
            loaded.tokenizer.pad_token_id,
        )
        generated += int(out["n_tokens"].sum())
    return time.perf_counter() - start, generated


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=["smollm2_135m", "tiny_llama"], default="smollm2_135m")
    parser.add_argument("--cache-dir", default="~/.cache/labelbudget/models")
    parser.add_argument("--gpu", action="store_true", help="run both on CUDA in bfloat16")
    args = parser.parse_args()

    loaded = (
        load_smollm2(args.cache_dir, ChatTemplate())
        if args.model == "smollm2_135m"
        else build_tiny_llama()
    )
    if args.gpu:
        loaded.model.to("cuda", dtype=torch.bfloat16)
    pool = build_synthetic_suite().pool
    prompts = [loaded.template.encode_prompt(loaded.tokenizer, e) for e in list(pool)[: args.n]]
    prompt_tokens = sum(len(p) for p in prompts)
    results = {}
    for name, run in (
        ("naive loop", lambda: naive(loaded, prompts, args.max_new_tokens)),
        (
            "one-pass scorer",
            lambda: one_pass(loaded, prompts, args.max_new_tokens, args.batch_size),
        ),
    ):
        seconds, generated = run()
        results[name] = {
            "seconds": round(seconds, 2),
            "prompts_per_s": round(len(prompts) / seconds, 2),
            "tokens_per_s": round((prompt_tokens + generated) / seconds, 1),
            "generated_tokens": generated,
        }
        print(name, results[name], flush=True)
    speedup = results["naive loop"]["seconds"] / results["one-pass scorer"]["seconds"]
    print(
        json.dumps(
            {
                "date": str(date.today()),
                "machine": torch.cuda.get_device_name()
                if args.gpu
                else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
                "model": args.model,
                "n_prompts": len(prompts),
                "prompt_tokens": prompt_tokens,
                "results": results,
                "speedup": round(speedup, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
