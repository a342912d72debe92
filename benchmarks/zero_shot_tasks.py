"""SmolLM2's zero-shot accuracy and confidence per synthetic task, from the scoring pass.

The greedy answers the scorer generates for the pool are graded against the pool's hidden
references with each task's own rule, so this costs no model pass beyond the (cached) scoring.
The spread across tasks is what gives Weighted Task Diversity something to weigh.

    python benchmarks/zero_shot_tasks.py [hydra overrides, e.g. model=tiny_llama]
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from labelbudget.configs import instantiate
from labelbudget.evaluation.rules import score_prediction
from labelbudget.stages.run import Run

REPO = Path(__file__).resolve().parents[1]


def main(overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("select", overrides=["paths.output_dir=unused", *overrides])
    pool = instantiate(cfg.dataset).pool
    with Run.open(cfg) as run:
        scores = run.scores(pool, required=True)
    rows = defaultdict(list)
    for i, example in enumerate(pool):
        rows[example.task].append(i)
    table = []
    for task, idx in rows.items():
        idx = np.array(idx)
        correct = [
            score_prediction(pool[i].metadata["rule"], scores.generations[i], pool[i].response)
            for i in idx
        ]
        table.append(
            (
                task,
                pool[idx[0]].metadata["category"],
                len(idx),
                float(np.mean(correct)),
                float(np.exp(scores.task_log_confidence({task: idx}))[0]),
                float(np.exp(scores.mean_logprob[idx]).mean()),
                float(scores.hit_max_tokens[idx].mean()),
            )
        )
    table.sort(key=lambda r: -r[3])
    print(
        "| task | category | pool | zero-shot accuracy | mean confidence (sequence) | mean per-token confidence | hit max tokens |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for task, category, n, acc, conf, token_conf, capped in table:
        print(
            f"| {task} | {category} | {n} | {acc:.2f} | {conf:.2e} | {token_conf:.3f} | {capped:.0%} |"
        )
    accuracy = np.array([r[3] for r in table])
    confidence = np.array([r[4] for r in table])
    pooled = np.mean(
        [
            score_prediction(e.metadata["rule"], scores.generations[i], e.response)
            for i, e in enumerate(pool)
        ]
    )
    print(
        f"\n{len(table)} tasks; accuracy over all prompts {pooled:.3f}; per-task accuracy from {accuracy.min():.2f} to "
        f"{accuracy.max():.2f}; mean confidence from {confidence.min():.1e} to {confidence.max():.1e}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
