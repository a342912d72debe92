"""Dependencies point down: each part of labelbudget imports only parts of the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "labelbudget"
LAYERS = [  # bottom first
    {"errors"},
    {"io", "configs", "distributed", "rendering"},
    {"runs"},
    {"data"},
    {"models"},
    {"inference"},
    {"scoring"},
    {"training"},
    {"evaluation"},
    {"efficiency"},
    {"selection"},
    {"tracking", "annotators", "report"},
    {"stages"},
    {"cli", "__init__"},
]


def part(path: Path) -> str:
    """The package or top-level module of labelbudget a file belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    """The parts of labelbudget a file imports, at module level or inside functions: absolute
    (`labelbudget.x...`, `from labelbudget import x`) and relative (`from ..x import y`)."""
    package = ["labelbudget", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom):
            base = node.module.split(".") if node.module else []
            if node.level:
                base = package[: len(package) - node.level + 1] + base
            names = (
                [".".join(base)] if len(base) > 1 else [f"{base[0]}.{a.name}" for a in node.names]
            )
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


@pytest.mark.parametrize(
    "where,line",
    [
        (
            "m.py",
            "def f():\n    from labelbudget.stages.run import Run\n",
        ),  # inside a function
        ("m.py", "from labelbudget import stages\n"),
        ("m.py", "import labelbudget.stages.run\n"),
        ("scoring/m.py", "from ..stages import run\n"),  # relative, from labelbudget.scoring
        ("scoring/m.py", "from ..stages.run import Run\n"),
    ],
)
def test_the_check_sees_every_form_of_import(where, line, monkeypatch, tmp_path):
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    module = tmp_path / where
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(line)
    assert imported_parts(module) == {"stages"}
