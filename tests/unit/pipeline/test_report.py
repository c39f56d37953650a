"""Tests for cachemgr.report: the counters, the summary line and per-file lines."""

from __future__ import annotations

import dataclasses
import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemgr.cache.outcome import ApplyResult, FileOutcome, Result
from cachemgr.cache.plan import Action, Decision, Plan, Reason
from cachemgr.pipeline.report import (
    FILE_STATES,
    FileLine,
    Mode,
    Summary,
    file_lines,
    outcome_line,
    state_bytes,
    summarize,
    summary_line,
)
from tests.support.hosts import CONTRACT_KEYS as HOST_CONTRACT_KEYS
from tests.unit.cache.helpers import NOW, make_file

# DESIGN 1.7's keys, in order, as the functional tests read them too.
CONTRACT_KEYS = [*HOST_CONTRACT_KEYS, "duration_s"]
EXTRA_KEYS = [
    "kept_locked",
    "kept_changed",
    "kept_failed",
    "disks",
    "unreadable_disks",
    "kept_pinned",
    "pressure_removed",
    "instances",
    "mode",
]
# Every file lands in exactly one of these; together they make ``files``.
CATEGORIES = [
    "in_use",
    "removed",
    "too_young",
    "kept_unknown",
    "kept_open",
    "kept_locked",
    "kept_changed",
    "kept_failed",
    "kept_pinned",
]
SUMMARY_RE = re.compile(
    r"Image cache pass complete: files=(?P<files>\d+) in_use=(?P<in_use>\d+) "
    r"removed=(?P<removed>\d+) too_young=(?P<too_young>\d+) "
    r"kept_unknown=(?P<kept_unknown>\d+) kept_open=(?P<kept_open>\d+) "
    r"bytes_removed=(?P<bytes_removed>\d+) errors=(?P<errors>\d+) "
    r"duration_s=(?P<duration_s>\d+\.\d+)(?P<rest>( \w+=\S+)*)"
)
DRY_RUN = "dry run"
DISABLED = "remove_unused_base_images = false"

ACTION_OF = {
    Reason.INSTANCE: Action.TOUCH,
    Reason.BACKING_FILE: Action.TOUCH,
    Reason.OPEN_FILE: Action.KEEP,
    Reason.TOO_YOUNG: Action.KEEP,
    Reason.UNKNOWN_NAME: Action.KEEP,
    Reason.UNUSED: Action.REMOVE,
}


def decision(name: str, reason: Reason, *, size: int = 4096) -> Decision:
    """A decision as make_plan would make it for a file called ``name``."""
    file = make_file(name, blocks_bytes=size)
    return Decision(file, ACTION_OF[reason], reason, f"{reason.value} of {name}", NOW)


def plan_of(*decisions: Decision) -> Plan:
    return Plan(decisions=tuple(decisions), now=NOW)


def outcome(d: Decision, result: Result = Result.DONE, detail: str = "") -> FileOutcome:
    return FileOutcome(d, result, detail or f"{result.value} detail")


def applied(*outcomes: FileOutcome) -> ApplyResult:
    return ApplyResult.of(outcomes)


def summary_of(plan: Plan, result: ApplyResult | None, **kwargs) -> Summary:
    args = {
        "disks": 0,
        "unreadable_disks": 0,
        "instances": 0,
        "mode": Mode.REMOVE,
        "duration_s": 0.5,
    }
    return summarize(plan, result, **(args | kwargs))


def categories(summary: Summary) -> dict[str, int]:
    """The non-zero category counters of a summary."""
    counts = {key: getattr(summary, key) for key in CATEGORIES}
    return {key: n for key, n in counts.items() if n}


# One decision of each reason, with sizes that tell any sum of them apart.
USED = decision("used", Reason.INSTANCE, size=1)
BACKED = decision("backed", Reason.BACKING_FILE, size=2)
HELD = decision("held", Reason.OPEN_FILE, size=4)
YOUNG = decision("young", Reason.TOO_YOUNG, size=8)
JUNK = decision("junk", Reason.UNKNOWN_NAME, size=16)
OLD_A = decision("old_a", Reason.UNUSED, size=32)
OLD_B = decision("old_b", Reason.UNUSED, size=64)
EVERY_REASON = plan_of(BACKED, HELD, JUNK, OLD_A, OLD_B, USED, YOUNG)


class TestSummarize:
    def test_dry_run_counts_every_reason(self) -> None:
        """Without an apply result each reason counts in its category."""
        summary = summary_of(EVERY_REASON, None)
        assert summary.files == 7
        assert categories(summary) == {
            "in_use": 2,
            "kept_open": 1,
            "too_young": 1,
            "kept_unknown": 1,
            "removed": 2,
        }

    def test_dry_run_counts_would_be_removals_and_bytes(self) -> None:
        """A dry run counts planned removals as removed, with their bytes only."""
        summary = summary_of(EVERY_REASON, None)
        assert summary.removed == 2
        assert summary.bytes_removed == 32 + 64
        assert summary.errors == 0

    def test_removal_disabled_counts_would_be_removals(self) -> None:
        """With only touches applied, planned removals still count as removed."""
        result = applied(outcome(USED), outcome(BACKED))
        summary = summary_of(EVERY_REASON, result)
        assert summary.removed == 2
        assert summary.bytes_removed == 32 + 64

    def test_applied_removals_count_their_bytes(self) -> None:
        """bytes_removed is the allocated bytes of the files actually removed."""
        result = applied(
            outcome(USED),
            outcome(OLD_A, Result.DONE),
            outcome(OLD_B, Result.LOCKED),
        )
        summary = summary_of(EVERY_REASON, result)
        assert summary.removed == 1
        assert summary.bytes_removed == 32

    @pytest.mark.parametrize(
        ("result", "category", "errors"),
        [
            (Result.LOCKED, "kept_locked", 0),
            (Result.CHANGED, "kept_changed", 0),
            (Result.VANISHED, "kept_changed", 0),
            (Result.FAILED, "kept_failed", 1),
        ],
        ids=lambda v: v.value if isinstance(v, Result) else None,
    )
    def test_refused_removal_moves_category(
        self, result: Result, category: str, errors: int
    ) -> None:
        """A removal apply did not carry out counts under why, not as removed."""
        summary = summary_of(plan_of(OLD_A), applied(outcome(OLD_A, result)))
        assert categories(summary) == {category: 1}
        assert summary.files == 1
        assert summary.bytes_removed == 0
        assert summary.errors == errors

    def test_failed_touch_counts_an_error_and_stays_in_use(self) -> None:
        """A refresh that failed is an error, and the file is still in use."""
        result = applied(outcome(USED, Result.FAILED), outcome(BACKED))
        summary = summary_of(plan_of(USED, BACKED), result)
        assert categories(summary) == {"in_use": 2}
        assert summary.errors == 1

    def test_vanished_touch_is_no_error(self) -> None:
        """A used file that vanished before its refresh is not an error."""
        summary = summary_of(plan_of(USED), applied(outcome(USED, Result.VANISHED)))
        assert categories(summary) == {"in_use": 1}
        assert summary.errors == 0

    def test_passes_through_disks_instances_mode_and_duration(self) -> None:
        """Disk and instance counts, the mode and the duration are as given."""
        summary = summary_of(
            plan_of(),
            None,
            disks=12,
            unreadable_disks=2,
            instances=7,
            mode=Mode.NOT_REMOVER,
            duration_s=1.5,
        )
        assert (summary.disks, summary.unreadable_disks) == (12, 2)
        assert summary.instances == 7
        assert summary.mode is Mode.NOT_REMOVER
        assert summary.duration_s == 1.5
        assert summary.files == 0

    @given(st.lists(st.sampled_from([*Result, None]), min_size=7, max_size=7))
    def test_every_file_in_exactly_one_category(self, results: list) -> None:
        """Whatever apply did, the categories add up to ``files``."""
        outcomes = [
            outcome(d, r)
            for d, r in zip(EVERY_REASON.decisions, results, strict=True)
            if r is not None and d.action is not Action.KEEP
        ]
        summary = summary_of(EVERY_REASON, applied(*outcomes))
        assert sum(getattr(summary, key) for key in CATEGORIES) == summary.files == 7
        removed = [
            o.decision.file.allocated_bytes
            for o in outcomes
            if o.decision.action is Action.REMOVE and o.result is Result.DONE
        ]
        unapplied = [
            d.file.allocated_bytes
            for d in EVERY_REASON.with_action(Action.REMOVE)
            if d not in {o.decision for o in outcomes}
        ]
        assert summary.bytes_removed == sum(removed) + sum(unapplied)
        assert summary.errors == sum(o.result is Result.FAILED for o in outcomes)


class TestSummaryLine:
    SUMMARY = Summary(
        files=40,
        in_use=10,
        removed=9,
        too_young=8,
        kept_unknown=7,
        kept_open=2,
        bytes_removed=123456789,
        errors=1,
        duration_s=1.25,
        kept_locked=1,
        kept_changed=2,
        kept_failed=1,
        disks=30,
        unreadable_disks=1,
        instances=25,
        mode=Mode.DRY_RUN,
    )

    def test_contract_keys_first_in_order(self) -> None:
        """The contract's keys come first, in order, then the extra keys."""
        line = summary_line(self.SUMMARY)
        keys = [pair.split("=")[0] for pair in line.split(": ", 1)[1].split()]
        assert keys == CONTRACT_KEYS + EXTRA_KEYS

    def test_parses_back_to_the_summary(self) -> None:
        """The contract regex reads the line back into the same counters."""
        line = summary_line(self.SUMMARY)
        match = SUMMARY_RE.fullmatch(line)
        assert match is not None, line
        assert parse(line) == self.SUMMARY

    def test_exact_text(self) -> None:
        """The line reads exactly as DESIGN 1.7 spells it."""
        assert summary_line(self.SUMMARY) == (
            "Image cache pass complete: files=40 in_use=10 removed=9 too_young=8 "
            "kept_unknown=7 kept_open=2 bytes_removed=123456789 errors=1 "
            "duration_s=1.250 kept_locked=1 kept_changed=2 kept_failed=1 disks=30 "
            "unreadable_disks=1 kept_pinned=0 pressure_removed=0 instances=25 "
            "mode=dry-run"
        )

    @given(
        st.builds(
            Summary,
            **{
                f.name: st.integers(0, 2**50)
                for f in dataclasses.fields(Summary)
                if f.name not in ("duration_s", "mode")
            },
            duration_s=st.integers(0, 10**7).map(lambda ms: ms / 1000),
            mode=st.sampled_from(Mode),
        )
    )
    def test_round_trip(self, summary: Summary) -> None:
        """Any summary's line matches the contract and parses back to it."""
        line = summary_line(summary)
        assert SUMMARY_RE.fullmatch(line) is not None, line
        assert parse(line) == summary


def parse(line: str) -> Summary:
    """A summary line read back with the contract regex and the extra keys."""
    match = SUMMARY_RE.fullmatch(line)
    assert match is not None, line
    values: dict[str, object] = {
        key: int(text)
        for key, text in match.groupdict().items()
        if key in CONTRACT_KEYS and key != "duration_s"
    }
    values["duration_s"] = float(match["duration_s"])
    for pair in match["rest"].split():
        key, text = pair.split("=")
        values[key] = Mode(text) if key == "mode" else int(text)
    return Summary(**values)


def lines_by_name(plan: Plan, result: ApplyResult | None, would: str | None):
    """Every file's line: apply's own as it told them, then the others'."""
    told = result.outcomes if result is not None else {}
    lines = {name: outcome_line(o) for name, o in told.items()}
    rest = [d for d in plan.decisions if d.file.name not in told]
    later = list(file_lines(plan, result, would=would))
    assert len(later) == len(rest)
    lines |= {d.file.name: line for d, line in zip(rest, later, strict=True)}
    assert len(lines) == len(plan.decisions)
    return lines


class TestStateBytes:
    def test_each_state_holds_the_bytes_of_its_files(self) -> None:
        """Sizes 1, 2, 4... tell every sum apart: each file is in one state."""
        result = applied(outcome(USED), outcome(OLD_A), outcome(OLD_B, Result.LOCKED))
        assert state_bytes(EVERY_REASON, result) == {
            "in_use": 1 + 2,
            "kept_open": 4,
            "kept_pinned": 0,
            "too_young": 8,
            "kept_unknown": 16,
            "removed": 32,
            "kept_locked": 64,
            "kept_changed": 0,
            "kept_failed": 0,
        }

    def test_removed_bytes_are_the_summary_bytes_removed(self) -> None:
        """The metrics' removed bytes and the summary line agree."""
        result = applied(outcome(OLD_A), outcome(OLD_B, Result.FAILED))
        summary = summary_of(EVERY_REASON, result)
        assert state_bytes(EVERY_REASON, result)["removed"] == summary.bytes_removed

    def test_every_summary_category_is_a_state(self) -> None:
        """No file counted in the summary is left out of the metrics."""
        assert set(CATEGORIES) <= set(FILE_STATES)


class TestFileLines:
    def test_applied_files_are_left_to_outcome_line(self) -> None:
        """Files apply told as it went get no second line after it."""
        result = applied(outcome(USED), outcome(OLD_A))
        later = [line.message for line in file_lines(EVERY_REASON, result, would=None)]
        assert len(later) == len(EVERY_REASON.decisions) - 2
        assert not [m for m in later if " used:" in m or "old_a" in m]

    def test_one_line_per_file_in_plan_order(self) -> None:
        """Every file of the plan gets one line, in the plan's order."""
        lines = list(file_lines(EVERY_REASON, None, would=DRY_RUN))
        assert len(lines) == len(EVERY_REASON.decisions)
        for d, line in zip(EVERY_REASON.decisions, lines, strict=True):
            assert d.file.name in line.message

    def test_removal_at_info_with_name_and_reason(self) -> None:
        """A removal is logged at INFO with the file's name and why it was unused."""
        line = lines_by_name(plan_of(OLD_A), applied(outcome(OLD_A)), None)["old_a"]
        assert line.level == logging.INFO
        assert line.message.startswith("Removed old_a")
        assert "unused" in line.message
        assert OLD_A.detail in line.message

    @pytest.mark.parametrize("would", [DRY_RUN, DISABLED], ids=["dry_run", "disabled"])
    def test_would_remove_says_why_not_applied(self, would: str) -> None:
        """A removal not carried out is at INFO, says why not, and why unused."""
        line = lines_by_name(plan_of(OLD_A), None, would)["old_a"]
        assert line.level == logging.INFO
        assert line.message.startswith("Would remove old_a")
        assert would in line.message
        assert OLD_A.detail in line.message

    def test_would_remove_with_touches_applied(self) -> None:
        """With removal disabled, touches are applied and removals are 'would'."""
        result = applied(outcome(USED))
        lines = lines_by_name(plan_of(OLD_A, USED), result, DISABLED)
        assert lines["old_a"].message.startswith("Would remove old_a")
        assert DISABLED in lines["old_a"].message
        assert lines["used"].message.startswith("Refreshed used")

    @pytest.mark.parametrize(
        "result",
        [Result.LOCKED, Result.CHANGED, Result.VANISHED, Result.FAILED],
        ids=lambda r: r.value,
    )
    def test_refused_removal_says_why_kept(self, result: Result) -> None:
        """A removal apply refused is at INFO, naming the file and the result."""
        out = outcome(OLD_A, result, "the outcome's detail")
        line = lines_by_name(plan_of(OLD_A), applied(out), None)["old_a"]
        assert line.level == logging.INFO
        assert line.message.startswith("Kept old_a")
        assert result.value in line.message
        assert "the outcome's detail" in line.message

    @pytest.mark.parametrize("d", [USED, BACKED], ids=["instance", "backing_file"])
    def test_refresh_at_debug(self, d: Decision) -> None:
        """A refresh is logged at DEBUG with the file's name and reason."""
        line = lines_by_name(plan_of(d), applied(outcome(d)), None)[d.file.name]
        assert line == FileLine(
            logging.DEBUG, f"Refreshed {d.file.name}: {d.reason.value}: {d.detail}"
        )

    def test_would_refresh_at_debug(self) -> None:
        """In a dry run, a file that would be refreshed is logged at DEBUG."""
        line = lines_by_name(plan_of(USED), None, DRY_RUN)["used"]
        assert line.level == logging.DEBUG
        assert line.message.startswith("Would refresh used")

    @pytest.mark.parametrize(
        "result", [Result.FAILED, Result.VANISHED], ids=lambda r: r.value
    )
    def test_failed_refresh_at_warning(self, result: Result) -> None:
        """A refresh that did not happen is a WARNING naming the file and why."""
        out = outcome(USED, result, "Permission denied (errno 13)")
        line = lines_by_name(plan_of(USED), applied(out), None)["used"]
        assert line.level == logging.WARNING
        assert "used" in line.message
        assert "Permission denied (errno 13)" in line.message

    @pytest.mark.parametrize("d", [HELD, YOUNG, JUNK], ids=lambda d: d.reason.value)
    def test_kept_at_debug_with_reason(self, d: Decision) -> None:
        """A file kept by the plan is logged at DEBUG with its reason."""
        line = lines_by_name(plan_of(d), None, DRY_RUN)[d.file.name]
        assert line == FileLine(
            logging.DEBUG, f"Kept {d.file.name}: {d.reason.value}: {d.detail}"
        )
