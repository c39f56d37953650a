"""The real ``cachemgr --once`` on an ordinary host: a real pass, a dry run,
removal disabled, and a large host."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.hosts import DAY, HOUR, QEMU_IMG, VFAT_EXT, Host, fingerprint

pytestmark = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img is not installed")

FP_USED = fingerprint("img-used")
FP_KERNEL = fingerprint("kernel-1")
FP_REMOTE = fingerprint("img-remote")
FP_DISK_ONLY = fingerprint("img-deleted-from-glance")
FP_OLD = fingerprint("img-old")
FP_OLD_RESIZED = fingerprint("img-old-resized")
FP_YOUNG = fingerprint("img-young")
FP_YOUNG_RESIZED = fingerprint("img-young-resized")


@dataclass(frozen=True)
class Expected:
    """The names of an ordinary host's cache files, by what a pass does to them."""

    in_use: frozenset[str]
    unused_old: frozenset[str]
    too_young: frozenset[str]
    unknown: frozenset[str]


def ordinary_host(tmp_path: Path) -> tuple[Host, Expected]:
    """A host with every kind of cache file, used and unused, old and young."""
    host = Host(tmp_path)
    expected = Expected(
        in_use=frozenset(
            {
                FP_USED,
                f"{FP_USED}_10",
                f"{FP_USED}_sm",
                f"{FP_USED}_21474836480",
                FP_KERNEL,
                FP_REMOTE,
                FP_DISK_ONLY,
                "swap_512",
                f"ephemeral_1_{VFAT_EXT}",
            }
        ),
        unused_old=frozenset(
            {FP_OLD, f"{FP_OLD_RESIZED}_10", "swap_1024", f"ephemeral_2_{VFAT_EXT}"}
        ),
        too_young=frozenset({FP_YOUNG, f"{FP_YOUNG_RESIZED}_20", "swap_2048"}),
        unknown=frozenset({"README", f"{FP_OLD}.bak", FP_OLD.upper()}),
    )
    for name in expected.in_use | expected.unknown:
        host.cache_file(name, age=10 * DAY)
    for name in (FP_OLD, "swap_1024", f"ephemeral_2_{VFAT_EXT}"):
        host.cache_file(name, age=2 * DAY)
    host.cache_file(f"{FP_OLD_RESIZED}_10", age=2 * HOUR)
    host.cache_file(FP_YOUNG, age=2 * HOUR)
    host.cache_file(f"{FP_YOUNG_RESIZED}_20", age=30 * 60)
    host.cache_file("swap_2048", age=HOUR)

    vm1 = host.instance("img-used", kernel_id="kernel-1", swap_mb=512, ephemeral_gb=1)
    host.disk(vm1, host.base / f"{FP_USED}_10")
    host.disk(vm1, host.base / f"ephemeral_1_{VFAT_EXT}", name="disk.local")
    host.disk(vm1, host.base / "swap_512", name="disk.swap")
    host.instance("img-remote", host="cmp2")
    # An instance whose image is gone from glance: only its disk names the file.
    vm3 = host.instance("")
    host.disk(vm3, host.base / FP_DISK_ONLY)
    host.write()
    return host, expected


def removed_line(run_output: str, name: str) -> bool:
    return bool(re.search(rf" INFO .*Removed {name}: unused: ", run_output))


class TestRealPass:
    def test_ordinary_host(self, tmp_path: Path) -> None:
        """Used files are refreshed, old unused removed and logged, the rest kept."""
        host, expected = ordinary_host(tmp_path)
        before = host.mtimes()
        bytes_removed = host.allocated(*expected.unused_old)
        start_ns = time.time_ns() - 10_000_000

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == (
            expected.in_use | expected.too_young | expected.unknown
        )
        after = host.mtimes()
        for name in expected.in_use:
            assert after[f"instances/_base/{name}"] >= start_ns, name
        for name in expected.too_young | expected.unknown:
            path = f"instances/_base/{name}"
            assert after[path] == before[path], name
        for name in expected.unused_old:
            assert removed_line(run.output, name), name
        assert run.contract_counters() == {
            "files": 19,
            "in_use": 9,
            "removed": 4,
            "too_young": 3,
            "kept_unknown": 3,
            "kept_open": 0,
            "bytes_removed": bytes_removed,
            "errors": 0,
        }
        assert run.summary()["mode"] == "remove"
        assert run.summary()["instances"] == len(host.instances)
        assert bytes_removed > 0

    def test_second_pass_removes_nothing_more(self, tmp_path: Path) -> None:
        """A second pass right after the first keeps everything the first kept."""
        host, expected = ordinary_host(tmp_path)
        assert host.run().returncode == 0
        run = host.run()
        assert run.returncode == 0, run.output
        assert run.summary()["removed"] == 0
        assert host.cache_names() == (
            expected.in_use | expected.too_young | expected.unknown
        )


class TestDryRun:
    def test_changes_nothing_and_logs_the_same_decisions(self, tmp_path: Path) -> None:
        """--dry-run logs what it would remove and refresh, and changes nothing."""
        host, expected = ordinary_host(tmp_path)
        before = host.mtimes()
        bytes_removed = host.allocated(*expected.unused_old)

        run = host.run("--dry-run", "--debug")

        assert run.returncode == 0, run.output
        assert host.mtimes() == before
        assert not (host.instances_path / "locks").exists()
        for name in expected.unused_old:
            assert re.search(rf" INFO .*Would remove {name} .*unused: ", run.output)
            assert not removed_line(run.output, name)
        for name in expected.in_use:
            assert re.search(rf" DEBUG .*Would refresh {name}: ", run.output), name
        summary = run.summary()
        assert summary["removed"] == 4
        assert summary["in_use"] == 9
        assert summary["bytes_removed"] == bytes_removed
        assert summary["mode"] == "dry-run"


class TestRemovalDisabled:
    def test_refreshes_used_files_and_removes_nothing(self, tmp_path: Path) -> None:
        """Removal disabled: used files refreshed, would-be removals only logged."""
        host, expected = ordinary_host(tmp_path)
        host.write({"image_cache": {"remove_unused_base_images": "false"}})
        before = host.mtimes()
        start_ns = time.time_ns() - 10_000_000

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == (
            expected.in_use
            | expected.unused_old
            | expected.too_young
            | expected.unknown
        )
        after = host.mtimes()
        for name in expected.in_use:
            assert after[f"instances/_base/{name}"] >= start_ns, name
        for name in expected.unused_old | expected.too_young | expected.unknown:
            path = f"instances/_base/{name}"
            assert after[path] == before[path], name
        for name in expected.unused_old:
            assert re.search(
                rf" INFO .*Would remove {name} \(remove_unused_base_images = false\)",
                run.output,
            ), name
        assert run.summary()["removed"] == 4
        assert run.summary()["mode"] == "disabled"


class TestLargeHost:
    def test_two_thousand_files_five_hundred_instances(self, tmp_path: Path) -> None:
        """A 2,000 file, 500 instance host completes one pass with exact counts."""
        host = Host(tmp_path)
        used = [f"img-{i}" for i in range(250)]
        in_use: set[str] = {"swap_512"}
        for i in range(500):
            uuid = host.instance(used[i % 250], swap_mb=512)
            if i < 50:
                backing = host.cache_file(fingerprint(f"disk-only-{i}"), age=DAY * 3)
                host.disk(uuid, backing)
                in_use.add(backing.name)
        for image in used:
            host.cache_file(fingerprint(image), age=3 * DAY)
            host.cache_file(f"{fingerprint(image)}_20", age=3 * DAY)
            in_use |= {fingerprint(image), f"{fingerprint(image)}_20"}
        host.cache_file("swap_512", age=3 * DAY)
        removable = set()
        for i in range(600):
            removable.add(host.cache_file(fingerprint(f"old-{i}"), age=2 * DAY).name)
        for i in range(400):
            name = f"{fingerprint(f'old-r-{i}')}_{i}"
            removable.add(host.cache_file(name, age=2 * HOUR).name)
        for i in range(49):
            removable.add(host.cache_file(f"swap_{1000 + i}", age=2 * DAY).name)
        young = {
            host.cache_file(fingerprint(f"young-{i}"), age=HOUR).name
            for i in range(300)
        }
        junk = {host.cache_file(f"junk-{i}", age=9 * DAY).name for i in range(100)}
        host.write()
        assert len(host.cache_names()) == 2000
        bytes_removed = host.allocated(*removable)

        run = host.run(timeout=120)

        assert run.returncode == 0, run.output[-3000:]
        assert host.cache_names() == in_use | young | junk
        assert run.contract_counters() == {
            "files": 2000,
            "in_use": 551,
            "removed": 1049,
            "too_young": 300,
            "kept_unknown": 100,
            "kept_open": 0,
            "bytes_removed": bytes_removed,
            "errors": 0,
        }
