"""Training throughput: our Lightning LoRA loop against a plain Hugging Face Trainer + peft,
same model, data, LoRA settings, batch size and epochs, side by side in one run.

    python benchmarks/training_throughput.py [--n 150] [--epochs 1] [--model smollm2_135m|tiny_llama] [--gpu]

With --gpu both run on CUDA in bf16 mixed precision, and our run's memory plan is printed beside
the measured peak (torch.cuda.max_memory_allocated).

Tokens/s counts real (non-padding) tokens; an uncounted warm-up run goes first. The HF Trainer runs as most people run it (dynamic
padding, no length grouping), and once more with its own length-grouped sampler.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from datetime import date
from types import SimpleNamespace

import lightning as L
import numpy as np
import torch

from labelbudget.data.synthetic import build_synthetic_suite
from labelbudget.models.loading import load_smollm2
from labelbudget.models.templates import ChatTemplate
from labelbudget.models.tiny import build_tiny_llama
from labelbudget.training.data import encode_sft
from labelbudget.training.fit import fine_tune
from labelbudget.training.lora import attach_lora

LORA = {
    "rank": 16,
    "alpha": 32,
    "dropout": 0.05,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


def ours(loaded, examples, args) -> tuple[float, dict]:
    """Our fine-tune's seconds, and its stats (the memory plan and, on a GPU, the peak)."""
    settings = SimpleNamespace(
        lora=LORA,
        epochs=args.epochs,
        learning_rate=1e-4,
        batch_size=args.batch_size,
        accumulate_grad_batches=1,
        max_length=512,
        gradient_checkpointing=False,
    )
    device = (
        {"accelerator": "gpu", "precision": "bf16-mixed"} if args.gpu else {"accelerator": "cpu"}
    )
    factory = lambda **kw: L.Trainer(
        devices=1, enable_progress_bar=False, enable_model_summary=False, **device, **kw
    )  # noqa: E731
    if args.gpu:
        torch.cuda.reset_peak_memory_stats()
    _, stats = fine_tune(loaded, examples, settings, factory, None, seed=0)
    if args.gpu:
        print(
            f"memory: planned {stats['train/planned_memory_gib']:.3f} GiB, measured peak {stats['train/peak_memory_gib']:.3f} GiB"
        )
    return stats["train/seconds"], stats


def hugging_face(loaded, examples, args, group_by_length: bool) -> float:
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    rows = [encode_sft(loaded.template, loaded.tokenizer, e, 512) for e in examples]
    dataset = [
        {"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids)}
        for ids, labels in rows
    ]
    model = attach_lora(loaded.model, seed=0, **LORA)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir="/tmp/hf-bench",
            per_device_train_batch_size=args.batch_size,
            num_train_epochs=args.epochs,
            learning_rate=1e-4,
            optim="adamw_torch",
            weight_decay=0.0,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=not args.gpu,
            bf16=args.gpu,
            seed=0,
            train_sampling_strategy="group_by_length" if group_by_length else "random",
            dataloader_num_workers=0,
        ),
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(
            loaded.tokenizer, padding=True, label_pad_token_id=-100
        ),
    )
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", choices=["smollm2_135m", "tiny_llama"], default="smollm2_135m")
    parser.add_argument("--cache-dir", default="~/.cache/labelbudget/models")
    parser.add_argument("--gpu", action="store_true", help="CUDA, bf16 mixed precision")
    args = parser.parse_args()

    base = (
        load_smollm2(args.cache_dir, ChatTemplate())
        if args.model == "smollm2_135m"
        else build_tiny_llama()
    )
    pool = build_synthetic_suite().pool
    rng = np.random.default_rng(0)
    examples = [pool[int(i)] for i in rng.permutation(len(pool))[: args.n]]
    tokens = args.epochs * sum(
        len(encode_sft(base.template, base.tokenizer, e, 512)[0]) for e in examples
    )
    runs = {
        "labelbudget (Lightning, length-grouped batches)": lambda loaded: ours(
            loaded, examples, args
        )[0],
        "HF Trainer + peft (defaults)": lambda loaded: hugging_face(loaded, examples, args, False),
        "HF Trainer + peft (train_sampling_strategy=group_by_length)": lambda loaded: hugging_face(
            loaded, examples, args, True
        ),
    }
    ours(
        copy.deepcopy(base), examples[:16], args
    )  # warm-up, not counted: the first run pays one-time costs
    results = {}
    for name, run in runs.items():
        loaded = copy.deepcopy(base)  # every run starts from the same untouched weights
        seconds = run(loaded)
        results[name] = {"seconds": round(seconds, 1), "tokens_per_s": round(tokens / seconds, 1)}
        print(name, results[name], flush=True)
    print(
        json.dumps(
            {
                "date": str(date.today()),
                "machine": torch.cuda.get_device_name()
                if args.gpu
                else f"{platform.machine()}, {torch.get_num_threads()} threads",
                "model": args.model,
                "examples": len(examples),
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "real_tokens": tokens,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
