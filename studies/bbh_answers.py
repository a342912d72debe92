"""What the models of a BBH study answer: each run's answers per task, against constant answers.

    python studies/bbh_answers.py studies/bbh

A score near chance can come from a model that reads the questions and errs, or from one that
gives every question of a task the same answer. This reads each job's bbh_predictions.jsonl and
says which: per run, on how many tasks one answer covers at least 90% of the outputs, and the
score the run would get by giving each task its most common answer throughout. Two baselines
need no model: every task answered with its pool half's most common target (what a model could
learn from the labels alone), and with the best constant answer in hindsight. The questions are
the ones the study evaluated, rebuilt from the settings saved in the first job's metrics.json;
each run's predictions are checked against them id by id. Run it from the repository root (the
saved data paths are relative to it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from labelbudget.data.bbh import load_bbh
from labelbudget.data.schema import Pool
from labelbudget.evaluation.bbh import is_correct, normalise_answer
from labelbudget.evaluation.tasks import limit_per_task

ONE_ANSWER_SHARE = 0.9  # a task "has one answer" when its most common answer covers this share


@dataclass(frozen=True)
class Baseline:
    """One task's constant answers: the pool's most common target, its score, the best score."""

    majority: str
    majority_score: float
    best_constant: float


@dataclass(frozen=True)
class RunAnswers:
    macro: float
    one_answer_tasks: list[str]  # tasks where one answer covers ONE_ANSWER_SHARE of the outputs
    mean_top_share: float  # the top answer's share of a task's outputs, mean over tasks
    top_answer_macro: float  # the macro score of giving each task its top answer throughout
    tasks_answering_majority: int  # tasks whose top answer is the pool's most common target


def score(answers: list[str], targets: list[str]) -> float:
    return sum(is_correct(a, t) for a, t in zip(answers, targets, strict=True)) / len(targets)


def most_common(values: list[str]) -> tuple[str, int]:
    """The most frequent value and its count; ties go to the first in sorted order (reproducible)."""
    counts = Counter(values)
    top = max(sorted(counts), key=lambda v: counts[v])
    return top, counts[top]


def targets_by_task(pool: Pool) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for example in pool:
        found[example.task].append(example.response)
    return dict(found)


def baselines(questions: Pool, pool: Pool) -> dict[str, Baseline]:
    """Per task of the questions: constant answers scored on its questions, candidates drawn
    from the task's pool targets."""
    asked, known = targets_by_task(questions), targets_by_task(pool)
    found = {}
    for task, targets in sorted(asked.items()):
        majority = most_common(known[task])[0]
        found[task] = Baseline(
            majority,
            score([majority] * len(targets), targets),
            max(score([c] * len(targets), targets) for c in set(known[task])),
        )
    return found


def run_answers(questions: Pool, answers: list[str], tasks: dict[str, Baseline]) -> RunAnswers:
    """A run's answers (extracted, in question order) read against the tasks' constant answers."""
    targets = targets_by_task(questions)
    given: dict[str, list[str]] = defaultdict(list)
    for example, answer in zip(questions, answers, strict=True):
        given[example.task].append(answer)
    tops = {t: most_common([normalise_answer(a, a) for a in given[t]]) for t in sorted(targets)}
    shares = {t: count / len(given[t]) for t, (_, count) in tops.items()}
    return RunAnswers(
        macro=mean(score(given[t], targets[t]) for t in tops),
        one_answer_tasks=[t for t, share in shares.items() if share >= ONE_ANSWER_SHARE],
        mean_top_share=mean(shares.values()),
        top_answer_macro=mean(
            score([top] * len(targets[t]), targets[t]) for t, (top, _) in tops.items()
        ),
        tasks_answering_majority=sum(
            top == normalise_answer(tasks[t].majority, tasks[t].majority)
            for t, (top, _) in tops.items()
        ),
    )


def evaluated_questions(config: dict) -> tuple[Pool, Pool]:
    """(the questions the run was graded on, the pool it could learn from), from its saved config."""
    dataset, settings = config["dataset"], config["eval"]["bbh"]
    if settings["split"] != "heldout":
        raise SystemExit("the study did not evaluate on the held-out half (eval.bbh.split)")
    data = load_bbh(
        dataset["data_dir"], dataset["tasks"], dataset["test_fraction"], dataset["seed"]
    )
    return limit_per_task(data.test, settings["max_examples_per_task"]), data.pool


def row_name(run: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted((run["selector_options"] or {}).items()))
    name = run["selector"] if run["budget"] else "zero-shot"
    return name + (f" ({options})" if options else "")


def shorten(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    study = parser.parse_args(argv).study
    jobs = [f.parent for f in study.glob("*/bbh_predictions.jsonl")]
    if not jobs:
        print(f"{study}: no job folder holds bbh_predictions.jsonl", file=sys.stderr)
        return 1
    records = {job: json.loads((job / "metrics.json").read_text()) for job in jobs}
    jobs.sort(key=lambda job: (row_name(records[job]["run"]), records[job]["run"]["seed"]))
    questions, pool = evaluated_questions(records[jobs[0]]["config"])
    tasks = baselines(questions, pool)

    print(f"{len(questions)} questions in {len(tasks)} tasks (macro = mean over tasks).\n")
    print("| baseline, no model | bbh/macro |\n|---|---:|")
    print(
        "| each task answered with its pool half's most common target"
        f" | {mean(b.majority_score for b in tasks.values()):.4f} |"
    )
    print(
        "| each task answered with its best constant answer (hindsight)"
        f" | {mean(b.best_constant for b in tasks.values()):.4f} |"
    )
    print(
        "\n| run | seed | bbh/macro | tasks with one answer (>= 90%) | mean share of the top answer"
        " | score of each task's top answer throughout | tasks whose top answer is the pool's |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    one_answer: Counter[str] = Counter()
    for job in jobs:
        file = job / "bbh_predictions.jsonl"
        rows = [json.loads(line) for line in file.read_text().splitlines()]
        if [r["id"] for r in rows] != [e.id for e in questions]:
            print(f"{file}: its questions differ from the study's first job's", file=sys.stderr)
            return 1
        run, recorded = records[job]["run"], records[job]["metrics"]["bbh/macro"]
        read = run_answers(questions, [r["answer"] for r in rows], tasks)
        if abs(read.macro - recorded) > 1e-9:
            print(
                f"{file}: regraded bbh/macro {read.macro} is not metrics.json's {recorded}",
                file=sys.stderr,
            )
            return 1
        one_answer.update(read.one_answer_tasks)
        print(
            f"| {row_name(run)} | {run['seed']} | {read.macro:.4f} | {len(read.one_answer_tasks)}"
            f" | {read.mean_top_share:.2f} | {read.top_answer_macro:.4f} | {read.tasks_answering_majority} |"
        )
    print(
        f"\n| task | pool's most common target | its score | best constant | runs with one answer (of {len(jobs)}) |"
    )
    print("|---|---|---:|---:|---:|")
    for task, b in tasks.items():
        print(
            f"| {task} | {shorten(b.majority)} | {b.majority_score:.3f} | {b.best_constant:.3f} | {one_answer[task]} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
