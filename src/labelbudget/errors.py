"""Errors a user can act on, each naming where the bad input is, and how an entry point ends on one."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable


def listing(items: list[Any], limit: int = 10, show: Callable[[Any], str] = repr) -> str:
    """The first `limit` items for an error message, and how many more there are."""
    shown = ", ".join(show(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class LabelbudgetError(Exception):
    """Base class for errors caused by the user's input or setup, not by a bug."""


class DataError(LabelbudgetError):
    """Bad input data, located by file (or source), row (1-based) and field."""

    def __init__(self, source: str, message: str, row: int | None = None, field: str | None = None):
        self.source, self.message, self.row, self.field = source, message, row, field
        where = source
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


class ConfigError(LabelbudgetError):
    """A config value that cannot work (budget too large, unknown option value, ...)."""


class DiskFullError(LabelbudgetError):
    """A write the disk (or the user's quota) has no room for: the file, the space it needed and
    the space free, so that the user knows what to clear or where to point the run instead."""


class MissingResourceError(LabelbudgetError):
    """A package or file is missing; the message says how to install it or where to put it."""


def one_line_errors(function: Callable) -> Callable:
    """`function` for an entry point: a LabelbudgetError (bad input or setup) ends the program
    with its message on one line and exit code 2; anything else keeps its traceback (a bug)."""

    @functools.wraps(function)
    def entry(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except LabelbudgetError as error:
            exit_on(error)

    return entry


def exit_on(error: LabelbudgetError) -> None:
    """End the program on a user error: its message alone on stderr, exit code 2."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
