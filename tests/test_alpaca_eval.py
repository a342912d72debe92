"""AlpacaEval export: the outputs file holds the instructions and the model's own greedy answers,
bad instruction files fail before any model loads, and a win rate comes only from the judge."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import labelbudget.evaluation.alpaca_eval as alpaca_eval
from conftest import cpu_trainer, greedy_reference
from labelbudget.errors import DataError
from labelbudget.evaluation.alpaca_eval import AlpacaEvalExport, JudgeError, win_rates
from labelbudget.evaluation.base import EvalContext
from labelbudget.models.tiny import build_tiny_llama

INSTRUCTIONS = [
    {
        "instruction": "Name a colour.",
        "dataset": "helpful_base",
        "output": "Blue.",
        "generator": "gpt4_turbo",
    },
    {"instruction": "Translate to French.", "input": "Good morning", "dataset": "koala"},
    {"instruction": "Écris un haïku."},  # no "dataset": none is written back
]
# what the model must see: Alpaca's input after a blank line
PROMPTS = ["Name a colour.", "Translate to French.\n\nGood morning", "Écris un haïku."]
JUDGE = "weighted_alpaca_eval_gpt4_turbo"


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_llama(seed=0)


trainer_factory = cpu_trainer


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def export(tmp_path: Path, **settings) -> AlpacaEvalExport:
    instructions = write_json(tmp_path / "alpaca_eval.json", INSTRUCTIONS)
    return AlpacaEvalExport(
        instructions=str(instructions),
        generator="tiny-test",
        max_new_tokens=4,
        batch_size=2,
        **settings,
    )


def run(evaluation: AlpacaEvalExport, tiny, tmp_path: Path):
    inputs = evaluation.prepare(None, None)
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)
    return evaluation.run(EvalContext(tiny, trainer_factory, out), inputs), out


def alpaca_eval_importable(monkeypatch, importable: bool) -> None:
    """Pretend the alpaca_eval package is (or is not) installed, leaving every other lookup alone."""
    real_find_spec = importlib.util.find_spec
    fake = SimpleNamespace(name="alpaca_eval") if importable else None
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: fake if name == "alpaca_eval" else real_find_spec(name, *a, **k),
    )


def fake_judge(rows: dict[str, tuple[float, float]], calls: list[list[str]]):
    """Stands in for the judge subprocess: writes a leaderboard where alpaca_eval does."""

    def judge(command: list[str], log_file: Path) -> int:
        calls.append(command)
        folder = (
            Path(command[command.index("--output_path") + 1])
            / command[command.index("--annotators_config") + 1]
        )
        folder.mkdir(parents=True)
        lines = [",length_controlled_winrate,win_rate,standard_error,n_total,avg_length,mode"]
        lines += [f"{name},{lc},{wr},1.1,3,40,community" for name, (lc, wr) in rows.items()]
        (folder / "leaderboard.csv").write_text("\n".join(lines) + "\n")
        return 0

    return judge


def test_outputs_file_holds_the_instructions_in_order_and_the_models_greedy_answers(tiny, tmp_path):
    result, out = run(export(tmp_path), tiny, tmp_path)

    expected = [greedy_reference(tiny, prompt, max_new_tokens=4) for prompt in PROMPTS]
    assert any(expected), "the tiny model answered nothing: the comparison below would prove little"
    records = json.loads((out / "model_outputs.json").read_text(encoding="utf-8"))
    assert records == [
        {
            "instruction": "Name a colour.",
            "output": expected[0],
            "generator": "tiny-test",
            "dataset": "helpful_base",
        },
        {
            "instruction": "Translate to French.",
            "output": expected[1],
            "generator": "tiny-test",
            "dataset": "koala",
        },
        {"instruction": "Écris un haïku.", "output": expected[2], "generator": "tiny-test"},
    ]
    assert "Écris un haïku." in (out / "model_outputs.json").read_text(
        encoding="utf-8"
    )  # not \u-escaped
    assert result.metrics == pytest.approx(
        {"alpaca_eval/n_outputs": 3.0, "alpaca_eval/mean_output_chars": sum(map(len, expected)) / 3}
    )
    assert result.settings["n_instructions"] == 3 and result.settings["template"] == "PlainTemplate"
    assert result.settings["judge"] is None and result.settings["max_new_tokens"] == 4
    outputs_file = (out / "model_outputs.json").resolve()
    assert (
        f"alpaca_eval evaluate --model_outputs {outputs_file} --annotators_config {JUDGE}"
        in result.table
    )
    assert "pip install alpaca-eval" in result.table and "OPENAI_API_KEY" in result.table


@pytest.mark.parametrize(
    "name, content, row, field",
    [
        ("missing.json", [{"instruction": "a"}, {"prompt": "b"}], 2, "instruction"),
        ("blank.json", [{"instruction": "a"}, {"instruction": "  "}], 2, "instruction"),
        ("number.json", [{"instruction": 7}], 1, "instruction"),
        ("blank_dataset.json", [{"instruction": "a", "dataset": ""}], 1, "dataset"),
        ("input_list.json", [{"instruction": "a", "input": ["x"]}], 1, "input"),
    ],
)
def test_bad_row_names_file_row_and_field_before_any_model(tmp_path, name, content, row, field):
    path = write_json(tmp_path / name, content)
    with pytest.raises(DataError) as error:
        AlpacaEvalExport(instructions=str(path)).prepare(None, None)
    assert (error.value.source, error.value.row, error.value.field) == (str(path), row, field)
    assert (
        str(path) in str(error.value)
        and f"row {row}" in str(error.value)
        and f"field '{field}'" in str(error.value)
    )


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "broken.jsonl",
            '{"instruction": "a"}\n{"instruction": \n',
            "row 2: line is not valid JSON",
        ),
        ("broken.json", '[{"instruction": "a"},', "is not valid JSON"),
        ("empty.json", "[]", "contains no examples"),
        ("empty.jsonl", "\n", "contains no examples"),
    ],
)
def test_unreadable_or_empty_file_is_refused_naming_it(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as error:
        AlpacaEvalExport(instructions=str(path)).prepare(None, None)
    assert str(error.value).startswith(str(path))


def test_judge_win_rates_are_read_from_this_generators_leaderboard_row(tiny, tmp_path, monkeypatch):
    reference = write_json(
        tmp_path / "reference.json", [{"instruction": "Name a colour.", "output": "Red."}]
    )
    calls: list[list[str]] = []
    alpaca_eval_importable(monkeypatch, True)
    monkeypatch.setattr(
        alpaca_eval,
        "run_judge",
        fake_judge({"gpt4_turbo": (50.0, 50.0), "tiny-test": (12.5, 10.25)}, calls),
    )

    result, out = run(
        export(tmp_path, judge=JUDGE, reference_outputs=str(reference), limit=2), tiny, tmp_path
    )

    assert result.metrics["alpaca_eval/length_controlled_winrate"] == 12.5
    assert result.metrics["alpaca_eval/win_rate"] == 10.25
    assert result.metrics["alpaca_eval/n_outputs"] == 2.0
    assert len(json.loads((out / "model_outputs.json").read_text(encoding="utf-8"))) == 2
    [command] = calls
    assert command[command.index("--model_outputs") + 1] == str(
        (out / "model_outputs.json").resolve()
    )
    assert command[command.index("--reference_outputs") + 1] == str(reference.resolve())
    assert "length_controlled_winrate | 12.5000" in result.table


def test_judge_without_alpaca_eval_installed_warns_and_reports_no_win_rate(
    tiny, tmp_path, monkeypatch
):
    alpaca_eval_importable(monkeypatch, False)
    monkeypatch.setattr(
        alpaca_eval, "run_judge", lambda *_: pytest.fail("judge ran without alpaca_eval")
    )

    result, out = run(export(tmp_path, judge="alpaca_eval_gpt4"), tiny, tmp_path)

    assert set(result.metrics) == {"alpaca_eval/n_outputs", "alpaca_eval/mean_output_chars"}
    outputs_file = (out / "model_outputs.json").resolve()
    assert (
        f"alpaca_eval evaluate --model_outputs {outputs_file} --annotators_config alpaca_eval_gpt4"
        in result.table
    )
    assert "pip install alpaca-eval" in result.table and "not installed" in result.table


def test_failing_judge_raises_with_its_output(tiny, tmp_path, monkeypatch):
    def failing_judge(command: list[str], log_file: Path) -> int:
        log_file.write_text("openai.AuthenticationError: no API key provided\n")
        return 1

    alpaca_eval_importable(monkeypatch, True)
    monkeypatch.setattr(alpaca_eval, "run_judge", failing_judge)
    with pytest.raises(
        JudgeError, match=r"(?s)failed \(exit code 1\).*AuthenticationError: no API key"
    ):
        run(export(tmp_path, judge=JUDGE), tiny, tmp_path)


@pytest.mark.parametrize(
    "csv_text, message",
    [
        (",win_rate,n_total\ntiny-test,10.0,3\n", "no column 'length_controlled_winrate'"),
        (
            ",length_controlled_winrate,win_rate\nother,1.0,2.0\n",
            "no row for generator 'tiny-test'",
        ),
        (",length_controlled_winrate,win_rate\ntiny-test,,2.0\n", "holds no number"),
    ],
)
def test_leaderboard_without_this_generators_win_rates_is_an_error_not_a_number(
    tmp_path, csv_text, message
):
    (tmp_path / JUDGE).mkdir()
    (tmp_path / JUDGE / "leaderboard.csv").write_text(csv_text)
    with pytest.raises(JudgeError, match=message):
        win_rates(tmp_path, "tiny-test")


def test_no_leaderboard_written_is_an_error(tmp_path):
    with pytest.raises(JudgeError, match="found 0"):
        win_rates(tmp_path, "tiny-test")
