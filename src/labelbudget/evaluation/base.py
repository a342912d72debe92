"""What every evaluation shares.

Settings from config (`eval.<name>`), `prepare` (its inputs checked and loaded before any model
loads), and a run on what `prepare` returned, which gives metrics, the settings that produced
them (so numbers can be compared across papers) and a table for the terminal. An evaluation
keeps nothing on itself: the same object runs on any model, any number of times.

`evaluate.py` and the end of `train.py` run every evaluation in the `eval` node in order:
`eval=mmlu`, or several at once with `eval=[tasks,mmlu,bbh]`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from labelbudget.data.schema import Example, TaskData
from labelbudget.io import atomic_write_text

if TYPE_CHECKING:  # the report imports HEADLINES: keep it free of torch and lightning
    import lightning as L

    from labelbudget.models.loading import LoadedModel


# labelbudget's evaluations' `headline`s, in the report's order: for the records written before
# metrics.json named its run's (RunRecord.headlines), since the report imports no evaluation
# (they need torch); a test checks it against the evaluations' own.
HEADLINES = ("tasks/macro", "mmlu/micro", "bbh/macro", "alpaca_eval/length_controlled_winrate")
# A macro headline is the mean of per-task metrics named "<prefix><task>": the report pairs runs
# task by task through these.
PER_TASK = {"tasks/macro": "tasks/", "bbh/macro": "bbh/task/"}


def per_task(metrics: dict[str, float], headline: str) -> dict[str, float]:
    """The per-task values behind a macro headline ({} for a headline without them)."""
    prefix = PER_TASK.get(headline)
    if prefix is None:
        return {}
    return {
        key.removeprefix(prefix): value
        for key, value in metrics.items()
        if key.startswith(prefix) and key not in (headline, f"{prefix}micro")
    }


@dataclass
class EvalContext:
    """What an evaluation run gets.

    Attributes:
        loaded: the model (base, or base + adapter).
        trainer_factory: a Trainer for its inference passes (devices and DDP from the config).
        output_dir: the run folder, for its files.
    """

    loaded: LoadedModel
    trainer_factory: Callable[..., L.Trainer]
    output_dir: Path

    def write_text(self, name: str, text: str) -> Path:
        """Write a file into the run folder (atomically), once.

        Under DDP every rank computes the same results, and the main process alone writes them.
        """
        # imported here: the report imports this module without torch
        from labelbudget.distributed import is_main_process

        path = self.output_dir / name
        if is_main_process():
            atomic_write_text(path, text)
        return path


@dataclass
class EvalResult:
    """An evaluation's numbers, the settings that determine them, and its terminal table."""

    metrics: dict[str, float]  # keys "<name>/<metric>", e.g. "mmlu/micro"
    settings: dict[str, Any]  # everything that determines the numbers
    table: str  # what the terminal shows


class Evaluation(ABC):
    """Base of all evaluations (held-out tasks, MMLU, BBH, AlpacaEval).

    Subclasses set `name` (the config name and the metrics' prefix), `headline` and
    `needs_dataset`, implement `run`, and may implement `prepare`.
    """

    name: ClassVar[str]
    headline: ClassVar[
        str
    ]  # the metric the field reports; the summary line and report lead with it
    needs_dataset: ClassVar[bool] = False

    def prepare(self, data: TaskData | None, trained_on: dict[str, Any] | None) -> Any:
        """Check the inputs and load them, before the model loads.

        Args:
            data: the pool's dataset, when `needs_dataset`.
            trained_on: the dataset config the model was fine-tuned on (None for a base model),
                so that a benchmark can refuse to test on the prompts it trained on.

        Returns:
            What `run` needs (questions, examples, prompts), handed to it as `inputs`.

        Raises:
            ConfigError: a setting or input that cannot work, saying why.
        """
        return None

    @abstractmethod
    def run(self, context: EvalContext, inputs: Any) -> EvalResult:
        """Evaluate, writing any per-example files into `context.output_dir`.

        Args:
            context: the model to score and where to write.
            inputs: what `prepare` returned.

        Returns:
            Metrics keyed "<name>/<metric>", the settings behind them, and a table.
        """


def trained_loader(trained_on: dict[str, Any] | None) -> str | None:
    """The loader function's name of a dataset config ("load_mmlu"), or None."""
    if not trained_on or not isinstance(trained_on.get("_target_"), str):
        return None
    return trained_on["_target_"].rsplit(".", 1)[-1]


def encode(loaded: LoadedModel, text: str, use_chat_template: bool) -> list[int]:
    """Raw text with the tokenizer's own special tokens, or the model's template around it."""
    if use_chat_template:
        return loaded.template.encode_prompt(
            loaded.tokenizer, Example(id="-", task="-", prompt=text)
        )
    return loaded.tokenizer(text)["input_ids"]
