"""Table tests for cachemgr.cache.plan.make_plan: one case per reason and boundary."""

from __future__ import annotations

import dataclasses
import random

import pytest

from cachemgr.cache import naming
from cachemgr.cache.disk_usage import FilesystemUse
from cachemgr.cache.plan import Action, Policy, Reason
from cachemgr.cache.snapshot import CacheFile, Pin, Pins
from cachemgr.inventory.model import Instance
from tests.unit.cache.helpers import (
    DAY,
    HOUR,
    NOW,
    POLICY,
    make_file,
    make_instance,
    plan_for,
)

IMAGE = "a4e3b1c2-0000-4000-8000-000000000001"
OTHER_IMAGE = "a4e3b1c2-0000-4000-8000-000000000002"
FP = naming.fingerprint(IMAGE)
OTHER_FP = naming.fingerprint(OTHER_IMAGE)
EXT = naming.ephemeral_extension(None, {}, None)
NTFS_EXT = naming.ephemeral_extension("windows", {"windows": "mkfs.ntfs"}, None)
OLD = 10 * DAY
DISK = "/var/lib/nova/instances/0000-uuid/disk"
HOLDER = "pid 4242 (qemu-system-x86)"
ZERO_POLICY = Policy(original_minimum_age_seconds=0, resized_minimum_age_seconds=0)
PRESSURE_POLICY = dataclasses.replace(
    POLICY,
    high_watermark_percent=90,
    low_watermark_percent=80,
    pressure_minimum_age_seconds=600,
)
PINS = Pins({FP: Pin(IMAGE, None, "golden")})
# 95% used: far above the high watermark, one file cannot bring it down.
FULL = FilesystemUse(used_bytes=95 * 10**9, available_bytes=5 * 10**9)


@dataclasses.dataclass(frozen=True)
class Case:
    """One file, the world around it, and the decision expected for it."""

    file: CacheFile
    action: Action
    reason: Reason
    instances: tuple[Instance, ...] = ()
    in_backing: bool = False
    held_open: bool = False
    pinned: bool = False
    pressure: bool = False
    beside: tuple[str, ...] = ()
    """Entries of the cache dir that are not regular files."""
    policy: Policy = POLICY
    now: float = NOW

    def decide(self):
        """The plan's single decision for this case's file."""
        plan = plan_for(
            [self.file],
            self.instances,
            backing={self.file.name: DISK} if self.in_backing else None,
            open_files={self.file.key: HOLDER} if self.held_open else None,
            others=self.beside,
            policy=PRESSURE_POLICY if self.pressure else self.policy,
            now=self.now,
            pins=PINS if self.pinned else Pins(),
            filesystem=FULL if self.pressure else None,
        )
        assert len(plan.decisions) == 1
        return plan.decisions[0]


def case(id_: str, file: CacheFile, expected: tuple[Action, Reason], **world):
    """A table row: ``world`` holds the Case fields other than file and result."""
    action, reason = expected
    return pytest.param(Case(file, action, reason, **world), id=id_)


f = make_file
USES = (make_instance(image_ref=IMAGE),)
REMOTE_USES = (make_instance(image_ref=IMAGE, host="cmp2"),)
KERNEL_USES = (make_instance(image_ref=OTHER_IMAGE, kernel_id=IMAGE),)
RAMDISK_USES = (make_instance(ramdisk_id=IMAGE),)
SWAP_USES = (make_instance(swap_mb=512),)
EPH_USES = (make_instance(ephemeral_gb=20),)
SWAP_REF_USES = (make_instance(image_ref="swap_512"),)
EPH = f"ephemeral_20_{EXT}"
RESIZED = f"{FP}_1073741824"
EPH_40 = f"ephemeral_40_{EXT}"
EPH_NTFS = f"ephemeral_20_{NTFS_EXT}"
NOW_NS = NOW + 0.123456789
# A kernel mtime and a time.time() value 1.85 ns short of one day apart:
# float subtraction would call that age 86400.00000024 s.
NS_MTIME = 1753900665931306364
NS_NOW = 1753987065.9313064


def ns_file(mtime_ns: int) -> CacheFile:
    return make_file(FP)._replace(mtime_ns=mtime_ns)


IN_USE = (Action.TOUCH, Reason.INSTANCE)
BACKED = (Action.TOUCH, Reason.BACKING_FILE)
OPEN = (Action.KEEP, Reason.OPEN_FILE)
DOWNLOADING = (Action.KEEP, Reason.DOWNLOADING)
YOUNG = (Action.KEEP, Reason.TOO_YOUNG)
UNKNOWN = (Action.KEEP, Reason.UNKNOWN_NAME)
UNUSED = (Action.REMOVE, Reason.UNUSED)
PINNED = (Action.KEEP, Reason.PINNED)
PRESSURED = (Action.REMOVE, Reason.DISK_PRESSURE)

REASON_CASES = [
    # Reason.INSTANCE: every name an instance gives, however old the file.
    case("instance-original", f(FP, age=OLD), IN_USE, instances=USES),
    case("instance-resized-size", f(RESIZED, age=OLD), IN_USE, instances=USES),
    case("instance-resized-sm", f(f"{FP}_sm", age=OLD), IN_USE, instances=USES),
    case("instance-kernel", f(FP, age=OLD), IN_USE, instances=KERNEL_USES),
    case("instance-ramdisk", f(FP, age=OLD), IN_USE, instances=RAMDISK_USES),
    case("instance-remote-host", f(FP, age=OLD), IN_USE, instances=REMOTE_USES),
    case("instance-swap", f("swap_512", age=OLD), IN_USE, instances=SWAP_USES),
    case("instance-ephemeral", f(EPH, age=OLD), IN_USE, instances=EPH_USES),
    case("instance-young", f(FP, age=1), IN_USE, instances=USES),
    # Names close to a used one are not used.
    case("other-image", f(OTHER_FP, age=OLD), UNUSED, instances=USES),
    case("other-image-resized", f(f"{OTHER_FP}_sm", age=OLD), UNUSED, instances=USES),
    case("swap-other-size", f("swap_1024", age=OLD), UNUSED, instances=SWAP_USES),
    case("ephemeral-other-size", f(EPH_40, age=OLD), UNUSED, instances=EPH_USES),
    case("ephemeral-other-fs", f(EPH_NTFS, age=OLD), UNUSED, instances=EPH_USES),
    case("swap-name-as-image", f("swap_512", age=OLD), UNUSED, instances=SWAP_REF_USES),
    # Reason.BACKING_FILE and Reason.OPEN_FILE.
    case("backing-file", f(FP, age=OLD), BACKED, in_backing=True),
    case("backing-file-swap", f("swap_512", age=OLD), BACKED, in_backing=True),
    case("open-file", f(FP, age=OLD), OPEN, held_open=True),
    # Reason.PINNED: the image and every variant, whatever the age.
    case("pinned-original", f(FP, age=OLD), PINNED, pinned=True),
    case("pinned-resized", f(RESIZED, age=OLD), PINNED, pinned=True),
    case("pinned-sm", f(f"{FP}_sm", age=OLD), PINNED, pinned=True),
    case("pinned-other-image", f(OTHER_FP, age=OLD), UNUSED, pinned=True),
    # Reason.DOWNLOADING: nova writes <name>.part, then <name>.converted.
    case("part-beside", f(FP, age=OLD), DOWNLOADING, beside=(f"{FP}.part",)),
    case("converted-beside", f(FP, age=OLD), DOWNLOADING, beside=(f"{FP}.converted",)),
    case("part-of-swap", f("swap_512", age=OLD), DOWNLOADING, beside=("swap_512.part",)),  # noqa: E501
    case("part-of-another", f(FP, age=OLD), UNUSED, beside=(f"{FP}_sm.part",)),
    case("other-suffix-beside", f(FP, age=OLD), UNUSED, beside=(f"{FP}.tmp",)),
    # Reason.TOO_YOUNG and Reason.UNUSED.
    case("too-young", f(FP, age=60), YOUNG),
    case("unused", f(FP, age=OLD), UNUSED),
    # Reason.DISK_PRESSURE: too young for its age limit, not for pressure's.
    case("pressure-young", f(FP, age=HOUR), PRESSURED, pressure=True),
    # Reason.UNKNOWN_NAME: never touched, whatever else is true of it.
    case("unknown-name", f("image.part", age=OLD), UNKNOWN),
    case("unknown-uppercase-fp", f(FP.upper(), age=OLD), UNKNOWN),
    case("unknown-fp-underscore", f(f"{FP}_", age=OLD), UNKNOWN),
    case("unknown-fp-part", f(f"{FP}.part", age=OLD), UNKNOWN, instances=USES),
    case("unknown-short-ext", f(f"ephemeral_20_{EXT[:6]}", age=OLD), UNKNOWN),
    case("unknown-in-backing", f("base.img", age=OLD), UNKNOWN, in_backing=True),
]  # fmt: skip

BOUNDARY_CASES = [
    # Removal needs an age strictly greater than the minimum.
    case("original-at-minimum", f(FP, age=DAY), YOUNG),
    case("original-1s-past-minimum", f(FP, age=DAY + 1), UNUSED),
    case("original-1ms-before-minimum", f(FP, age=DAY - 0.001), YOUNG),
    case("resized-at-minimum", f(f"{FP}_20", age=HOUR), YOUNG),
    case("resized-1s-past-minimum", f(f"{FP}_20", age=HOUR + 1), UNUSED),
    case("resized-sm-1s-past-minimum", f(f"{FP}_sm", age=HOUR + 1), UNUSED),
    # Originals wait for the original minimum, not the resized one.
    case("original-past-resized-minimum", f(FP, age=HOUR + 1), YOUNG),
    # Swap and ephemeral files use the original minimum.
    case("swap-past-resized-minimum", f("swap_512", age=HOUR + 1), YOUNG),
    case("swap-at-minimum", f("swap_512", age=DAY), YOUNG),
    case("swap-1s-past-minimum", f("swap_512", age=DAY + 1), UNUSED),
    case("ephemeral-past-resized-minimum", f(EPH, age=HOUR + 1), YOUNG),
    case("ephemeral-at-minimum", f(EPH, age=DAY), YOUNG),
    case("ephemeral-1s-past-minimum", f(EPH, age=DAY + 1), UNUSED),
    # Nanosecond mtimes, as the kernel gives them, and a float ``now``.
    case("ns-at-minimum", f(FP, age=DAY, now=NOW_NS), YOUNG, now=NOW_NS),
    case("ns-just-before-minimum", ns_file(NS_MTIME), YOUNG, now=NS_NOW),
    case("ns-1s-past-minimum", ns_file(NS_MTIME), UNUSED, now=NS_NOW + 1),
    # A clock that went backwards (mtime in the future) is never old enough.
    case("future-mtime", f(FP, age=-60), YOUNG),
    case("future-mtime-zero-minimum", f(FP, age=-60), YOUNG, policy=ZERO_POLICY),
    case("zero-minimum-at-now", f(FP, age=0), YOUNG, policy=ZERO_POLICY),
    case("zero-minimum-1s-old", f(FP, age=1), UNUSED, policy=ZERO_POLICY),
    # Precedence: in use over backing over open over age.
    case("instance-over-open", f(FP, age=OLD), IN_USE, instances=USES, held_open=True),
    case("use-over-backing", f(FP, age=OLD), IN_USE, in_backing=True, instances=USES),
    case("backing-over-open", f(FP, age=OLD), BACKED, in_backing=True, held_open=True),
    case("open-over-too-young", f(FP, age=60), OPEN, held_open=True),
    case("backing-over-download", f(FP, age=OLD), BACKED, in_backing=True,
         beside=(f"{FP}.part",)),
    case("download-over-open", f(FP, age=OLD), DOWNLOADING, held_open=True,
         beside=(f"{FP}.part",)),
    case("unknown-over-open", f("junk", age=OLD), UNKNOWN, held_open=True),
    # A pin keeps what no instance, disk or process uses, and refreshes nothing.
    case("instance-over-pin", f(FP, age=OLD), IN_USE, instances=USES, pinned=True),
    case("backing-over-pin", f(FP, age=OLD), BACKED, in_backing=True, pinned=True),
    case("open-over-pin", f(FP, age=OLD), OPEN, held_open=True, pinned=True),
    case("pin-over-too-young", f(FP, age=60), PINNED, pinned=True),
    # Under pressure: never a pinned, open or used file, never one too young.
    case("pressure-spares-pinned", f(FP, age=HOUR), PINNED, pinned=True, pressure=True),
    case("pressure-spares-open", f(FP, age=HOUR), OPEN, held_open=True, pressure=True),
    case("pressure-spares-use", f(FP, age=HOUR), IN_USE, instances=USES, pressure=True),
    case("pressure-at-its-minimum", f(FP, age=600), YOUNG, pressure=True),
    case("pressure-1s-past-its-minimum", f(FP, age=601), PRESSURED, pressure=True),
    case("pressure-unknown-name", f("junk", age=OLD), UNKNOWN, pressure=True),
]  # fmt: skip

ALL_CASES = REASON_CASES + BOUNDARY_CASES


class TestMakePlan:
    @pytest.mark.parametrize("c", REASON_CASES)
    def test_reason(self, c: Case) -> None:
        """Each kind of use, or the lack of one, gives its action and reason."""
        decision = c.decide()
        assert (decision.action, decision.reason) == (c.action, c.reason)

    @pytest.mark.parametrize("c", BOUNDARY_CASES)
    def test_boundary(self, c: Case) -> None:
        """Ages at and around the minimum, and competing reasons, decide right."""
        decision = c.decide()
        assert (decision.action, decision.reason) == (c.action, c.reason)

    @pytest.mark.parametrize("c", ALL_CASES)
    def test_detail_is_not_empty(self, c: Case) -> None:
        """Every decision carries an explanation for the log."""
        assert c.decide().detail.strip()

    def test_every_reason_has_a_case(self) -> None:
        """The table covers every Reason, so a new one needs a new case."""
        covered = {p.values[0].reason for p in REASON_CASES}
        assert covered == set(Reason)

    def test_regular_part_file_keeps_the_file_beside_it(self) -> None:
        """nova's ``.part`` download, a regular file, keeps its cache file.

        The ``.part`` file itself is no cache name and is left alone.
        """
        plan = plan_for([make_file(FP, age=OLD), make_file(f"{FP}.part", age=OLD)])
        decisions = {d.file.name: d for d in plan.decisions}
        kept = decisions[FP]
        assert (kept.action, kept.reason) == DOWNLOADING
        assert kept.detail == f"nova is writing {FP}.part beside it"
        assert decisions[f"{FP}.part"].reason is Reason.UNKNOWN_NAME

    def test_decision_keeps_the_file(self) -> None:
        """A decision refers to the very file record it was made for."""
        file = make_file(FP, age=OLD)
        assert plan_for([file]).decisions[0].file is file

    def test_instance_detail_names_the_instances(self) -> None:
        """An image's detail names the instances that use it."""
        users = [make_instance(image_ref=IMAGE, name=f"vm-{i}") for i in range(2)]
        decision = plan_for([make_file(FP)], users).decisions[0]
        assert "vm-0" in decision.detail
        assert "vm-1" in decision.detail

    def test_instance_detail_is_cut_after_three(self) -> None:
        """An image used by many instances names three and counts the rest."""
        users = [make_instance(image_ref=IMAGE, name=f"vm-{i}") for i in range(5)]
        detail = plan_for([make_file(FP)], users).decisions[0].detail
        assert detail.endswith(" and 2 more")
        assert sum(f"vm-{i}" in detail for i in range(5)) == 3

    def test_instance_detail_ignores_inventory_order(self) -> None:
        """The instances an image's detail names do not depend on their order."""
        users = [make_instance(image_ref=IMAGE, name=f"vm-{i}") for i in range(5)]
        details = {
            plan_for([make_file(FP)], order).decisions[0].detail
            for order in (users, users[::-1], users[2:] + users[:2])
        }
        assert len(details) == 1

    def test_backing_detail_names_the_disk(self) -> None:
        """A backing file's detail names the disk whose chain reaches it."""
        file = make_file(FP, age=OLD)
        detail = plan_for([file], backing={FP: DISK}).decisions[0].detail
        assert DISK in detail

    def test_open_detail_names_the_holder(self) -> None:
        """An open file's detail names the process holding it."""
        file = make_file(FP, age=OLD)
        detail = plan_for([file], open_files={file.key: HOLDER}).decisions[0].detail
        assert HOLDER in detail

    def test_open_file_matched_by_key_not_name(self) -> None:
        """Another file's (st_dev, st_ino) being open does not protect this one."""
        file = make_file(FP, age=OLD, dev=1, ino=7)
        other_key = (2, 7)
        decision = plan_for([file], open_files={other_key: HOLDER}).decisions[0]
        assert decision.action is Action.REMOVE

    def test_age_detail_states_age_and_minimum(self) -> None:
        """Age decisions state the file's age and the minimum that applied."""
        detail = plan_for([make_file(f"{FP}_sm", age=OLD)]).decisions[0].detail
        assert f"age {OLD}s" in detail
        assert f"minimum {HOUR}s" in detail

    def test_sorted_by_name(self) -> None:
        """Decisions come in name order whatever order the scan found files in."""
        names = [FP, OTHER_FP, f"{FP}_sm", "swap_1", f"ephemeral_1_{EXT}", "zz", "a"]
        files = [make_file(name, age=OLD) for name in names]
        random.Random(4).shuffle(files)
        plan = plan_for(files)
        assert [d.file.name for d in plan.decisions] == sorted(names)

    def test_one_decision_per_file(self) -> None:
        """Every file of the snapshot gets exactly one decision."""
        files = [make_file(name, age=OLD) for name in (FP, OTHER_FP, "swap_1", "x")]
        plan = plan_for(files, [make_instance(image_ref=IMAGE)])
        assert sorted(d.file.name for d in plan.decisions) == sorted(
            f.name for f in files
        )

    def test_empty_cache(self) -> None:
        """An empty cache dir gives an empty plan made at ``now``."""
        plan = plan_for([], [make_instance(image_ref=IMAGE)], now=NOW + 5)
        assert plan.decisions == ()
        assert plan.now == NOW + 5

    def test_with_action(self) -> None:
        """``with_action`` returns exactly the decisions of that action, in order."""
        files = [
            make_file(FP, age=OLD),
            make_file(OTHER_FP, age=OLD),
            make_file("swap_1", age=OLD),
            make_file("junk", age=OLD),
        ]
        plan = plan_for(files, [make_instance(image_ref=IMAGE)])
        assert [d.file.name for d in plan.with_action(Action.TOUCH)] == [FP]
        assert [d.file.name for d in plan.with_action(Action.REMOVE)] == sorted(
            [OTHER_FP, "swap_1"]
        )
        assert [d.file.name for d in plan.with_action(Action.KEEP)] == ["junk"]


class TestPolicy:
    @pytest.mark.parametrize(
        ("kind", "expected"),
        [
            (naming.Kind.ORIGINAL, 100),
            (naming.Kind.RESIZED, 7),
            (naming.Kind.SWAP, 100),
            (naming.Kind.EPHEMERAL, 100),
        ],
        ids=lambda v: getattr(v, "value", str(v)),
    )
    def test_minimum_age_seconds(self, kind: naming.Kind, expected: int) -> None:
        """Only resized files use the resized minimum; the rest use the original."""
        policy = Policy(original_minimum_age_seconds=100, resized_minimum_age_seconds=7)
        assert policy.minimum_age_seconds(kind) == expected


GB = 10**9


def young(name: str, age: float, size: int = GB):
    """An unused file too young for its age limit, of ``size`` allocated bytes."""
    return make_file(name, age=age, blocks_bytes=size)


def removed(plan) -> list[str]:
    return [d.file.name for d in plan.decisions if d.reason is Reason.DISK_PRESSURE]


class TestDiskPressure:
    """1.9: at or above the high watermark, oldest unused files first, down to
    the low watermark; the use is df's, on a 100 GB file system here."""

    @staticmethod
    def plan(files, used_gb: float, policy: Policy = PRESSURE_POLICY, **world):
        used = round(used_gb * GB)
        filesystem = FilesystemUse(used_bytes=used, available_bytes=100 * GB - used)
        return plan_for(files, policy=policy, filesystem=filesystem, **world)

    def test_oldest_first_down_to_the_low_watermark(self) -> None:
        """At 92% with 1 GB files: the 12 oldest go, and 80% is reached exactly."""
        files = [young(f"swap_{n}", age=HOUR + n) for n in range(1, 21)]
        plan = self.plan(files, 92)
        expected = [f"swap_{n}" for n in range(20, 8, -1)]
        assert sorted(removed(plan)) == sorted(expected)

    def test_exactly_at_the_high_watermark(self) -> None:
        assert removed(self.plan([young("swap_1", HOUR)], 90)) == ["swap_1"]

    def test_just_below_the_high_watermark(self) -> None:
        """89.99% is below 90%: no pressure, however young the cache."""
        assert removed(self.plan([young("swap_1", HOUR)], 89.99)) == []

    def test_age_removals_count_first(self) -> None:
        """Files old enough anyway free space first; pressure takes the rest."""
        files = [make_file(FP, age=OLD, blocks_bytes=10 * GB), young("swap_1", HOUR)]
        plan = self.plan(files, 90)
        assert removed(plan) == []
        assert plan.decisions[0].reason is Reason.UNUSED

    def test_tie_broken_by_name(self) -> None:
        """Two files of the same mtime: the first by name goes first."""
        files = [young("swap_20", HOUR, 10 * GB), young("swap_100", HOUR, 10 * GB)]
        plan = self.plan(files, 90)
        assert removed(plan) == ["swap_100"]

    def test_off_when_the_high_watermark_is_zero(self) -> None:
        off = dataclasses.replace(PRESSURE_POLICY, high_watermark_percent=0)
        assert removed(self.plan([young("swap_1", HOUR)], 99, off)) == []

    def test_no_file_system_figure_no_pressure(self) -> None:
        plan = plan_for([young("swap_1", HOUR)], policy=PRESSURE_POLICY)
        assert removed(plan) == []

    def test_line_says_disk_pressure_and_the_watermarks(self) -> None:
        (decision,) = self.plan([young("swap_1", HOUR)], 91.25).decisions
        assert decision.detail.startswith("no instance, disk or process uses it; ")
        assert "disk pressure: file system 91.2% used" in decision.detail
        assert "high watermark 90%" in decision.detail
        assert "low watermark 80%" in decision.detail
        assert decision.detail.endswith("age 3600s")
