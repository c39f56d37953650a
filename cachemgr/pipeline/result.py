"""One pass's result, made once and read by everything that tells of it.

``run_pass`` makes the PassReport (the counters and stage times, and why it
stopped early if it did); ``attempt_pass`` wraps it in the PassResult (how
the attempt ended). The status file, systemd's STATUS= line and the exit
status of ``--once`` all read that one record.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from cachemgr.pipeline.report import Summary, brief_counters

__all__ = ["PassOutcome", "PassReport", "PassResult", "Skip", "iso_time"]


class PassOutcome(enum.Enum):
    """How a pass ended; the values are the status file's words."""

    COMPLETED = "completed"
    REFUSED = "refused"
    FAILED = "failed"
    STOPPED = "stopped"
    # Another host of the shared storage passed, or is passing (DESIGN 1.11).
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class PassReport:
    """What the stages of one pass did, and how long each took.

    ``summary`` is None when the pass stopped before apply; ``stopped`` says
    why a pass stopped early, and then the counters cover only the files it
    reached. ``refused`` says why a pass that ran removed nothing on
    purpose (a shrunken inventory): it refreshed, and is refused all the
    same. ``state_bytes`` holds the allocated bytes of the files counted
    in each category of the summary (report.FILE_STATES), and
    ``filesystem_used_ratio`` the use of the cache dir's file system when
    the pass gathered (df's, 0 to 1): the metrics publish both.
    """

    summary: Summary | None
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
    stopped: str | None = None
    refused: str | None = None
    state_bytes: Mapping[str, int] = field(default_factory=dict)
    filesystem_used_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a daemon left its pass to another host of the storage.

    ``passed_by`` and ``passed_at`` (epoch seconds, that host's clock) name
    the pass recorded in the storage's record; both are None when the
    remover lock was held and no recent pass is recorded. ``next_check_at``
    is when this daemon looks again.
    """

    passed_by: str | None
    passed_at: float | None
    next_check_at: float
    lock_held: bool = False

    def describe(self) -> str:
        """The words for the log line, the status file and STATUS=."""
        if self.passed_by is None or self.passed_at is None:
            done = "another host of the storage holds the remover lock"
        else:
            done = f"host {self.passed_by} completed one at {iso_time(self.passed_at)}"
            if self.lock_held:
                done += " and another host holds the remover lock"
        return f"{done}; next check at {iso_time(self.next_check_at)}"


@dataclass(frozen=True, slots=True)
class PassResult:
    """How one attempted pass ended; ``report`` is None unless it got that far."""

    outcome: PassOutcome
    started_at: float
    ended_at: float
    dry_run: bool
    report: PassReport | None = None
    error: str | None = None
    skip: Skip | None = None

    @property
    def summary(self) -> Summary | None:
        return self.report.summary if self.report is not None else None

    @property
    def stage_seconds(self) -> Mapping[str, float]:
        return self.report.stage_seconds if self.report is not None else {}

    def describe(self) -> str:
        """One line for systemd's STATUS=: outcome, time, and what it did."""
        when = iso_time(self.ended_at)
        summary = self.summary
        if self.skip is not None:
            what = self.skip.describe()
        elif summary is not None:
            what = brief_counters(summary)
        else:
            what = self.error or "no counters"
        dry = " (dry run)" if self.dry_run else ""
        return f"Last pass {self.outcome.value}{dry} at {when}: {what}"


def iso_time(epoch: float) -> str:
    """An epoch time as the status file and STATUS= write it, in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
