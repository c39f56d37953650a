"""The status file: the daemon's last pass, as JSON, for monitoring tools.

It is rewritten after every pass through a temporary file in the same
directory that is fsynced and renamed over the old one, then the directory
is fsynced (cachemgr.cache.safefs.replace_file): a reader sees the previous
document or the new one, never a torn one, even after a crash or a power cut.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import time
from collections.abc import Mapping

from cachemgr.cache import safefs
from cachemgr.pipeline.result import PassResult, iso_time

__all__ = [
    "FORMAT_VERSION",
    "DaemonState",
    "pass_entry",
    "read_status",
    "status_document",
    "write_status",
]

# The logger's name predates the module's move: operators' filters use it.
LOG = logging.getLogger("cachemgr.status")

FORMAT_VERSION = 1


class DaemonState(enum.Enum):
    """What the daemon does now; the values are the status file's words."""

    RUNNING = "running"
    IDLE = "idle"
    STOPPED = "stopped"


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
        "updated_at": iso_time(time.time()),
        "host": host,
        "instances_path": instances_path,
        "pid": None if state is DaemonState.STOPPED else os.getpid(),
        "manager_interval": manager_interval,
        "next_pass_at": iso_time(next_pass_at) if next_pass_at is not None else None,
        "last_pass": last_pass,
        "last_completed_pass": last_completed,
    }


def pass_entry(record: PassResult) -> dict[str, object]:
    """One pass as the status file records it."""
    return {
        "outcome": record.outcome.value,
        "started_at": iso_time(record.started_at),
        "ended_at": iso_time(record.ended_at),
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

    The same writer as nova's registry (safefs.replace_file). Monitoring must
    not stop the daemon: a full disk or a read-only directory is a WARNING,
    and the next pass tries again.
    """
    directory, name = os.path.split(path)
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    try:
        dir_fd, dir_stat = safefs.open_directory(directory or ".", follow=True)
        try:
            safefs.replace_file(dir_fd, name, data, mode=0o644, model=dir_stat)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        LOG.warning("Cannot write the status file %s: %s", path, exc.strerror or exc)
        return False
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
