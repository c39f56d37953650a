"""cachemgr under a real systemd: Debian 12's systemd 252 as PID 1 in a
systemd-nspawn container, cachemgr installed as README "Installation" says,
checked through systemctl and journalctl as an operator would.

The tests run in file order on one booted container: each step starts from
the state the one before left. Without nspawn, debootstrap or root they
skip, but with CI=true they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.systemd.container import MAKE_ROOTFS, ROOTFS, Container, missing_tools

REPO = Path(__file__).resolve().parents[2]
UNIT = "cachemgr"
INSTANCES = "/var/lib/nova/instances"
BASE = f"{INSTANCES}/_base"
SUMMARY = "Image cache pass complete:"
DAY = 86400
HOUR = 3600

pytestmark = pytest.mark.systemd


def fp(image: str) -> str:
    return hashlib.sha1(image.encode()).hexdigest()


USED, OLD, YOUNG, HELD = (fp(f"img-{n}") for n in ("used", "old", "young", "held"))


def conf_text(age: object) -> str:
    return (
        "[DEFAULT]\nhost = cmp1\n"
        f"instances_path = {INSTANCES}\n"
        "[image_cache]\nmanager_interval = 3\n"
        f"remove_unused_original_minimum_age_seconds = {age}\n"
        "[inventory]\ndriver = static\nstatic_path = /etc/cachemgr/instances.json\n"
    )


INVENTORY = json.dumps(
    {
        "instances": [
            {
                "uuid": "6a1a5d1e-0000-4000-8000-000000000001",
                "id": 1,
                "host": "cmp1",
                "image_ref": "img-used",
                "kernel_id": None,
                "ramdisk_id": None,
                "vm_state": "active",
                "task_state": None,
                "os_type": None,
                "block_device_mapping": [],
            }
        ]
    }
)


def wait_until(check: Callable[[], object], what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def build_stage(stage: Path) -> None:
    """The checkout and the wheels it needs, built here: the container
    installs offline (it may not reach the package registry)."""
    wheels = stage / "wheels"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "-w", wheels, str(REPO)], check=True)
    subprocess.run(
        [*pip, "download", "--only-binary=:all:", "-d", wheels, "setuptools", "wheel"],
        check=True,
    )
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    src = stage / "src"
    for name in filter(None, files):
        path = REPO / name.decode()
        if path.is_file():
            (src / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            (src / name.decode()).write_bytes(path.read_bytes())


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Iterator[Container]:
    missing = missing_tools()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the real-systemd test lacks {missing}")
        pytest.skip(f"needs {missing}")
    subprocess.run(["bash", str(MAKE_ROOTFS), str(ROOTFS)], check=True)
    stage = tmp_path_factory.mktemp("stage")
    build_stage(stage)
    container = Container(stage, stage / "nspawn.log")
    try:
        install(container)
        yield container
    finally:
        container.close()


def install(box: Container) -> None:
    """README "Installation", offline, plus a host: nova's user, its
    instances_path with a cache of four files, the static inventory."""
    box.sh(
        "useradd --system --user-group --home-dir /var/lib/nova nova\n"
        "useradd --system --user-group libvirt-qemu\n"
        f"install -d -o nova -g nova {INSTANCES} {BASE}\n"
        "cp -a /srv/ci/src /root/cachemgr && cd /root/cachemgr\n"
        "python3 -m venv /opt/cachemgr\n"
        "/opt/cachemgr/bin/pip install -q --no-index --find-links /srv/ci/wheels .\n"
        "install -d -m 0755 /etc/cachemgr\n"
        "install -m 0640 -g nova etc/cachemgr/cachemgr.conf.sample "
        "/etc/cachemgr/cachemgr.conf\n"
        "install -m 0644 systemd/cachemgr.service /etc/systemd/system/\n"
    )
    box.run("tee", "/etc/cachemgr/cachemgr.conf", input=conf_text(DAY))
    box.run("tee", "/etc/cachemgr/instances.json", input=INVENTORY)
    now = time.time()
    for name, age in (
        (USED, 2 * DAY),
        (OLD, 2 * DAY),
        (YOUNG, 2 * HOUR),
        (HELD, 2 * DAY),
    ):
        path = f"{BASE}/{name}"
        box.sh(
            f"head -c 4096 /dev/urandom > {path} && chown nova:nova {path}"
            f" && chmod 0644 {path} && touch -d @{int(now - age)} {path}"
        )
    # qemu, as another user, holds HELD open.
    box.run(
        "systemd-run",
        "--unit=qemu-holder",
        "-p",
        "User=libvirt-qemu",
        "/bin/sh",
        "-c",
        f"exec sleep infinity < {BASE}/{HELD}",
    )
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "enable", "--now", UNIT)


def passes(box: Container) -> list[str]:
    return [line for line in box.journal(UNIT) if SUMMARY in line]


def next_summary(box: Container, after: int) -> str:
    return wait_until(lambda: passes(box)[after:], "a pass")[0]


def cache_names(box: Container) -> set[str]:
    return set(box.run("ls", BASE).stdout.split())


def test_active_ready_and_a_pass_in_status(box: Container):
    """READY=1 from the worker made it active; Status: says the last pass."""
    assert box.show(UNIT, "ActiveState") == "active"
    assert box.show(UNIT, "SubState") == "running"
    status = wait_until(
        lambda: (
            "Last pass completed" in box.show(UNIT, "StatusText")
            and box.show(UNIT, "StatusText")
        ),
        "Status: with the last pass",
    )
    assert "removed=1" in status


def test_files_removed_and_kept_as_planned(box: Container):
    """The unused old file goes; the used, the young and the one qemu holds
    open (seen through the unit's ambient capabilities) stay."""
    first = next_summary(box, 0)
    assert "removed=1" in first and "kept_open=1" in first and "in_use=1" in first
    assert cache_names(box) == {USED, YOUNG, HELD}
    assert any(f"Removed {OLD}: unused" in line for line in box.journal(UNIT))


def test_reload_keeps_it_active_and_the_next_pass_uses_the_new_age(box: Container):
    box.run("tee", "/etc/cachemgr/cachemgr.conf", input=conf_text(HOUR))
    box.run("systemctl", "reload", UNIT)
    changed = wait_until(
        lambda: [
            line for line in box.journal(UNIT) if "Configuration reloaded;" in line
        ],
        "the reload line",
    )
    assert (
        f"remove_unused_original_minimum_age_seconds = {HOUR} (was {DAY})" in changed[0]
    )
    wait_until(lambda: YOUNG not in cache_names(box), "the young file removed")
    time.sleep(4)
    assert box.show(UNIT, "ActiveState") == "active"
    assert box.show(UNIT, "NRestarts") == "0"


def test_a_bad_reload_keeps_it_active_without_a_traceback(box: Container):
    box.run("tee", "/etc/cachemgr/cachemgr.conf", input=conf_text(-5))
    box.run("systemctl", "reload", UNIT)
    errors = wait_until(
        lambda: [line for line in box.journal(UNIT) if "with a bad value" in line],
        "the bad value's ERROR line",
    )
    assert "remove_unused_original_minimum_age_seconds = -5" in errors[0]
    time.sleep(4)
    assert box.show(UNIT, "ActiveState") == "active"
    assert not [line for line in box.journal(UNIT) if "Traceback" in line]


def test_stop_right_after_a_reload_is_quick_and_clean(box: Container):
    box.run("tee", "/etc/cachemgr/cachemgr.conf", input=conf_text(HOUR))
    box.run("systemctl", "reload", UNIT)
    began = time.monotonic()
    box.run("systemctl", "stop", UNIT)
    took = time.monotonic() - began
    assert took < 15, took
    assert box.show(UNIT, "Result") == "success"
    assert box.show(UNIT, "ActiveState") == "inactive"
    status = json.loads(box.run("cat", "/var/lib/cachemgr/status.json").stdout)
    assert status["state"] == "stopped" and status["pid"] is None


def test_the_watchdog_spares_a_healthy_daemon_and_restarts_a_hung_one(
    box: Container,
):
    box.sh(
        "mkdir -p /etc/systemd/system/cachemgr.service.d\n"
        "printf '[Service]\\nWatchdogSec=5s\\n' "
        "> /etc/systemd/system/cachemgr.service.d/watchdog.conf\n"
        "systemctl daemon-reload\nsystemctl start cachemgr\n"
    )
    time.sleep(12)
    assert box.show(UNIT, "ActiveState") == "active"
    assert box.show(UNIT, "NRestarts") == "0"
    # The inventory becomes a FIFO nobody writes: the next pass blocks in
    # its open(), the pings stop, systemd kills and restarts the service.
    box.sh("rm /etc/cachemgr/instances.json && mkfifo /etc/cachemgr/instances.json")
    wait_until(lambda: box.show(UNIT, "NRestarts") != "0", "a watchdog restart", 60)
    journal = box.run("journalctl", "-q", "-u", UNIT, "--no-pager").stdout
    assert "Watchdog timeout" in journal
    before_kill = journal[: journal.index("Watchdog timeout")].splitlines()
    own = [line for line in before_kill if "cachemgr[" in line]
    assert "Listing the instances of cmp1" in own[-1]
