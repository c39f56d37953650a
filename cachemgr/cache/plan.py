"""Plan: one decision, with its reason, for every regular file in the cache.

A pure function of the snapshots, the policy and ``now``: no clock, no disk,
no logging. A dry run is this plan printed; apply only carries it out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

from cachemgr.cache.disk_usage import FilesystemUse
from cachemgr.cache.naming import Kind
from cachemgr.cache.snapshot import NO_PINS, CacheFile, CacheSnapshot, FileKey, Pins
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
    PINNED = "pinned"
    DOWNLOADING = "downloading"
    TOO_YOUNG = "too_young"
    UNKNOWN_NAME = "unknown_name"
    UNUSED = "unused"
    DISK_PRESSURE = "disk_pressure"


@dataclass(frozen=True, slots=True)
class Policy:
    """How old an unused file must be before it goes, and when space is short.

    ``high_watermark_percent`` 0 is off. At or above it, unused files younger
    than their kind's minimum but older than ``pressure_minimum_age_seconds``
    go too, oldest first, until the use would be at or below
    ``low_watermark_percent`` (DESIGN 1.9).
    """

    original_minimum_age_seconds: int
    resized_minimum_age_seconds: int
    high_watermark_percent: int = 0
    low_watermark_percent: int = 0
    pressure_minimum_age_seconds: int = 600

    def minimum_age_seconds(self, kind: Kind) -> int:
        if kind is Kind.RESIZED:
            return self.resized_minimum_age_seconds
        return self.original_minimum_age_seconds


class Decision(NamedTuple):
    """One file's action and why.

    A NamedTuple, as CacheFile is (one per cache file). The words are built
    only when asked for: at INFO a pass logs its removals alone, so most
    details would never be read.
    """

    file: CacheFile
    action: Action
    reason: Reason
    evidence: str
    """What the reason rests on, shared by many files: who uses it, in words
    (INSTANCE), the disk (BACKING_FILE), the process (OPEN_FILE), the
    sibling nova is writing (DOWNLOADING), the pin (PINNED), the minimum age
    that applied (TOO_YOUNG, UNUSED), the use and the watermarks
    (DISK_PRESSURE)."""
    now: float
    """When the plan was made, for the file's age."""

    @property
    def detail(self) -> str:
        """The reason in words, for the file's log line."""
        reason = self.reason
        if reason is Reason.BACKING_FILE:
            return f"backing file of {self.evidence}"
        if reason is Reason.OPEN_FILE:
            return f"held open by {self.evidence}"
        if reason is Reason.DOWNLOADING:
            return f"nova is writing {self.evidence} beside it"
        if reason is Reason.TOO_YOUNG:
            return f"age {self.age_seconds:.0f}s, {self.evidence}"
        if reason is Reason.UNUSED:
            return f"{_UNUSED_DETAIL}; age {self.age_seconds:.0f}s, {self.evidence}"
        if reason is Reason.DISK_PRESSURE:
            return f"{_UNUSED_DETAIL}; {self.evidence}; age {self.age_seconds:.0f}s"
        return self.evidence

    @property
    def age_seconds(self) -> float:
        return self.now - self.file.mtime


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
    *,
    pins: Pins = NO_PINS,
    filesystem: FilesystemUse | None = None,
) -> Plan:
    """Decide every file of ``cache``.

    Args:
        cache: the cache dir snapshot.
        usage: the names the inventory's instances use.
        backing: cache name -> a disk whose backing chain reaches it.
        open_files: (st_dev, st_ino) -> who holds that file open.
        policy: the minimum ages and the watermarks.
        now: the time the ages are measured at, in epoch seconds.
        pins: the active pins.
        filesystem: the use of the cache's file system when the pass began;
            None (cache dir missing) is never under pressure.
    """
    decide = _Decider(usage, backing, open_files, _downloads(cache), pins, policy, now)
    # Decided in scan order (the order the records lie in memory), then
    # sorted by name: 8% faster at 100,000 files. Names are unique.
    decisions = sorted(map(decide, cache.files), key=attrgetter("file.name"))
    if (
        filesystem is not None
        and policy.high_watermark_percent
        and filesystem.at_or_above(policy.high_watermark_percent)
    ):
        decisions = _relieve_pressure(decisions, filesystem, policy, now)
    return Plan(decisions=tuple(decisions), now=now)


def _relieve_pressure(
    decisions: list[Decision], filesystem: FilesystemUse, policy: Policy, now: float
) -> list[Decision]:
    """Also remove files kept only as too young, oldest first, ties by name,
    until the use, less all that the plan removes, is at or below the low
    watermark. Never one younger than ``pressure_minimum_age_seconds``."""
    freed = sum(d.file.allocated_bytes for d in decisions if d.action is Action.REMOVE)
    low = policy.low_watermark_percent
    if filesystem.at_or_below(low, freed_bytes=freed):
        return decisions
    cutoff = _cutoff_ns(policy.pressure_minimum_age_seconds, now)
    candidates = sorted(
        (
            (d.file.mtime_ns, d.file.name, index)
            for index, d in enumerate(decisions)
            if d.reason is Reason.TOO_YOUNG and d.file.mtime_ns < cutoff
        ),
    )
    evidence = (
        f"disk pressure: file system {filesystem.percent:.1f}% used, at or above "
        f"the high watermark {policy.high_watermark_percent}%, removing down to "
        f"the low watermark {low}% (files older than "
        f"{policy.pressure_minimum_age_seconds}s)"
    )
    decided = list(decisions)
    for _, _, index in candidates:
        if filesystem.at_or_below(low, freed_bytes=freed):
            break
        file = decided[index].file
        decided[index] = Decision(
            file, Action.REMOVE, Reason.DISK_PRESSURE, evidence, now
        )
        freed += file.allocated_bytes
    return decided


class _Decider:
    """Decides one file; what every file shares is worked out once, up front.

    A shared storage has 100,000 cache files, so per-file work is the plan's
    whole cost: each kind's age limit is an integer cutoff (one comparison
    per file) and each image's list of instances is written once.
    """

    def __init__(
        self,
        usage: Usage,
        backing: Mapping[str, str],
        open_files: Mapping[FileKey, str],
        downloads: Mapping[str, str],
        pins: Pins,
        policy: Policy,
        now: float,
    ) -> None:
        self._pins = pins.by_fingerprint
        self._users = usage.image_users
        self._used_others = usage.other_names
        self._backing = backing
        self._open_files = open_files
        self._downloads = downloads
        self._now = now
        self._limits = {kind: _AgeLimit.of(kind, policy, now) for kind in Kind}
        self._image_users_text: dict[str, str] = {}

    def __call__(self, file: CacheFile) -> Decision:
        kind = file.kind
        now = self._now
        if kind is None:
            unknown = _NOT_A_CACHE_NAME
            return Decision(file, Action.KEEP, Reason.UNKNOWN_NAME, unknown, now)
        limit = self._limits[kind]
        if kind is Kind.ORIGINAL or kind is Kind.RESIZED:
            fingerprint = file.name[:40]
            if fingerprint in self._users:
                users = self._image_users(fingerprint)
                return Decision(file, Action.TOUCH, Reason.INSTANCE, users, now)
        elif file.name in self._used_others:
            users = limit.in_use_detail
            return Decision(file, Action.TOUCH, Reason.INSTANCE, users, now)
        disk = self._backing.get(file.name)
        if disk is not None:
            return Decision(file, Action.TOUCH, Reason.BACKING_FILE, disk, now)
        if self._downloads:  # usually empty, as open_files
            sibling = self._downloads.get(file.name)
            if sibling is not None:
                return Decision(file, Action.KEEP, Reason.DOWNLOADING, sibling, now)
        if self._open_files:  # usually empty: no per-file key to build
            holder = self._open_files.get(file.key)
            if holder is not None:
                return Decision(file, Action.KEEP, Reason.OPEN_FILE, holder, now)
        if self._pins and (kind is Kind.ORIGINAL or kind is Kind.RESIZED):
            pin = self._pins.get(file.name[:40])
            if pin is not None:
                return Decision(file, Action.KEEP, Reason.PINNED, pin.describe(), now)
        if file.mtime_ns >= limit.cutoff_ns:
            minimum = limit.minimum_text
            return Decision(file, Action.KEEP, Reason.TOO_YOUNG, minimum, now)
        return Decision(file, Action.REMOVE, Reason.UNUSED, limit.minimum_text, now)

    def _image_users(self, fingerprint: str) -> str:
        """``image of <names>``, written once per image."""
        text = self._image_users_text.get(fingerprint)
        if text is None:
            text = f"image of {_names(self._users[fingerprint])}"
            self._image_users_text[fingerprint] = text
        return text


# What nova writes beside a cache file before renaming it into place:
# images.fetch_to_raw downloads to <name>.part and converts to
# <name>.converted, for a spawn and for the aggregate cache_images pre-cache.
_DOWNLOAD_SUFFIXES = (".part", ".converted")


def _downloads(cache: CacheSnapshot) -> dict[str, str]:
    """Cache name -> the ``.part`` or ``.converted`` sibling the cache dir holds.

    Such a file is kept this pass: nova may be about to rename a fresh copy
    over it, or be using it while it writes the other.
    """
    found: dict[str, str] = {}
    # A cache name never ends so: only the files of no kind are looked at.
    unknown = (f.name for f in cache.files if f.kind is None)
    for name in (*unknown, *cache.other_entries):
        if name.endswith(_DOWNLOAD_SUFFIXES):
            stem = name.rpartition(".")[0]
            found.setdefault(stem, name)
    return found


_NOT_A_CACHE_NAME = "not a cache file name"
_UNUSED_DETAIL = "no instance, disk or process uses it"


@dataclass(frozen=True, slots=True)
class _AgeLimit:
    """One kind's minimum age at ``now``, and the words its details use."""

    cutoff_ns: int
    """Files whose mtime_ns is below this are older than the minimum."""
    minimum_text: str
    in_use_detail: str

    @classmethod
    def of(cls, kind: Kind, policy: Policy, now: float) -> _AgeLimit:
        minimum = policy.minimum_age_seconds(kind)
        return cls(
            cutoff_ns=_cutoff_ns(minimum, now),
            minimum_text=f"minimum {minimum}s for {kind.value} files",
            in_use_detail=f"{kind.value} disk of an instance",
        )


def _cutoff_ns(minimum_seconds: int, now: float) -> int:
    """The least mtime_ns that is not strictly older than the minimum at ``now``.

    Exact: ``now - mtime_ns / 1e9 > minimum`` holds, in rationals, exactly
    when ``mtime_ns`` is below it. In floats, the age is off by up to a few
    hundred nanoseconds and can call a file just short of the minimum old
    enough.
    """
    numerator, denominator = now.as_integer_ratio()
    now_ns_ceiling = -(-numerator * 1_000_000_000 // denominator)
    return now_ns_ceiling - minimum_seconds * 1_000_000_000


def _names(names: tuple[str, ...]) -> str:
    """The first three names in sorted order, so the inventory's order is moot."""
    ordered = sorted(set(names))
    more = f" and {len(ordered) - 3} more" if len(ordered) > 3 else ""
    return ", ".join(ordered[:3]) + more
