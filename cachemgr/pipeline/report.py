"""Report: the per-file lines and the summary line of a pass (DESIGN 1.7).

Formatting only: pure functions from the plan and the apply result to text.
A dry run and a real pass go through the same code.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

from cachemgr.cache.outcome import ApplyResult, FileOutcome, Result
from cachemgr.cache.plan import Action, Decision, Plan, Reason

__all__ = [
    "FILE_STATES",
    "SUMMARY_PREFIX",
    "FileLine",
    "Mode",
    "Summary",
    "brief_counters",
    "file_lines",
    "outcome_line",
    "state_bytes",
    "summarize",
    "summary_line",
]

# The summary line's opening words (DESIGN 1.7); scripts grep for them.
SUMMARY_PREFIX = "Image cache pass complete: "
# The counters systemd's one STATUS= line has room for.
_BRIEF_KEYS = ("files", "in_use", "removed", "too_young", "kept_open", "errors")

# Every category a file counts in, as the metrics label them (DESIGN 1.10).
FILE_STATES = (
    "in_use",
    "kept_open",
    "kept_pinned",
    "too_young",
    "kept_unknown",
    "removed",
    "kept_locked",
    "kept_changed",
    "kept_failed",
)

# The category each kept, touched or removed file counts in.
_REASON_KEY = {
    Reason.INSTANCE: "in_use",
    Reason.BACKING_FILE: "in_use",
    Reason.OPEN_FILE: "kept_open",
    # nova's download, which it makes under the lock kept_locked counts.
    Reason.DOWNLOADING: "kept_locked",
    Reason.PINNED: "kept_pinned",
    Reason.TOO_YOUNG: "too_young",
    Reason.UNKNOWN_NAME: "kept_unknown",
    Reason.UNUSED: "removed",
    Reason.DISK_PRESSURE: "removed",
}
# Planned removals that apply did not carry out, by why.
_RESULT_KEY = {
    Result.LOCKED: "kept_locked",
    Result.CHANGED: "kept_changed",
    Result.VANISHED: "kept_changed",
    Result.FAILED: "kept_failed",
}


class Mode(enum.StrEnum):
    """What ``removed`` means in a summary line (DESIGN 1.7): removed, or
    would be removed and why not."""

    REMOVE = "remove"
    DRY_RUN = "dry-run"
    DISABLED = "disabled"
    NOT_REMOVER = "not-remover"


@dataclass(frozen=True, slots=True)
class Summary:
    """The counters of one pass; the field order is the log line's."""

    files: int = 0
    in_use: int = 0
    removed: int = 0
    too_young: int = 0
    kept_unknown: int = 0
    kept_open: int = 0
    bytes_removed: int = 0
    errors: int = 0
    duration_s: float = 0.0
    kept_locked: int = 0
    kept_changed: int = 0
    kept_failed: int = 0
    disks: int = 0
    unreadable_disks: int = 0
    kept_pinned: int = 0
    pressure_removed: int = 0
    """Removed (or would be) early, under disk pressure; also in ``removed``."""
    instances: int = 0
    mode: Mode = Mode.REMOVE


@dataclass(frozen=True, slots=True)
class FileLine:
    level: int
    message: str


def summarize(
    plan: Plan,
    applied: ApplyResult | None,
    *,
    disks: int,
    unreadable_disks: int,
    instances: int,
    mode: Mode,
    duration_s: float,
) -> Summary:
    """Count every file in exactly one category.

    A planned removal that apply did not reach (dry run, removal disabled)
    counts as ``removed``, as it would have been; one that apply refused
    counts under why it was kept.
    """
    counts: Counter[str] = Counter()
    bytes_removed = pressure_removed = 0
    for key, decision in _categorized(plan, applied):
        counts[key] += 1
        if key == "removed":
            bytes_removed += decision.file.allocated_bytes
            pressure_removed += decision.reason is Reason.DISK_PRESSURE
    errors = sum(o.result is Result.FAILED for o in _outcomes(applied).values())
    return Summary(
        files=counts.total(),
        bytes_removed=bytes_removed,
        errors=errors,
        duration_s=duration_s,
        disks=disks,
        unreadable_disks=unreadable_disks,
        pressure_removed=pressure_removed,
        instances=instances,
        mode=mode,
        **counts,
    )


def state_bytes(plan: Plan, applied: ApplyResult | None) -> dict[str, int]:
    """The allocated bytes of the files of each of ``FILE_STATES``, counted
    as ``summarize`` counts the files (``removed`` is ``bytes_removed``)."""
    found = dict.fromkeys(FILE_STATES, 0)
    for key, decision in _categorized(plan, applied):
        found[key] += decision.file.allocated_bytes
    return found


def _categorized(
    plan: Plan, applied: ApplyResult | None
) -> Iterator[tuple[str, Decision]]:
    """Each reached decision with the category its file counts in."""
    outcomes = _outcomes(applied)
    for decision in _reached(plan, applied):
        key = _REASON_KEY[decision.reason]
        if decision.action is Action.REMOVE:
            outcome = outcomes.get(decision.file.name)
            if outcome is not None and outcome.result is not Result.DONE:
                key = _RESULT_KEY[outcome.result]
        yield key, decision


def _outcomes(applied: ApplyResult | None) -> Mapping[str, FileOutcome]:
    return applied.outcomes if applied else {}


def _reached(plan: Plan, applied: ApplyResult | None) -> Sequence[Decision]:
    """Every decision; for a pass stopped during apply, the ones it carried out.

    The files apply did not reach were not touched: they wait for the next
    pass, and are neither logged nor counted in this one.
    """
    if applied is None or not applied.stopped:
        return plan.decisions
    return [d for d in plan.decisions if d.file.name in applied.outcomes]


def summary_line(summary: Summary) -> str:
    """``Image cache pass complete: files=N ... duration_s=F ...``."""
    return SUMMARY_PREFIX + _pairs(summary, [f.name for f in fields(summary)])


def brief_counters(summary: Summary) -> str:
    """The main counters, ``files=N in_use=N ... errors=N``, for one short line."""
    return _pairs(summary, _BRIEF_KEYS)


def _pairs(summary: Summary, keys: Sequence[str]) -> str:
    parts = []
    for key in keys:
        value = getattr(summary, key)
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def file_lines(
    plan: Plan, applied: ApplyResult | None, *, would: str | None
) -> Iterator[FileLine]:
    """A line for each file apply did not carry out: removals at INFO,
    everything else at DEBUG. Apply's own files are told one by one, as it
    goes (``outcome_line``).

    ``would`` is None when the plan was applied, else why it was not (dry
    run, removal disabled), and every line says what would have happened.
    """
    outcomes = _outcomes(applied)
    for decision in _reached(plan, applied):
        if decision.file.name not in outcomes:
            yield _file_line(decision, None, would)


def outcome_line(outcome: FileOutcome) -> FileLine:
    """The line of one file operation, logged as soon as it is done."""
    return _file_line(outcome.decision, outcome, None)


def _file_line(
    decision: Decision, outcome: FileOutcome | None, would: str | None
) -> FileLine:
    name = decision.file.name
    why = f"{decision.reason.value}: {decision.detail}"
    if decision.action is Action.REMOVE:
        if outcome is None:
            return FileLine(logging.INFO, f"Would remove {name} ({would}): {why}")
        if outcome.result is Result.DONE:
            return FileLine(logging.INFO, f"Removed {name}: {why}")
        return FileLine(
            logging.INFO, f"Kept {name}: {outcome.result.value}: {outcome.detail}"
        )
    if decision.action is Action.TOUCH:
        if outcome is None:
            return FileLine(logging.DEBUG, f"Would refresh {name}: {why}")
        if outcome.result is not Result.DONE:
            return FileLine(
                logging.WARNING,
                f"Could not refresh {name} ({why}): {outcome.result.value}: "
                f"{outcome.detail}",
            )
        return FileLine(logging.DEBUG, f"Refreshed {name}: {why}")
    return FileLine(logging.DEBUG, f"Kept {name}: {why}")
