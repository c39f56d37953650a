"""Every distribution cachemgr's code imports is declared in install_requires.

An import that works only because another dependency happens to pull its
distribution in (kombu through oslo.messaging, stevedore through oslo.config)
breaks the day that dependency stops doing so. The imports of cachemgr/
are read with ast and mapped to their distributions through the installed
metadata.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cachemgr"


def imported_top_level_modules() -> dict[str, str]:
    """``{top-level module: first file importing it}`` for cachemgr/."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared_distributions() -> set[str]:
    """install_requires and the extras of setup.cfg, by canonical name."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = parser["options"]["install_requires"].splitlines()
    lines += parser["options.extras_require"]["journal"].splitlines()
    names = [re.match(r"[A-Za-z0-9._-]+", line.strip()) for line in lines]
    return {canonicalize_name(match.group(0)) for match in names if match}


def test_every_imported_distribution_is_declared() -> None:
    """No import of cachemgr/ relies on an undeclared, transitive dependency."""
    providers = metadata.packages_distributions()
    declared = declared_distributions()
    undeclared = {}
    for module, where in imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module == "cachemgr":
            continue
        assert module in providers, f"{where} imports {module}: not installed"
        names = {canonicalize_name(d) for d in providers[module]}
        if not names & declared:
            undeclared[module] = (sorted(names), where)
    assert undeclared == {}, f"imported but not in install_requires: {undeclared}"


def test_the_scan_sees_third_party_imports() -> None:
    """The scan is not vacuous: it finds the libraries cachemgr is built on."""
    modules = imported_top_level_modules()
    assert {"oslo_config", "oslo_messaging", "kombu", "psutil"} <= set(modules)
