"""Tests for cachemgr.status: the document and its atomic write."""

from __future__ import annotations

import json
import logging
import os

from cachemgr.daemon.status import (
    FORMAT_VERSION,
    DaemonState,
    pass_entry,
    read_status,
    status_document,
    write_status,
)
from cachemgr.pipeline.report import Summary
from cachemgr.pipeline.result import PassOutcome, PassReport, PassResult

T0 = 1_790_000_000.0
SUMMARY = Summary(files=5, in_use=2, removed=2, too_young=1, bytes_removed=8192)


def completed(started: float = T0) -> PassResult:
    return PassResult(
        outcome=PassOutcome.COMPLETED,
        started_at=started,
        ended_at=started + 1.5,
        dry_run=False,
        report=PassReport(
            SUMMARY, {"gather": 1.0, "plan": 0.1, "apply": 0.3, "report": 0.1}
        ),
    )


def refused(started: float = T0 + 60) -> PassResult:
    return PassResult(
        outcome=PassOutcome.REFUSED,
        started_at=started,
        ended_at=started + 0.2,
        dry_run=False,
        error="inventory.json: cannot read the static inventory",
    )


def document(
    record: PassResult, last_completed=None, state=DaemonState.RUNNING
) -> dict:
    entry = pass_entry(record)
    return status_document(
        state,
        host="cmp1",
        instances_path="/var/lib/nova/instances",
        manager_interval=2400,
        next_pass_at=None if state is DaemonState.STOPPED else T0 + 2400,
        last_pass=entry,
        last_completed=entry
        if record.outcome is PassOutcome.COMPLETED
        else last_completed,
    )


class TestStatusDocument:
    def test_completed_pass(self):
        """Counters, stage durations, times and outcome of the pass."""
        doc = document(completed())
        last = doc["last_pass"]
        assert doc["format"] == FORMAT_VERSION
        assert doc["host"] == "cmp1"
        assert doc["pid"] == os.getpid()
        assert last["outcome"] == "completed"
        assert last["counters"]["removed"] == 2
        assert last["counters"]["bytes_removed"] == 8192
        assert last["stage_seconds"]["gather"] == 1.0
        assert last["started_at_epoch"] == T0
        assert last["duration_seconds"] == 1.5
        assert last["started_at"].endswith("Z")
        assert doc["last_completed_pass"] == last
        assert json.loads(json.dumps(doc)) == doc

    def test_a_stopped_daemon_names_no_process_and_no_next_pass(self):
        """After a stop, nothing in the file points at a process or a time
        that will never come; the last passes stay."""
        doc = document(completed(), state=DaemonState.STOPPED)
        assert doc["state"] == "stopped"
        assert doc["pid"] is None
        assert doc["next_pass_at"] is None
        assert doc["last_pass"]["outcome"] == "completed"
        assert doc["updated_at"].endswith("Z")


class TestDescribe:
    def test_completed(self):
        """systemctl status shows the counters of the last pass."""
        line = completed().describe()
        assert line.startswith("Last pass completed at ")
        assert "removed=2" in line
        assert "errors=0" in line

    def test_refused(self):
        """A refusal shows why."""
        assert "cannot read the static inventory" in refused().describe()


class TestWriteStatus:
    def test_replaces_the_file_whole(self, tmp_path):
        """A new inode each time, and no temporary file left behind."""
        path = tmp_path / "status.json"
        assert write_status(str(path), document(completed()))
        first_inode = path.stat().st_ino
        assert write_status(str(path), document(refused()))
        assert path.stat().st_ino != first_inode
        assert json.loads(path.read_text())["last_pass"]["outcome"] == "refused"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
        assert path.stat().st_mode & 0o777 == 0o644

    def test_a_failure_is_a_warning(self, tmp_path, caplog):
        """Monitoring must not stop the daemon."""
        path = tmp_path / "gone" / "status.json"
        with caplog.at_level(logging.WARNING, logger="cachemgr.status"):
            assert write_status(str(path), document(completed())) is False
        assert str(path) in caplog.text


class TestReadStatus:
    def test_round_trip(self, tmp_path):
        """A new worker carries the last passes forward."""
        path = tmp_path / "status.json"
        doc = document(completed())
        write_status(str(path), doc)
        assert read_status(str(path)) == doc

    def test_missing_garbage_or_other_format(self, tmp_path):
        """Anything but this format's document is ignored."""
        path = tmp_path / "status.json"
        assert read_status(str(path)) is None
        path.write_text("{not json")
        assert read_status(str(path)) is None
        path.write_text(json.dumps({"format": 99, "last_completed_pass": {}}))
        assert read_status(str(path)) is None
