"""systemd/cachemgr.service: systemd's own check, its agreement with the
code's defaults, and the kernel's answer on the capabilities it grants."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_service import opts as oslo_service_opts

from cachemgr import conf as cachemgr_conf

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "cachemgr.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SETPRIV = shutil.which("setpriv")
# A Python any user can run (the test's own may live under /root).
SYSTEM_PYTHON = "/usr/bin/python3"
CAPS = {"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}


def directives(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, each key's values in order."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def seconds(value: str) -> float:
    units = {"min": 60, "s": 1, "ms": 0.001}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


@pytest.fixture(scope="module")
def unit() -> dict[str, list[str]]:
    return directives(UNIT.read_text())


@pytest.fixture(scope="module")
def defaults() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    oslo_service_opts.register_service_opts(conf)
    conf([])
    return conf


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is missing")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path):
    """No error and no warning from systemd's own checker, which also runs
    man on Documentation=: the man page as README's Installation links it."""
    text = UNIT.read_text().replace(
        "/opt/cachemgr/bin/cachemgr", f"{sys.executable} -m cachemgr.cmd.cachemgr"
    )
    copy = tmp_path / "cachemgr.service"
    copy.write_text(text)
    (tmp_path / "man" / "man8").mkdir(parents=True)
    shutil.copy(ROOT / "doc" / "cachemgr.8", tmp_path / "man" / "man8")
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MANPATH": str(tmp_path / "man")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


class TestAgreesWithTheCode:
    def test_the_worker_may_notify(self, unit):
        """READY=1 and the pings come from oslo.service's worker process."""
        assert unit["Type"] == ["notify"]
        assert unit["NotifyAccess"] == ["all"]

    def test_stop_timeout_exceeds_graceful_shutdown(self, unit, defaults):
        """systemd must not SIGKILL a worker still finishing its file."""
        timeout = seconds(unit["TimeoutStopSec"][0])
        assert timeout > defaults.graceful_shutdown_timeout

    def test_watchdog_exceeds_the_longest_lock_wait(self, unit):
        """One wait on nova's lock is one step without a ping."""
        max_wait = next(
            opt.type.max
            for opt in cachemgr_conf.image_cache.image_cache_opts
            if opt.name == "lock_wait_seconds"
        )
        assert seconds(unit["WatchdogSec"][0]) > 2 * max_wait

    def test_default_paths_are_writable(self, unit, defaults):
        """instances_path and the status file's directory."""
        assert defaults.instances_path in unit["ReadWritePaths"][0].split()
        assert defaults.instances_path in unit["RequiresMountsFor"][0].split()
        state = "/var/lib/" + unit["StateDirectory"][0]
        assert os.path.dirname(defaults.daemon.status_file) == state

    def test_only_the_two_capabilities(self, unit):
        """No capability beyond what reading /proc/<pid>/fd needs."""
        assert set(unit["CapabilityBoundingSet"][0].split()) == CAPS
        assert set(unit["AmbientCapabilities"][0].split()) == CAPS
        assert unit["User"] == ["nova"]
        assert unit["NoNewPrivileges"] == ["yes"]
        assert unit["ProtectSystem"] == ["strict"]
        assert unit["PrivateTmp"] == ["yes"]

    def test_config_errors_are_not_restarted(self, unit):
        """Exit 2 (bad configuration) would fail again at once."""
        assert unit["Restart"] == ["on-failure"]
        assert unit["RestartPreventExitStatus"] == ["2"]


# What cachemgr.cache.scan does for each process: list /proc/<pid>/fd, then
# stat each link. Standard library only, run by another user.
_PROBE = """
import os, sys
path, pid = sys.argv[1], sys.argv[2]
want = os.stat(path)
try:
    names = os.listdir(f"/proc/{pid}/fd")
except PermissionError:
    print("cannot list"); sys.exit()
for name in names:
    try:
        st = os.stat(f"/proc/{pid}/fd/{name}")
    except PermissionError:
        print("cannot stat"); sys.exit()
    if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
        print("seen"); sys.exit()
print("not seen")
"""


@pytest.fixture
def held_by_another_user() -> Iterator[tuple[str, int]]:
    """A file held open by a process of uid 20001, like qemu's base file."""
    directory = tempfile.mkdtemp(prefix="cm-caps-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "base")
    Path(path).write_bytes(b"x")
    os.chmod(path, 0o644)
    code = f"import time; f = open({path!r}); print('open', flush=True); time.sleep(60)"
    as_holder = [SETPRIV, "--reuid=20001", "--regid=20001", "--clear-groups"]
    holder = subprocess.Popen(
        [*as_holder, SYSTEM_PYTHON, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        yield path, holder.pid
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(directory)


@pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root, setpriv and /usr/bin/python3",
)
@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        ((), "cannot list"),
        (("sys_ptrace",), "cannot list"),
        (("dac_read_search",), "cannot stat"),
        (("sys_ptrace", "dac_read_search"), "seen"),
    ],
)
def test_both_capabilities_are_needed_to_see_another_users_open_file(
    held_by_another_user, caps, expected
):
    """The unit's two capabilities are exactly what the kernel asks for."""
    path, pid = held_by_another_user
    command = [SETPRIV, "--reuid=20002", "--regid=20002", "--clear-groups"]
    if caps:
        wanted = ",".join(f"+{c}" for c in caps)
        command += [f"--inh-caps={wanted}", f"--ambient-caps={wanted}"]
    result = subprocess.run(
        [*command, SYSTEM_PYTHON, "-c", _PROBE, path, str(pid)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
