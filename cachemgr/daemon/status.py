"""The status file: the last pass, as JSON, for monitoring tools.

The daemon and ``cachemgr --once`` write the same document (DESIGN 1.10),
so a systemd timer or cron can run cachemgr instead of the daemon.

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
from cachemgr.exceptions import ConfigError
from cachemgr.pipeline.report import Mode, Summary
from cachemgr.pipeline.result import PassReport, PassResult, Skip, iso_time

__all__ = [
    "FORMAT_VERSION",
    "DaemonState",
    "check_writable_dir",
    "completed_report",
    "pass_entry",
    "prepare_status_dir",
    "read_status",
    "replace_whole",
    "status_document",
    "storage_passed_at",
    "summary_of",
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
    # Written by ``cachemgr --once``: no daemon runs, the next pass comes
    # when a timer or cron starts one.
    ONCE = "once"


# The states in which no cachemgr process stays behind the document.
_NO_PROCESS = frozenset({DaemonState.STOPPED, DaemonState.ONCE})


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
        "pid": None if state in _NO_PROCESS else os.getpid(),
        "manager_interval": manager_interval,
        "next_pass_at": iso_time(next_pass_at) if next_pass_at is not None else None,
        "last_pass": last_pass,
        "last_completed_pass": last_completed,
    }


def pass_entry(record: PassResult) -> dict[str, object]:
    """One pass as the status file records it."""
    report = record.report
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
        "state_bytes": dict(report.state_bytes) if report is not None else None,
        "filesystem_used_ratio": (
            report.filesystem_used_ratio if report is not None else None
        ),
        "error": record.error,
        "skipped": _skip_entry(record.skip) if record.skip is not None else None,
    }


def _skip_entry(skip: Skip) -> dict[str, object]:
    """Why a pass was left to another host, and when this one looks again."""
    return {
        "passed_by": skip.passed_by,
        "passed_at": iso_time(skip.passed_at) if skip.passed_at is not None else None,
        "passed_at_epoch": skip.passed_at,
        "lock_held": skip.lock_held,
        "next_check_at": iso_time(skip.next_check_at),
        "why": skip.describe(),
    }


def storage_passed_at(entry: Mapping[str, object] | None) -> float | None:
    """When the pass another host ran ended, from a skipped pass's entry."""
    skipped = entry.get("skipped") if entry else None
    when = skipped.get("passed_at_epoch") if isinstance(skipped, dict) else None
    return float(when) if isinstance(when, int | float) else None


def completed_report(entry: Mapping[str, object] | None) -> PassReport | None:
    """The report of a completed pass, read back from its status entry.

    A ``--once`` run, or a daemon worker after a reload, publishes the last
    completed pass's cache figures when its own pass did not complete; this
    is where they come from. None for an entry without counters (or of an
    older cachemgr, which did not record the bytes of each state).
    """
    summary = summary_of(entry)
    state_bytes = entry.get("state_bytes") if entry else None
    if summary is None or not isinstance(state_bytes, dict):
        return None
    ratio = entry.get("filesystem_used_ratio") if entry else None
    return PassReport(
        summary,
        state_bytes=state_bytes,
        filesystem_used_ratio=float(ratio) if isinstance(ratio, int | float) else None,
    )


def summary_of(entry: Mapping[str, object] | None) -> Summary | None:
    """The counters of a pass entry as a Summary; None if it has none.

    Keys this version does not know (a newer cachemgr's) are left out, and
    missing ones take their defaults.
    """
    counters = entry.get("counters") if entry else None
    if not isinstance(counters, dict):
        return None
    known = {f.name for f in dataclasses.fields(Summary)}
    values = {k: v for k, v in counters.items() if k in known}
    try:
        return Summary(**values | {"mode": Mode(values.get("mode", "remove"))})
    except (TypeError, ValueError):
        return None


def write_status(path: str, document: Mapping[str, object]) -> bool:
    """Replace ``path`` with ``document`` atomically; False (logged) on failure."""
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    return replace_whole(path, data, "status file")


def replace_whole(path: str, data: bytes, what: str) -> bool:
    """Replace ``path`` with ``data`` atomically; False (logged) on failure.

    The same writer as nova's registry (safefs.replace_file: a fixed
    temporary name made with O_EXCL|O_NOFOLLOW, fsync, rename). Monitoring
    must not stop a pass: a full disk or a read-only directory is a
    WARNING naming ``what``, and the next pass tries again.
    """
    directory, name = os.path.split(path)
    try:
        safefs.replace_in_directory(directory or ".", name, data)
    except OSError as exc:
        LOG.warning("Cannot write the %s %s: %s", what, path, exc.strerror or exc)
        return False
    return True


def prepare_status_dir(path: str) -> None:
    """Make sure the status file's directory exists, creating it if need be.

    systemd's StateDirectory= makes /var/lib/cachemgr for the service, but
    nothing does for a timer, cron or a shell: when the directory's parent
    exists, the directory is made (0755, owned by the user cachemgr runs
    as); when not, the path is likely a mistake (DESIGN 1.10).

    Raises:
        ConfigError: naming [daemon] status_file, the directory and why.
    """
    directory = os.path.dirname(os.path.abspath(path))
    parent = os.path.dirname(directory)
    if not os.path.isdir(directory) and os.path.isdir(parent):
        try:
            os.mkdir(directory, 0o755)
            # mkdir's mode is masked by the umask: the contract says 0755.
            os.chmod(directory, 0o755)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigError(
                f"[daemon] status_file = {path}: cannot create directory "
                f"{directory}: {exc.strerror}"
            ) from exc
        else:
            LOG.info("Created %s for the status file", directory)
    if not os.path.isdir(directory):
        raise ConfigError(
            f"[daemon] status_file = {path}: neither directory {directory} nor "
            f"its parent {parent} exists; create it or set status_file to an "
            "empty value"
        )
    check_writable_dir("status_file", path, directory)


def check_writable_dir(option: str, path: str, directory: str) -> None:
    """Raise a ConfigError naming ``[daemon] option`` unless this user may
    create and rename files in ``directory``, as the atomic writer does."""
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(
            f"[daemon] {option} = {path}: directory {directory} is not "
            "writable by this user"
        )


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
