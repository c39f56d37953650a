"""Tests for cachemgr.cache.apply on real files under tmp_path.

Each test scans a real cache dir, builds the decisions a plan would make,
changes the disk the way a racing nova-compute or operator would, then
applies. Locks are taken from a second process, as nova-compute would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachemgr.cache import apply, scan
from cachemgr.cache.apply import ApplyResult, Result, apply_plan
from cachemgr.cache.plan import Action, Decision, Reason
from cachemgr.cache.scan import scan_cache_dir, scan_disks

FP_A = "a" * 40
FP_B = "b" * 40
FP_C = "c" * 40
OLD = 10 * 86400
LOCK_WAIT_SECONDS = 0.3
IS_ROOT = os.geteuid() == 0
SKIP_DIRS = frozenset({"_base", "locks"})
QEMU_IMG = shutil.which("qemu-img") or "qemu-img"

_REASONS = {
    Action.KEEP: Reason.TOO_YOUNG,
    Action.TOUCH: Reason.INSTANCE,
    Action.REMOVE: Reason.UNUSED,
}


class Cache:
    """An instances_path with a cache dir of old files, and the scan of it."""

    def __init__(self, root: Path, *names: str) -> None:
        self.instances_path = root / "instances"
        self.base = self.instances_path / "_base"
        self.lock_path = self.instances_path / "locks"
        self.base.mkdir(parents=True)
        self.then = time.time() - OLD
        for name in names:
            self.write(name, b"planned")
        self.snapshot = scan_cache_dir(str(self.base))
        self.disks = scan_disks(str(self.instances_path), self.snapshot, SKIP_DIRS)

    def write(self, name: str, data: bytes) -> Path:
        """A regular file in the cache dir with an mtime long ago."""
        path = self.base / name
        path.write_bytes(data)
        os.utime(path, (self.then, self.then))
        return path

    def decision(self, name: str, action: Action) -> Decision:
        """The decision a plan would make for the scanned file ``name``."""
        (file,) = [f for f in self.snapshot.files if f.name == name]
        return Decision(file, action, _REASONS[action], "test", time.time())

    def apply(
        self,
        *decisions: tuple[str, Action],
    ) -> dict[str, tuple[Result, str]]:
        """Apply (name, action) decisions; name -> (result, detail)."""
        applied: ApplyResult = apply_plan(
            [self.decision(name, action) for name, action in decisions],
            self.snapshot,
            self.disks,
            str(self.lock_path),
            LOCK_WAIT_SECONDS,
        )
        return {
            o.decision.file.name: (o.result, o.detail)
            for o in applied.outcomes.values()
        }

    def mtime_ns(self, name: str) -> int:
        return os.lstat(self.base / name).st_mtime_ns


@contextlib.contextmanager
def lock_held_elsewhere(lock_path: Path, name: str) -> Iterator[None]:
    """Another process holds nova's external lock ``name`` for the block."""
    code = (
        "import sys, time\n"
        "from oslo_concurrency import lockutils\n"
        "with lockutils.lock(sys.argv[1], external=True, lock_path=sys.argv[2],\n"
        "                    lock_file_prefix='nova-'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, name, str(lock_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline().strip()
        assert line == "locked", child.stderr.read()
        yield
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """Make ``path`` immutable (chattr +i), so even root cannot unlink it.

    Removing write permission stops nobody when the tests run as root;
    the immutable attribute is the one real way to make unlink and utime
    fail with EPERM for root.
    """
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed")
    done = subprocess.run(
        [chattr, "+i", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


class TestApplyPlan:
    def test_touch_moves_mtime_to_now(self, tmp_path: Path) -> None:
        """A TOUCH decision sets the file's mtime to the time of the pass."""
        cache = Cache(tmp_path, FP_A)
        before = time.time_ns()
        outcomes = cache.apply((FP_A, Action.TOUCH))
        assert outcomes == {FP_A: (Result.DONE, "")}
        assert cache.mtime_ns(FP_A) >= before - 10_000_000  # coarse fs clocks
        assert (cache.base / FP_A).read_bytes() == b"planned"

    def test_remove_unlinks_the_file(self, tmp_path: Path) -> None:
        """A REMOVE decision unlinks the file."""
        cache = Cache(tmp_path, FP_A)
        assert cache.apply((FP_A, Action.REMOVE)) == {FP_A: (Result.DONE, "")}
        assert not (cache.base / FP_A).exists()

    def test_each_outcome_is_told_before_the_next_file(self, tmp_path: Path) -> None:
        """on_outcome sees each file done and the next one not yet reached."""
        cache = Cache(tmp_path, FP_A, FP_B, FP_C)
        seen: list[tuple[str, Result, set[str]]] = []

        def told(outcome) -> None:
            left = set(os.listdir(cache.base))
            seen.append((outcome.decision.file.name, outcome.result, left))

        apply_plan(
            [cache.decision(n, Action.REMOVE) for n in (FP_A, FP_B, FP_C)],
            cache.snapshot,
            cache.disks,
            str(cache.lock_path),
            LOCK_WAIT_SECONDS,
            on_outcome=told,
        )
        assert seen == [
            (FP_A, Result.DONE, {FP_B, FP_C}),
            (FP_B, Result.DONE, {FP_C}),
            (FP_C, Result.DONE, set()),
        ]

    def test_keep_leaves_the_file_alone(self, tmp_path: Path) -> None:
        """A KEEP decision neither removes nor refreshes, and has no outcome."""
        cache = Cache(tmp_path, FP_A, FP_B, FP_C)
        mtime = cache.mtime_ns(FP_A)
        outcomes = cache.apply(
            (FP_A, Action.KEEP), (FP_B, Action.TOUCH), (FP_C, Action.REMOVE)
        )
        assert set(outcomes) == {FP_B, FP_C}
        assert cache.mtime_ns(FP_A) == mtime
        assert sorted(os.listdir(cache.base)) == [FP_A, FP_B]

    def test_keep_only_plan_creates_no_locks_dir(self, tmp_path: Path) -> None:
        """A plan without removals takes no lock, so creates no locks dir."""
        cache = Cache(tmp_path, FP_A, FP_B)
        assert cache.apply((FP_A, Action.KEEP), (FP_B, Action.TOUCH)) == {
            FP_B: (Result.DONE, "")
        }
        assert not cache.lock_path.exists()


class TestRecheckUnderLock:
    def test_replaced_by_another_inode_is_changed(self, tmp_path: Path) -> None:
        """A file replaced since the scan is CHANGED and the new one stays."""
        cache = Cache(tmp_path, FP_A)
        fresh = cache.write(FP_A + ".tmp", b"new download")
        os.replace(fresh, cache.base / FP_A)  # same mtime, different inode
        result, detail = cache.apply((FP_A, Action.REMOVE))[FP_A]
        assert result is Result.CHANGED
        assert "replaced" in detail
        assert (cache.base / FP_A).read_bytes() == b"new download"

    def test_mtime_changed_since_scan_is_changed(self, tmp_path: Path) -> None:
        """A file whose mtime moved since the scan is CHANGED and stays."""
        cache = Cache(tmp_path, FP_A)
        os.utime(cache.base / FP_A)
        result, detail = cache.apply((FP_A, Action.REMOVE))[FP_A]
        assert result is Result.CHANGED
        assert "modified" in detail
        assert (cache.base / FP_A).exists()

    def test_replaced_by_symlink_is_changed(self, tmp_path: Path) -> None:
        """A file replaced by a symlink is CHANGED; link and target stay."""
        cache = Cache(tmp_path, FP_A)
        target = tmp_path / "elsewhere"
        target.write_bytes(b"precious")
        os.utime(target, (cache.then, cache.then))
        target_mtime = target.stat().st_mtime_ns
        (cache.base / FP_A).unlink()
        (cache.base / FP_A).symlink_to(target)
        result, detail = cache.apply((FP_A, Action.REMOVE))[FP_A]
        assert result is Result.CHANGED
        assert "regular file" in detail
        assert (cache.base / FP_A).is_symlink()
        assert target.read_bytes() == b"precious"
        assert target.stat().st_mtime_ns == target_mtime

    def test_replaced_by_directory_is_changed(self, tmp_path: Path) -> None:
        """A file replaced by a directory is CHANGED and the directory stays."""
        cache = Cache(tmp_path, FP_A)
        (cache.base / FP_A).unlink()
        (cache.base / FP_A).mkdir()
        (cache.base / FP_A / "inside").write_bytes(b"x")
        result, _ = cache.apply((FP_A, Action.REMOVE))[FP_A]
        assert result is Result.CHANGED
        assert (cache.base / FP_A / "inside").read_bytes() == b"x"

    def test_touch_of_a_symlink_does_not_follow_it(self, tmp_path: Path) -> None:
        """Refreshing a name that became a symlink never changes the link's target."""
        cache = Cache(tmp_path, FP_A)
        target = tmp_path / "elsewhere"
        target.write_bytes(b"precious")
        os.utime(target, (cache.then, cache.then))
        target_mtime = target.stat().st_mtime_ns
        (cache.base / FP_A).unlink()
        (cache.base / FP_A).symlink_to(target)
        cache.apply((FP_A, Action.TOUCH))
        assert target.stat().st_mtime_ns == target_mtime

    def test_vanished_file_is_vanished(self, tmp_path: Path) -> None:
        """A file gone before removal or refresh is VANISHED, not an error."""
        cache = Cache(tmp_path, FP_A, FP_B)
        (cache.base / FP_A).unlink()
        (cache.base / FP_B).unlink()
        outcomes = cache.apply((FP_A, Action.REMOVE), (FP_B, Action.TOUCH))
        assert outcomes[FP_A][0] is Result.VANISHED
        assert outcomes[FP_B][0] is Result.VANISHED

    @pytest.mark.parametrize("swap", ["directory", "symlink"])
    def test_cache_dir_swapped_changes_everything(
        self, tmp_path: Path, swap: str
    ) -> None:
        """A cache dir swapped after the scan makes every decision CHANGED."""
        cache = Cache(tmp_path, FP_A, FP_B)
        moved = cache.instances_path / "_base.scanned"
        cache.base.rename(moved)
        other = tmp_path / "other"
        other.mkdir()
        for name in (FP_A, FP_B):
            (other / name).write_bytes(b"other")
        if swap == "directory":
            other.rename(cache.base)
        else:
            cache.base.symlink_to(other)
        outcomes = cache.apply((FP_A, Action.REMOVE), (FP_B, Action.TOUCH))
        assert {r for r, _ in outcomes.values()} == {Result.CHANGED}
        assert sorted(os.listdir(cache.base)) == [FP_A, FP_B]
        assert sorted(os.listdir(moved)) == [FP_A, FP_B]


class TestFailures:
    def test_unlink_failure_is_failed_and_others_go_on(self, tmp_path: Path) -> None:
        """A failed unlink is FAILED with errno text and the others go on."""
        cache = Cache(tmp_path, FP_A, FP_B, FP_C)
        with immutable(cache.base / FP_A):
            outcomes = cache.apply(
                (FP_A, Action.REMOVE), (FP_B, Action.REMOVE), (FP_C, Action.TOUCH)
            )
            assert (cache.base / FP_A).exists()
        result, detail = outcomes[FP_A]
        assert result is Result.FAILED
        assert detail == f"{os.strerror(1)} (errno 1)"
        assert outcomes[FP_B] == (Result.DONE, "")
        assert outcomes[FP_C] == (Result.DONE, "")
        assert sorted(os.listdir(cache.base)) == [FP_A, FP_C]

    def test_touch_failure_is_failed(self, tmp_path: Path) -> None:
        """A failed refresh is FAILED and leaves the mtime unchanged."""
        cache = Cache(tmp_path, FP_A)
        mtime = cache.mtime_ns(FP_A)
        with immutable(cache.base / FP_A):
            result, detail = cache.apply((FP_A, Action.TOUCH))[FP_A]
        assert result is Result.FAILED
        assert "errno 1" in detail
        assert cache.mtime_ns(FP_A) == mtime


class TestLocks:
    def test_lock_held_by_another_process_is_locked(self, tmp_path: Path) -> None:
        """A lock held elsewhere gives LOCKED after about lock_wait_seconds."""
        cache = Cache(tmp_path, FP_A, FP_B)
        with lock_held_elsewhere(cache.lock_path, FP_A):
            start = time.monotonic()
            outcomes = cache.apply((FP_A, Action.REMOVE), (FP_B, Action.REMOVE))
            elapsed = time.monotonic() - start
        assert outcomes[FP_A][0] is Result.LOCKED
        assert outcomes[FP_B] == (Result.DONE, "")
        assert (cache.base / FP_A).exists()
        assert LOCK_WAIT_SECONDS * 0.9 <= elapsed < LOCK_WAIT_SECONDS + 2.0

    def test_lock_file_is_nova_path_and_is_kept(self, tmp_path: Path) -> None:
        """Removal locks instances_path/locks/nova-<name> and leaves the lock file."""
        cache = Cache(tmp_path, FP_A, FP_B + "_20")
        outcomes = cache.apply((FP_A, Action.REMOVE), (FP_B + "_20", Action.REMOVE))
        assert {r for r, _ in outcomes.values()} == {Result.DONE}
        assert sorted(os.listdir(cache.lock_path)) == [
            f"nova-{FP_A}",
            f"nova-{FP_B}_20",
        ]
        assert (cache.lock_path / f"nova-{FP_A}").is_file()

    @pytest.mark.skipif(not IS_ROOT, reason="only root creates files for others")
    def test_root_gives_locks_the_owner_of_instances_path(self, tmp_path: Path) -> None:
        """Run as root, the locks dir and lock files get instances_path's owner."""
        cache = Cache(tmp_path, FP_A)
        os.chown(cache.instances_path, 12345, 12345)
        assert cache.apply((FP_A, Action.REMOVE)) == {FP_A: (Result.DONE, "")}
        for path in (cache.lock_path, cache.lock_path / f"nova-{FP_A}"):
            st = os.stat(path)
            assert (st.st_uid, st.st_gid) == (12345, 12345), path


def make_overlay(path: Path, backing: Path) -> None:
    """A qcow2 overlay on ``backing`` as nova makes one (raw backing format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    create = [QEMU_IMG, "create", "-q", "-f", "qcow2", "-u", "-b", str(backing)]
    done = subprocess.run(
        [*create, "-F", "raw", str(path), "1M"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


class TestDisksWrittenSinceTheScan:
    def test_disk_created_since_the_scan_keeps_its_base(self, tmp_path: Path) -> None:
        """An overlay made after the disk scan keeps its base; the other goes."""
        cache = Cache(tmp_path, FP_A, FP_B)
        make_overlay(cache.instances_path / "inst-1" / "disk", cache.base / FP_A)
        outcomes = cache.apply((FP_A, Action.REMOVE), (FP_B, Action.REMOVE))
        assert outcomes[FP_B] == (Result.DONE, "")
        result, detail = outcomes[FP_A]
        assert result is Result.CHANGED
        disk = cache.instances_path / "inst-1" / "disk"
        assert detail == f"backing file of {disk}, a disk written since the scan"
        assert sorted(os.listdir(cache.base)) == [FP_A]

    def test_disk_finished_since_the_scan_keeps_its_base(self, tmp_path: Path) -> None:
        """An empty disk the scan read is read again once nova has written it.

        Its directory is old: only the unfinished disk makes it worth a look.
        """
        disk = tmp_path / "instances" / "inst-1" / "disk"
        disk.parent.mkdir(parents=True)
        disk.write_bytes(b"")
        long_ago = time.time() - OLD
        os.utime(disk.parent, (long_ago, long_ago))
        cache = Cache(tmp_path, FP_A)
        make_overlay(disk, cache.base / FP_A)
        os.utime(disk.parent, (long_ago, long_ago))
        result, detail = cache.apply((FP_A, Action.REMOVE))[FP_A]
        assert result is Result.CHANGED
        assert detail == f"backing file of {disk}, a disk written since the scan"
        assert (cache.base / FP_A).exists()

    def test_recheck_past_its_deadline_keeps_the_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A re-check that cannot end in time keeps the file, saying so."""
        cache = Cache(tmp_path, FP_A)
        monkeypatch.setattr(apply, "_MIN_RECHECK_SECONDS", 0.0)
        applied = apply_plan(
            [cache.decision(FP_A, Action.REMOVE)],
            cache.snapshot,
            cache.disks,
            str(cache.lock_path),
            0.0,
        )
        (outcome,) = applied.outcomes.values()
        assert outcome.result is Result.CHANGED
        assert outcome.detail == (
            "the disks written since the scan could not be read again within 0.0s"
        )
        assert (cache.base / FP_A).exists()


class TestRemovalBatches:
    """Removals share one re-check of the disks per batch of free locks."""

    @staticmethod
    def counting_sweeps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
        sweeps: list[int] = []
        real = scan.DiskRecheck.users

        def users(self, deadline):
            sweeps.append(1)
            return real(self, deadline)

        monkeypatch.setattr(scan.DiskRecheck, "users", users)
        return sweeps

    def test_one_sweep_serves_a_batch(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """100 free locks: two sweeps (64 + 36), every file removed in order."""
        names = [f"{n:040x}" for n in range(100)]
        cache = Cache(tmp_path, *names)
        sweeps = self.counting_sweeps(monkeypatch)
        told: list[str] = []
        apply_plan(
            [cache.decision(n, Action.REMOVE) for n in names],
            cache.snapshot,
            cache.disks,
            str(cache.lock_path),
            LOCK_WAIT_SECONDS,
            on_outcome=lambda o: told.append(o.decision.file.name),
        )
        assert len(sweeps) == 2
        assert told == names
        assert os.listdir(cache.base) == []

    def test_a_busy_lock_ends_the_batch_and_waits_its_turn(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The file before a busy lock goes at once; the busy one is waited
        for alone, then kept; the one after starts the next batch."""
        cache = Cache(tmp_path, FP_A, FP_B, FP_C)
        sweeps = self.counting_sweeps(monkeypatch)
        with lock_held_elsewhere(cache.lock_path, FP_B):
            outcomes = cache.apply(
                (FP_A, Action.REMOVE), (FP_B, Action.REMOVE), (FP_C, Action.REMOVE)
            )
        assert [name for name in outcomes] == [FP_A, FP_B, FP_C]
        assert outcomes[FP_B][0] is Result.LOCKED
        assert (outcomes[FP_A][0], outcomes[FP_C][0]) == (Result.DONE, Result.DONE)
        assert len(sweeps) == 2
        assert os.listdir(cache.base) == [FP_B]
