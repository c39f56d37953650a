"""Tests for cachemgr.pipeline.attempt: each way a pass ends, as the one
PassResult that the status file, STATUS= and the exit status read, and the
one line the log shows for it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from cachemgr.exceptions import GatherError, InventoryUntrustworthy
from cachemgr.pipeline.attempt import attempt_pass
from cachemgr.pipeline.report import Summary
from cachemgr.pipeline.result import PassOutcome, PassReport, PassResult

REPORT = PassReport(Summary(files=3, in_use=1, removed=2), {"gather": 0.5})


def attempt(run: Callable[..., PassReport], *, dry_run: bool = False) -> PassResult:
    """attempt_pass with ``run`` as the pass; no settings or inventory needed."""
    return attempt_pass(
        None,  # type: ignore[arg-type]
        lambda: None,  # type: ignore[arg-type,return-value]
        dry_run=dry_run,
        run_pass=run,
    )


def returning(report: PassReport) -> Callable[..., PassReport]:
    return lambda *args, **kwargs: report


def raising(exc: Exception) -> Callable[..., PassReport]:
    def run(*args: object, **kwargs: object) -> PassReport:
        raise exc

    return run


class TestAttemptPass:
    def test_completed(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO):
            result = attempt(returning(REPORT), dry_run=True)
        assert (result.outcome, result.report, result.error) == (
            PassOutcome.COMPLETED,
            REPORT,
            None,
        )
        assert result.dry_run is True
        assert result.started_at <= result.ended_at
        assert "Image cache pass starting" in caplog.text
        assert result.describe().startswith("Last pass completed (dry run) at ")
        assert result.describe().endswith(
            "files=3 in_use=1 removed=2 too_young=0 kept_open=0 errors=0"
        )

    def test_completed_with_errors_warns(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        report = PassReport(Summary(files=1, errors=1), {})
        result = attempt(returning(report))
        assert result.outcome is PassOutcome.COMPLETED
        assert "completed with 1 error(s)" in caplog.text

    @pytest.mark.parametrize(
        "exc",
        [InventoryUntrustworthy("inv.json: bad"), GatherError("cannot scan /x")],
        ids=["inventory", "gather"],
    )
    def test_refused(self, exc: Exception, caplog: pytest.LogCaptureFixture) -> None:
        result = attempt(raising(exc))
        assert (result.outcome, result.report, result.error) == (
            PassOutcome.REFUSED,
            None,
            str(exc),
        )
        (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert record.getMessage() == (
            f"Image cache pass refused, nothing was removed: {exc}"
        )
        assert record.exc_info is None
        assert result.describe().endswith(f": {exc}")

    def test_failed(self, caplog: pytest.LogCaptureFixture) -> None:
        result = attempt(raising(ZeroDivisionError("division by zero")))
        assert result.outcome is PassOutcome.FAILED
        assert result.error == "ZeroDivisionError: division by zero"
        (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert record.exc_info is not None

    @pytest.mark.parametrize("summary", [None, Summary(files=1, removed=1)])
    def test_stopped(
        self, summary: Summary | None, caplog: pytest.LogCaptureFixture
    ) -> None:
        report = PassReport(summary, {}, "stopped after gathering")
        with caplog.at_level(logging.INFO):
            result = attempt(returning(report))
        assert (result.outcome, result.error) == (
            PassOutcome.STOPPED,
            "stopped after gathering",
        )
        assert result.summary == summary
        assert "Image cache pass stopped after gathering" in caplog.text
