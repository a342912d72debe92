"""docs/adding_an_evaluation.md's worked example, run as written: its module, its YAML and its
questions file, through evaluate.py and train.py on the tiny model, from Python as the page
shows, and its bad rows refused before any model loads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, greedy_reference, read_jsonl
from labelbudget.errors import ConfigError, DataError, MissingResourceError
from labelbudget.models.tiny import build_tiny_llama

DOC = REPO_ROOT / "docs" / "adding_an_evaluation.md"
QUESTIONS = Path("my_data") / "short_qa.jsonl"  # where the doc's YAML looks, from the project
OWN_ANSWER = (0, 2)  # rows given the tiny model's own answer as an accepted answer: they count
LONGER_ANSWER = 1  # the row given its answer plus a letter: a longer string does not count


def doc_blocks(language: str) -> list[str]:
    """Every fenced block of that language in the doc, in order."""
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def write_project(folder: Path) -> Path:
    """The doc's three files, where the doc puts them."""
    (folder / "my_evals").mkdir(parents=True)
    (folder / "my_evals" / "__init__.py").write_text("")
    (folder / "my_evals" / "short_qa.py").write_text(doc_blocks("python")[0])
    (folder / "my_conf" / "eval").mkdir(parents=True)
    (folder / "my_conf" / "eval" / "short_qa.yaml").write_text(doc_blocks("yaml")[0])
    (folder / QUESTIONS).parent.mkdir()
    (folder / QUESTIONS).write_text(doc_blocks("jsonl")[0])
    return folder


def greedy(tiny, question: str, max_new_tokens: int) -> str:
    """The page's answer, written out here: the greedy reference cut at the line end."""
    return greedy_reference(tiny, question, max_new_tokens).split("\n")[0]


def run_entry(project: Path, script: str, *overrides: str) -> subprocess.CompletedProcess:
    """labelbudget's entry point run from the project's folder, as the doc's commands are."""
    command = [
        sys.executable,
        str(REPO_ROOT / script),
        "model=tiny_llama",
        *overrides,
        f'hydra.searchpath=["file://{project / "my_conf"}"]',
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")])),
        "LABELBUDGET_CACHE": str(project / "cache"),
        "WANDB_MODE": "offline",
    }
    return subprocess.run(
        command, cwd=project, env=environment, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The project, its questions file given answers that must and must not count, the answers
    expected of the tiny model, and evaluate.py's run on it."""
    project = write_project(tmp_path_factory.mktemp("project"))
    rows = read_jsonl(project / QUESTIONS)
    max_new_tokens = 16  # the doc's YAML
    assert f"max_new_tokens: {max_new_tokens}" in doc_blocks("yaml")[0]
    tiny = build_tiny_llama(seed=0)  # conf/model/tiny_llama.yaml's
    expected = [greedy(tiny, row["question"], max_new_tokens) for row in rows]
    # an answer that is one non-blank line, and no accepted answer already: else the counts
    # below would not follow from how the file was written
    assert all(answer.strip() and answer.splitlines() == [answer] for answer in expected)
    assert not any(answer in row["answers"] for answer, row in zip(expected, rows))
    for i in OWN_ANSWER:
        rows[i]["answers"].append(expected[i])
    rows[LONGER_ANSWER]["answers"].append(expected[LONGER_ANSWER] + "x")
    (project / QUESTIONS).write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_entry(project, "evaluate.py", "eval=short_qa", f"hydra.run.dir={project / 'eval'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return project, rows, expected, result


def test_evaluate_py_grades_the_models_own_greedy_answers(evaluated):
    project, rows, expected, result = evaluated
    predictions = read_jsonl(project / "eval" / "short_qa_predictions.jsonl")
    assert [p["id"] for p in predictions] == [row["id"] for row in rows]
    assert [p["prediction"] for p in predictions] == expected
    assert [p["answers"] for p in predictions] == [row["answers"] for row in rows]
    correct = [1.0 if i in OWN_ANSWER else 0.0 for i in range(len(rows))]
    assert [p["correct"] for p in predictions] == correct

    record = json.loads((project / "eval" / "metrics.json").read_text())
    exact_match = sum(correct) / len(rows)  # 2 of 5
    mean_chars = sum(map(len, expected)) / len(rows)
    assert record["metrics"] == pytest.approx(
        {"short_qa/exact_match": exact_match, "short_qa/mean_answer_chars": mean_chars}
    )
    assert record["settings"]["short_qa"] == {
        "questions": str(QUESTIONS),
        "max_new_tokens": 16,
        "batch_size": 16,
        "n_questions": 5,
        "stop_strings": ["\n"],
        "template": "PlainTemplate",
    }
    assert (record["run"]["selector"], record["run"]["budget"]) == ("zero-shot", 0)
    summary = result.stdout.strip().splitlines()[-1]
    assert summary == (
        f"short_qa/exact_match {exact_match:.4f}; wrote {project / 'eval' / 'metrics.json'}"
    )
    assert f"| exact_match | {exact_match:.4f} |" in result.stdout


def test_train_py_runs_it_beside_the_held_out_tasks(evaluated):
    """Budget 0: the base model under a training run's settings, so its numbers must be
    evaluate.py's."""
    project, _, _, _ = evaluated
    result = run_entry(
        project,
        "train.py",
        "logger=none",
        "budget=0",
        "dataset.pool_per_task=6",
        "dataset.test_per_task=1",
        "eval=[tasks,short_qa]",
        "eval.tasks.max_new_tokens=2",
        f"hydra.run.dir={project / 'train'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((project / "train" / "metrics.json").read_text())["metrics"]
    evaluated_alone = json.loads((project / "eval" / "metrics.json").read_text())["metrics"]
    assert {k: v for k, v in trained.items() if k.startswith("short_qa/")} == evaluated_alone
    assert "tasks/macro" in trained
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(
        f"tasks/macro {trained['tasks/macro']:.4f}, short_qa/exact_match 0.4000;"
    )


def test_the_report_leads_with_its_headline(evaluated, tmp_path):
    from labelbudget.report import write_report

    project, _, _, _ = evaluated
    record = json.loads((project / "eval" / "metrics.json").read_text())
    assert record["headlines"] == ["short_qa/exact_match"]
    report = write_report([project / "eval"], tmp_path / "report")
    assert "| selector | budget | seeds | short_qa/exact_match |\n" in report  # headline table
    assert "### short_qa/exact_match\n" in report
    assert "| zero-shot | 0.4000 ± " in report
    assert (tmp_path / "report" / "plots" / "short_qa_exact_match.png").is_file()


@pytest.fixture
def module(evaluated, monkeypatch):
    """The doc's module imported from the project, and the project as the working folder."""
    project = evaluated[0]
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    import my_evals.short_qa

    yield my_evals.short_qa
    for name in [m for m in sys.modules if m.startswith("my_evals")]:
        del sys.modules[name]


def test_the_python_snippet_gives_evaluate_pys_numbers(evaluated, module, capsys):
    project = evaluated[0]
    namespace: dict = {}
    exec(doc_blocks("python")[1], namespace)
    result = namespace["result"]
    record = json.loads((project / "eval" / "metrics.json").read_text())
    assert result.metrics == pytest.approx(record["metrics"])
    assert capsys.readouterr().out.strip().endswith("0.4 5")
    assert read_jsonl(project / "out" / "short_qa_predictions.jsonl") == read_jsonl(
        project / "eval" / "short_qa_predictions.jsonl"
    )


def test_the_docs_bad_row_ends_the_run_on_one_line_before_the_model_loads(tmp_path):
    """The doc's example: row 3's accepted answers written as a string, not a list."""
    project = write_project(tmp_path / "my_project")
    rows = read_jsonl(project / QUESTIONS)
    rows[2]["answers"] = "William Shakespeare"
    (project / QUESTIONS).write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_entry(project, "evaluate.py", "eval=short_qa", f"hydra.run.dir={project / 'eval'}")
    (shown,) = doc_blocks("text")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        shown.strip().replace("/home/you/my_project", str(project))
    ]
    assert "loading model" not in result.stdout
    assert not (project / "eval" / "metrics.json").exists()


@pytest.mark.parametrize(
    "lines, row, field, message",
    [
        (['{"id": "a", "answers": ["x"]}'], 1, "question", "must be a non-empty string, got None"),
        (['{"question": " ", "answers": ["x"]}'], 1, "question", "got ' '"),
        (['{"question": "q", "answers": ["x"]}', '{"question": "q"}'], 2, "answers", "got None"),
        (['{"question": "q", "answers": []}'], 1, "answers", "got []"),
        (['{"question": "q", "answers": ["x", 3]}'], 1, "answers", "got ['x', 3]"),
        (['{"id": 7, "question": "q", "answers": ["x"]}'], 1, "id", "got 7"),
        (
            ['{"id": "a", "question": "q", "answers": ["x"]}'] * 2,
            2,
            "id",
            "id 'a' is row 1's",
        ),
        (['["q", "x"]'], 1, None, "expected an object, got list"),
        (['{"question": "q", "answers": ["x"]}', '{"question": '], 2, None, "not valid JSON"),
        (["", ""], None, None, "holds no questions"),
    ],
)
def test_a_bad_row_is_refused_naming_its_row_and_field(
    module, tmp_path, lines, row, field, message
):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as error:
        module.ShortAnswerQA(questions=str(path)).prepare(None, None)
    assert (error.value.source, error.value.row, error.value.field) == (str(path), row, field)
    assert message in error.value.message
    where = str(path) + (f", row {row}" if row else "") + (f", field '{field}'" if field else "")
    assert str(error.value).startswith(f"{where}: ")


def test_rows_without_ids_are_numbered_and_bad_settings_refused(module, tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question": "q1", "answers": ["a"]}\n{"question": "q2", "answers": ["b"]}\n')
    questions = module.ShortAnswerQA(questions=str(path)).prepare(None, None)
    assert [(q.id, q.question, q.answers) for q in questions] == [
        ("row-1", "q1", ("a",)),
        ("row-2", "q2", ("b",)),
    ]
    with pytest.raises(ConfigError, match="eval.short_qa.max_new_tokens must be at least 1, got 0"):
        module.ShortAnswerQA(questions=str(path), max_new_tokens=0).prepare(None, None)
    with pytest.raises(MissingResourceError, match="questions file not found at .*absent.jsonl"):
        module.ShortAnswerQA(questions=str(tmp_path / "absent.jsonl")).prepare(None, None)
