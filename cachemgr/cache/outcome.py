"""What apply did with each decision; no I/O.

``cachemgr.cache.apply`` produces these records and ``cachemgr.report``
reads them; they live apart from apply so that the report, which is pure,
need not import the code that takes locks and unlinks files.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cachemgr.cache.plan import Decision

__all__ = ["ApplyResult", "Outcome", "Result"]


class Result(enum.Enum):
    """What happened to one decision; the values are the words the logs use."""

    DONE = "done"
    LOCKED = "locked"
    CHANGED = "changed"
    VANISHED = "vanished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    result: Result
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcomes: tuple[Outcome, ...]
