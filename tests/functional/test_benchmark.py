"""benchmarks/run.py works: at the smallest sizes it builds a tree, runs the
real pass and the nova driver, and prints every figure; with --latency,
through delayfs at each delay.

Only that the script works is checked, never how fast anything was: speed is
the benchmark's business, not the test suite's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.benchmark_output import NUMBER, figure

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "run.py"
FIGURES = (
    "floor_s",
    "process_start_s",
    "pass_e2e_s",
    "pass_max_rss_mb",
    "pass_debug_e2e_s",
    "stage_gather_s",
    "stage_plan_s",
    "stage_apply_s",
    "stage_report_s",
    "gather_plan_apply_s",
    "ratio_to_floor",
)


LATENCY_FIGURES = (
    "floor_s",
    "pass_s",
    "ratio",
    "floor_ops",
    "pass_ops",
)
# What run.py --latency exits with when delayfs cannot be built or mounted.
DELAYFS_UNAVAILABLE = 3


def start_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def run_benchmark(*args: str) -> str:
    done = start_benchmark(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.broker
def test_smallest_size_prints_every_figure(tmp_path: Path, broker_url: str) -> None:
    """Every figure is printed, the pass saw the whole tree, the tree is kept."""
    kept = tmp_path / "tree"
    size = ["--files", "200", "--instances", "40"]
    output = run_benchmark(*size, "--keep", str(kept), "--broker", broker_url)

    for key in FIGURES:
        assert re.fullmatch(NUMBER, figure(output, key)), key
    assert "page cache WARM" in output
    summary = re.search(r"^pass_summary +(.*)$", output, re.MULTILINE)
    assert summary and "files=200 " in summary.group(1), output
    assert figure(output, "nova_inventory_s") != "skipped"
    assert int(figure(output, "nova_max_reply_bytes")) > 0
    for key in ("nova_pass_e2e_s", "nova_pass_gather_s"):
        assert re.fullmatch(NUMBER, figure(output, key)), key
    assert len(re.findall(r"^target ", output, re.MULTILINE)) == 4
    tree = json.loads((kept / "n200-m40" / "tree.json").read_text())
    assert (tree["files"], tree["instances"]) == (200, 40)


def test_scaling_prints_a_row_per_size() -> None:
    """--scaling measures N/4, N/2 and N, and prints their growth."""
    output = run_benchmark(
        "--files", "80", "--instances", "8", "--scaling", "--no-nova"
    )

    rows = re.findall(r"^ +(20|40|80) +(2|4|8) ", output, re.MULTILINE)
    assert rows == [("20", "2"), ("40", "4"), ("80", "8")], output
    assert re.search(r"^growth x", output, re.MULTILINE), output
    assert figure(output, "nova_inventory_s") == "skipped"


def test_latency_mode_prints_every_figure() -> None:
    """--latency mounts the tree through delayfs and prints each delay's figures.

    It needs FUSE (/dev/fuse, fusermount3, libfuse3's headers, a compiler):
    without them the test is skipped, but with CI=true it fails, since CI
    installs them (.ci/run).
    """
    done = start_benchmark("--latency", "--files", "200", "--instances", "40")
    if done.returncode == DELAYFS_UNAVAILABLE and os.environ.get("CI") != "true":
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout

    for delay in ("0", "0.2", "1", "5"):
        for name in LATENCY_FIGURES:
            key = f"latency_{delay}ms_{name}"
            assert re.fullmatch(NUMBER, figure(output, key)), key
        assert figure(output, f"latency_{delay}ms_plan_identical") == "yes", output
    assert re.search(r"^target latency 1ms ", output, re.MULTILINE), output
