"""After every pass, in either mode: the status file and the metrics file.

The daemon's worker and ``cachemgr --once`` publish through one Publisher,
so a timer-run cachemgr leaves monitoring the same files (DESIGN 1.10).
Both files tell of the last completed pass too; a new process (a --once
run, a worker forked after a reload) reads it back from the status file.
"""

from __future__ import annotations

from collections.abc import Mapping

from cachemgr.daemon import metrics, status
from cachemgr.daemon.status import DaemonState
from cachemgr.pipeline.guard import InventoryBaseline, baseline_of
from cachemgr.pipeline.result import PassOutcome, PassResult
from cachemgr.pipeline.settings import Settings

__all__ = ["Publisher"]


class Publisher:
    """The last pass and the last completed pass, and the files that tell them.

    Args:
        status_path: the status file, or "" for none.
        metrics_path: the metrics file, or "" for none.
    """

    def __init__(self, status_path: str, metrics_path: str) -> None:
        self.status_path = status_path
        self.metrics_path = metrics_path
        previous = (status.read_status(status_path) if status_path else None) or {}
        # Whose passes they are: a record of another host or instances_path
        # is not compared by the shrink guard (DESIGN 1.9).
        self._storage = (previous.get("host"), previous.get("instances_path"))
        self._last_pass = _entry(previous, "last_pass")
        self._last_completed = _entry(previous, "last_completed_pass")
        self._completed = status.completed_report(self._last_completed)
        ended = (self._last_completed or {}).get("ended_at_epoch")
        self._completed_at = float(ended) if isinstance(ended, int | float) else None
        self._storage_passed_at = status.storage_passed_at(self._last_pass)

    def publish(
        self,
        record: PassResult,
        settings: Settings,
        state: DaemonState,
        next_pass_at: float | None,
    ) -> None:
        """Record a pass just attempted; rewrite both files."""
        self._last_pass = status.pass_entry(record)
        if record.outcome is PassOutcome.COMPLETED:
            self._storage = (settings.host, settings.instances_path)
            self._last_completed = self._last_pass
            self._completed = record.report
            self._completed_at = record.ended_at
        if record.skip is not None and record.skip.passed_at is not None:
            self._storage_passed_at = record.skip.passed_at
        self.write_status(settings, state, next_pass_at)
        if self.metrics_path:
            metrics.write_metrics(
                self.metrics_path,
                record,
                self._completed,
                self._completed_at,
                self._storage_passed_at,
            )

    def baseline(self, settings: Settings) -> InventoryBaseline | None:
        """The last completed pass's instance count, for the shrink guard;
        None without a status file or for a pass of another storage."""
        if self._storage != (settings.host, settings.instances_path):
            return None
        return baseline_of(self._last_completed)

    def write_status(
        self, settings: Settings, state: DaemonState, next_pass_at: float | None
    ) -> None:
        """What cachemgr does now and its last passes (nothing if unset)."""
        if not self.status_path:
            return
        document = status.status_document(
            state,
            host=settings.host,
            instances_path=settings.instances_path,
            manager_interval=settings.manager_interval,
            next_pass_at=next_pass_at,
            last_pass=self._last_pass,
            last_completed=self._last_completed,
        )
        status.write_status(self.status_path, document)


def _entry(document: Mapping[str, object], key: str) -> Mapping[str, object] | None:
    """A pass entry of an earlier document, if it holds one."""
    value = document.get(key)
    return value if isinstance(value, dict) else None
