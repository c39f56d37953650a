"""benchmarks/many_hosts.py works: at the smallest sizes it runs real
daemons of several hosts on one delayfs-counted tree, with the static and
the nova inventory, and prints every figure.

Only that the script works and counts is checked, never how fast anything
was; the counts it asserts are the contract's (one pass per interval
shared, one per host unshared), with room for a pass on an interval's edge.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.benchmark_output import figure

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "many_hosts.py"


@pytest.mark.broker
def test_two_hosts_share_one_pass_per_interval(broker_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--hosts", "1,2", "--interval", "2", "--intervals", "3"),
            *("--files", "100", "--instances", "20", "--broker", broker_url),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

    def number(key: str) -> float:
        return float(figure(out, key))

    for driver in ("static", "nova"):
        for hosts in (1, 2):
            key = f"hosts_{hosts}_{driver}"
            assert 0.6 <= number(f"{key}_passes_per_interval") <= 1.4, out
            assert number(f"{key}_storage_ops_per_interval") > 0, out
        assert number(f"hosts_2_{driver}_skips_per_interval") >= 0.6, out
        assert number(f"hosts_2_{driver}_takeover_s") > 0, out
        assert number(f"hosts_2_{driver}_unshared_passes_per_interval") >= 1.6, out
    assert number("hosts_2_static_conductor_calls_per_interval") == 0, out
    calls = number("hosts_2_nova_conductor_calls_per_interval")
    unshared = number("hosts_2_nova_unshared_conductor_calls_per_interval")
    assert 0 < calls < unshared, out
