"""Properties of cachemgr.cache.plan.make_plan over random hosts (STYLE.md)."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from cachemgr.cache import naming
from cachemgr.cache.disk_usage import FilesystemUse
from cachemgr.cache.plan import Action, Plan, Policy, Reason, make_plan
from cachemgr.cache.snapshot import CacheFile, Pin, Pins
from cachemgr.cache.usage import Usage, used_names
from tests.unit.strategies import Host, hosts


def plan_of(host: Host, *, now: float | None = None) -> Plan:
    """make_plan over the host's snapshots, at ``now`` or the host's time."""
    return make_plan(
        host.cache,
        usage_of(host),
        host.backing,
        host.open_files,
        host.policy,
        host.now if now is None else now,
    )


def usage_of(host: Host) -> Usage:
    return used_names(host.instances, host.ephemeral)


def named_by_instance(host: Host, file: CacheFile) -> bool:
    """Whether an instance of the host uses ``file``, from nova's naming rules."""
    usage = usage_of(host)
    if file.kind in (naming.Kind.ORIGINAL, naming.Kind.RESIZED):
        refs = {ref for i in host.instances for ref in i.image_ids}
        return file.name[:40] in {naming.fingerprint(ref) for ref in refs}
    return file.name in usage.other_names


def being_downloaded(host: Host, file: CacheFile) -> bool:
    """Whether nova writes ``<name>.part`` or ``<name>.converted`` beside it."""
    entries = {f.name for f in host.cache.files} | set(host.cache.other_entries)
    return bool(entries & {f"{file.name}.part", f"{file.name}.converted"})


def exact_age(file: CacheFile, now: float) -> Fraction:
    return Fraction(now) - Fraction(file.mtime_ns, 10**9)


def minimum_age(policy: Policy, kind: naming.Kind) -> int:
    """DESIGN 1.2: the resized minimum for resized files, else the original."""
    if kind is naming.Kind.RESIZED:
        return policy.resized_minimum_age_seconds
    return policy.original_minimum_age_seconds


def shuffled(values, rng: random.Random) -> list:
    values = list(values)
    rng.shuffle(values)
    return values


class TestMakePlanProperties:
    @given(hosts())
    def test_one_decision_per_file(self, host: Host) -> None:
        """Every cache-dir file gets exactly one decision, and nothing else does."""
        plan = plan_of(host)
        decided = Counter(id(d.file) for d in plan.decisions)
        assert decided == Counter(id(f) for f in host.cache.files)

    @given(hosts())
    def test_nothing_in_use_is_removed(self, host: Host) -> None:
        """No file an instance, a backing chain or an open handle names is removed."""
        for decision in plan_of(host).decisions:
            file = decision.file
            protected = (
                named_by_instance(host, file)
                or file.name in host.backing
                or file.key in host.open_files
            )
            if protected:
                assert decision.action is not Action.REMOVE, decision

    @given(hosts())
    def test_used_cache_files_are_refreshed(self, host: Host) -> None:
        """A cache file an instance or a backing chain uses is touched."""
        for decision in plan_of(host).decisions:
            file = decision.file
            if file.kind is None:
                continue
            if named_by_instance(host, file) or file.name in host.backing:
                assert decision.action is Action.TOUCH, decision

    @given(hosts())
    def test_unknown_names_are_left_alone(self, host: Host) -> None:
        """A name that is not a cache name is kept, never touched or removed."""
        for decision in plan_of(host).decisions:
            if naming.classify(decision.file.name) is None:
                assert decision.action is Action.KEEP, decision
                assert decision.reason is Reason.UNKNOWN_NAME, decision

    @given(hosts(), st.randoms(use_true_random=False))
    def test_input_order_does_not_matter(self, host: Host, rng: random.Random) -> None:
        """Shuffling files, instances, backing and open files gives the same plan."""
        reordered = Host(
            cache=host.cache.__class__(
                path=host.cache.path,
                dir_key=host.cache.dir_key,
                files=tuple(shuffled(host.cache.files, rng)),
            ),
            instances=tuple(shuffled(host.instances, rng)),
            ephemeral=host.ephemeral,
            backing=dict(shuffled(host.backing.items(), rng)),
            open_files=dict(shuffled(host.open_files.items(), rng)),
            policy=host.policy,
            now=host.now,
        )
        assert plan_of(reordered) == plan_of(host)

    @given(hosts(), st.floats(0, 10 * 86400, allow_nan=False))
    def test_removal_stays_removal_later(self, host: Host, later: float) -> None:
        """A file removed at ``now`` is also removed at any later ``now``."""
        removed_now = {d.file.name for d in plan_of(host).with_action(Action.REMOVE)}
        later_plan = plan_of(host, now=host.now + later)
        removed_later = {d.file.name for d in later_plan.with_action(Action.REMOVE)}
        assert removed_now <= removed_later

    @given(hosts())
    def test_removed_files_are_older_than_their_minimum(self, host: Host) -> None:
        """Every REMOVE is strictly older than its kind's minimum age, exactly."""
        for decision in plan_of(host).with_action(Action.REMOVE):
            file = decision.file
            assert file.kind is not None
            minimum = minimum_age(host.policy, file.kind)
            assert exact_age(file, host.now) > minimum, decision

    @given(hosts())
    def test_unused_old_files_are_removed(self, host: Host) -> None:
        """A cache file nothing uses and older than its minimum is removed."""
        for decision in plan_of(host).decisions:
            file = decision.file
            if file.kind is None or named_by_instance(host, file):
                continue
            if file.name in host.backing or file.key in host.open_files:
                continue
            if being_downloaded(host, file):
                continue
            old = exact_age(file, host.now) > minimum_age(host.policy, file.kind)
            expected = Action.REMOVE if old else Action.KEEP
            assert decision.action is expected, decision

    @given(hosts())
    def test_decisions_sorted_and_explained(self, host: Host) -> None:
        """Decisions come in name order, each with a non-empty detail."""
        plan = plan_of(host)
        names = [d.file.name for d in plan.decisions]
        assert names == sorted(names)
        assert all(d.detail.strip() for d in plan.decisions)


class TestUnderDiskPressure:
    """DESIGN 1.9: whatever the use and the watermarks, pressure never plans
    the removal of a file in use, open, pinned or being downloaded."""

    @given(
        hosts(),
        st.integers(0, 100),
        st.integers(1, 100),
        st.integers(0, 99),
        st.integers(0, 3 * 3600),
        st.data(),
    )
    def test_never_a_protected_file(
        self,
        host: Host,
        used_percent: int,
        high: int,
        low: int,
        pressure_age: int,
        data: st.DataObject,
    ) -> None:
        low = min(low, high - 1)
        policy = dataclasses.replace(
            host.policy,
            high_watermark_percent=high,
            low_watermark_percent=low,
            pressure_minimum_age_seconds=pressure_age,
        )
        images = (naming.Kind.ORIGINAL, naming.Kind.RESIZED)
        fingerprints = sorted(
            {f.name[:40] for f in host.cache.files if f.kind in images}
        )
        pinned = data.draw(
            st.sets(st.sampled_from(fingerprints)) if fingerprints else st.just(set())
        )
        pins = Pins({fp: Pin(fp, None) for fp in pinned})
        total = 10**12
        filesystem = FilesystemUse(
            used_bytes=total * used_percent // 100,
            available_bytes=total - total * used_percent // 100,
        )
        plan = make_plan(
            host.cache,
            usage_of(host),
            host.backing,
            host.open_files,
            policy,
            host.now,
            pins=pins,
            filesystem=filesystem,
        )
        for decision in plan.with_action(Action.REMOVE):
            file = decision.file
            assert not named_by_instance(host, file), decision
            assert file.name not in host.backing, decision
            assert file.key not in host.open_files, decision
            assert file.kind not in images or file.name[:40] not in pinned, decision
            assert not being_downloaded(host, file), decision
            if decision.reason is Reason.DISK_PRESSURE:
                assert exact_age(file, host.now) > pressure_age, decision
