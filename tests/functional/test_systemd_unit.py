"""systemd/: systemd's own check of the daemon unit and of the timer with its
oneshot unit, their agreement with the code's defaults, and the kernel's
answer on the capabilities they grant."""

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
SYSTEMD_DIR = ROOT / "systemd"
UNIT = SYSTEMD_DIR / "cachemgr.service"
ONCE_UNIT = SYSTEMD_DIR / "cachemgr-once.service"
TIMER = SYSTEMD_DIR / "cachemgr.timer"
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


def verify(tmp_path: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on copies of ``units`` in one directory
    (a timer's service is found beside it), run from this virtualenv. It
    also runs man on Documentation=: the man page as README's Installation
    links it."""
    copies = []
    for unit_path in units:
        text = unit_path.read_text().replace(
            "/opt/cachemgr/bin/cachemgr", f"{sys.executable} -m cachemgr.cmd.cachemgr"
        )
        copy = tmp_path / unit_path.name
        copy.write_text(text)
        copies.append(str(copy))
    (tmp_path / "man" / "man8").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "doc" / "cachemgr.8", tmp_path / "man" / "man8")
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *copies],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MANPATH": str(tmp_path / "man")},
    )


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is missing")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path):
    """No error and no warning from systemd's own checker."""
    result = verify(tmp_path, UNIT)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is missing")
def test_systemd_analyze_verify_accepts_the_timer_and_its_service(tmp_path: Path):
    """The timer and the oneshot unit it starts: no error, no warning."""
    result = verify(tmp_path, TIMER, ONCE_UNIT)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_verify_would_fail_a_broken_oneshot_unit(tmp_path: Path):
    """The check above can fail: a misspelt Type= of the timer's unit is told."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is missing")
    broken = tmp_path / "src" / ONCE_UNIT.name
    broken.parent.mkdir()
    broken.write_text(ONCE_UNIT.read_text().replace("=oneshot", "=oneshoot"))
    result = verify(tmp_path, TIMER, broken)
    assert "oneshoot" in result.stdout + result.stderr


class TestTheTimerAlternative:
    def test_one_pass_per_run(self):
        """The oneshot unit runs exactly one pass of the same configuration."""
        once = directives(ONCE_UNIT.read_text())
        daemon = directives(UNIT.read_text())
        assert once["Type"] == ["oneshot"]
        assert once["ExecStart"] == [daemon["ExecStart"][0] + " --once"]
        assert directives(TIMER.read_text())["Unit"] == ["cachemgr-once.service"]

    def test_period_is_the_default_interval(self, defaults):
        """cachemgr --status judges lateness by manager_interval: they agree."""
        period = seconds(directives(TIMER.read_text())["OnUnitActiveSec"][0])
        assert period == defaults.image_cache.manager_interval

    def test_same_user_and_sandbox_as_the_daemon(self):
        """Everything from User= on is the daemon unit's, word for word."""

        def sandbox(path: Path) -> str:
            text = path.read_text()
            return text[text.index("# nova's user:") :].split("[Install]")[0]

        assert sandbox(ONCE_UNIT).rstrip() == sandbox(UNIT).rstrip()


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
