"""Reading the ``name value note`` lines the benchmark scripts print."""

from __future__ import annotations

import re

__all__ = ["NUMBER", "figure"]

NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def figure(output: str, key: str) -> str:
    """The value of the ``key`` line of ``output``; the test fails without one."""
    found = re.search(rf"^{key} +(\S+)", output, re.MULTILINE)
    assert found, f"no {key} line in:\n{output}"
    return found.group(1)
