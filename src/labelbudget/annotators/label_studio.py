"""Label Studio as the annotation tool: a project per selection, one task per prompt.

Each task carries the prompt's pool id and fingerprint in its data, so that what comes back can
be tied to what was shown. The client is Label Studio's own SDK (`labelbudget[annotation]`); the
API token is read from an environment variable and never written anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from labelbudget.errors import ConfigError, DataError, MissingResourceError

ID_KEY = "labelbudget_id"  # the pool id, in every task's data: what makes a project labelbudget's
RESPONSE = "response"  # the text area's name in the labelling interface
# the prompt and its context shown, a required text area of one answer below them
LABEL_CONFIG = f"""<View>
  <Header value="Task: $task"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Context" size="6"/>
  <Text name="context" value="$context"/>
  <TextArea name="{RESPONSE}" toName="prompt" placeholder="Write the response"
            required="true" maxSubmissions="1" editable="true" rows="4"/>
</View>"""


@dataclass(frozen=True)
class Prompt:
    """One prompt to annotate: a row of selection.jsonl (or a probe's, or CoS-Low's sample)."""

    id: str
    task: str
    prompt: str
    context: str | None
    fingerprint: str

    def task_data(self) -> dict[str, Any]:
        """The task as Label Studio imports it: what the interface shows, and the pool id and
        fingerprint that tie its answer back to the prompt."""
        return {
            ID_KEY: self.id,
            "fingerprint": self.fingerprint,
            "task": self.task,
            "prompt": self.prompt,
            "context": self.context or "",
        }


@dataclass(frozen=True)
class Answer:
    """One prompt's answer, as pulled from its Label Studio task."""

    id: str
    response: str
    fingerprint: str  # the one the task carried: what the annotator was shown


@dataclass(frozen=True)
class Pulled:
    """What `pull` brought back: the answers, and what it left out."""

    answers: dict[str, Answer]  # pool id -> its latest answer that was not cancelled
    cancelled: int  # cancelled annotations left out
    several: int  # tasks with more than one answer (the latest taken)
    missing: list[str]  # pool ids of the prompts with no answer yet


class LabelStudio:
    """A Label Studio server: `url`, and the access token in the environment variable
    `token_env` (Account & Settings -> Access Token in the web page)."""

    def __init__(
        self, url: str, token_env: str = "LABEL_STUDIO_API_KEY", project: int | None = None
    ):
        self.url, self.token_env, self.project = url.rstrip("/"), token_env, project

    def project_url(self, project: int) -> str:
        """The project's page of tasks, where annotators work."""
        return f"{self.url}/projects/{project}/data"

    def _client(self):
        try:
            from label_studio_sdk import LabelStudio as Client
        except ImportError:
            raise MissingResourceError(
                "annotating in Label Studio needs its SDK: pip install 'labelbudget[annotation]'"
            ) from None
        token = os.environ.get(self.token_env)
        if not token:
            raise ConfigError(
                f"annotator.token_env: set the environment variable {self.token_env} to your "
                f"Label Studio access token (Account & Settings in {self.url})"
            )
        return Client(base_url=self.url, api_key=token)

    @contextmanager
    def _server(self) -> Iterator[Any]:
        """The SDK client; a server that does not answer or refuses the token ends in one line."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        client = self._client()
        try:
            yield client
        except httpx.TransportError as error:
            raise ConfigError(
                f"Label Studio at {self.url} does not answer ({error}): is it started? "
                "(annotator.url)"
            ) from None
        except ApiError as error:
            if error.status_code in (401, 403):
                raise ConfigError(
                    f"Label Studio at {self.url} refused the token in {self.token_env} "
                    f"(HTTP {error.status_code}): copy it again from Account & Settings"
                ) from None
            raise ConfigError(
                f"Label Studio at {self.url} answered HTTP {error.status_code}: {error.body}"
            ) from None

    def _find(self, client, title: str) -> int | None:
        """The project to use: annotator.project where given (it must exist), else the one
        titled `title` (the selection's), else None."""
        from label_studio_sdk.core.api_error import ApiError

        if self.project is not None:
            try:
                return client.projects.get(id=self.project).id
            except ApiError as error:
                if error.status_code == 404:
                    raise ConfigError(
                        f"annotator.project: Label Studio at {self.url} has no project "
                        f"{self.project}"
                    ) from None
                raise
        matches = [p.id for p in client.projects.list(title=title) if p.title == title]
        return max(matches) if matches else None

    def _tasks(self, client, project: int) -> list[Any]:
        tasks = list(client.tasks.list(project=project, fields="all"))
        foreign = [t.id for t in tasks if ID_KEY not in (t.data or {})]
        if foreign:
            raise ConfigError(
                f"Label Studio project {project} at {self.url} is not labelbudget's: "
                f"{len(foreign)} of its {len(tasks)} tasks carry no '{ID_KEY}' (task "
                f"{foreign[0]}); name another with annotator.project, or none to create one"
            )
        return tasks

    def push(self, prompts: Sequence[Prompt], title: str) -> tuple[int, int, int]:
        """Create the project titled `title` (or reuse it, or annotator.project) and import one
        task per prompt it does not hold yet: (project id, tasks imported, tasks there already).
        A prompt already there with another fingerprint is refused: it was edited since."""
        with self._server() as client:
            project = self._find(client, title)
            if project is None:
                project = client.projects.create(title=title, label_config=LABEL_CONFIG).id
            held = {t.data[ID_KEY]: t for t in self._tasks(client, project)}
            changed = [
                p.id
                for p in prompts
                if p.id in held and held[p.id].data.get("fingerprint") != p.fingerprint
            ]
            if changed:
                raise DataError(
                    f"Label Studio project {project}",
                    f"holds {len(changed)} of these prompts with another fingerprint (edited "
                    f"since they were pushed), e.g. {changed[0]!r}: push to a new project",
                )
            new = [p.task_data() for p in prompts if p.id not in held]
            if new:
                client.projects.import_tasks(id=project, request=new)
            return project, len(new), len(prompts) - len(new)

    def pull(self, prompts: Sequence[Prompt], title: str) -> tuple[int, Pulled]:
        """The latest answer to each prompt that was not cancelled, from the project titled
        `title` (or annotator.project); a task's fingerprint must be the prompt's."""
        with self._server() as client:
            project = self._find(client, title)
            if project is None:
                raise ConfigError(
                    f"Label Studio at {self.url} has no project '{title}': push the selection "
                    "first (action=push), or name it with annotator.project"
                )
            tasks: dict[str, list[Any]] = {}  # a prompt imported twice (by hand): both its tasks
            for task in self._tasks(client, project):
                tasks.setdefault(task.data[ID_KEY], []).append(task)
        answers, cancelled, several, missing = {}, 0, 0, []
        for prompt in prompts:
            if prompt.id not in tasks:
                missing.append(prompt.id)
                continue
            for task in tasks[prompt.id]:
                shown = task.data.get("fingerprint")
                if shown != prompt.fingerprint:
                    raise DataError(
                        f"Label Studio project {project}, task {task.id}",
                        f"was shown with fingerprint {shown!r}, not the selection's "
                        f"{prompt.fingerprint!r} for {prompt.id!r}: it is another prompt's answer",
                        field="fingerprint",
                    )
            given = [a for task in tasks[prompt.id] for a in (task.annotations or [])]
            done = [a for a in given if not _field(a, "was_cancelled")]
            cancelled += len(given) - len(done)
            texts = [(_field(a, "updated_at") or "", _field(a, "id"), _text(a)) for a in done]
            texts = [t for t in texts if t[2].strip()]
            if not texts:
                missing.append(prompt.id)
                continue
            several += len(texts) > 1
            answers[prompt.id] = Answer(prompt.id, max(texts)[2], prompt.fingerprint)
        return project, Pulled(answers, cancelled, several, missing)


def _field(annotation: Any, name: str) -> Any:
    """A field of an annotation, which the SDK gives as a dict or an object."""
    return annotation.get(name) if isinstance(annotation, dict) else getattr(annotation, name)


def _text(annotation: Any) -> str:
    """The response written in the text area: its lines joined."""
    for item in _field(annotation, "result") or []:
        if item.get("from_name") == RESPONSE and item.get("type") == "textarea":
            return "\n".join(item.get("value", {}).get("text", []))
    return ""
