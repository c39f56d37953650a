"""One image cache pass: gather -> plan -> apply -> report.

Every stage but apply only reads; a gather failure stops the pass before
anything is planned, so nothing is removed when in doubt.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cachemgr import guard, report
from cachemgr.cache import apply, plan, scan, usage
from cachemgr.exceptions import GatherError
from cachemgr.inventory.base import Inventory
from cachemgr.settings import Settings

__all__ = ["PassReport", "run_pass"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one completed pass did, and how long each stage took."""

    summary: report.Summary
    stage_seconds: dict[str, float]


def run_pass(
    settings: Settings,
    inventory: Inventory,
    *,
    dry_run: bool,
    clock: Callable[[], float] = time.time,
) -> PassReport:
    """Run one pass and log its per-file lines and summary line.

    Raises:
        InventoryError: the instances cannot be known; nothing was changed.
        GatherError: the storage could not be scanned; nothing was changed.
    """
    timer = _StageTimer()
    with timer("gather"):
        instances = inventory.list_instances()
        used = usage.used_names(instances, settings.host, settings.ephemeral)
        try:
            cache = scan.scan_cache_dir(settings.cache_dir)
            disks = scan.scan_disks(settings.instances_path, cache, settings.skip_dirs)
        except OSError as exc:
            raise GatherError(f"cannot scan {exc.filename}: {exc.strerror}") from exc
        guard.check_inventory_trust(
            len(instances), disks.disk_count, settings.instances_path, settings.host
        )
        open_files = scan.scan_open_files(frozenset(f.key for f in cache.files))
    if open_files.unreadable_processes:
        LOG.warning(
            "The open files of %d process(es) could not be read; files they "
            "hold are not protected. Run cachemgr as root or with "
            "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.",
            open_files.unreadable_processes,
        )
    with timer("plan"):
        decided = plan.make_plan(
            cache, used, disks.backing, open_files.holders, settings.policy, clock()
        )
    would = _why_not_applied(settings, dry_run)
    with timer("apply"):
        applied = None
        if not dry_run:
            todo = (
                decided.decisions
                if settings.remove_unused
                else (decided.with_action(plan.Action.TOUCH))
            )
            applied = apply.apply_plan(
                todo, cache, settings.lock_path, settings.lock_wait_seconds
            )
    with timer("report"):
        for line in report.file_lines(decided, applied, would=would):
            LOG.log(line.level, "%s", line.message)
        for name in cache.other_entries:
            LOG.debug("Left alone %s: not a regular file", name)
    summary = report.summarize(
        decided,
        applied,
        disks=disks.disk_count,
        unreadable_disks=len(disks.problems),
        duration_s=timer.total(),
    )
    LOG.info("%s", report.summary_line(summary))
    LOG.debug("Stage durations: %s", timer.describe())
    return PassReport(summary=summary, stage_seconds=dict(timer.seconds))


def _why_not_applied(settings: Settings, dry_run: bool) -> str | None:
    if dry_run:
        return "dry run"
    if not settings.remove_unused:
        return "remove_unused_base_images = false"
    return None


class _StageTimer:
    """Monotonic durations of the named stages of one pass."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.monotonic()

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        begin = time.monotonic()
        try:
            yield
        finally:
            self.seconds[stage] = time.monotonic() - begin

    def total(self) -> float:
        return time.monotonic() - self._start

    def describe(self) -> str:
        return " ".join(f"{k}_s={v:.3f}" for k, v in self.seconds.items())
