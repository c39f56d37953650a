"""The real ``cachemgr --once`` on hosts built around one danger each, like
restic's edge-case repositories: each host comes with its expected result."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.hosts import (
    DAY,
    HOUR,
    QEMU_IMG,
    Host,
    fingerprint,
    held_lock,
    held_open,
)

pytestmark = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img is not installed")

FP_USED = fingerprint("img-used")
FP_OLD = fingerprint("img-old")
FP_OTHER = fingerprint("img-other")


class TestUntrustworthyInventory:
    def test_empty_inventory_while_a_disk_exists(self, tmp_path: Path) -> None:
        """An empty inventory while a disk exists fails, naming [DEFAULT] host."""
        host = Host(tmp_path)
        base_file = host.cache_file(FP_USED, age=10 * DAY)
        host.cache_file(FP_OLD, age=10 * DAY)
        host.disk("instance-0000002a", base_file)
        host.write()
        before = host.mtimes(except_registry=True)

        run = host.run()

        assert run.returncode == 1, run.output
        assert host.mtimes(except_registry=True) == before
        assert host.registered_hosts() == {host.name}
        assert any("[DEFAULT] host" in line for line in run.lines("ERROR"))
        assert "Image cache pass complete" not in run.output

    def test_empty_inventory_and_no_disks(self, tmp_path: Path) -> None:
        """An empty inventory with no disks (disk.info aside) is a normal pass."""
        host = Host(tmp_path)
        host.cache_file(FP_OLD, age=10 * DAY)
        host.raw_disk("instance-0000002a", b"{}", name="disk.info")
        host.write()

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == set()
        assert run.summary()["removed"] == 1

    @pytest.mark.parametrize(
        "inventory", [None, '{"instances": [', '{"instances": {}}'], ids=repr
    )
    def test_unreadable_inventory(self, tmp_path: Path, inventory: str | None) -> None:
        """A missing or invalid inventory file fails the pass and removes nothing."""
        host = Host(tmp_path)
        host.cache_file(FP_OLD, age=10 * DAY)
        host.write(inventory=False)
        if inventory is not None:
            host.inventory_path.write_text(inventory, encoding="utf-8")
        before = host.mtimes(except_registry=True)

        run = host.run()

        assert run.returncode == 1, run.output
        assert host.mtimes(except_registry=True) == before
        assert any(str(host.inventory_path) in line for line in run.lines("ERROR"))


class TestDisks:
    def test_broken_chains_and_garbage_disks(self, tmp_path: Path) -> None:
        """Lost backing files and garbage disks do not stop a normal pass."""
        host = Host(tmp_path)
        host.cache_file(FP_USED, age=10 * DAY)
        host.cache_file(FP_OLD, age=10 * DAY)
        host.cache_file(f"{FP_OLD}_10", age=2 * HOUR)
        host.cache_file(fingerprint("img-young"), age=HOUR)
        vm = host.instance("img-used")
        host.disk(vm, host.base / fingerprint("img-lost"), unsafe=True)
        # A qcow2 in the cache whose own backing file is gone.
        mid = host.cache_qcow2(
            f"{FP_OTHER}_20",
            host.base / fingerprint("img-lost-too"),
            age=10 * DAY,
            unsafe=True,
        )
        host.disk(vm, mid, name="disk.local")
        garbage = host.raw_disk(
            host.instance("img-used"), b"QFI\xfb" + b"\xff" * 200, name="disk"
        )
        host.raw_disk(host.instance("img-used"), os.urandom(8192))
        host.write()

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == {
            FP_USED,
            f"{FP_OTHER}_20",
            fingerprint("img-young"),
        }
        assert any(str(garbage) in line for line in run.lines("WARNING"))
        summary = run.summary()
        assert (summary["files"], summary["in_use"], summary["removed"]) == (5, 2, 2)
        assert summary["too_young"] == 1

    def test_disk_unknown_to_the_inventory_protects_its_chain(
        self, tmp_path: Path
    ) -> None:
        """A disk unknown to the inventory still keeps its whole backing chain."""
        host = Host(tmp_path)
        host.cache_file(FP_USED, age=10 * DAY)
        host.cache_file(FP_OLD, age=10 * DAY)
        original = host.cache_file(FP_OTHER, age=10 * DAY)
        resized = host.cache_qcow2(f"{FP_OTHER}_20", original, age=10 * DAY)
        host.instance("img-used")
        host.disk("not-in-the-inventory", resized)
        host.write()

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_USED, FP_OTHER, f"{FP_OTHER}_20"}
        summary = run.summary()
        assert (summary["in_use"], summary["removed"]) == (3, 1)


class TestCacheEntries:
    def test_symlinks_and_directories_are_never_removed_nor_followed(
        self, tmp_path: Path
    ) -> None:
        """Symlinks and dirs stay, targets untouched, and are not counted."""
        host = Host(tmp_path)
        outside = tmp_path / "outside"
        outside.mkdir()
        old_target = outside / "old-unused"
        used_target = outside / "used"
        for target in (old_target, used_target):
            target.write_bytes(b"precious")
            host.set_age(target, 10 * DAY)
        (host.base / FP_OLD).symlink_to(old_target)
        (host.base / FP_USED).symlink_to(used_target)
        (host.base / f"{FP_OLD}_10").mkdir()
        (host.base / f"{FP_OLD}_10" / "inside").write_bytes(b"x")
        for name in (FP_OLD, FP_USED, f"{FP_OLD}_10"):
            host.set_age(host.base / name, 10 * DAY)
        host.cache_file(FP_OTHER, age=10 * DAY)
        host.instance("img-used")
        host.write()
        before = host.mtimes()

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_OLD, FP_USED, f"{FP_OLD}_10"}
        untouched = {
            path: mtime
            for path, mtime in before.items()
            if path.startswith(("outside/", "instances/_base/"))
            and not path.endswith(FP_OTHER)
        }
        after = host.mtimes()
        assert {path: after.get(path) for path in untouched} == untouched
        summary = run.summary()
        assert (summary["files"], summary["removed"], summary["in_use"]) == (1, 1, 0)

    def test_file_held_open_is_kept(self, tmp_path: Path) -> None:
        """An old unused file held open elsewhere is kept, counted in kept_open."""
        host = Host(tmp_path)
        held = host.cache_file(FP_OLD, age=10 * DAY)
        host.cache_file(FP_OTHER, age=10 * DAY)
        host.write()

        with held_open(held):
            run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_OLD}
        summary = run.summary()
        assert (summary["kept_open"], summary["removed"]) == (1, 1)

    def test_another_remover_on_the_storage(self, tmp_path: Path) -> None:
        """While another host's cachemgr removes, this one refreshes and reports."""
        host = Host(tmp_path)
        used = host.cache_file(FP_USED, age=10 * DAY)
        host.cache_file(FP_OLD, age=10 * DAY)
        host.instance("img-used")
        host.write()

        with held_lock("remover", host.instances_path / "locks", "cachemgr-"):
            run = host.run(timeout=30)

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_USED, FP_OLD}
        assert used.stat().st_mtime > host.now - 60
        assert re.search(rf"Would remove {FP_OLD} \(another cachemgr", run.output)
        assert run.summary()["removed"] == 1

    def test_file_locked_by_nova_is_kept_this_pass(self, tmp_path: Path) -> None:
        """An old unused file locked by nova is kept and counted, without waiting."""
        host = Host(tmp_path)
        host.cache_file(FP_OLD, age=10 * DAY)
        host.cache_file(FP_OTHER, age=10 * DAY)
        host.write()

        with held_lock(FP_OLD, host.instances_path / "locks"):
            # The lock is held for two minutes: a pass that waited would time out.
            run = host.run(timeout=30)

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_OLD}
        assert re.search(rf" INFO .*Kept {FP_OLD}: locked", run.output)
        summary = run.summary()
        assert (summary["kept_locked"], summary["removed"]) == (1, 1)
        assert summary["errors"] == 0
