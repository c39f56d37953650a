"""The real ``cachemgr`` daemon (no ``--once``): a real process on a
temporary host with the static inventory, real SIGTERM and SIGHUP, and a
real unix datagram socket as systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.daemons import (
    STARTED,
    SUMMARY,
    Daemon,
    counters,
    fd_targets,
    notify_socket,
    wait_until,
)
from tests.support.hosts import DAY, HOUR, Host, fingerprint, held_lock
from tests.support.nova_conductor import FakeConductor, serve

FP_USED = fingerprint("img-used")
FP_OLD = fingerprint("img-old")
FP_YOUNG = fingerprint("img-young")
# Three unused old files, in the order apply reaches them (name order).
FP_FIRST, FP_SECOND, FP_THIRD = sorted(fingerprint(f"img-{n}") for n in range(3))


def daemon_host(
    tmp_path: Path, image_cache: dict[str, object], *, inventory: bool = True
) -> Host:
    """A host whose config runs the daemon with ``image_cache`` options and
    a status file under ``tmp_path``."""
    host = Host(tmp_path)
    host.write(
        {
            "image_cache": {"lock_wait_seconds": 0.2, **image_cache},
            "daemon": {"status_file": tmp_path / "status.json"},
        },
        inventory=inventory,
    )
    return host


def read_status(host: Host) -> dict:
    return json.loads((host.root / "status.json").read_text())


def status_when(host: Host, check, what: str) -> dict:
    """The status file once ``check(document)`` holds."""

    def probe() -> dict | None:
        try:
            document = read_status(host)
        except FileNotFoundError:
            return None
        return document if check(document) else None

    return wait_until(probe, what)  # type: ignore[return-value]


def test_runs_a_pass_every_interval_and_writes_the_status_file(tmp_path: Path):
    """Passes repeat at manager_interval; each rewrites the status file."""
    host = Host(tmp_path)
    host.cache_file(FP_USED, age=2 * DAY)
    host.cache_file(FP_OLD, age=2 * DAY)
    host.cache_file(FP_YOUNG, age=HOUR)
    host.disk(host.instance("img-used"), host.base / FP_USED)
    host.write(
        {
            "image_cache": {"manager_interval": 1},
            "daemon": {"status_file": tmp_path / "status.json"},
        }
    )
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        started = daemon.line(daemon.wait_for(STARTED))
        first = daemon.wait_for(SUMMARY)
        second = daemon.wait_for(SUMMARY, after=first + 1)
        first_status = status_when(
            host, lambda d: d["last_pass"]["outcome"] == "completed", "a status"
        )
        later_status = status_when(
            host,
            lambda d: (
                d["last_pass"]["started_at_epoch"]
                > first_status["last_pass"]["started_at_epoch"]
            ),
            "the status of a later pass",
        )
        assert daemon.stop() == 0

    policy = counters(started)
    assert policy["host"] == "cmp1"
    assert policy["instances_path"] == str(host.instances_path)
    assert policy["cache_dir"] == str(host.base)
    assert policy["driver"] == "static"
    assert policy["original_minimum_age_seconds"] == "86400"
    assert policy["resized_minimum_age_seconds"] == "3600"
    assert policy["manager_interval"] == "1"
    assert policy["dry_run"] == "False"
    assert len(daemon.matching(STARTED)) == 1
    assert counters(daemon.line(first))["removed"] == "1"
    assert counters(daemon.line(second))["removed"] == "0"
    assert host.cache_names() == {FP_USED, FP_YOUNG}

    gap = (
        later_status["last_pass"]["started_at_epoch"]
        - first_status["last_pass"]["started_at_epoch"]
    )
    assert gap >= 0.9, f"passes {gap:.2f}s apart with manager_interval = 1"
    last = later_status["last_pass"]
    assert last["outcome"] == "completed"
    assert last["counters"]["files"] == 2
    assert last["counters"]["in_use"] == 1
    assert last["counters"]["too_young"] == 1
    assert set(last["stage_seconds"]) == {"gather", "plan", "apply", "report"}
    assert last["started_at_epoch"] <= last["ended_at_epoch"]
    assert later_status["last_completed_pass"] == last
    assert later_status["host"] == "cmp1"
    assert later_status["manager_interval"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".status.json")]


def test_sighup_applies_a_changed_age_to_the_next_pass(tmp_path: Path):
    """SIGHUP re-reads the file: a bad age is refused and leaves the worker
    and its age alone, a good one changes the next pass's decision; each
    reload says what changed, against the value that was in force."""
    host = Host(tmp_path)
    host.cache_file(FP_OLD, age=2 * HOUR)
    options: dict[str, dict[str, object]] = {
        "image_cache": {"manager_interval": 1},
        "daemon": {"status_file": tmp_path / "status.json"},
    }
    host.write(options)
    age = "remove_unused_original_minimum_age_seconds"
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        first = daemon.wait_for(SUMMARY)
        assert counters(daemon.line(first))["too_young"] == "1"

        options["image_cache"][age] = -5
        host.write(options)
        daemon.send(signal.SIGHUP)
        bad = daemon.wait_for("Configuration reloaded with a bad value")
        kept = daemon.wait_for(SUMMARY, after=bad)

        options["image_cache"][age] = 3600
        host.write(options)
        daemon.send(signal.SIGHUP)
        good = daemon.wait_for("Configuration reloaded;", after=kept)
        restarted = daemon.wait_for(STARTED, after=good)
        changed = daemon.wait_for(SUMMARY, after=restarted)
        assert daemon.stop() == 0

    assert f"[image_cache] {age} = -5" in daemon.line(bad)
    assert " ERROR " in daemon.line(bad)
    assert not any(STARTED in line for line in daemon.lines[bad:good])
    assert counters(daemon.line(kept))["too_young"] == "1"
    assert f"[image_cache] {age} = 3600 (was 86400)" in daemon.line(good)
    assert counters(daemon.line(restarted))["original_minimum_age_seconds"] == "3600"
    assert counters(daemon.line(changed))["removed"] == "1"
    assert FP_OLD not in host.cache_names()
    assert "Traceback" not in daemon.output


@pytest.mark.parametrize("damage", ["unparsable", "deleted"])
def test_a_reload_without_a_usable_file_is_one_error_line(tmp_path: Path, damage):
    """A file that cannot be parsed, or is gone, is named in one ERROR line;
    the worker runs on with the settings it had, and the next good reload
    reports the change against them."""
    host = Host(tmp_path)
    options: dict[str, dict[str, object]] = {
        "image_cache": {"manager_interval": 600},
        "daemon": {"status_file": tmp_path / "status.json"},
    }
    host.write(options)
    good_text = host.config_path.read_text()
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        daemon.wait_for(SUMMARY)
        if damage == "deleted":
            host.config_path.unlink()
        else:
            host.config_path.write_text("[image_cache\nmanager_interval = 700\n")
        daemon.send(signal.SIGHUP)
        error = daemon.wait_for("Configuration files could not be reloaded")
        host.config_path.write_text(good_text.replace("= 600", "= 700"))
        daemon.send(signal.SIGHUP)
        good = daemon.wait_for("Configuration reloaded;", after=error)
        daemon.wait_for(STARTED, after=good)
        assert daemon.stop() == 0

    assert " ERROR " in daemon.line(error)
    assert str(host.config_path) in daemon.line(error)
    assert not any(STARTED in line for line in daemon.lines[error:good])
    assert "[image_cache] manager_interval = 700 (was 600)" in daemon.line(good)
    assert "Traceback" not in daemon.output


@pytest.mark.parametrize("to_group", [False, True], ids=["master", "group"])
def test_sigint_stops_cleanly_like_sigterm(tmp_path: Path, to_group: bool):
    """SIGINT, to the master or to the whole process group as Ctrl-C sends
    it, stops the worker gracefully and the daemon exits 0."""
    host = Host(tmp_path)
    host.write({"daemon": {"status_file": tmp_path / "status.json"}})
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        daemon.wait_for(SUMMARY)
        if to_group:
            os.killpg(daemon.pid, signal.SIGINT)
        else:
            daemon.send(signal.SIGINT)
        code = daemon.wait()
    assert code == 0
    daemon.wait_for("Caught SIGINT: stopping as for SIGTERM")
    daemon.wait_for("Stopping: a pass in progress stops")
    assert "instantaneous exiting" not in daemon.output
    document = read_status(host)
    assert document["state"] == "stopped"
    assert document["pid"] is None
    assert document["next_pass_at"] is None


def test_sigterm_during_apply_finishes_the_file_operation_and_exits_0(
    tmp_path: Path,
):
    """SIGTERM while apply waits on nova's lock: that file is still handled
    whole once the lock is free, the files after it are left alone, exit 0."""
    host = daemon_host(tmp_path, {"manager_interval": 3600, "lock_wait_seconds": 30})
    for name in (FP_FIRST, FP_SECOND, FP_THIRD):
        host.cache_file(name, age=2 * DAY)
    lock_file = str(host.instances_path / "locks" / f"nova-{FP_SECOND}")
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        with held_lock(FP_SECOND, host.instances_path / "locks"):
            wait_until(
                lambda: any(lock_file in fd_targets(p) for p in daemon.workers()),
                "the worker to wait on nova's lock of the second file",
            )
            assert FP_FIRST not in host.cache_names()
            daemon.send(signal.SIGTERM)
            daemon.wait_for("Stopping: a pass in progress")
            assert daemon.process.poll() is None, "exited without finishing"
        # The lock is free: the file operation in progress completes.
        assert daemon.wait() == 0

    assert host.cache_names() == {FP_THIRD}
    assert daemon.matching(f"Removed {FP_FIRST}")
    assert daemon.matching(f"Removed {FP_SECOND}")
    assert not daemon.matching(FP_THIRD)
    assert daemon.matching("Image cache pass stopped during apply after 2 of 3")
    assert not daemon.matching(SUMMARY)
    last = read_status(host)["last_pass"]
    assert last["outcome"] == "stopped"
    assert last["counters"]["removed"] == 2


def test_a_refused_pass_is_logged_and_the_timer_goes_on(tmp_path: Path):
    """An unreadable inventory refuses the pass; the next one still runs."""
    host = daemon_host(tmp_path, {"manager_interval": 1}, inventory=False)
    host.cache_file(FP_OLD, age=2 * DAY)
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        refused = daemon.wait_for("Image cache pass refused, nothing was removed")
        document = status_when(
            host,
            lambda d: (d["last_pass"] or {}).get("outcome") == "refused",
            "a refusal",
        )
        assert FP_OLD in host.cache_names()
        host.write({"daemon": {"status_file": tmp_path / "status.json"}})
        completed = daemon.wait_for(SUMMARY, after=refused)
        assert daemon.stop() == 0

    assert " ERROR " in daemon.line(refused)
    assert str(host.inventory_path) in document["last_pass"]["error"]
    assert document["last_pass"]["counters"] is None
    assert counters(daemon.line(completed))["removed"] == "1"


def test_a_pass_longer_than_the_interval_is_reported_not_stacked(tmp_path: Path):
    """Passes that outlast manager_interval follow one another, one at a
    time, each overrun logged at WARNING."""
    host = daemon_host(tmp_path, {"manager_interval": 1, "lock_wait_seconds": 1.2})
    host.cache_file(FP_OLD, age=2 * DAY)
    with (
        held_lock(FP_OLD, host.instances_path / "locks"),
        Daemon(host.config_path, "--debug", cwd=tmp_path) as daemon,
    ):
        first = daemon.wait_for(SUMMARY)
        overrun = daemon.wait_for("longer than [image_cache] manager_interval")
        second = daemon.wait_for(SUMMARY, after=first + 1)
        assert daemon.stop() == 0

    assert " WARNING " in daemon.line(overrun)
    assert counters(daemon.line(first))["kept_locked"] == "1"
    assert counters(daemon.line(second))["kept_locked"] == "1"
    events = [
        "start" if "Image cache pass starting" in line else "end"
        for line in daemon.lines
        if "Image cache pass starting" in line
        or SUMMARY in line
        or "Image cache pass stopped" in line
    ]
    assert events[:4] == ["start", "end", "start", "end"], events
    assert all(a != b for a, b in itertools.pairwise(events)), events


def test_notify_socket_gets_ready_status_watchdog_and_stopping(tmp_path: Path):
    """The worker, not oslo.service's master, sends READY=1 once, then
    STATUS= with the pass and WATCHDOG=1 within every watchdog period."""
    host = daemon_host(tmp_path, {"manager_interval": 3600})
    host.cache_file(FP_OLD, age=2 * DAY)
    watchdog = 0.4
    with notify_socket() as systemd:
        env = {"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": str(int(watchdog * 1e6))}
        with Daemon(host.config_path, env=env, cwd=tmp_path) as daemon:
            ready = systemd.wait_for(lambda m: "READY" in m.fields, "READY=1")
            status = systemd.wait_for(
                lambda m: "Last pass completed" in m.fields.get("STATUS", ""),
                "STATUS= of the first pass",
            )
            first_ping = systemd.wait_for(lambda m: "WATCHDOG" in m.fields, "a ping")
            pings = [first_ping]
            while pings[-1].received - first_ping.received < 1.5:
                pings.append(
                    systemd.wait_for(lambda m: "WATCHDOG" in m.fields, "more pings")
                )
            assert daemon.stop() == 0
            stopping = systemd.wait_for(lambda m: "STOPPING" in m.fields, "STOPPING")

    workers = {m.pid for m in systemd.messages}
    assert daemon.pid not in workers, "oslo.service's master spoke to systemd"
    assert ready.fields["READY"] == "1"
    assert ready.pid != daemon.pid
    assert sum("READY" in m.fields for m in systemd.messages) == 1
    assert "removed=1" in status.fields["STATUS"]
    assert "next pass in" in status.fields["STATUS"]
    gaps = [b.received - a.received for a, b in itertools.pairwise(pings)]
    assert max(gaps) < watchdog, gaps
    assert {m.pid for m in pings} == {ready.pid} == {stopping.pid}


def test_watchdog_pings_stop_while_a_pass_is_stuck(tmp_path: Path):
    """A pass blocked in one step (an inventory FIFO nobody writes) stops
    the pings, so systemd would restart the service; they resume after."""
    host = daemon_host(tmp_path, {"manager_interval": 3600}, inventory=False)
    os.mkfifo(host.inventory_path)
    watchdog = 0.3
    with notify_socket() as systemd:
        env = {"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": str(int(watchdog * 1e6))}
        with Daemon(host.config_path, env=env, cwd=tmp_path) as daemon:
            systemd.wait_for(lambda m: "READY" in m.fields, "READY=1")
            silent_since = time.monotonic()
            deadline = silent_since + 10
            while time.monotonic() - silent_since < 5 * watchdog:
                message = systemd.receive(5 * watchdog)
                if message is not None and "WATCHDOG" in message.fields:
                    silent_since = message.received
                assert time.monotonic() < deadline, "the pings never stopped"
            assert not daemon.matching(SUMMARY)
            with open(host.inventory_path, "w", encoding="utf-8") as fifo:
                fifo.write('{"instances": []}')
            resumed = systemd.wait_for(lambda m: "WATCHDOG" in m.fields, "pings again")
            daemon.wait_for(SUMMARY)
            assert daemon.stop() == 0
    assert resumed.received - silent_since >= 5 * watchdog


def test_manager_interval_minus_one_idles_and_still_pings(tmp_path: Path):
    """-1: no pass at all, a WARNING and the status file say so; the
    watchdog is still fed; SIGTERM exits 0 and the file says stopped."""
    host = daemon_host(tmp_path, {"manager_interval": -1})
    host.cache_file(FP_OLD, age=2 * DAY)
    with notify_socket() as systemd:
        env = {"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "200000"}
        with Daemon(host.config_path, env=env, cwd=tmp_path) as daemon:
            ready = systemd.wait_for(lambda m: "READY" in m.fields, "READY=1")
            for _ in range(4):
                systemd.wait_for(lambda m: "WATCHDOG" in m.fields, "a ping")
            started = daemon.line(daemon.wait_for(STARTED))
            idle = status_when(host, lambda d: d["state"] == "idle", "idle")
            assert daemon.stop() == 0

    assert "Idle" in ready.fields["STATUS"]
    assert "next_pass=never (idle)" in started
    assert daemon.matching(
        "WARNING cachemgr.service [-] [image_cache] manager_interval = -1"
    )
    assert "Image cache pass" not in daemon.output
    assert FP_OLD in host.cache_names()
    assert idle["next_pass_at"] is None and idle["last_pass"] is None
    assert read_status(host)["state"] == "stopped"


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("status_file", "no-parent/no-dir/status.json", "[daemon] status_file"),
        ("graceful_shutdown_timeout", "soon", "graceful_shutdown_timeout"),
    ],
)
def test_a_bad_daemon_option_exits_2_before_the_launch(
    tmp_path: Path, option: str, value: str, named: str
):
    """Options only the daemon reads are checked before it forks."""
    host = Host(tmp_path)
    section = "daemon" if option == "status_file" else "DEFAULT"
    value_path = tmp_path / value if option == "status_file" else value
    host.write({section: {option: value_path}})
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        assert daemon.wait() == 2
    assert named in daemon.output
    assert STARTED not in daemon.output


@pytest.mark.broker
def test_nova_inventory_in_the_worker_and_again_after_a_reload(
    tmp_path: Path, broker_url: str
):
    """The message bus transport is made in the worker, after the fork, and
    again in the worker a reload forks: both ask the conductor and pass."""
    with serve(FakeConductor(), broker_url) as conductor:
        host = Host(tmp_path, name="compute-01")
        host.cache_file(fingerprint("retired-image"), age=10 * DAY)
        host.write(
            {
                "DEFAULT": {"transport_url": conductor.url},
                "image_cache": {"manager_interval": 1},
                "inventory": {
                    "driver": "nova",
                    "static_path": None,
                    "conductor_exchange": conductor.exchange,
                },
                "daemon": {"status_file": tmp_path / "status.json"},
            },
            inventory=False,
        )
        with Daemon(host.config_path, cwd=tmp_path) as daemon:
            first = daemon.wait_for(SUMMARY)
            asked_first = len(conductor.conductor.requests)
            daemon.send(signal.SIGHUP)
            restarted = daemon.wait_for(STARTED, after=first)
            after_reload = daemon.wait_for(SUMMARY, after=restarted)
            assert daemon.stop() == 0

    assert counters(daemon.line(first))["removed"] == "1"
    assert counters(daemon.line(after_reload))["errors"] == "0"
    assert len(conductor.conductor.requests) > asked_first > 0
    assert not daemon.matching("Image cache pass refused")


def test_sigint_stops_a_once_pass_at_the_next_file_boundary(tmp_path: Path):
    """Ctrl-C on ``--once`` while it waits on nova's lock: that file
    operation ends, the pass stops before the next one and says so, the
    other files are left, exit 1."""
    host = daemon_host(tmp_path, {"lock_wait_seconds": 3})
    for name in (FP_FIRST, FP_SECOND, FP_THIRD):
        host.cache_file(name, age=2 * DAY)
    with (
        held_lock(FP_FIRST, host.instances_path / "locks"),
        Daemon(host.config_path, "--once", cwd=tmp_path) as run,
    ):
        run.wait_for("Scanning the storage")
        time.sleep(1)
        run.send(signal.SIGINT)
        code = run.wait()
    assert code == 1
    stopped = run.matching("Image cache pass stopped during apply after 1 of 3")
    assert stopped, run.output
    assert "Traceback" not in run.output
    assert {FP_SECOND, FP_THIRD} <= host.cache_names()
