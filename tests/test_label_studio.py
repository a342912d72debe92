"""annotate.py against a real Label Studio server, started from its own virtualenv.

`make label-studio` builds .venv-label-studio (and `make test` does too); the session fixture
starts the server on a free port with its data in a temporary folder and stops it at the end.
Annotators answer through the server's API, as its web page does (`label_studio`: these run in
every `make test`); one test drives the page itself in headless Chromium (`browser`: skipped,
saying why, where `make browser` has not installed it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

import labelbudget.stages.train
import labelbudget.training.fit
from conftest import REPO_ROOT, compose_config, read_jsonl
from labelbudget.errors import ConfigError, DataError
from labelbudget.stages.annotate import run_annotate
from labelbudget.stages.select import run_select

SERVER = REPO_ROOT / ".venv-label-studio" / "bin" / "label-studio"
TOKEN = "5f0c1d2e3b4a59687766554433221100ffeeddcc"  # the test user's, given at start
TOKEN_ENV = "LABELBUDGET_TEST_LS_TOKEN"
STARTUP_S = 240  # migrations on a new database take about 30-60 s


@dataclass(frozen=True)
class Server:
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Server:
    if not SERVER.is_file():
        pytest.fail(f"Label Studio is not built ({SERVER} missing): run `make label-studio`")
    data = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # the token given at start is accepted
        "COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
    }
    log = data / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                str(SERVER),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data),
                "--username",
                "annotator@example.com",
                "--password",
                "labelbudget-test",
                "--user-token",
                TOKEN,
                "--enable-legacy-api-token",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_S
        while not answering(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Label Studio did not start at {url}:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield Server(url, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Stop the server's process group; one that already exited (a failed start) is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def sdk(label_studio):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=label_studio.url, api_key=TOKEN)


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


SMALL = ["dataset.pool_per_task=6", "dataset.tasks=[arith_add_small,cls_prime,str_reverse_letters]"]


def selected(tmp_path: Path, budget: int = 6) -> Path:
    """select.py on the tiny model and the embedded pool: the run folder."""
    cfg = compose_config(
        "select",
        "model=tiny_llama",
        *SMALL,
        "selector=task_diversity",
        f"budget={budget}",
        folder=tmp_path,
        output="selected",
    )
    run_select(cfg)
    return tmp_path / "selected"


def annotate(server: Server, action: str, selection: Path, *overrides: str, folder: Path):
    cfg = compose_config(
        "annotate",
        f"action={action}",
        f"selection={selection}",
        f"annotator.url={server.url}",
        f"annotator.token_env={TOKEN_ENV}",
        *overrides,
        folder=folder,
        output=f"annotate-{action}",
    )
    return run_annotate(cfg)


def answer(sdk, task_id: int, text: str, cancelled: bool = False) -> None:
    """What the web page sends when an annotator submits (or skips) a task."""
    result = (
        []
        if cancelled
        else [
            {
                "from_name": "response",
                "to_name": "prompt",
                "type": "textarea",
                "value": {"text": [text]},
            }
        ]
    )
    sdk.annotations.create(id=task_id, result=result, was_cancelled=cancelled)


def project_of(sdk, selection: Path) -> int:
    from labelbudget.stages.annotate import project_title, read_prompts, selection_file

    file = selection_file(selection)
    title = project_title(file, read_prompts(file))
    return next(p.id for p in sdk.projects.list(title=title) if p.title == title)


def tasks_by_id(sdk, project: int) -> dict[str, object]:
    return {t.data["labelbudget_id"]: t for t in sdk.tasks.list(project=project, fields="all")}


@pytest.mark.label_studio
def test_select_push_annotate_pull_train(label_studio, sdk, token, tmp_path, capsys, monkeypatch):
    run = selected(tmp_path)
    rows = read_jsonl(run / "selection.jsonl")
    annotate(label_studio, "push", run, folder=tmp_path)
    assert "imported 6 tasks: annotate them at " in capsys.readouterr().out
    project = project_of(sdk, run)
    tasks = tasks_by_id(sdk, project)
    shown = tasks[rows[0]["id"]].data
    assert shown["prompt"] == rows[0]["prompt"] and shown["fingerprint"] == rows[0]["fingerprint"]
    expected = {}
    for index, row in enumerate(rows):
        task = tasks[row["id"]].id
        if index == 0:  # skipped by one annotator, then answered by another
            answer(sdk, task, "", cancelled=True)
        answer(sdk, task, f"first answer {index}")
        if index == 1:  # answered twice: the later one counts
            time.sleep(0.01)
            answer(sdk, task, f"second answer {index}")
        expected[row["id"]] = f"second answer {index}" if index == 1 else f"first answer {index}"
    annotate(label_studio, "push", run, folder=tmp_path)  # a re-push: nothing new
    assert "added nothing (6 of the 6 were there already)" in capsys.readouterr().out
    assert len(tasks_by_id(sdk, project)) == 6
    out = annotate(label_studio, "pull", run, folder=tmp_path)
    assert out == run / "responses.jsonl"
    printed = capsys.readouterr().out
    assert "wrote 6 answers" in printed and "1 cancelled left out, 1 tasks answered more" in printed
    pulled = read_jsonl(out)
    assert [r["id"] for r in pulled] == [r["id"] for r in rows]  # the selection's order
    assert {r["id"]: r["response"] for r in pulled} == expected
    assert [r["fingerprint"] for r in pulled] == [r["fingerprint"] for r in rows]
    # train.py fine-tunes on exactly those answers
    seen = {}
    fine_tune = labelbudget.training.fit.fine_tune

    def recording(model, examples, *args):
        seen.update({e.id: e.response for e in examples})
        return fine_tune(model, examples, *args)

    monkeypatch.setattr(labelbudget.training.fit, "fine_tune", recording)
    metrics = labelbudget.stages.train.run_train(
        compose_config(
            "train",
            "model=tiny_llama",
            *SMALL,
            "selector=task_diversity",
            "budget=6",
            f"annotations={out}",
            "finetune.epochs=1",
            "eval.tasks.max_new_tokens=2",
            folder=tmp_path,
            output="trained",
        )
    )
    assert seen == expected and metrics["train/examples"] == 6.0
    for written in (tmp_path / "annotate-push", tmp_path / "annotate-pull"):
        for file in written.rglob("*"):
            assert not file.is_file() or TOKEN not in file.read_text(errors="replace")


@pytest.mark.label_studio
def test_a_partial_pull_is_refused_unless_allowed(label_studio, sdk, token, tmp_path):
    run = selected(tmp_path, budget=4)
    annotate(label_studio, "push", run, folder=tmp_path)
    rows = read_jsonl(run / "selection.jsonl")
    tasks = tasks_by_id(sdk, project_of(sdk, run))
    answer(sdk, tasks[rows[0]["id"]].id, "only this one")
    answer(sdk, tasks[rows[1]["id"]].id, "", cancelled=True)
    with pytest.raises(
        DataError,
        match=r"3 of its 4 prompts have no answer yet .* see them at "
        rf"{label_studio.url}/projects/\d+/data, or allow_partial=true writes the 1",
    ):
        annotate(label_studio, "pull", run, folder=tmp_path)
    assert not (run / "responses.jsonl").exists()
    out = annotate(label_studio, "pull", run, "allow_partial=true", folder=tmp_path)
    assert [(r["id"], r["response"]) for r in read_jsonl(out)] == [(rows[0]["id"], "only this one")]
    # more answers later: a second pull does not overwrite the first file silently
    answer(sdk, tasks[rows[2]["id"]].id, "a later answer")
    with pytest.raises(DataError, match="exists with other answers: pass out=<another file>"):
        annotate(label_studio, "pull", run, "allow_partial=true", folder=tmp_path)
    again = annotate(
        label_studio, "pull", run, "allow_partial=true", "overwrite=true", folder=tmp_path
    )
    assert len(read_jsonl(again)) == 2


@pytest.mark.label_studio
def test_bad_states_end_in_one_line_that_says_what_to_do(
    label_studio, sdk, token, tmp_path, monkeypatch
):
    run = selected(tmp_path, budget=3)
    down = compose_config(
        "annotate",
        "action=push",
        f"selection={run}",
        f"annotator.url=http://127.0.0.1:{free_port()}",
        f"annotator.token_env={TOKEN_ENV}",
        folder=tmp_path,
    )
    with pytest.raises(ConfigError, match=r"does not answer .*: is it started\? \(annotator.url\)"):
        run_annotate(down)
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    with pytest.raises(ConfigError, match=f"refused the token in {TOKEN_ENV} \\(HTTP 401\\)"):
        annotate(label_studio, "push", run, folder=tmp_path)
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ConfigError, match=f"set the environment variable {TOKEN_ENV}"):
        annotate(label_studio, "push", run, folder=tmp_path)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    other = sdk.projects.create(
        title="someone else's", label_config="<View><Text name='t' value='$text'/></View>"
    )
    sdk.projects.import_tasks(id=other.id, request=[{"text": "not ours"}])
    with pytest.raises(ConfigError, match=f"project {other.id} at .* is not labelbudget's"):
        annotate(label_studio, "push", run, f"annotator.project={other.id}", folder=tmp_path)
    with pytest.raises(ConfigError, match="has no project 99999"):
        annotate(label_studio, "pull", run, "annotator.project=99999", folder=tmp_path)
    with pytest.raises(ConfigError, match="has no project 'labelbudget selection .*': push the"):
        annotate(label_studio, "pull", run, folder=tmp_path)
    # a task whose fingerprint is not the selection's: another prompt's answer, refused
    annotate(label_studio, "push", run, folder=tmp_path)
    rows = read_jsonl(run / "selection.jsonl")
    task = tasks_by_id(sdk, project_of(sdk, run))[rows[0]["id"]]
    sdk.tasks.update(id=task.id, data={**task.data, "fingerprint": "0000000000000000"})
    for row in rows:
        answer(sdk, tasks_by_id(sdk, project_of(sdk, run))[row["id"]].id, "x")
    with pytest.raises(
        DataError,
        match=r"task \d+, field 'fingerprint': was shown with "
        r"fingerprint '0000000000000000', not the selection's",
    ):
        annotate(label_studio, "pull", run, folder=tmp_path)
    # a selection edited after it was selected
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps({**r, "prompt": r["prompt"] + "!"}) + "\n" for r in rows))
    with pytest.raises(
        DataError, match=r"edited.jsonl, row 1, field 'fingerprint': is not the row's"
    ):
        annotate(label_studio, "push", edited, folder=tmp_path)


@pytest.mark.label_studio
def test_a_second_round_goes_into_the_first_rounds_project(label_studio, sdk, token, tmp_path):
    run = selected(tmp_path, budget=5)
    rows = read_jsonl(run / "selection.jsonl")
    first = tmp_path / "round1" / "first_round.jsonl"
    first.parent.mkdir()
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    annotate(label_studio, "push", first.parent, folder=tmp_path)
    project = project_of(sdk, first.parent)
    for task in tasks_by_id(sdk, project).values():
        answer(sdk, task.id, f"round 1: {task.data['labelbudget_id']}")
    annotate(label_studio, "push", run, f"annotator.project={project}", folder=tmp_path)
    tasks = tasks_by_id(sdk, project)
    assert sorted(tasks) == sorted(r["id"] for r in rows)  # round 1's two, and only 3 new
    for row in rows[2:]:
        answer(sdk, tasks[row["id"]].id, f"round 2: {row['id']}")
    out = annotate(label_studio, "pull", run, f"annotator.project={project}", folder=tmp_path)
    assert [r["response"] for r in read_jsonl(out)] == [
        f"round {1 if i < 2 else 2}: {r['id']}" for i, r in enumerate(rows)
    ]


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.mark.browser
@pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="no headless Chromium here (make browser installs Debian's)",
)
def test_the_task_page_shows_the_prompt_and_takes_a_response(label_studio, sdk, token, tmp_path):
    """In a real browser: log in, open the pushed task, see the prompt, type and submit; the
    pull then writes what was typed."""
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    run = selected(tmp_path, budget=2)  # a selection of its own: the server is shared
    annotate(label_studio, "push", run, folder=tmp_path)
    rows = read_jsonl(run / "selection.jsonl")
    project = project_of(sdk, run)
    task = tasks_by_id(sdk, project)[rows[0]["id"]].id
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    wait = WebDriverWait(driver, 90)
    try:
        driver.get(f"{label_studio.url}/user/login/")
        wait.until(shown.presence_of_element_located((By.NAME, "email"))).send_keys(
            "annotator@example.com"
        )
        driver.find_element(By.NAME, "password").send_keys("labelbudget-test")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/user/login" not in d.current_url)
        driver.get(f"{label_studio.url}/projects/{project}/data?task={task}")
        first_line = rows[0]["prompt"].splitlines()[0]
        wait.until(
            shown.presence_of_element_located(
                (By.XPATH, f"//*[contains(text(), {json.dumps(first_line[:30])})]")
            )
        )
        for _ in range(5):  # the page renders the editor more than once as it loads
            try:
                area = wait.until(shown.element_to_be_clickable((By.TAG_NAME, "textarea")))
                area.click()
                area.send_keys("typed in the page")
                break
            except StaleElementReferenceException:
                time.sleep(1)
        assert area.get_attribute("value") == "typed in the page"
        driver.save_screenshot(str(tmp_path / "task_page.png"))
        driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
        wait.until(lambda d: tasks_by_id(sdk, project)[rows[0]["id"]].annotations)
    finally:
        driver.quit()
    out = annotate(label_studio, "pull", run, "allow_partial=true", folder=tmp_path)
    assert read_jsonl(out) == [
        {
            "id": rows[0]["id"],
            "response": "typed in the page",
            "fingerprint": rows[0]["fingerprint"],
        }
    ]
