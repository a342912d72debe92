"""`python -m labelbudget.report <run or sweep folder> [...]`: see labelbudget.report."""

from __future__ import annotations

import argparse
from pathlib import Path

from labelbudget.errors import one_line_errors
from labelbudget.report import write_report


def main(argv: list[str] | None = None) -> None:
    """Write report.md, report.csv and plots/ (into the first folder unless --out) and print
    report.md; `argv` None reads the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m labelbudget.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write (default: the first folder)"
    )
    parser.add_argument(
        "--cells",
        nargs="+",
        default=[],
        metavar="KEY",
        help="settings that repeat a row with the seed instead of separating tables "
        "(e.g. dataset.composition_seed: the study's pool compositions)",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out (and list) each metrics.json that cannot be read, rather than stop",
    )
    args = parser.parse_args(argv)
    out = args.out or args.folders[0]
    print(write_report(args.folders, out, tuple(args.cells), args.skip_unreadable))


if __name__ == "__main__":
    one_line_errors(main)()
