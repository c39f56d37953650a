"""Whose turn it is: one pass per shared storage per interval (DESIGN 1.11).

On a storage of fifty hosts every host's pass scans the same cache and
disks and lists the same instances; one pass per interval does the job of
all. A daemon whose pass comes due reads the storage's record of its last
pass (cache.storage_record): when another host completed one less than
``manager_interval`` seconds ago, or holds the remover lock because it is
passing now, this host registers itself in ``compute_nodes`` (so that the
passing host lists its instances too) and skips. Otherwise it passes
holding the remover lock from gather to the end of apply, and records its
pass for the others.

The record is a hint: it never makes a pass remove anything, only spares
one. ``cachemgr --once`` always passes, and ``[image_cache]
share_storage_passes = false`` gives every host its own timer.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator

from cachemgr.cache import coordination, locks, registry, storage_record
from cachemgr.cache.storage_record import LastPass
from cachemgr.exceptions import CachemgrError
from cachemgr.inventory.base import Inventory
from cachemgr.pipeline import run
from cachemgr.pipeline.attempt import PassRunner, attempt_pass
from cachemgr.pipeline.guard import InventoryBaseline
from cachemgr.pipeline.report import Mode
from cachemgr.pipeline.result import PassOutcome, PassResult, Skip
from cachemgr.pipeline.run import RemoverLock
from cachemgr.pipeline.settings import Settings

__all__ = [
    "FUTURE_TOLERANCE_SECONDS",
    "next_check_after",
    "recent_pass_of_another",
    "take_turn",
]

LOG = logging.getLogger("cachemgr.turn")

# A record this far ahead of this host's clock is not believed (DESIGN
# 1.11): a host whose clock runs ahead cannot silence the others for long.
FUTURE_TOLERANCE_SECONDS = 300.0


def recent_pass_of_another(
    last: LastPass | None, host: str, now: float, interval: float
) -> LastPass | None:
    """The recorded pass, if another host completed it less than
    ``interval`` seconds ago by this host's clock; an entry more than
    FUTURE_TOLERANCE_SECONDS ahead of it is ignored."""
    if last is None or last.host == host:
        return None
    if last.ended_at_epoch > now + FUTURE_TOLERANCE_SECONDS:
        return None
    return last if now - last.ended_at_epoch < interval else None


def next_check_after(last: LastPass | None, now: float, interval: float) -> float:
    """When a daemon that skipped looks again.

    Just after the recorded pass has aged one interval: if its host still
    passes, its next pass has ended by then and is recorded, and this host
    skips again; if it died, this host passes, one interval (and the
    margin) after the dead host's last pass. Without a recorded pass (the
    remover lock was held by a host still in its first pass) a shorter
    wait, so that the record it is about to write is seen soon.
    """
    margin = min(60.0, max(1.0, interval / 20))
    if last is None:
        return now + min(60.0, max(1.0, interval / 4))
    return last.ended_at_epoch + interval + margin


def take_turn(
    settings: Settings,
    inventory: Callable[[], Inventory],
    remover_lock: RemoverLock,
    *,
    dry_run: bool,
    may_skip: bool,
    interval: float,
    stop_requested: Callable[[], bool] = run.never,
    baseline: InventoryBaseline | None = None,
    run_pass: PassRunner = run.run_pass,
    clock: Callable[[], float] = time.time,
) -> PassResult:
    """Pass, or leave the pass to the host whose turn it is.

    ``may_skip`` is the daemon's (``--once`` always passes). A pass that
    may remove holds ``remover_lock`` from gather to the end of apply; a
    dry run and a pass with removal disabled take no lock and leave no
    record (they do not do the others' job).
    """

    def attempt(lock: RemoverLock) -> PassResult:
        return attempt_pass(
            settings,
            inventory,
            dry_run=dry_run,
            stop_requested=stop_requested,
            baseline=baseline,
            run_pass=run_pass,
            remover_lock=lock,
        )

    if not settings.share_passes:
        return attempt(remover_lock)
    if may_skip:
        skip = _skip_for_record(settings, interval, clock(), lock_held=False)
        if skip is not None:
            return _skipped(settings, skip, dry_run, clock())
    if dry_run or not settings.remove_unused:
        return attempt(remover_lock)
    with _held(remover_lock) as held:
        if callable(held):
            # The lock cannot be used: the pass refreshes, removes nothing.
            return attempt(held)
        if not held:
            if not may_skip:
                return attempt(_not_taken)
            skip = _skip_for_record(settings, interval, clock(), lock_held=True)
            return _skipped(settings, skip, dry_run, clock())
        if may_skip:
            skip = _skip_for_record(settings, interval, clock(), lock_held=False)
            if skip is not None:
                return _skipped(settings, skip, dry_run, clock())
        result = attempt(_taken)
        _record(settings, result)
    return result


def _skip_for_record(
    settings: Settings, interval: float, now: float, *, lock_held: bool
) -> Skip | None:
    """The skip the storage's record calls for; always one when the lock
    is held (``lock_held``)."""
    last = storage_record.read_last_pass(settings.instances_path)
    recent = recent_pass_of_another(last, settings.host, now, interval)
    if recent is None and not lock_held:
        return None
    return Skip(
        passed_by=recent.host if recent else None,
        passed_at=recent.ended_at_epoch if recent else None,
        next_check_at=next_check_after(recent, now, interval),
        lock_held=lock_held,
    )


def _skipped(settings: Settings, skip: Skip, dry_run: bool, now: float) -> PassResult:
    """Register this host, say why it does not pass, and when it looks again."""
    if not dry_run:
        try:
            registry.register_storage_use(settings.instances_path, settings.host, now)
        except CachemgrError as exc:
            failed: CachemgrError | None = exc
        else:
            failed = None
        if failed is not None:
            LOG.warning(
                "This host could not be registered in %s/%s: %s; the host "
                "that passes may not list its instances",
                settings.instances_path,
                registry.REGISTRY_FILE_NAME,
                failed,
            )
    LOG.info("Image cache pass skipped: %s", skip.describe())
    return PassResult(PassOutcome.SKIPPED, now, now, dry_run, skip=skip)


@contextlib.contextmanager
def _held(remover_lock: RemoverLock) -> Iterator[bool | RemoverLock]:
    """The remover lock for the block: True taken, False held by another
    host; when it cannot be used (a planted lock file, a coordination
    backend down), a lock that fails the same way at once, for the pass to
    say why it removes nothing."""
    with contextlib.ExitStack() as stack:
        try:
            taken: bool | RemoverLock = stack.enter_context(remover_lock())
        except (locks.UnsafeLockFile, coordination.CoordinationError) as exc:
            taken = functools.partial(_unusable, exc)
        yield taken


def _unusable(
    error: locks.UnsafeLockFile | coordination.CoordinationError,
) -> contextlib.AbstractContextManager[bool]:
    """A remover lock that could not be used, without trying it again."""
    raise error


def _taken() -> contextlib.AbstractContextManager[bool]:
    """The remover lock this pass already holds."""
    return contextlib.nullcontext(True)


def _not_taken() -> contextlib.AbstractContextManager[bool]:
    """The remover lock another host holds: this pass refreshes only."""
    return contextlib.nullcontext(False)


def _record(settings: Settings, result: PassResult) -> None:
    """Record a completed pass that may remove, under the remover lock."""
    summary = result.summary
    if result.outcome is not PassOutcome.COMPLETED or summary is None:
        return
    if summary.mode is not Mode.REMOVE:
        return
    storage_record.write_last_pass(
        settings.instances_path,
        LastPass(settings.host, result.ended_at, summary.files, summary.removed),
    )
