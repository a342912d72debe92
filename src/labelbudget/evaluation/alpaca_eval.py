"""AlpacaEval (`eval=alpaca_eval`): greedy answers to open-ended instructions, written in
AlpacaEval's model-outputs format, and judged by the `alpaca_eval` package only when asked.

A win rate needs a paid LLM judge, so the default stops at the outputs file and prints the exact
command that judges it; no number is ever reported that the judge did not produce.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from labelbudget.data.jsonl import read_records
from labelbudget.data.records import FieldMap, example_from_record, existing_path
from labelbudget.data.schema import Pool, TaskData
from labelbudget.distributed import is_main_process
from labelbudget.errors import ConfigError, LabelbudgetError
from labelbudget.evaluation.base import EvalContext, EvalResult, Evaluation
from labelbudget.evaluation.tasks import generate_answers
from labelbudget.rendering import markdown_table

log = logging.getLogger(__name__)

DEFAULT_TASK = "alpaca_eval"  # the task of instructions whose file has no "dataset" field
SUGGESTED_JUDGE = "weighted_alpaca_eval_gpt4_turbo"  # AlpacaEval 2's default annotator
OUTPUTS_FILE = "model_outputs.json"
JUDGE_DIR = (
    "alpaca_eval_judge"  # under the run folder: the judge's leaderboard, annotations and log
)
WIN_RATE_COLUMNS = ("length_controlled_winrate", "win_rate")  # leaderboard columns, in percent


class JudgeError(LabelbudgetError):
    """The AlpacaEval judge failed or wrote no usable leaderboard; the message says where to look."""


@dataclass(frozen=True)
class AlpacaEvalExport(Evaluation):
    """Answers to AlpacaEval-style instructions (`eval=alpaca_eval`), optionally judged."""

    instructions: str  # a .json list or JSONL file of objects with "instruction" (+ optional "input", "dataset")
    generator: str = "labelbudget"  # the model's name in the outputs file and on the leaderboard
    max_new_tokens: int = 512
    batch_size: int = 16
    limit: int | None = None  # the first N instructions, for quick runs
    judge: str | None = None  # an alpaca_eval annotators config; None writes the outputs unjudged
    reference_outputs: str | None = (
        None  # None: the judge's default reference (AlpacaEval's GPT-4 outputs)
    )

    name: ClassVar[str] = "alpaca_eval"
    headline: ClassVar[str] = "alpaca_eval/length_controlled_winrate"

    def prepare(self, data: TaskData | None, trained_on: dict[str, Any] | None) -> Pool:
        """The instructions to answer (the first `limit`)."""
        if self.limit is not None and self.limit < 1:
            raise ConfigError(
                f"eval.alpaca_eval.limit must be a positive count or null, got {self.limit}"
            )
        if self.reference_outputs is not None:
            existing_path(
                self.reference_outputs,
                "AlpacaEval reference outputs",
                "set eval.alpaca_eval.reference_outputs, or null for the judge's default",
            )
        return self._instruction_pool()

    def run(self, context: EvalContext, inputs: Pool) -> EvalResult:
        """Greedy answers, written as model_outputs.json; judged into win rates only where
        `judge` is set and alpaca_eval installed (on the main process), else the table says how to
        judge them."""
        pool = inputs
        answers = generate_answers(context.loaded, pool, self, context.trainer_factory)
        outputs_file = context.write_text(
            OUTPUTS_FILE, model_outputs_json(pool, answers, self.generator)
        ).resolve()
        metrics = {
            "alpaca_eval/n_outputs": float(len(answers)),
            "alpaca_eval/mean_output_chars": sum(map(len, answers)) / len(answers),
        }
        if (
            self.judge is not None
            and importlib.util.find_spec("alpaca_eval") is not None
            and is_main_process()
        ):
            metrics = {**self._judge(outputs_file, context.output_dir / JUDGE_DIR), **metrics}
            note = f"win rates in percent against the reference, judged by {self.judge}; outputs in {outputs_file}"
        else:
            if self.judge is not None:
                log.warning(
                    "eval.alpaca_eval.judge=%s, but the alpaca_eval package is not installed: no win rate",
                    self.judge,
                )
            note = self._how_to_judge(outputs_file)
        settings = {
            **asdict(self),
            "n_instructions": len(pool),
            "template": type(context.loaded.template).__name__,
        }
        rows = [[key.removeprefix("alpaca_eval/"), value] for key, value in metrics.items()]
        return EvalResult(
            metrics, settings, markdown_table(["metric", "value"], rows) + "\n" + note
        )

    def _instruction_pool(self) -> Pool:
        """The instructions as a validated pool, cut to `limit`; read again by `run`, so the
        file checked before the model loads is the file evaluated."""
        path = existing_path(
            self.instructions,
            "AlpacaEval instructions file",
            "set eval.alpaca_eval.instructions to AlpacaEval's alpaca_eval.json (hub dataset tatsu-lab/alpaca_eval)",
        )
        pool = instruction_pool(path)
        return pool if self.limit is None else Pool(pool[: self.limit], pool.source)

    def _judge(self, outputs_file: Path, judge_dir: Path) -> dict[str, float]:
        """Run the judge on the outputs file and read this generator's win rates from its leaderboard."""
        judge_dir.mkdir(parents=True, exist_ok=True)
        # an earlier run's leaderboard must not pass for this one's
        for stale in judge_dir.rglob("leaderboard.csv"):
            stale.unlink()
        command = [
            sys.executable,
            "-m",
            "alpaca_eval.main",
            "evaluate",
            *self._judge_arguments(outputs_file),
            "--output_path",
            str(judge_dir.resolve()),
            # score these outputs even when the generator's name is already on the packaged
            # leaderboard, and leave that leaderboard as installed
            "--is_overwrite_leaderboard",
            "True",
            "--is_cache_leaderboard",
            "False",
        ]
        log_file = judge_dir / "alpaca_eval.log"
        log.info("judging %s with %s", outputs_file, self.judge)
        exit_code = run_judge(command, log_file)
        if exit_code != 0:
            raise JudgeError(
                f"the AlpacaEval judge {self.judge!r} failed (exit code {exit_code}); "
                f"its output is in {log_file}:\n{_tail(log_file)}"
            )
        return win_rates(judge_dir, self.generator)

    def _judge_arguments(self, outputs_file: Path) -> list[str]:
        """What `alpaca_eval evaluate` needs to judge the outputs, shared by the run and the printed command."""
        arguments = [
            "--model_outputs",
            str(outputs_file),
            "--annotators_config",
            self.judge or SUGGESTED_JUDGE,
        ]
        if self.reference_outputs is not None:
            arguments += [
                "--reference_outputs",
                str(existing_path(self.reference_outputs, "AlpacaEval reference outputs")),
            ]
        return arguments

    def _how_to_judge(self, outputs_file: Path) -> str:
        """Why there is no win rate, and the exact command that gets one."""
        reason = (
            "the alpaca_eval package is not installed here"
            if self.judge is not None
            else "no judge was set (eval.alpaca_eval.judge=null)"
        )
        command = shlex.join(["alpaca_eval", "evaluate", *self._judge_arguments(outputs_file)])
        return "\n".join(
            [
                f"wrote {outputs_file}; no win rate: {reason}. To judge it:",
                "  pip install alpaca-eval",
                "  export OPENAI_API_KEY=...",
                f"  {command}",
                "(or another judge: --annotators_config <alpaca_eval annotators config>; "
                "or set eval.alpaca_eval.judge=<config> to run it as part of this evaluation)",
            ]
        )


def instruction_pool(path: Path) -> Pool:
    """Every row of the file as an `Example`, each error naming the file, row and field.

    The instruction is the prompt and Alpaca's "input" the context, which every template joins
    after a blank line as Alpaca does; the instruction itself stays as written, for the outputs file.
    """
    source = str(path)
    examples = [
        example_from_record(
            record, _row_fields(record), source, row, id_prefix="alpaca-", suggest_config=False
        )
        for row, record in read_records(path)
    ]
    return Pool(examples, source)


def _row_fields(record: Any) -> FieldMap:
    """The mapping for one row: "input" and "dataset" are optional, so what the row holds decides.
    A "dataset" becomes the task and is kept in the metadata, to be written back unchanged."""
    present = record if isinstance(record, Mapping) else {}
    context = "input" if "input" in present else None
    if "dataset" in present:
        return FieldMap(
            prompt="instruction", task="dataset", context=context, metadata=("dataset",)
        )
    return FieldMap(prompt="instruction", task=None, task_constant=DEFAULT_TASK, context=context)


def model_outputs_json(pool: Pool, answers: list[str], generator: str) -> str:
    """AlpacaEval's model-outputs format: one object per instruction, in input order."""
    records = [
        {"instruction": e.prompt, "output": a, "generator": generator, **e.metadata}
        for e, a in zip(pool, answers)
    ]
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


def run_judge(command: list[str], log_file: Path) -> int:
    """Run the judge command, its output into `log_file`; the exit code. The one call to the
    paid judge API, kept alone so tests can replace it."""
    with log_file.open("w", encoding="utf-8") as output:
        return subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, check=False
        ).returncode


def win_rates(judge_dir: Path, generator: str) -> dict[str, float]:
    """This generator's row of the leaderboard the judge wrote under `judge_dir` (one file,
    `<judge_dir>/<annotators config>/leaderboard.csv`, first column the generator's name)."""
    found = sorted(judge_dir.rglob("leaderboard.csv"))
    if len(found) != 1:
        raise JudgeError(
            f"expected one leaderboard.csv from the AlpacaEval judge under {judge_dir}, found {len(found)}"
        )
    with found[0].open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle)) or [[]]
    row = next((r for r in rows if r and r[0] == generator), None)
    if row is None:
        raise JudgeError(
            f"{found[0]} has no row for generator {generator!r} (rows: {[r[0] for r in rows if r]})"
        )
    metrics = {}
    for column in WIN_RATE_COLUMNS:
        if column not in header:
            raise JudgeError(
                f"{found[0]} has no column {column!r} (columns: {header[1:]}); "
                "length-controlled win rates need alpaca-eval 0.6 or later"
            )
        try:
            value = float(row[header.index(column)])
        except (ValueError, IndexError):
            value = math.nan
        if not math.isfinite(value):
            raise JudgeError(
                f"{found[0]}, generator {generator!r}: column {column!r} holds no number"
            )
        metrics[f"alpaca_eval/{column}"] = value
    return metrics


def _tail(log_file: Path, lines: int = 20) -> str:
    return "\n".join(log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
