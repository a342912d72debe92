"""annotate.py: push a selection to an annotation tool, pull its answers back as responses.jsonl."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import DictConfig

from labelbudget.annotators.label_studio import Prompt
from labelbudget.configs import instantiate
from labelbudget.data.jsonl import read_records
from labelbudget.data.schema import content_fingerprint
from labelbudget.errors import DataError
from labelbudget.io import atomic_write_text, jsonl_text

# what a run folder may hold to annotate, in the order looked for: select.py's selection (a
# second round's included), a two-round selector's first round, estimate.py's CoS-Low sample
SELECTION_FILES = ("selection.jsonl", "first_round.jsonl", "coslow_sample.jsonl")
RESPONSES = "responses.jsonl"


def selection_file(path: str | Path) -> Path:
    """The file to annotate: `path` itself, or the first of SELECTION_FILES in the folder."""
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return path
    if path.is_dir():
        for name in SELECTION_FILES:
            if (path / name).is_file():
                return path / name
        raise DataError(str(path), f"holds none of {', '.join(SELECTION_FILES)} to annotate")
    raise DataError(
        str(path), "does not exist (selection= takes a run folder or its selection file)"
    )


def read_prompts(file: Path) -> list[Prompt]:
    """The rows to annotate, each fingerprinted from its content; a row whose recorded
    fingerprint is not its content's (edited after selection), or an id twice, is refused."""
    prompts, seen = [], {}
    for row, record in read_records(file):
        if not isinstance(record, dict):
            raise DataError(str(file), "must be a JSON object", row)
        for name, kinds in (("id", (str, int)), ("task", str), ("prompt", str)):
            value = record.get(name)
            if isinstance(value, bool) or not isinstance(value, kinds) or not str(value).strip():
                raise DataError(str(file), "is missing, empty or not a string", row, name)
        context = record.get("context") or None
        fingerprint = content_fingerprint(record["task"], record["prompt"], context)
        if record.get("fingerprint") not in (None, fingerprint):
            raise DataError(
                str(file),
                "is not the row's content's: the prompt was edited after selection",
                row,
                "fingerprint",
            )
        id_ = str(record["id"])
        if id_ in seen:
            raise DataError(str(file), f"repeats the id of row {seen[id_]}", row, "id")
        seen[id_] = row
        prompts.append(Prompt(id_, record["task"], record["prompt"], context, fingerprint))
    if not prompts:
        raise DataError(str(file), "holds no prompts to annotate")
    return prompts


def project_title(file: Path, prompts: list[Prompt]) -> str:
    """The selection's own project: the file's name and a digest of what it asks (Label Studio
    keeps titles to 50 characters), so that a re-push finds it and another selection does not."""
    digest = hashlib.sha256("".join(f"{p.id}\t{p.fingerprint}\n" for p in prompts).encode())
    return f"labelbudget {file.stem[:24]} {digest.hexdigest()[:12]}"  # 49 characters at most


def run_annotate(cfg: DictConfig) -> Path | None:
    """Push the selection (`action=push`) or pull its answers (`action=pull`).

    Args:
        cfg: the composed `conf/annotate.yaml`.

    Returns:
        The responses file a pull wrote (None for a push); its rows are {id, response,
        fingerprint}, in the selection's order, as `train.py annotations=` reads them.
    """
    file = selection_file(cfg.selection)
    prompts = read_prompts(file)
    annotator = instantiate(cfg.annotator)
    title = project_title(file, prompts)
    if cfg.action == "push":
        project, added, held = annotator.push(prompts, title)
        news = f"imported {added} tasks" if added else "added nothing"
        again = f" ({held} of the {len(prompts)} were there already)" if held else ""
        print(f"{news}{again}: annotate them at {annotator.project_url(project)}")
        return None
    project, pulled = annotator.pull(prompts, title)
    out = Path(cfg.out).expanduser().resolve() if cfg.out else file.parent / RESPONSES
    if pulled.missing and not cfg.allow_partial:
        raise DataError(
            str(file),
            f"{len(pulled.missing)} of its {len(prompts)} prompts have no answer yet (first: "
            f"{pulled.missing[0]!r}); see them at {annotator.project_url(project)}, or "
            f"allow_partial=true writes the {len(pulled.answers)} answered",
        )
    text = jsonl_text(
        {"id": a.id, "response": a.response, "fingerprint": a.fingerprint}
        for a in (pulled.answers[p.id] for p in prompts if p.id in pulled.answers)
    )
    if out.is_file() and out.read_text(encoding="utf-8") != text and not cfg.overwrite:
        raise DataError(
            str(out), "exists with other answers: pass out=<another file>, or overwrite=true"
        )
    atomic_write_text(out, text)
    print(
        f"wrote {len(pulled.answers)} answers to {out} ({pulled.cancelled} cancelled left out, "
        f"{pulled.several} tasks answered more than once: the latest taken"
        + (f"; {len(pulled.missing)} prompts still unanswered" if pulled.missing else "")
        + f"); train with annotations={out}"
    )
    return out
