"""README's quick start 1, as written, on a fresh minimal Debian 12 machine.

Needs root, debootstrap and systemd-nspawn (``.ci/run`` installs them);
without them the test skips, and with ``CI=true`` it fails. First run: a
debootstrap (about a minute, cached); every run: apt and pip from the
network, a few minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.fresh import machine
from tests.fresh.readme import README, quick_start_commands

pytestmark = pytest.mark.fresh

CHECKOUT_IN_MACHINE = "/root/cachemgr"


def _require_tools() -> None:
    missing = [t for t in ("debootstrap", "systemd-nspawn") if not shutil.which(t)]
    why = f"needs {', '.join(missing)}" if missing else ""
    if os.geteuid() != 0:
        why = "needs root (debootstrap, systemd-nspawn)"
    if not why:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(why + " (CI=true: the fresh-machine test must run)")
    pytest.skip(why)


def _copy_checkout(target: Path) -> None:
    """The files of this checkout (tracked and untracked, not ignored)."""
    top = README.parent
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=top,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = top / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_quick_start_1_runs_as_written_on_minimal_debian_12(tmp_path: Path) -> None:
    """README's first quick-start command builds the sandbox and runs it."""
    _require_tools()
    command = quick_start_commands()[0]
    tarball, built_seconds = machine.pristine_rootfs()
    started = time.monotonic()
    root = tmp_path / "root"
    machine.unpack_rootfs(tarball, root)
    assert not (root / "usr/bin/python3").exists(), "minbase has no python3"
    assert not (root / "usr/bin/qemu-img").exists(), "minbase has no qemu-utils"
    _copy_checkout(root / CHECKOUT_IN_MACHINE.lstrip("/"))

    result = machine.run_in_machine(root, command, CHECKOUT_IN_MACHINE, timeout=900)

    seconds = time.monotonic() - started
    print(f"rootfs built in {built_seconds:.0f} s; quick start ran in {seconds:.0f} s")
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command!r} exited {result.returncode}:\n{output}"
    for line in (
        "Would remove ",
        "Removed ",
        "Image cache pass complete: files=",
        "Configuration reloaded; changed: [image_cache] "
        "remove_unused_original_minimum_age_seconds = 300",
        "cachemgr exited with status 0",
    ):
        assert line in result.stdout, f"no {line!r} in the output:\n{output}"
    assert "Traceback" not in output, output
    assert "DeprecationWarning" not in output, output
    # The man page came with the package (setup.cfg data_files).
    venv = root / CHECKOUT_IN_MACHINE.lstrip("/") / ".venv"
    assert (venv / "share/man/man8/cachemgr.8").is_file()
