"""``cachemgr --status``: the status file, shown for a person, as a health check.

Exit status: 0 the last completed pass ended within two intervals (or
``manager_interval = -1``: no pass is expected), this host's or, on a
shared storage whose passes it leaves to another host (DESIGN 1.11), the
one its last skipped pass saw; 1 it did not, or no pass has completed;
2 there is no status file to read (unset, missing, unreadable, not
cachemgr's format). Two intervals, not one: a pass that
ends a little late, or one refused pass between two good ones, is not yet
an alarm; two missed in a row are.
"""

from __future__ import annotations

import calendar
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from cachemgr.daemon import status
from cachemgr.daemon.service import pass_interval
from cachemgr.pipeline.report import brief_counters
from cachemgr.pipeline.result import iso_time

__all__ = ["EXIT_HEALTHY", "EXIT_NO_STATUS", "EXIT_STALE", "show_status"]

EXIT_HEALTHY = 0
EXIT_STALE = 1
EXIT_NO_STATUS = 2


def show_status(
    path: str, *, now: float | None = None, out: TextIO = sys.stdout
) -> int:
    """Print what the status file at ``path`` says; the health check's exit status."""
    now = time.time() if now is None else now
    if not path:
        print("cachemgr: no status file: [daemon] status_file is empty", file=out)
        return EXIT_NO_STATUS
    document = status.read_status(path)
    if document is None:
        print(
            f"cachemgr: cannot read the status file {path} (missing, unreadable "
            "or not written by this cachemgr): has a pass run yet?",
            file=out,
        )
        return EXIT_NO_STATUS
    manager_interval = document.get("manager_interval")
    interval = (
        pass_interval(manager_interval) if isinstance(manager_interval, int) else None
    )
    last = _entry(document, "last_pass")
    completed = _entry(document, "last_completed_pass")
    pid = f" (pid {document['pid']})" if document.get("pid") else ""
    lines = [
        f"Status file:         {path}, updated {document.get('updated_at')}",
        f"State:               {document.get('state')}{pid}",
        f"Host:                {document.get('host')}, instances_path "
        f"{document.get('instances_path')}",
        f"Interval:            {_interval_words(interval)}",
        f"Last pass:           {_pass_words(last, now)}",
        f"Last completed pass: {_pass_words(completed, now)}",
        f"Next pass:           {_next_words(document, now)}",
    ]
    verdict, code = _health(completed, status.storage_passed_at(last), interval, now)
    print("\n".join([*lines, verdict]), file=out)
    return code


def _entry(document: Mapping[str, object], key: str) -> Mapping[str, object] | None:
    value = document.get(key)
    return value if isinstance(value, dict) else None


def _ended(entry: Mapping[str, object] | None) -> float | None:
    value = entry.get("ended_at_epoch") if entry else None
    return float(value) if isinstance(value, int | float) else None


def _ago(now: float, then: float) -> str:
    return f"{max(0.0, now - then):.0f} s ago"


def _interval_words(interval: float | None) -> str:
    if interval is None:
        return "none: manager_interval = -1, no passes run"
    return f"a pass every {interval:g} s"


def _pass_words(entry: Mapping[str, object] | None, now: float) -> str:
    ended = _ended(entry)
    if entry is None or ended is None:
        return "none yet"
    dry = " (dry run)" if entry.get("dry_run") else ""
    words = (
        f"{entry.get('outcome')}{dry} at {iso_time(ended)} ({_ago(now, ended)}), "
        f"took {entry.get('duration_seconds')} s"
    )
    summary = status.summary_of(entry)
    if summary is not None:
        words += f"\n                     {brief_counters(summary)} mode={summary.mode}"
    if entry.get("error"):
        words += f"\n                     {entry['error']}"
    skipped = entry.get("skipped")
    if isinstance(skipped, dict) and skipped.get("why"):
        words += f"\n                     {skipped['why']}"
    return words


def _next_words(document: Mapping[str, object], now: float) -> str:
    if document.get("state") == status.DaemonState.ONCE.value:
        return "when the timer (or cron) runs cachemgr --once again"
    next_at = document.get("next_pass_at")
    if not isinstance(next_at, str):
        return "none scheduled"
    try:
        when = calendar.timegm(time.strptime(next_at, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return next_at
    return f"{next_at} (in {max(0.0, when - now):.0f} s)"


def _health(
    completed: Mapping[str, object] | None,
    storage_passed_at: float | None,
    interval: float | None,
    now: float,
) -> tuple[str, int]:
    if interval is None:
        return "OK: no pass is expected (manager_interval = -1)", EXIT_HEALTHY
    ended = _ended(completed)
    what = "the last completed pass"
    if storage_passed_at is not None and (ended is None or storage_passed_at > ended):
        ended, what = (
            storage_passed_at,
            "the shared storage's last pass (another host's)",
        )
    limit = 2 * interval
    if ended is None:
        return "NOT OK: no pass has completed yet", EXIT_STALE
    if now - ended > limit:
        return (
            f"NOT OK: {what} ended {_ago(now, ended)}, more than two intervals "
            f"({limit:g} s)",
            EXIT_STALE,
        )
    return (
        f"OK: {what} ended {_ago(now, ended)}, within two intervals ({limit:g} s)",
        EXIT_HEALTHY,
    )
