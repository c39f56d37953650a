"""A Debian 12 container booted with systemd as PID 1 (systemd-nspawn), and
commands run inside it through nsenter into that PID 1.

The root file system comes from make_rootfs.sh (debootstrap, cached under
/var/cache/cachemgr-ci); the container writes into a tmpfs overlay
(``--volatile=overlay``), so every run starts from the same clean tree.
This machine's own PID 1 is not systemd: the container needs the unified
cgroup hierarchy and neither a machined registration nor a scope unit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ROOTFS = Path("/var/cache/cachemgr-ci/systemd-bookworm")
MAKE_ROOTFS = Path(__file__).with_name("make_rootfs.sh")
# What the container's commands see as their environment.
INSIDE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
NAMESPACES = ("--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup")


class Container:
    """systemd-nspawn --boot of ROOTFS with ``stage`` bound at /srv/ci."""

    def __init__(self, stage: Path, log: Path) -> None:
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                "systemd-nspawn",
                "--quiet",
                "--boot",
                "--register=no",
                "--keep-unit",
                "--volatile=overlay",
                f"--directory={ROOTFS}",
                f"--bind-ro={stage}:/srv/ci",
                f"--machine=cachemgr-ci-{os.getpid()}",
                "--console=pipe",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.log = log
        self.init_pid = self._find_init()
        self._wait_booted()

    def _find_init(self, timeout: float = 60.0) -> int:
        """The host pid of the container's PID 1 (NSpid ends in 1)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    "systemd-nspawn exited:\n" + self.log.read_text(errors="replace")
                )
            for pid in _descendants(self.process.pid):
                status = Path(f"/proc/{pid}/status")
                try:
                    nspid = next(
                        line
                        for line in status.read_text().splitlines()
                        if line.startswith("NSpid:")
                    )
                except (OSError, StopIteration):
                    continue
                if nspid.split()[-1] == "1" and len(nspid.split()) > 2:
                    return pid
            time.sleep(0.2)
        raise AssertionError("the container's systemd did not start")

    def _wait_booted(self, timeout: float = 120.0) -> None:
        """Until systemd has finished booting (running, or degraded: some
        unit of a container's boot may fail, none that matters here)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False).stdout
            if state.strip() in ("running", "degraded"):
                return
            time.sleep(0.3)
        raise AssertionError(f"the container did not boot: {state!r}")

    def run(
        self, *command: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside, as root, with a clean environment."""
        done = subprocess.run(
            [
                "nsenter",
                f"--target={self.init_pid}",
                *NAMESPACES,
                "--",
                "/usr/bin/env",
                "-i",
                *(f"{k}={v}" for k, v in INSIDE_ENV.items()),
                *command,
            ],
            input=input,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done

    def sh(self, script: str, check: bool = True) -> str:
        return self.run("/bin/sh", "-ec", script, check=check).stdout

    def show(self, unit: str, prop: str) -> str:
        """``systemctl show -p PROP --value UNIT``."""
        return self.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def journal(self, unit: str) -> list[str]:
        """The unit's journal lines, messages only."""
        out = self.run("journalctl", "-q", "-u", unit, "-o", "cat", "--no-pager")
        return out.stdout.splitlines()

    def close(self) -> None:
        if self.process.poll() is None:
            # SIGRTMIN+3 asks systemd to halt; SIGKILL if it does not.
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def missing_tools() -> list[str]:
    """What this machine lacks to run the container."""
    tools = ("systemd-nspawn", "debootstrap", "nsenter")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text()
        except OSError:
            continue
        for child in children.split():
            found.append(int(child))
            todo.append(int(child))
    return found
