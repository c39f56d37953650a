"""The import graph points one way (DESIGN part 2): cmd -> daemon -> pipeline
-> cache -> inventory -> conf, with the root's exceptions below them all.

Read with ``ast`` from the sources, so that a circle or an import running
back up a layer fails here, naming the module and the line, before it can
grow into the tangle the layout replaced.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cachemgr

PACKAGE_DIR = Path(cachemgr.__file__).parent

# A module may import its own layer and the layers after it in this list.
LAYERS = ("cmd", "sandbox", "daemon", "pipeline", "cache", "inventory", "conf")
BOTTOM = ("", "exceptions")
"""The package itself and its errors: importable from every layer."""


def layer_of(module: str) -> str:
    """``cache`` for ``cachemgr.cache.plan``; ``""`` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        found.append(".".join(p for p in parts if p != "__init__"))
    return found


def cachemgr_imports(module: str) -> list[tuple[int, str]]:
    """(line, module) of every cachemgr import in ``module``'s source."""
    relative = module.replace(".", "/")
    path = PACKAGE_DIR.parent / f"{relative}.py"
    if not path.exists():
        path = PACKAGE_DIR.parent / relative / "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names if n.startswith("cachemgr")]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name)
                for a in node.names
                if a.name.startswith("cachemgr")
            ]
    return found


def rank(layer: str) -> int:
    return len(LAYERS) if layer in BOTTOM else LAYERS.index(layer)


@pytest.mark.parametrize("module", modules())
def test_imports_point_down(module: str) -> None:
    """Nothing imports a layer above its own (nor the cmd of another)."""
    own = layer_of(module)
    upward = [
        f"line {line}: {name}"
        for line, name in cachemgr_imports(module)
        if layer_of(name) not in BOTTOM
        and (own in BOTTOM or rank(layer_of(name)) < rank(own))
    ]
    assert upward == []


def test_root_holds_little() -> None:
    """The package root keeps its errors and the sandbox; the rest has a room."""
    loose = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert loose == ["__init__.py", "exceptions.py", "sandbox.py"]
