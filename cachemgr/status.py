"""The status file: the daemon's last pass, as JSON, for monitoring tools.

It is rewritten after every pass through a temporary file in the same
directory that is fsynced and renamed over the old one, then the directory
is fsynced: a reader sees the previous document or the new one, never a
torn one, even after a crash or a power cut.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cachemgr.report import Summary

__all__ = [
    "FORMAT_VERSION",
    "DaemonState",
    "Outcome",
    "PassRecord",
    "pass_entry",
    "read_status",
    "status_document",
    "write_status",
]

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1


class Outcome(enum.Enum):
    """How a pass ended; the values are the status file's words."""

    COMPLETED = "completed"
    REFUSED = "refused"
    FAILED = "failed"
    STOPPED = "stopped"


class DaemonState(enum.Enum):
    """What the daemon does now; the values are the status file's words."""

    RUNNING = "running"
    IDLE = "idle"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class PassRecord:
    """One pass as the daemon saw it.

    ``summary`` is None when the pass ended before it had counters (refused,
    failed, or stopped before apply); a stopped pass's counters cover only
    the files it reached.
    """

    outcome: Outcome
    started_at: float
    ended_at: float
    dry_run: bool
    summary: Summary | None = None
    stage_seconds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None

    def describe(self) -> str:
        """One line for systemd's STATUS=: outcome, time, and what it did."""
        when = _iso(self.ended_at)
        if self.summary is not None:
            s = self.summary
            what = (
                f"files={s.files} in_use={s.in_use} removed={s.removed} "
                f"too_young={s.too_young} kept_open={s.kept_open} errors={s.errors}"
            )
        else:
            what = self.error or "no counters"
        dry = " (dry run)" if self.dry_run else ""
        return f"Last pass {self.outcome.value}{dry} at {when}: {what}"


def status_document(
    state: DaemonState,
    *,
    host: str,
    instances_path: str,
    manager_interval: int,
    next_pass_at: float | None,
    last_pass: Mapping[str, object] | None,
    last_completed: Mapping[str, object] | None,
) -> dict[str, object]:
    """The JSON document: the daemon's state (``pid`` is None once it has
    stopped, ``next_pass_at`` None when no pass will come) and its last
    pass and last completed pass (entries made by ``pass_entry``)."""
    return {
        "format": FORMAT_VERSION,
        "state": state.value,
        "updated_at": _iso(time.time()),
        "host": host,
        "instances_path": instances_path,
        "pid": None if state is DaemonState.STOPPED else os.getpid(),
        "manager_interval": manager_interval,
        "next_pass_at": _iso(next_pass_at) if next_pass_at is not None else None,
        "last_pass": last_pass,
        "last_completed_pass": last_completed,
    }


def pass_entry(record: PassRecord) -> dict[str, object]:
    """One pass as the status file records it."""
    return {
        "outcome": record.outcome.value,
        "started_at": _iso(record.started_at),
        "ended_at": _iso(record.ended_at),
        "started_at_epoch": round(record.started_at, 3),
        "ended_at_epoch": round(record.ended_at, 3),
        "duration_seconds": round(record.ended_at - record.started_at, 3),
        "dry_run": record.dry_run,
        "counters": (
            dataclasses.asdict(record.summary) if record.summary is not None else None
        ),
        "stage_seconds": {k: round(v, 6) for k, v in record.stage_seconds.items()},
        "error": record.error,
    }


def write_status(path: str, document: Mapping[str, object]) -> bool:
    """Replace ``path`` with ``document`` atomically; False (logged) on failure.

    Monitoring must not stop the daemon: a full disk or a read-only
    directory is a WARNING, and the next pass tries again.
    """
    directory = os.path.dirname(path) or "."
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            prefix="." + os.path.basename(path) + ".", dir=directory
        )
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), 0o644)
            os.fsync(stream.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        LOG.warning("Cannot write the status file %s: %s", path, exc.strerror or exc)
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return True


def read_status(path: str) -> dict[str, object] | None:
    """The document an earlier worker wrote, so that its last passes survive
    a reload or a restart; None if there is none of this format."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        return None
    return document


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
