"""One pass attempted, whatever happens: how it ended, logged once.

``cachemgr --once`` and the daemon both run passes through here, so a
refused, failed, stopped or error-ridden pass reads the same in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cachemgr.exceptions import CachemgrError
from cachemgr.inventory.base import Inventory
from cachemgr.pipeline import run
from cachemgr.pipeline.guard import InventoryBaseline
from cachemgr.pipeline.result import PassOutcome, PassReport, PassResult
from cachemgr.pipeline.settings import Settings

__all__ = ["PassRunner", "attempt_pass"]

# The logger's name predates the module's move: operators' filters use it.
LOG = logging.getLogger("cachemgr.attempt")

PassRunner = Callable[..., PassReport]


def attempt_pass(
    settings: Settings,
    inventory: Callable[[], Inventory],
    *,
    dry_run: bool,
    stop_requested: Callable[[], bool] = run.never,
    baseline: InventoryBaseline | None = None,
    run_pass: PassRunner = run.run_pass,
    remover_lock: run.RemoverLock | None = None,
) -> PassResult:
    """Run one pass and log how it ended; never raise for a pass's failure.

    ``inventory`` is called inside the attempt, so a driver that cannot be
    built fails this pass like any other error. ``baseline`` is the last
    completed pass's inventory size, for the shrink guard (None: off), and
    ``remover_lock`` the storage's lock the pass takes before removing.
    """
    started = time.time()
    # At INFO: after a watchdog kill, the journal shows the pass had begun.
    LOG.info("Image cache pass starting")
    report: PassReport | None = None
    error: str | None = None
    outcome = PassOutcome.COMPLETED
    try:
        report = run_pass(
            settings,
            inventory(),
            dry_run=dry_run,
            stop_requested=stop_requested,
            baseline=baseline,
            remover_lock=remover_lock,
        )
    except CachemgrError as exc:
        outcome, error = PassOutcome.REFUSED, str(exc)
    except Exception as exc:
        LOG.exception("Image cache pass failed, nothing more will be removed")
        outcome, error = PassOutcome.FAILED, f"{type(exc).__name__}: {exc}"
    if report is not None and report.stopped is not None:
        outcome, error = PassOutcome.STOPPED, report.stopped
    elif report is not None and report.refused is not None:
        outcome, error = PassOutcome.REFUSED, report.refused
    # Logged outside the except blocks: oslo.log would repeat the error.
    if outcome is PassOutcome.REFUSED:
        LOG.error("Image cache pass refused, nothing was removed: %s", error)
    elif outcome is PassOutcome.STOPPED:
        LOG.info("Image cache pass %s", error)
    elif report is not None and report.summary is not None and report.summary.errors:
        LOG.warning(
            "Image cache pass completed with %d error(s); each is logged "
            "above with its file",
            report.summary.errors,
        )
    return PassResult(outcome, started, time.time(), dry_run, report, error)
