"""``cachemgr-sandbox``: the README's first command, run for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hosts import QEMU_IMG

pytestmark = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img is not installed")


def test_the_sandbox_demo_runs_the_daemon_reloads_and_stops_it(tmp_path: Path):
    """A dry run, two timed passes, a SIGHUP that changes an age, exit 0."""
    result = subprocess.run(
        [sys.executable, "-m", "cachemgr.cmd.sandbox", str(tmp_path / "sandbox")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    summaries = [line for line in out.splitlines() if "pass complete:" in line]
    assert len(summaries) == 4, out  # the dry run, then three daemon passes
    assert "removed=4" in summaries[1]
    assert "removed=0" in summaries[2]
    assert "removed=1" in summaries[3]
    assert "Configuration reloaded; changed: [image_cache] " in out
    assert "cachemgr exited with status 0" in out
    assert "last pass completed" in out
    left = out.split("== Left in", 1)[1]
    assert "swap_512" in left
    assert "swap_2048" not in left
