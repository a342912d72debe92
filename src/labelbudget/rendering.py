"""For people to read and look at: tables for the terminal and markdown files, and plots as PNG
bytes that are the same for the same data (no timestamp or version written into them)."""

from __future__ import annotations

import io
from typing import Any


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A small markdown table; floats with 4 decimals."""
    cells = [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed), imported on use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig, dpi: int) -> bytes:
    """The figure as PNG bytes, closed afterwards."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    return buffer.getvalue()
