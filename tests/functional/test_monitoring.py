"""What operators watch (DESIGN 1.10): the status and metrics files of the
real ``cachemgr --once`` and daemon, read by a real node_exporter, and
``cachemgr --status``; and the log of a pass killed half way (DESIGN 1.7)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cachemgr.pipeline.report import FILE_STATES
from tests.support.daemons import SUMMARY, Daemon, counters, fd_targets, wait_until
from tests.support.hosts import (
    DAY,
    HOUR,
    Host,
    Run,
    fingerprint,
    held_lock,
    run_cachemgr,
)

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which(
    "node_exporter"
)
PROMTOOL = shutil.which("promtool")
FP_USED = fingerprint("img-used")
FP_OLD = fingerprint("img-old")
FP_YOUNG = fingerprint("img-young")
# Three unused old files, in the order apply reaches them (name order).
FP_FIRST, FP_SECOND, FP_THIRD = sorted(fingerprint(f"img-{n}") for n in range(3))
# The summary keys that count files, each a state of cachemgr_cache_files
# (kept_pinned is a state before the summary counts it: always 0 here).
STATES = tuple(s for s in FILE_STATES if s != "kept_pinned")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NodeExporter:
    """A real node_exporter with only its textfile collector, on loopback."""

    def __init__(self, directory: Path) -> None:
        assert NODE_EXPORTER is not None
        self.url = f"http://127.0.0.1:{free_port()}/metrics"
        self.process = subprocess.Popen(
            [
                NODE_EXPORTER,
                f"--web.listen-address={self.url.split('/')[2]}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={directory}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(self._answers, "node_exporter to answer on " + self.url)

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
        try:
            self.scrape()
        except OSError:
            return False
        return True

    def scrape(self) -> Samples:
        """Every sample of /metrics, parsed by prometheus_client's parser."""
        with urllib.request.urlopen(self.url, timeout=5) as response:
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def textfile_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "textfile"
    directory.mkdir()
    return directory


@pytest.fixture
def node_exporter(textfile_dir: Path) -> Iterator[NodeExporter]:
    if NODE_EXPORTER is None:
        message = "node_exporter is missing (apt install prometheus-node-exporter)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true: the metrics must be scraped")
        pytest.skip(message)
    exporter = NodeExporter(textfile_dir)
    try:
        yield exporter
    finally:
        exporter.close()


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def monitored_host(tmp_path: Path, textfile_dir: Path, **daemon: object) -> Host:
    """A host with one file of each main state and a metrics file."""
    host = Host(tmp_path)
    host.cache_file(FP_USED, age=2 * DAY)
    host.cache_file(FP_OLD, age=2 * DAY, size=12288)
    host.cache_file(FP_YOUNG, age=HOUR, size=8192)
    host.cache_file("notes.txt", age=2 * DAY)
    host.disk(host.instance("img-used"), host.base / FP_USED)
    host.instance("img-elsewhere")
    host.write({"daemon": {"metrics_file": textfile_dir / "cachemgr.prom", **daemon}})
    return host


def df_use(path: Path) -> float:
    """df's Use% of ``path``'s file system, as a ratio, computed here."""
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    return used / (used + st.f_bavail)


def assert_cache_figures(samples: Samples, summary: dict, host: Host) -> None:
    """The scraped cache gauges are the summary line's counters."""
    for state in STATES:
        assert value(samples, "cachemgr_cache_files", state=state) == summary[state]
    assert value(samples, "cachemgr_cache_files", state="kept_pinned") == 0
    assert (
        value(samples, "cachemgr_cache_bytes", state="removed")
        == (summary["bytes_removed"])
    )
    for name in ("errors", "disks", "unreadable_disks", "instances"):
        assert value(samples, f"cachemgr_{name}") == summary[name], name
    assert value(samples, "cachemgr_reclaimable_bytes") == host.allocated(FP_YOUNG)
    assert value(samples, "cachemgr_cache_bytes", state="too_young") == (
        host.allocated(FP_YOUNG)
    )
    ratio = value(samples, "cachemgr_filesystem_used_ratio")
    assert abs(ratio - df_use(host.base)) < 0.01


class TestOnceMetrics:
    def test_node_exporter_reads_the_summary_counters(
        self, tmp_path: Path, textfile_dir: Path, node_exporter: NodeExporter
    ) -> None:
        """A --once pass's metrics, scraped, equal its summary line."""
        host = monitored_host(tmp_path, textfile_dir)
        run = host.run()
        assert run.returncode == 0, run.output
        summary = run.summary()
        assert summary["removed"] == 1 and summary["instances"] == 2

        samples = node_exporter.scrape()
        assert value(samples, "node_textfile_scrape_error") == 0
        assert_cache_figures(samples, summary, host)
        last = json.loads(host.status_path.read_text())["last_pass"]
        assert value(samples, "cachemgr_last_pass_outcome", outcome="completed") == 1
        for other in ("refused", "failed", "stopped", "skipped"):
            assert value(samples, "cachemgr_last_pass_outcome", outcome=other) == 0
        end = value(samples, "cachemgr_last_pass_end_timestamp_seconds")
        assert abs(end - last["ended_at_epoch"]) < 0.001
        assert (
            value(samples, "cachemgr_last_completed_pass_end_timestamp_seconds") == end
        )
        total = value(samples, "cachemgr_pass_duration_seconds", stage="total")
        assert abs(total - last["duration_seconds"]) < 0.001
        assert total >= summary["duration_s"] - 0.001
        for stage in ("gather", "plan", "apply", "report"):
            assert value(samples, "cachemgr_pass_duration_seconds", stage=stage) >= 0
        if PROMTOOL is not None:
            check = subprocess.run(
                [PROMTOOL, "check", "metrics"],
                stdin=(textfile_dir / "cachemgr.prom").open("rb"),
                capture_output=True,
                check=False,
            )
            assert check.returncode == 0, check.stdout + check.stderr
        assert sorted(os.listdir(textfile_dir)) == ["cachemgr.prom"]

    def test_a_refused_pass_keeps_the_cache_gauges(
        self, tmp_path: Path, textfile_dir: Path, node_exporter: NodeExporter
    ) -> None:
        """A refused --once run: outcome refused, cache figures of the last
        completed pass, read back from the status file by the new process."""
        host = monitored_host(tmp_path, textfile_dir)
        first = host.run()
        assert first.returncode == 0, first.output
        before = node_exporter.scrape()
        host.inventory_path.write_text("{not json")
        refused = host.run()
        assert refused.returncode == 1, refused.output

        samples = node_exporter.scrape()
        assert value(samples, "cachemgr_last_pass_outcome", outcome="refused") == 1
        assert value(samples, "cachemgr_last_pass_outcome", outcome="completed") == 0
        assert_cache_figures(samples, first.summary(), host)
        completed = "cachemgr_last_completed_pass_end_timestamp_seconds"
        assert value(samples, completed) == pytest.approx(value(before, completed))
        assert value(samples, "cachemgr_last_pass_end_timestamp_seconds") > (
            value(before, "cachemgr_last_pass_end_timestamp_seconds")
        )


def test_the_daemon_publishes_the_same_metrics(
    tmp_path: Path, textfile_dir: Path, node_exporter: NodeExporter
) -> None:
    """The daemon's metrics, scraped after its first pass, equal its line."""
    host = monitored_host(tmp_path, textfile_dir)
    host.write(
        {
            "image_cache": {"manager_interval": 3600},
            "daemon": {"metrics_file": textfile_dir / "cachemgr.prom"},
        }
    )
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        line = daemon.line(daemon.wait_for(SUMMARY))
        samples = wait_until(
            lambda: (lambda s: s if ("cachemgr_instances", ()) in s else None)(
                node_exporter.scrape()
            ),
            "the daemon's metrics",
        )
        assert daemon.stop() == 0
    summary = {k: int(v) for k, v in counters(line).items() if v.isdigit()}
    assert counters(line)["mode"] == "remove"
    assert_cache_figures(samples, summary, host)  # type: ignore[arg-type]
    assert value(samples, "cachemgr_last_pass_outcome", outcome="completed") == 1


class TestStatusInEveryMode:
    def test_once_writes_the_status_file_in_a_new_directory(
        self, tmp_path: Path
    ) -> None:
        """--once makes the status dir (0755) and records its pass there."""
        host = Host(tmp_path)
        host.cache_file(FP_OLD, age=2 * DAY)
        host.write()
        assert not host.state_dir.exists()
        run = host.run()
        assert run.returncode == 0, run.output
        assert host.state_dir.stat().st_mode & 0o777 == 0o755
        assert host.state_dir.stat().st_uid == os.geteuid()
        document = json.loads(host.status_path.read_text())
        assert document["state"] == "once" and document["pid"] is None
        assert document["last_pass"]["outcome"] == "completed"
        assert document["last_completed_pass"] == document["last_pass"]
        counters_ = document["last_pass"]["counters"]
        assert counters_["removed"] == run.summary()["removed"] == 1
        assert counters_["mode"] == "remove"

    def test_a_missing_parent_is_a_configuration_error(self, tmp_path: Path) -> None:
        """No parent to make the directory in: exit 2, the option named, no pass."""
        host = Host(tmp_path)
        host.cache_file(FP_OLD, age=2 * DAY)
        host.write({"daemon": {"status_file": tmp_path / "no" / "dir" / "s.json"}})
        run = host.run()
        assert run.returncode == 2
        assert "[daemon] status_file" in run.stderr
        assert FP_OLD in host.cache_names()

    def test_a_bad_metrics_file_name_is_a_configuration_error(
        self, tmp_path: Path
    ) -> None:
        """node_exporter reads only *.prom: another name exits 2, named."""
        host = Host(tmp_path)
        host.write({"daemon": {"metrics_file": tmp_path / "cachemgr.txt"}})
        run = host.run()
        assert run.returncode == 2
        assert "[daemon] metrics_file" in run.stderr and ".prom" in run.stderr


class TestStatusCommand:
    def status(self, host: Host) -> Run:
        return run_cachemgr("--config-file", str(host.config_path), "--status")

    def test_healthy_after_a_pass_stale_after_two_intervals(
        self, tmp_path: Path
    ) -> None:
        """0 with the last pass shown; 1 once it is more than two intervals old."""
        host = Host(tmp_path)
        host.cache_file(FP_OLD, age=2 * DAY)
        host.write({"image_cache": {"manager_interval": 600}})
        assert host.run().returncode == 0
        fresh = self.status(host)
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert "Last pass:           completed" in fresh.stdout
        assert "removed=1" in fresh.stdout and "mode=remove" in fresh.stdout
        assert "a pass every 600 s" in fresh.stdout
        assert fresh.stdout.rstrip().splitlines()[-1].startswith("OK: ")

        document = json.loads(host.status_path.read_text())
        document["last_completed_pass"]["ended_at_epoch"] -= 1201
        host.status_path.write_text(json.dumps(document))
        stale = self.status(host)
        assert stale.returncode == 1, stale.stdout
        assert "more than two intervals (1200 s)" in stale.stdout

    def test_no_completed_pass_is_unhealthy(self, tmp_path: Path) -> None:
        """A status file whose passes were all refused: exit 1."""
        host = Host(tmp_path)
        host.write()
        host.inventory_path.write_text("[]")
        assert host.run().returncode == 1
        result = self.status(host)
        assert result.returncode == 1
        assert "Last pass:           refused" in result.stdout
        assert "NOT OK: no pass has completed yet" in result.stdout

    def test_a_missing_status_file_exits_2(self, tmp_path: Path) -> None:
        """Nothing to read: exit 2 and a message naming the file."""
        host = Host(tmp_path)
        host.write()
        result = self.status(host)
        assert result.returncode == 2
        assert str(host.status_path) in result.stdout
        assert not host.state_dir.exists()


def test_sigkill_mid_apply_leaves_a_removed_line_for_every_file_gone(
    tmp_path: Path,
) -> None:
    """Killed while apply waits on nova's lock of the second file: the
    first file is gone and its Removed line is already in the log."""
    host = Host(tmp_path)
    for name in (FP_FIRST, FP_SECOND, FP_THIRD):
        host.cache_file(name, age=2 * DAY)
    host.write({"image_cache": {"lock_wait_seconds": 30}})
    log = tmp_path / "once.log"
    lock_file = str(host.instances_path / "locks" / f"nova-{FP_SECOND}")
    with held_lock(FP_SECOND, host.instances_path / "locks"), log.open("w") as out:
        once = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cachemgr.cmd.cachemgr",
                "--config-file",
                str(host.config_path),
                "--once",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(
                lambda: lock_file in fd_targets(once.pid),
                "cachemgr --once to wait on nova's lock of the second file",
            )
            once.send_signal(signal.SIGKILL)
        finally:
            once.wait(10)
    assert once.returncode == -signal.SIGKILL
    gone = {FP_FIRST, FP_SECOND, FP_THIRD} - host.cache_names()
    assert gone == {FP_FIRST}
    text = log.read_text()
    for name in gone:
        assert f"Removed {name}: unused" in text, text
    assert SUMMARY not in text
