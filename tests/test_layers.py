"""Dependencies point down: each part of labelbudget imports only parts of the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "labelbudget"
LAYERS = [  # bottom first
    {"errors"},
    {"io", "configs", "distributed", "rendering"},
    {"data"},
    {"models"},
    {"scoring"},
    {"training"},
    {"evaluation"},
    {"efficiency"},
    {"selection"},
    {"tracking"},
    {"stages"},
    {"report", "cli", "__init__"},
]


def part(path: Path) -> str:
    """The package or top-level module of labelbudget a file belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    """The parts of labelbudget a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("labelbudget.")}
    return found


def test_every_import_points_to_a_lower_layer():
    layer = {name: level for level, names in enumerate(LAYERS) for name in names}
    files = sorted(PACKAGE.rglob("*.py"))
    assert {part(f) for f in files} <= set(layer), "a new part of labelbudget: give it a layer here"
    upward = [
        f"{f.relative_to(PACKAGE)} imports labelbudget.{target}"
        for f in files
        for target in sorted(imported_parts(f) - {part(f)})
        if layer[target] >= layer[part(f)]
    ]
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    # the parser finds imports inside functions too, where an upward one likes to hide
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from labelbudget.stages.common import instantiate\n")
    assert imported_parts(module) == {"stages"}
