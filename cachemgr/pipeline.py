"""One image cache pass: gather -> plan -> apply -> report.

Every stage but apply only reads; a gather failure stops the pass before
anything is planned, so nothing is removed when in doubt.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cachemgr import guard, report
from cachemgr.cache import apply, locks, plan, scan, usage
from cachemgr.cache.outcome import ApplyResult
from cachemgr.cache.snapshot import CacheSnapshot, DiskSnapshot
from cachemgr.exceptions import GatherError
from cachemgr.inventory import registry
from cachemgr.inventory.base import Inventory
from cachemgr.inventory.model import Instance
from cachemgr.settings import Settings

__all__ = ["PassReport", "PassStopped", "run_pass"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one completed pass did, and how long each stage took."""

    summary: report.Summary
    stage_seconds: dict[str, float]


class PassStopped(Exception):
    """The daemon is stopping and the pass stopped at a safe point.

    ``report`` covers the files the pass reached (each already logged), or
    is None when it stopped before changing anything.
    """

    def __init__(self, message: str, report: PassReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class _ApplyStopped(Exception):
    def __init__(self, applied: ApplyResult, planned: int) -> None:
        super().__init__("stopped during apply")
        self.applied = applied
        self.planned = planned


def _never() -> bool:
    return False


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a pass.

    A pass builds a million small objects (instances, cache files,
    decisions) and frees them by reference counting; left on, the
    collector re-walks them all every few thousand allocations, about a
    third of the gather and plan time at 100,000 files.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_cyclic_gc_paused()
def run_pass(
    settings: Settings,
    inventory: Inventory,
    *,
    dry_run: bool,
    clock: Callable[[], float] = time.time,
    stop_requested: Callable[[], bool] = _never,
) -> PassReport:
    """Run one pass and log its per-file lines and summary line.

    ``stop_requested`` is asked after gathering and before each file
    operation (the daemon also uses the calls as its watchdog's sign of
    progress); once it answers True the pass stops there.

    Raises:
        InventoryError: the instances cannot be known; nothing was changed.
        GatherError: the storage could not be scanned; nothing was changed.
        PassStopped: stop was requested; what was done is logged.
    """
    timer = _StageTimer()
    with timer("gather"):
        instances, cache, disks = _gather(settings, inventory, dry_run, clock())
        used = usage.used_names(instances, settings.host, settings.ephemeral)
        guard.check_inventory_trust(
            len(instances), disks.disk_count, settings.instances_path, settings.host
        )
        open_files = scan.scan_open_files(cache.files)
    if open_files.unreadable_processes:
        LOG.warning(
            "The open files of %d process(es) could not be read (%s); files "
            "they hold are not protected. Run cachemgr as root or with "
            "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.",
            open_files.unreadable_processes,
            ", ".join(open_files.unreadable_examples),
        )
    if stop_requested():
        raise PassStopped("stopped after gathering; nothing was changed")
    with timer("plan"):
        decided = plan.make_plan(
            cache, used, disks.backing, open_files.holders, settings.policy, clock()
        )
    try:
        with timer("apply"):
            applied, would = _apply(decided, cache, settings, dry_run, stop_requested)
    except _ApplyStopped as stop:
        raise _stopped_in_apply(decided, stop, disks, timer) from None
    with timer("report"):
        summary = _report(decided, applied, would, disks, timer)
        for name in cache.other_entries:
            LOG.debug("Left alone %s: not a regular file", name)
    LOG.info("%s", report.summary_line(summary))
    LOG.debug("Stage durations: %s", timer.describe())
    return PassReport(summary=summary, stage_seconds=dict(timer.seconds))


def _gather(
    settings: Settings, inventory: Inventory, dry_run: bool, now: float
) -> tuple[tuple[Instance, ...], CacheSnapshot, DiskSnapshot]:
    """The instances, the cache dir and the disks.

    An inventory that waits on the network (nova-conductor's replies take
    seconds at 20,000 instances) is read in another thread while the
    storage is scanned; the two are independent snapshots either way. An
    inventory failure is reported first, as when it is read first.
    """
    if not os.path.isdir(settings.instances_path):
        raise GatherError(
            f"[DEFAULT] instances_path = {settings.instances_path} is not a "
            "directory (is the instance storage mounted?)"
        )
    if not inventory.waits_on_network:
        instances = _list_instances(settings, inventory, dry_run, now)
        return (instances, *_scan_storage(settings))
    with ThreadPoolExecutor(1, thread_name_prefix="cachemgr-inventory") as pool:
        listing = pool.submit(_list_instances, settings, inventory, dry_run, now)
        try:
            storage = _scan_storage(settings)
        except GatherError:
            listing.result()
            raise
        return (listing.result(), *storage)


def _scan_storage(settings: Settings) -> tuple[CacheSnapshot, DiskSnapshot]:
    if not os.path.isdir(settings.cache_dir):
        # An empty cache, as the scan says, but also what a mistyped
        # subdirectory_name looks like: a pass that never cleans anything.
        LOG.warning(
            "The cache dir %s does not exist: nothing to clean. Either "
            "nova-compute has cached no image yet, or [image_cache] "
            "subdirectory_name = %s is not nova.conf's",
            settings.cache_dir,
            os.path.basename(settings.cache_dir),
        )
    try:
        cache = scan.scan_cache_dir(settings.cache_dir)
        disks = scan.scan_disks(settings.instances_path, cache, settings.skip_dirs)
    except OSError as exc:
        raise GatherError(f"cannot scan {exc.filename}: {exc.strerror}") from exc
    return cache, disks


def _list_instances(
    settings: Settings, inventory: Inventory, dry_run: bool, now: float
) -> tuple[Instance, ...]:
    """Register this host on the storage, then ask for the instances.

    Registering (skipped by a dry run, which writes nothing) lets cachemgr
    and nova-compute on the other hosts of a shared storage keep this
    host's base files; the registry's recent hosts are whose instances a
    shared-storage inventory must list.
    """
    if not dry_run:
        registry.register_storage_use(settings.instances_path, settings.host, now)
    hosts = [settings.host]
    if inventory.uses_storage_hosts:
        hosts = registry.storage_users(
            settings.instances_path, settings.host, now, locked=not dry_run
        )
    return inventory.list_instances(hosts)


def _apply(
    decided: plan.Plan,
    cache: CacheSnapshot,
    settings: Settings,
    dry_run: bool,
    stop_requested: Callable[[], bool],
) -> tuple[ApplyResult | None, str | None]:
    """Carry out the plan, or the part of it this pass may; and why not all.

    Only one host of a shared storage removes at a time; the others, and a
    pass with removal disabled, still refresh the files in use.
    """
    if dry_run:
        return None, "dry run"
    touches = decided.with_action(plan.Action.TOUCH)
    if not settings.remove_unused:
        return _apply_some(
            touches, cache, settings, stop_requested
        ), "remove_unused_base_images = false"
    with locks.remover_lock(settings.lock_path) as removing:
        if not removing:
            why = "another cachemgr of this storage is removing files"
            return _apply_some(touches, cache, settings, stop_requested), why
        return _apply_some(decided.decisions, cache, settings, stop_requested), None


def _apply_some(
    decisions: Sequence[plan.Decision],
    cache: CacheSnapshot,
    settings: Settings,
    stop_requested: Callable[[], bool],
) -> ApplyResult:
    applied = apply.apply_plan(
        decisions,
        cache,
        settings.lock_path,
        settings.lock_wait_seconds,
        stop_requested,
    )
    planned = sum(d.action is not plan.Action.KEEP for d in decisions)
    if len(applied.outcomes) < planned:
        raise _ApplyStopped(applied, planned)
    return applied


def _stopped_in_apply(
    decided: plan.Plan, stop: _ApplyStopped, disks: DiskSnapshot, timer: _StageTimer
) -> PassStopped:
    """Log what a pass stopped during apply did; the rest waits for the next.

    Only the decisions apply carried out are reported and counted: each file
    it reached was handled whole, the others were not touched.
    """
    applied = stop.applied
    done = {o.decision.file.name for o in applied.outcomes}
    reached = plan.Plan(
        tuple(d for d in decided.decisions if d.file.name in done), decided.now
    )
    summary = _report(reached, applied, None, disks, timer)
    return PassStopped(
        f"stopped during apply after {len(done)} of {stop.planned} planned file "
        f"operations, the rest is left for the next pass: removed={summary.removed} "
        f"bytes_removed={summary.bytes_removed} errors={summary.errors}",
        PassReport(summary=summary, stage_seconds=dict(timer.seconds)),
    )


def _report(
    decided: plan.Plan,
    applied: ApplyResult | None,
    would: str | None,
    disks: DiskSnapshot,
    timer: _StageTimer,
) -> report.Summary:
    """Log one line per decided file and count them, for a whole or cut pass."""
    for line in report.file_lines(decided, applied, would=would):
        LOG.log(line.level, "%s", line.message)
    return report.summarize(
        decided,
        applied,
        disks=disks.disk_count,
        unreadable_disks=len(disks.problems),
        duration_s=timer.total(),
    )


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
