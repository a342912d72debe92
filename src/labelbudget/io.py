"""Atomic file writes: a reader never sees half a file, an interrupted write leaves none."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from labelbudget.errors import DiskFullError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it and rename it over `path`; a full disk
    ends in a DiskFullError."""
    path = Path(path)
    with room_for(path, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def room_for(path: Path, size: int) -> Iterator[None]:
    """Writing about `size` bytes to `path` (a file, or a folder a library fills): a full disk or
    quota ends the run in one line naming the file, the space needed and the space free, instead
    of a traceback from deep inside the write."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = Path(path).absolute().parent
        while not folder.exists():  # the write may have failed creating it
            folder = folder.parent
        mount = folder.resolve()
        while not os.path.ismount(mount):
            mount = mount.parent
        raise DiskFullError(
            f"{path}: no space left on the device to write it ({byte_size(size)} needed; "
            f"{byte_size(shutil.disk_usage(folder).free)} free on {mount})"
        ) from error


def byte_size(n: int) -> str:
    """A byte count as people read it: 512 bytes, 1.5 MB (units of 1024, as `MB` is elsewhere)."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of the text, in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def jsonl_text(records: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line, non-ASCII text kept readable."""
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


FORMULA_STARTS = ("=", "+", "-", "@")  # a spreadsheet runs a cell that starts with one of these


def csv_text(header: list[str], rows: Iterable[list[Any]]) -> str:
    """CSV with a header; a text cell that a spreadsheet would run as a formula (a task named
    "=HYPERLINK(...)") gets a leading apostrophe. Numbers, and text that is one ("-12.5"), stay
    as they are. `csv_cell` undoes it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"'{cell}" if _formula(cell) else cell for cell in row])
    return out.getvalue()


def _formula(cell: Any) -> bool:
    if not isinstance(cell, str) or not cell.startswith(FORMULA_STARTS):
        return False
    try:
        float(cell)
        return False
    except ValueError:
        return True


def csv_cell(text: str) -> str:
    """A cell of a file `csv_text` wrote, as it was before the escape."""
    return text[1:] if text.startswith("'") and _formula(text[1:]) else text
