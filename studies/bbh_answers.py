"""What the models of a BBH study answer: each run's answers per task, against constant answers.

    python studies/bbh_answers.py studies/bbh

A score near chance can come from a model that reads the questions and errs, or from one that
gives every question of a task the same answer, or nothing. This reads each job's
bbh_predictions.jsonl and says which: per run, how many questions it left blank (and on which
tasks at least half) and the share right of the others, on how many tasks one answer covers at
least 90% of the questions, and the score the run would get by giving each task its most common
answer throughout. Two baselines need no model: every task answered with its pool half's most
common target (what a model could learn from the labels alone; ties averaged, as a random
tie-break would score on average), and with the best constant answer in hindsight (any target of
the task, chosen on the evaluated questions: an upper bound for a model that answers one thing per
task). The questions are rebuilt from the eval settings saved in the jobs' metrics.json, and every
run is regraded with labelbudget's grader and checked against its recorded score. Run it from the
repository root (the saved data paths are relative to it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from labelbudget.data.bbh import load_bbh
from labelbudget.data.schema import Pool
from labelbudget.evaluation.bbh import extract_answer, grade_outputs, is_correct, normalise_answer
from labelbudget.evaluation.tasks import limit_per_task
from labelbudget.report import row_name
from labelbudget.runs import RunRecord

ONE_ANSWER_SHARE = 0.9  # a task "has one answer" when one answer is given to this share of it


@dataclass(frozen=True)
class Baseline:
    """One task's constant answers, normalised as the grader compares them."""

    majority: list[str]  # the pool half's most common target(s): several when tied
    majority_score: float  # their mean score on the evaluated questions
    best_constant: float  # the best score of any one target of the task, pool or evaluated


@dataclass(frozen=True)
class RunAnswers:
    """A run's answers read task by task: how far they collapse to one answer per task."""

    macro: float  # regraded from the saved outputs
    blank: int  # questions answered with nothing
    answered_accuracy: float  # the share right of the questions answered (not blank)
    mostly_blank_tasks: list[str]  # at least half the questions answered with nothing
    one_answer_tasks: list[str]  # one non-blank answer covers ONE_ANSWER_SHARE of the questions
    one_answer_is_majority: int  # of those, tasks whose one answer is a pool majority target
    top_answer_macro: float  # the score of each task's most common answer given throughout


def most_common(values: list[str]) -> list[str]:
    """Every value of the highest count, sorted."""
    counts = Counter(values)
    return sorted(v for v, c in counts.items() if c == max(counts.values()))


def score(answer: str, targets: list[str]) -> float:
    """The score of one answer given to every question of a task."""
    return mean(is_correct(answer, t) for t in targets)


def by_task(pool: Pool, values: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for example, value in zip(pool, values, strict=True):
        found[example.task].append(value)
    return dict(found)


def baselines(questions: Pool, pool: Pool) -> dict[str, Baseline]:
    asked = by_task(questions, [e.response for e in questions])
    known = by_task(pool, [normalise_answer(e.response, e.response) for e in pool])
    found = {}
    for task, targets in sorted(asked.items()):
        majority = most_common(known.get(task, []))
        candidates = set(known.get(task, [])) | {normalise_answer(t, t) for t in targets}
        found[task] = Baseline(
            majority,
            mean(score(m, targets) for m in majority) if majority else 0.0,
            max(score(c, targets) for c in candidates),
        )
    return found


def run_answers(questions: Pool, outputs: list[str], tasks: dict[str, Baseline]) -> RunAnswers:
    """A run's raw outputs (in question order) read against the tasks' constant answers."""
    metrics, correct = grade_outputs(questions, outputs)
    given_answers = [
        normalise_answer(extract_answer(o), e.response) for o, e in zip(outputs, questions)
    ]
    answers = by_task(questions, given_answers)
    answered = [hit for hit, answer in zip(correct, given_answers) if answer]
    targets = by_task(questions, [e.response for e in questions])
    one_answer, mostly_blank, top_scores, majority_hits = [], [], [], 0
    for task, given in sorted(answers.items()):
        non_blank = [a for a in given if a]
        if 2 * len(non_blank) <= len(given):
            mostly_blank.append(task)
        top = most_common(non_blank)[0] if non_blank else ""
        top_scores.append(score(top, targets[task]) if top else 0.0)
        if top and given.count(top) >= ONE_ANSWER_SHARE * len(given):
            one_answer.append(task)
            majority_hits += top in tasks[task].majority
    return RunAnswers(
        macro=metrics["bbh/macro"],
        blank=len(outputs) - len(answered),
        answered_accuracy=mean(answered) if answered else 0.0,
        mostly_blank_tasks=mostly_blank,
        one_answer_tasks=one_answer,
        one_answer_is_majority=majority_hits,
        top_answer_macro=mean(top_scores),
    )


def evaluated_questions(settings: dict) -> tuple[Pool, Pool]:
    """(the questions graded, the pool fine-tuned on), from a job's saved eval.bbh settings."""
    if settings["split"] != "heldout":
        raise SystemExit(
            "eval.bbh.split is not 'heldout': the study has no pool half to compare with"
        )
    data = load_bbh(
        Path(settings["data_dir"]) / "bbh",
        settings["tasks"],
        settings["test_fraction"],
        settings["seed"],
    )
    return limit_per_task(data.test, settings["max_examples_per_task"]), data.pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    study = parser.parse_args(argv).study
    records = {
        f.parent: RunRecord.from_json(f.read_text(), str(f)) for f in study.glob("*/metrics.json")
    }
    jobs = sorted(
        (job for job in records if (job / "bbh_predictions.jsonl").exists()),
        key=lambda job: (row_name(records[job].identity), records[job].identity.seed),
    )
    if not jobs:
        print(
            f"{study}: no job folder holds metrics.json and bbh_predictions.jsonl", file=sys.stderr
        )
        return 1
    settings = records[jobs[0]].config["eval"]["bbh"]
    for job in jobs:
        if records[job].config["eval"]["bbh"] != settings:
            print(
                f"{job}/metrics.json: its eval.bbh settings differ from {jobs[0].name}'s",
                file=sys.stderr,
            )
            return 1
    questions, pool = evaluated_questions(settings)
    tasks = baselines(questions, pool)

    print(f"{len(questions)} questions in {len(tasks)} tasks (macro = mean over tasks).")
    unread = sorted(job.name for job in set(records) - set(jobs))
    if unread:
        print(f"Not read (no bbh_predictions.jsonl): {', '.join(unread)}.")
    print("\n| baseline, no model | bbh/macro |\n|---|---:|")
    print(
        "| each task answered with its pool half's most common target"
        f" | {mean(b.majority_score for b in tasks.values()):.4f} |"
    )
    print(
        "| each task answered with its best constant answer (hindsight)"
        f" | {mean(b.best_constant for b in tasks.values()):.4f} |"
    )
    share = f"{ONE_ANSWER_SHARE:.0%}"
    print(
        f"\n| run | seed | bbh/macro | blank answers | right of those answered | tasks with one answer (>= {share}) | of those,"
        " the pool's most common target | score of each task's most common answer throughout |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    one_answer: Counter[str] = Counter()
    mostly_blank: dict[str, list[str]] = {}
    for job in jobs:
        file = job / "bbh_predictions.jsonl"
        rows = [json.loads(line) for line in file.read_text().splitlines()]
        if [r["id"] for r in rows] != [e.id for e in questions]:
            print(f"{file}: not the questions of the saved eval.bbh settings", file=sys.stderr)
            return 1
        run, recorded = records[job].identity, records[job].metrics["bbh/macro"]
        read = run_answers(questions, [r["output"] for r in rows], tasks)
        if read.macro != recorded:
            print(
                f"{file}: regraded bbh/macro {read.macro} is not metrics.json's {recorded}",
                file=sys.stderr,
            )
            return 1
        one_answer.update(read.one_answer_tasks)
        if read.mostly_blank_tasks:
            mostly_blank[f"{row_name(run)}, seed {run.seed}"] = read.mostly_blank_tasks
        print(
            f"| {row_name(run)} | {run.seed} | {read.macro:.4f} | {read.blank}"
            f" | {read.answered_accuracy:.4f} | {len(read.one_answer_tasks)} | {read.one_answer_is_majority} | {read.top_answer_macro:.4f} |"
        )
    if mostly_blank:
        print("\nTasks with at least half their answers blank:")
        for name, blank_tasks in mostly_blank.items():
            print(f"- {name}: {', '.join(blank_tasks)}")
    print(
        f"\n| task | pool's most common target (folded) | its score | best constant | runs with one answer (of {len(jobs)}) |"
    )
    print("|---|---|---:|---:|---:|")
    for task, b in tasks.items():
        shown = " / ".join(b.majority) if len(b.majority) <= 3 else f"{len(b.majority)} tied"
        print(
            f"| {task} | {shown} | {b.majority_score:.3f} | {b.best_constant:.3f} | {one_answer[task]} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
