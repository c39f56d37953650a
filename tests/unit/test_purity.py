"""The pure modules stay pure: no I/O module imported, directly or through cachemgr.

STYLE.md, "Where I/O is allowed": the planner, the naming and usage rules, the
instance records, the report and the inventory guard read no clock, no disk,
no process table and no message bus. Their imports are read with ``ast`` (not
executed), and every cachemgr module they import must be pure as well, so an
I/O module cannot slip in through a pure-looking import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cachemgr

PACKAGE_DIR = Path(cachemgr.__file__).parent

PURE_MODULES = (
    "cachemgr.inventory.model",
    "cachemgr.cache.naming",
    "cachemgr.cache.usage",
    "cachemgr.cache.plan",
    "cachemgr.pipeline.report",
    "cachemgr.pipeline.guard",
    "cachemgr.cache.disk_usage",
)
"""The modules STYLE.md names as never doing I/O."""

SUPPORT_MODULES = (
    "cachemgr",
    "cachemgr.cache",
    "cachemgr.inventory",
    "cachemgr.pipeline",
    "cachemgr.exceptions",
    "cachemgr.cache.snapshot",
    "cachemgr.cache.outcome",
)
"""Pure modules the pure ones may import: records, errors, package inits."""

ALL_PURE = PURE_MODULES + SUPPORT_MODULES

FORBIDDEN = frozenset(
    {
        "os",
        "time",
        "fcntl",
        "socket",
        "subprocess",
        "psutil",
        "oslo_messaging",
        "oslo_concurrency",
        "shutil",
        "pathlib",
    }
)


def module_file(module: str) -> Path:
    """The source file of a cachemgr module or package."""
    path = PACKAGE_DIR.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def is_cachemgr_module(name: str) -> bool:
    return (name == "cachemgr" or name.startswith("cachemgr.")) and module_file(
        name
    ).exists()


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module ``source`` imports, with its line: ``import x``, ``from x import
    y`` (and ``x.y`` when that is a cachemgr module), relative imports resolved.
    Imports inside functions and ``if`` blocks count too.
    """
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.append((node.lineno, base))
            for alias in node.names:
                if is_cachemgr_module(f"{base}.{alias.name}"):
                    found.append((node.lineno, f"{base}.{alias.name}"))
    return found


def imports_of_module(module: str) -> list[tuple[int, str]]:
    path = module_file(module)
    source = path.read_text(encoding="utf-8")
    return imports_of(source, module, path.name == "__init__.py")


def parents(module: str) -> list[str]:
    """The packages importing ``module`` runs first: ``a``, ``a.b`` for ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def forbidden_imports(module: str) -> list[str]:
    return [
        f"{module_file(module).name}:{line} imports {name}"
        for line, name in imports_of_module(module)
        if name.split(".")[0] in FORBIDDEN
    ]


class TestPureModules:
    @pytest.mark.parametrize("module", ALL_PURE)
    def test_no_io_imports(self, module: str) -> None:
        """A pure module imports none of the I/O modules."""
        assert forbidden_imports(module) == []

    @pytest.mark.parametrize("module", ALL_PURE)
    def test_imports_only_pure_cachemgr_modules(self, module: str) -> None:
        """Every cachemgr module a pure module imports, or runs first, is pure."""
        imported = {n for _, n in imports_of_module(module) if is_cachemgr_module(n)}
        imported.update(parents(module))
        for name in list(imported):
            imported.update(parents(name))
        assert sorted(imported - set(ALL_PURE)) == []

    @pytest.mark.parametrize("module", PURE_MODULES)
    def test_no_io_reachable(self, module: str) -> None:
        """Following cachemgr imports from a pure module never reaches I/O."""
        seen: dict[str, str] = {module: module}
        todo = [module, *parents(module)]
        for name in parents(module):
            seen[name] = f"{module} (package)"
        problems = []
        while todo:
            current = todo.pop()
            problems += [f"{seen[current]}: {p}" for p in forbidden_imports(current)]
            for _, name in imports_of_module(current):
                for reached in (*parents(name), name):
                    if is_cachemgr_module(reached) and reached not in seen:
                        seen[reached] = f"{seen[current]} -> {reached}"
                        todo.append(reached)
        assert problems == []

    def test_support_modules_are_used(self) -> None:
        """Every support module is imported by a pure module (the list is not stale)."""
        imported = {
            reached
            for module in ALL_PURE
            for _, name in imports_of_module(module)
            for reached in (*parents(name), name)
        }
        imported.update(p for module in PURE_MODULES for p in parents(module))
        assert set(SUPPORT_MODULES) <= imported


class TestImportsOf:
    """The import reader itself, so that a pass above means something."""

    SOURCE = (
        "import os.path\n"
        "import subprocess as sp\n"
        "from time import monotonic\n"
        "from cachemgr.cache import naming, scan\n"
        "from . import apply\n"
        "from ..inventory import model\n"
        "def later():\n"
        "    import fcntl\n"
        "if True:\n"
        "    from psutil import Process\n"
    )

    def test_reads_every_kind_of_import(self) -> None:
        """Plain, aliased, from, relative and nested imports are all found."""
        names = [n for _, n in imports_of(self.SOURCE, "cachemgr.cache.x", False)]
        assert names == [
            "os.path",
            "subprocess",
            "time",
            "cachemgr.cache",
            "cachemgr.cache.naming",
            "cachemgr.cache.scan",
            "cachemgr.cache",
            "cachemgr.cache.apply",
            "cachemgr.inventory",
            "cachemgr.inventory.model",
            "fcntl",
            "psutil",
        ]

    def test_relative_import_in_a_package(self) -> None:
        """``from . import x`` in a package's __init__ is relative to the package."""
        names = [n for _, n in imports_of("from . import plan", "cachemgr.cache", True)]
        assert names == ["cachemgr.cache", "cachemgr.cache.plan"]

    def test_io_module_through_cachemgr_is_reachable(self) -> None:
        """scan.py, an I/O module, imports os and psutil: the check would see it."""
        assert any("imports os" in p for p in forbidden_imports("cachemgr.cache.scan"))
        assert any("psutil" in p for p in forbidden_imports("cachemgr.cache.scan"))
        assert "cachemgr.cache.scan" not in ALL_PURE
