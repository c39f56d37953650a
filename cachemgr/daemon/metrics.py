"""The metrics file: the last pass as Prometheus gauges, for node_exporter.

node_exporter's textfile collector reads every ``*.prom`` file of one
directory at each scrape (DESIGN 1.10 lists the names and labels). The text
is prometheus_client's own exposition of a registry of cachemgr's alone
(never the process-wide default one, whose process and platform collectors
would add series node_exporter already has). The file is written through
status.replace_whole rather than prometheus_client's ``write_to_textfile``:
that one opens ``<path>.<pid>.<thread>`` with a plain open(), which follows
a symlink planted in the collector's directory (often writable by a group),
does not fsync, and leaves a new leftover after every kill. Ours is one
fixed ``.<name>.tmp`` made with O_EXCL|O_NOFOLLOW, fsynced and renamed; the
collector skips it, since it does not end in ``.prom``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from cachemgr.daemon.status import check_writable_dir, replace_whole
from cachemgr.exceptions import ConfigError
from cachemgr.pipeline.report import FILE_STATES, Summary
from cachemgr.pipeline.result import PassOutcome, PassReport, PassResult

__all__ = ["OUTCOMES", "STAGES", "check_metrics_path", "exposition", "write_metrics"]

OUTCOMES = tuple(o.value for o in PassOutcome)
STAGES = ("gather", "plan", "apply", "report", "total")


def check_metrics_path(path: str) -> None:
    """A metrics file node_exporter will read, in a directory cachemgr can
    write: checked before the first pass, so a typo exits 2 instead of
    leaving the dashboards silently empty.

    Raises:
        ConfigError: naming [daemon] metrics_file and what is wrong.
    """
    if not path.endswith(".prom"):
        raise ConfigError(
            f"[daemon] metrics_file = {path}: must end in .prom, the only "
            "files node_exporter's textfile collector reads"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(
            f"[daemon] metrics_file = {path}: directory {directory} does not "
            "exist; create it (node_exporter's --collector.textfile.directory)"
        )
    check_writable_dir("metrics_file", path, directory)


def write_metrics(
    path: str,
    last: PassResult,
    completed: PassReport | None,
    completed_at: float | None,
    storage_passed_at: float | None = None,
) -> bool:
    """Replace the metrics file atomically; False (logged) on failure."""
    return replace_whole(
        path,
        exposition(last, completed, completed_at, storage_passed_at),
        "metrics file",
    )


def exposition(
    last: PassResult,
    completed: PassReport | None,
    completed_at: float | None,
    storage_passed_at: float | None = None,
) -> bytes:
    """The text of the metrics file.

    Args:
        last: the pass just attempted, whatever its outcome.
        completed: the report of the last completed pass (``last``'s own
            when it completed), or None before any: the cache gauges tell
            of it, so a refused pass does not blank the dashboards.
        completed_at: when that pass ended (epoch seconds). Without one the
            timestamp is 0, so "no completed pass for too long" fires.
        storage_passed_at: when the last pass of the shared storage by any
            host ended, as far as this host knows: on a host that leaves
            its passes to another (DESIGN 1.11), the timestamp to alert on.
    """
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, help_text: str, *labels: str) -> Gauge:
        return Gauge(name, help_text, labels, registry=registry)

    gauge(
        "cachemgr_last_pass_end_timestamp_seconds",
        "When the last pass ended, whatever its outcome (epoch seconds).",
    ).set(last.ended_at)
    outcome = gauge(
        "cachemgr_last_pass_outcome",
        "1 for the outcome of the last pass, 0 for the others.",
        "outcome",
    )
    for value in OUTCOMES:
        outcome.labels(value).set(1 if value == last.outcome.value else 0)
    gauge(
        "cachemgr_last_completed_pass_end_timestamp_seconds",
        "When the last completed pass ended (epoch seconds); 0 before any.",
    ).set(completed_at or 0)
    gauge(
        "cachemgr_storage_last_pass_end_timestamp_seconds",
        "When the last pass of this storage by any of its hosts ended, as "
        "this host last saw it (epoch seconds); 0 before any.",
    ).set(max(storage_passed_at or 0, completed_at or 0))
    duration = gauge(
        "cachemgr_pass_duration_seconds",
        "How long each stage of the last pass took; total is the whole pass.",
        "stage",
    )
    for stage, seconds in last.stage_seconds.items():
        duration.labels(stage).set(seconds)
    duration.labels("total").set(last.ended_at - last.started_at)
    if completed is not None and completed.summary is not None:
        _cache_gauges(gauge, completed.summary, completed)
    return generate_latest(registry)


def _cache_gauges(
    gauge: Callable[..., Gauge], summary: Summary, completed: PassReport
) -> None:
    """What the last completed pass found in the cache and under it."""
    files = gauge(
        "cachemgr_cache_files",
        "Cache files of each state at the last completed pass, as the "
        "summary line counts them (removed: or would be, by its mode).",
        "state",
    )
    sizes = gauge(
        "cachemgr_cache_bytes",
        "Allocated bytes of the cache files of each state at the last completed pass.",
        "state",
    )
    for state in FILE_STATES:
        files.labels(state).set(getattr(summary, state))
        sizes.labels(state).set(completed.state_bytes.get(state, 0))
    singles = {
        "cachemgr_errors": ("File operations that failed.", summary.errors),
        "cachemgr_disks": ("Disk files seen under instances_path.", summary.disks),
        "cachemgr_unreadable_disks": (
            "Disks whose backing file could not be read.",
            summary.unreadable_disks,
        ),
        "cachemgr_instances": ("Instances the inventory listed.", summary.instances),
        "cachemgr_reclaimable_bytes": (
            "Allocated bytes of unused files kept only because they are too young.",
            completed.state_bytes.get("too_young", 0),
        ),
    }
    for name, (help_text, value) in singles.items():
        gauge(name, help_text + " At the last completed pass.").set(value)
    if completed.filesystem_used_ratio is not None:
        gauge(
            "cachemgr_filesystem_used_ratio",
            "Use of the cache dir's file system at the last completed pass, "
            "as df computes it, 0 to 1.",
        ).set(completed.filesystem_used_ratio)
