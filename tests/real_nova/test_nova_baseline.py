"""benchmarks/nova_baseline.py works: nova 34's own image cache manager runs
over a small synthetic tree, prints its figures and leaves the tree as it was.

Only that the script works is checked, never how fast anything was. It needs
the nova 34 virtualenv (tests/real_nova/setup_conductor.sh), not its
databases nor the broker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.real_nova.venv import NOVA_PYTHON, require_nova_venv
from tests.support.benchmark_output import NUMBER, figure

pytestmark = pytest.mark.real_nova

REPO = Path(__file__).resolve().parents[2]

require_nova_venv()


def snapshot(directory: Path) -> dict[str, int]:
    """Every entry's name and mtime_ns, symlinks not followed."""
    return {p.name: p.lstat().st_mtime_ns for p in directory.iterdir()}


def run_baseline(tree: Path, *args: str) -> str:
    """benchmarks/nova_baseline.py on ``tree`` under nova's Python: its output."""
    done = subprocess.run(
        [str(NOVA_PYTHON), "benchmarks/nova_baseline.py", str(tree), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree of 200 cache files and 40 instances, made by benchmarks/run.py."""
    kept = tmp_path_factory.mktemp("baseline")
    size = ["--files", "200", "--instances", "40"]
    subprocess.run(
        [sys.executable, "benchmarks/run.py", *size, "--keep", str(kept), "--no-nova"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return kept / "n200-m40"


def test_nova_pass_runs_and_leaves_the_tree_alone(tree: Path) -> None:
    """Every disk nova inspects gets its qemu-img run; the tree is left alone."""
    cache_dir = tree / "instances" / "_base"
    before = snapshot(cache_dir)
    output = run_baseline(tree)
    disks = json.loads((tree / "tree.json").read_text())["disks"]
    assert f"disks={disks}" in output
    assert re.fullmatch(NUMBER, figure(output, "nova_update_s"))
    assert re.fullmatch(NUMBER, figure(output, "nova_list_backing_s"))
    # nova reads the ``disk`` of each instance dir the inventory names.
    inspected = int(figure(output, "nova_disks_inspected"))
    assert 0 < inspected <= disks
    assert int(figure(output, "nova_qemu_img_calls")) == inspected
    assert snapshot(cache_dir) == before


def test_limit_extrapolates(tree: Path) -> None:
    """--limit-disks runs qemu-img on that many disks and estimates the rest."""
    output = run_baseline(tree, "--limit-disks", "5")
    assert figure(output, "nova_qemu_img_calls") == "5"
    assert re.fullmatch(NUMBER, figure(output, "nova_update_est_s"))
