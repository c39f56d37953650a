"""One pass attempted, whatever happens: how it ended, logged once.

``cachemgr --once`` and the daemon both run passes through here, so a
refused, failed, stopped or error-ridden pass reads the same in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachemgr import pipeline
from cachemgr.exceptions import CachemgrError
from cachemgr.inventory.base import Inventory
from cachemgr.settings import Settings
from cachemgr.status import Outcome

__all__ = ["Attempt", "attempt_pass"]

LOG = logging.getLogger(__name__)

PassRunner = Callable[..., pipeline.PassReport]


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one pass ended; ``report`` is None unless it got that far."""

    outcome: Outcome
    report: pipeline.PassReport | None
    error: str | None
    started_at: float
    ended_at: float


def _never() -> bool:
    return False


def attempt_pass(
    settings: Settings,
    inventory: Callable[[], Inventory],
    *,
    dry_run: bool,
    stop_requested: Callable[[], bool] = _never,
    run_pass: PassRunner = pipeline.run_pass,
) -> Attempt:
    """Run one pass and log how it ended; never raise for a pass's failure.

    ``inventory`` is called inside the attempt, so a driver that cannot be
    built fails this pass like any other error.
    """
    started = time.time()
    # At INFO: after a watchdog kill, the journal shows the pass had begun.
    LOG.info("Image cache pass starting")
    report: pipeline.PassReport | None = None
    error: str | None = None
    outcome = Outcome.COMPLETED
    try:
        report = run_pass(
            settings, inventory(), dry_run=dry_run, stop_requested=stop_requested
        )
    except pipeline.PassStopped as exc:
        outcome, report, error = Outcome.STOPPED, exc.report, str(exc)
    except CachemgrError as exc:
        outcome, error = Outcome.REFUSED, str(exc)
    except Exception as exc:
        LOG.exception("Image cache pass failed, nothing more will be removed")
        outcome, error = Outcome.FAILED, f"{type(exc).__name__}: {exc}"
    # Logged outside the except blocks: oslo.log would repeat the error.
    if outcome is Outcome.REFUSED:
        LOG.error("Image cache pass refused, nothing was removed: %s", error)
    elif outcome is Outcome.STOPPED:
        LOG.info("Image cache pass %s", error)
    elif report is not None and report.summary.errors:
        LOG.warning(
            "Image cache pass completed with %d error(s); each is logged "
            "above with its file",
            report.summary.errors,
        )
    return Attempt(outcome, report, error, started, time.time())
