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

from cachemgr.cache import (
    apply,
    coordination,
    locks,
    pins,
    plan,
    registry,
    scan,
    usage,
)
from cachemgr.cache.disk_usage import FilesystemUse
from cachemgr.cache.outcome import ApplyResult, FileOutcome
from cachemgr.cache.snapshot import CacheSnapshot, DiskSnapshot
from cachemgr.exceptions import GatherError
from cachemgr.inventory.base import Inventory
from cachemgr.inventory.model import Instance
from cachemgr.pipeline import guard, report
from cachemgr.pipeline.result import PassReport
from cachemgr.pipeline.settings import Settings

__all__ = ["PassReport", "RemoverLock", "never", "run_pass"]

# The logger's name predates the module's move: operators' filters use it.
LOG = logging.getLogger("cachemgr.pipeline")


# The remover lock of the storage for a block: yields whether it is held.
RemoverLock = Callable[[], contextlib.AbstractContextManager[bool]]


def never() -> bool:
    """The ``stop_requested`` of a pass that nothing stops (``--once``)."""
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
    stop_requested: Callable[[], bool] = never,
    baseline: guard.InventoryBaseline | None = None,
    remover_lock: RemoverLock | None = None,
) -> PassReport:
    """Run one pass and log its per-file lines and summary line.

    ``stop_requested`` is asked after gathering and before each file
    operation (the daemon also uses the calls as its watchdog's sign of
    progress); once it answers True the pass stops there. ``baseline`` is
    the last completed pass's inventory size: an inventory shrunk past
    ``[image_cache] inventory_shrink_limit_percent`` of it removes nothing
    (the files in use are still refreshed) and the report says refused.
    ``remover_lock`` is taken before removing (None: the default file
    driver's, ``locks/cachemgr-remover``; the daemon and ``--once`` pass
    the configured backend's); one that yields False leaves the removals
    to another host.

    Returns:
        The report; its ``stopped`` says why a pass stopped early, and then
        its counters (if any) cover only the files it reached, each logged.

    Raises:
        InventoryError: the instances cannot be known; nothing was changed.
        GatherError: the storage could not be scanned; nothing was changed.
        PinsError: the pinned images file cannot be used; nothing was changed.
    """
    timer = _StageTimer()
    with timer("gather"):
        instances, cache, disks, fs_use = _gather(settings, inventory, dry_run, clock())
        guard.check_inventory_trust(
            len(instances), disks.disk_count, settings.instances_path, settings.host
        )
        shrunk = guard.inventory_shrink(
            len(instances), baseline, settings.shrink_limit_percent
        )
        used = usage.used_names(instances, settings.ephemeral)
        pinned = pins.read_pins(settings.pinned_images_file, clock())
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
        return PassReport(
            None,
            dict(timer.seconds),
            "stopped after gathering; nothing was changed",
            filesystem_used_ratio=fs_use.ratio,
        )
    with timer("plan"):
        decided = plan.make_plan(
            cache,
            used,
            disks.backing,
            open_files.holders,
            settings.policy,
            clock(),
            pins=pinned,
            filesystem=fs_use,
        )
    with timer("apply"):
        applied, would, mode = _apply(
            decided,
            cache,
            disks,
            settings,
            dry_run,
            stop_requested,
            shrunk,
            remover_lock or _file_remover_lock(settings),
        )
    with timer("report"):
        summary = _report(decided, applied, would, mode, disks, len(instances), timer)
    figures = {
        "state_bytes": report.state_bytes(decided, applied),
        "filesystem_used_ratio": fs_use.ratio,
    }
    if applied is not None and applied.stopped:
        planned = sum(d.action is not plan.Action.KEEP for d in decided.decisions)
        return PassReport(
            summary,
            dict(timer.seconds),
            f"stopped during apply after {len(applied.outcomes)} of {planned} "
            "planned file operations, the rest is left for the next pass: "
            f"removed={summary.removed} bytes_removed={summary.bytes_removed} "
            f"errors={summary.errors}",
            **figures,
        )
    for name in cache.other_entries:
        LOG.debug("Left alone %s: not a regular file", name)
    if shrunk is not None:
        # Refused: the ERROR line says why; no summary line claims a pass.
        return PassReport(summary, dict(timer.seconds), refused=shrunk, **figures)
    LOG.info("%s", report.summary_line(summary))
    LOG.debug("Stage durations: %s", timer.describe())
    return PassReport(summary, dict(timer.seconds), **figures)


def _file_remover_lock(settings: Settings) -> RemoverLock:
    """The remover lock of ``[coordination] backend_url``'s default."""
    return coordination.StorageCoordinator(
        "", settings.host, settings.lock_path
    ).remover_lock


def _gather(
    settings: Settings, inventory: Inventory, dry_run: bool, now: float
) -> tuple[tuple[Instance, ...], CacheSnapshot, DiskSnapshot, FilesystemUse]:
    """The instances, the cache dir, the disks and the use of the file system.

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


def _scan_storage(
    settings: Settings,
) -> tuple[CacheSnapshot, DiskSnapshot, FilesystemUse]:
    """The cache dir, the disks, and the use of the cache's file system
    (instances_path's while the cache dir does not exist)."""
    cache_exists = os.path.isdir(settings.cache_dir)
    if not cache_exists:
        # An empty cache, as the scan says, but also what a mistyped
        # subdirectory_name looks like: a pass that never cleans anything.
        LOG.warning(
            "The cache dir %s does not exist: nothing to clean. Either "
            "nova-compute has cached no image yet, or [image_cache] "
            "subdirectory_name = %s is not nova.conf's",
            settings.cache_dir,
            os.path.basename(settings.cache_dir),
        )
    # Each stage that can block says so first: the last line before a
    # watchdog kill names the one that hung.
    LOG.info(
        "Scanning the storage: %s and the disks under %s",
        settings.cache_dir,
        settings.instances_path,
    )
    try:
        concurrency = settings.scan_concurrency
        cache = scan.scan_cache_dir(settings.cache_dir, concurrency=concurrency)
        disks = scan.scan_disks(
            settings.instances_path,
            cache,
            settings.skip_dirs,
            concurrency=concurrency,
        )
        fs_use = scan.measure_filesystem_use(
            settings.cache_dir if cache_exists else settings.instances_path
        )
    except OSError as exc:
        raise GatherError(f"cannot scan {exc.filename}: {exc.strerror}") from exc
    return cache, disks, fs_use


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
    LOG.info("Listing the instances of %s", ", ".join(hosts))
    return inventory.list_instances(hosts)


def _apply(
    decided: plan.Plan,
    cache: CacheSnapshot,
    disks: DiskSnapshot,
    settings: Settings,
    dry_run: bool,
    stop_requested: Callable[[], bool],
    shrunk: str | None,
    remover_lock: RemoverLock,
) -> tuple[ApplyResult | None, str | None, report.Mode]:
    """Carry out the plan, or the part of it this pass may; why not all,
    and the summary's word for it.

    Only one host of a shared storage removes at a time; the others, a pass
    with removal disabled and one whose inventory shrank still refresh the
    files in use. Each file operation is logged as soon as it is done.
    """
    if dry_run:
        return None, "dry run", report.Mode.DRY_RUN
    touches = decided.with_action(plan.Action.TOUCH)

    def carry_out(decisions: Sequence[plan.Decision]) -> ApplyResult:
        return apply.apply_plan(
            decisions,
            cache,
            disks,
            settings.lock_path,
            settings.lock_wait_seconds,
            stop_requested,
            _log_outcome,
            scan_concurrency=settings.scan_concurrency,
        )

    if not settings.remove_unused:
        why = "remove_unused_base_images = false"
        return carry_out(touches), why, report.Mode.DISABLED
    if shrunk is not None:
        return carry_out(touches), "the inventory shrank", report.Mode.DISABLED
    try:
        with remover_lock() as removing:
            if not removing:
                why = "another cachemgr of this storage is removing files"
                return carry_out(touches), why, report.Mode.NOT_REMOVER
            return carry_out(decided.decisions), None, report.Mode.REMOVE
    except (locks.UnsafeLockFile, coordination.CoordinationError) as exc:
        # Raised on entering the lock, before any file was touched.
        unusable = exc
    # Logged outside the except block: oslo.log would append the exception.
    LOG.warning("Nothing is removed this pass: %s", unusable)
    why = "the remover lock cannot be used"
    return carry_out(touches), why, report.Mode.NOT_REMOVER


def _log_outcome(outcome: FileOutcome) -> None:
    line = report.outcome_line(outcome)
    LOG.log(line.level, "%s", line.message)


def _report(
    decided: plan.Plan,
    applied: ApplyResult | None,
    would: str | None,
    mode: report.Mode,
    disks: DiskSnapshot,
    instances: int,
    timer: _StageTimer,
) -> report.Summary:
    """Log the lines of the files apply did not carry out, and count every
    file, for a whole or cut pass."""
    for line in report.file_lines(decided, applied, would=would):
        LOG.log(line.level, "%s", line.message)
    return report.summarize(
        decided,
        applied,
        disks=disks.disk_count,
        unreadable_disks=len(disks.problems),
        instances=instances,
        mode=mode,
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
