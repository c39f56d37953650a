"""Plan: one decision, with its reason, for every regular file in the cache.

A pure function of the snapshots, the policy and ``now``: no clock, no disk,
no logging. A dry run is this plan printed; apply only carries it out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from cachemgr.cache.naming import Kind
from cachemgr.cache.snapshot import CacheFile, CacheSnapshot, FileKey
from cachemgr.cache.usage import Usage

__all__ = ["Action", "Decision", "Plan", "Policy", "Reason", "make_plan"]


class Action(enum.Enum):
    KEEP = "keep"
    TOUCH = "touch"
    REMOVE = "remove"


class Reason(enum.Enum):
    """Why a file got its action; the values are the words the logs use."""

    INSTANCE = "instance"
    BACKING_FILE = "backing_file"
    OPEN_FILE = "open_file"
    TOO_YOUNG = "too_young"
    UNKNOWN_NAME = "unknown_name"
    UNUSED = "unused"


@dataclass(frozen=True, slots=True)
class Policy:
    """How old an unused file must be before it goes."""

    original_minimum_age_seconds: int
    resized_minimum_age_seconds: int

    def minimum_age_seconds(self, kind: Kind) -> int:
        if kind is Kind.RESIZED:
            return self.resized_minimum_age_seconds
        return self.original_minimum_age_seconds


@dataclass(frozen=True, slots=True)
class Decision:
    file: CacheFile
    action: Action
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Every cache file's decision, in name order, and the time it was made."""

    decisions: tuple[Decision, ...]
    now: float

    def with_action(self, action: Action) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.action is action)


def make_plan(
    cache: CacheSnapshot,
    usage: Usage,
    backing: Mapping[str, str],
    open_files: Mapping[FileKey, str],
    policy: Policy,
    now: float,
) -> Plan:
    """Decide every file of ``cache``.

    Args:
        cache: the cache dir snapshot.
        usage: the names the inventory's instances use.
        backing: cache name -> a disk whose backing chain reaches it.
        open_files: (st_dev, st_ino) -> who holds that file open.
        policy: the minimum ages.
        now: the time the ages are measured at, in epoch seconds.
    """
    users = usage.instances_by_fingerprint
    used_others = usage.used_swap_images | usage.used_ephemeral_images
    decisions = [
        _decide(f, users, used_others, backing, open_files, policy, now)
        for f in sorted(cache.files, key=lambda f: f.name)
    ]
    return Plan(decisions=tuple(decisions), now=now)


def _decide(
    file: CacheFile,
    users: Mapping[str, tuple[str, ...]],
    used_others: frozenset[str],
    backing: Mapping[str, str],
    open_files: Mapping[FileKey, str],
    policy: Policy,
    now: float,
) -> Decision:
    if file.kind is None:
        return Decision(file, Action.KEEP, Reason.UNKNOWN_NAME, "not a cache file name")
    if file.kind in (Kind.ORIGINAL, Kind.RESIZED):
        if file.name[:40] in users:
            detail = f"image of {_names(users[file.name[:40]])}"
            return Decision(file, Action.TOUCH, Reason.INSTANCE, detail)
    elif file.name in used_others:
        detail = f"{file.kind.value} disk of an instance"
        return Decision(file, Action.TOUCH, Reason.INSTANCE, detail)
    if file.name in backing:
        detail = f"backing file of {backing[file.name]}"
        return Decision(file, Action.TOUCH, Reason.BACKING_FILE, detail)
    if file.key in open_files:
        detail = f"held open by {open_files[file.key]}"
        return Decision(file, Action.KEEP, Reason.OPEN_FILE, detail)
    age = now - file.mtime
    minimum = policy.minimum_age_seconds(file.kind)
    ages = f"age {age:.0f}s, minimum {minimum}s for {file.kind.value} files"
    if not _older_than(file.mtime_ns, minimum, now):
        return Decision(file, Action.KEEP, Reason.TOO_YOUNG, ages)
    detail = f"no instance, disk or process uses it; {ages}"
    return Decision(file, Action.REMOVE, Reason.UNUSED, detail)


def _older_than(mtime_ns: int, minimum_seconds: int, now: float) -> bool:
    """Whether ``now - mtime`` is strictly more than the minimum, exactly.

    In floats, ``now - mtime_ns / 1e9`` is off by up to a few hundred
    nanoseconds and can call a file just short of the minimum old enough.
    """
    numerator, denominator = now.as_integer_ratio()
    limit_ns = mtime_ns + minimum_seconds * 1_000_000_000
    return numerator * 1_000_000_000 > limit_ns * denominator


def _names(names: tuple[str, ...]) -> str:
    """The first three names in sorted order, so the inventory's order is moot."""
    ordered = sorted(set(names))
    more = f" and {len(ordered) - 3} more" if len(ordered) > 3 else ""
    return ", ".join(ordered[:3]) + more
