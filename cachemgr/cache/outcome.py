"""What apply did with each decision; no I/O.

``cachemgr.cache.apply`` produces these records and ``cachemgr.report``
reads them; they live apart from apply so that the report, which is pure,
need not import the code that takes locks and unlinks files.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cachemgr.cache.plan import Decision

__all__ = ["ApplyResult", "FileOutcome", "Result"]


class Result(enum.Enum):
    """What happened to one decision; the values are the words the logs use."""

    DONE = "done"
    LOCKED = "locked"
    CHANGED = "changed"
    VANISHED = "vanished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What apply did with one file's decision, and why when not done."""

    decision: Decision
    result: Result
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """Every file apply reached, by name, and whether it stopped before the rest.

    ``stopped``: a stop was requested before every planned operation was
    carried out; the files without an outcome were not touched.
    """

    outcomes: Mapping[str, FileOutcome]
    stopped: bool = False

    @classmethod
    def of(
        cls, outcomes: Iterable[FileOutcome], *, stopped: bool = False
    ) -> ApplyResult:
        return cls({o.decision.file.name: o for o in outcomes}, stopped)
