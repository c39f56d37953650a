"""The nova 34 virtualenv the real_nova tests run nova's own code in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOVA_PYTHON = Path(os.environ.get("CACHEMGR_NOVA_VENV", "/opt/nova34-venv")) / (
    "bin/python"
)


def require_nova_venv() -> None:
    """Skip the calling test module without the venv; with CI=true, fail it."""
    if NOVA_PYTHON.exists():
        return
    reason = (
        f"the nova 34 virtualenv is not set up: {NOVA_PYTHON} is missing; "
        "run tests/real_nova/setup_conductor.sh"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)
