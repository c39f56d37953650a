"""Tests for cachemgr.cache.scan on real files, disks and processes."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from cachemgr.cache import naming, qcow2
from cachemgr.cache.scan import scan_cache_dir, scan_disks, scan_open_files
from cachemgr.cache.snapshot import CacheSnapshot, DiskSnapshot
from cachemgr.exceptions import GatherError, UntrustedStorage
from tests.support.deadline import deadline
from tests.unit.cache.helpers import make_file

QEMU_IMG = shutil.which("qemu-img") or "/usr/bin/qemu-img"
needs_qemu_img = pytest.mark.skipif(
    not os.access(QEMU_IMG, os.X_OK), reason=f"{QEMU_IMG} is not installed"
)
SKIP_DIRS = frozenset({"_base", "locks"})
FP_A = naming.fingerprint("image-a")
FP_B = naming.fingerprint("image-b")
FP_C = naming.fingerprint("image-c")
MTIME_NS = 1_700_000_000_123_456_789


@pytest.fixture
def instances(tmp_path: Path) -> Path:
    """An instances_path with an empty cache dir, ``_base``."""
    (tmp_path / "instances" / "_base").mkdir(parents=True)
    return tmp_path / "instances"


def write(path: Path, data: bytes = b"\1" * 4096) -> Path:
    """A regular file holding ``data``, its parent directories made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_qcow2(
    path: Path, backing: str | None = None, fmt: str = "raw", *, unsafe: bool = False
) -> Path:
    """A qcow2 image made by qemu-img, backed by ``backing`` exactly as given.

    ``unsafe`` writes the backing name without opening the backing chain,
    which qemu-img cannot do when the chain is broken or loops.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [QEMU_IMG, "create", "-q", "-f", "qcow2"]
    if backing is not None:
        cmd += ["-b", backing, "-F", fmt]
    if unsafe:
        cmd.append("-u")
    cmd += [str(path), "1M"]
    run(cmd, cwd=path.parent)
    return path


def rebase_unsafe(path: Path, backing: str, fmt: str = "qcow2") -> None:
    """Rewrite the backing file name in a qcow2 header without checking it."""
    run([QEMU_IMG, "rebase", "-u", "-b", backing, "-F", fmt, str(path)])


def run(cmd: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def scan(instances: Path, skip_dirs: frozenset[str] = SKIP_DIRS) -> DiskSnapshot:
    """scan_disks over instances_path with its cache dir freshly scanned."""
    cache = scan_cache_dir(str(instances / "_base"))
    with deadline(10):
        return scan_disks(str(instances), cache, skip_dirs)


class TestScanCacheDir:
    def test_regular_files_are_classified(self, tmp_path: Path) -> None:
        """Every regular file is listed with its kind, or None for other names."""
        names = {
            FP_A: naming.Kind.ORIGINAL,
            f"{FP_A}_10": naming.Kind.RESIZED,
            f"{FP_A}_sm": naming.Kind.RESIZED,
            "swap_512": naming.Kind.SWAP,
            "ephemeral_20_0123abc": naming.Kind.EPHEMERAL,
            "notes.txt": None,
        }
        for name in names:
            write(tmp_path / name)
        snapshot = scan_cache_dir(str(tmp_path))
        assert {f.name: f.kind for f in snapshot.files} == names
        assert snapshot.other_entries == ()

    def test_other_entries_are_listed_and_not_followed(self, tmp_path: Path) -> None:
        """Symlinks, directories and FIFOs are other entries, never followed."""
        cache = tmp_path / "_base"
        target_dir = tmp_path / "elsewhere"
        write(target_dir / FP_B)
        write(tmp_path / "outside")
        write(cache / FP_A)
        (cache / FP_C).symlink_to(tmp_path / "outside")
        (cache / "swap_1").symlink_to(tmp_path / "missing")
        (cache / "linked_dir").symlink_to(target_dir, target_is_directory=True)
        (cache / f"{FP_B}_sm").mkdir()
        write(cache / f"{FP_B}_sm" / FP_B)
        os.mkfifo(cache / "swap_2")
        snapshot = scan_cache_dir(str(cache))
        assert [f.name for f in snapshot.files] == [FP_A]
        assert sorted(snapshot.other_entries) == sorted(
            [FP_C, "swap_1", "linked_dir", f"{FP_B}_sm", "swap_2"]
        )

    def test_missing_dir_is_an_empty_snapshot(self, tmp_path: Path) -> None:
        """A cache dir that does not exist yet is an empty cache."""
        path = str(tmp_path / "_base")
        assert scan_cache_dir(path) == CacheSnapshot(path=path, dir_key=None, files=())

    def test_unreadable_entry_names_its_path(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An entry lstat cannot read stops the scan, naming its full path.

        Entries are read relative to the dir's descriptor; the error must
        still say which file (EIO cannot be produced on demand here).
        """
        write(tmp_path / FP_A)
        write(tmp_path / FP_B)
        real_lstat = os.lstat

        def lstat(path, **kwargs):
            if path == FP_B:
                raise OSError(errno.EIO, "Input/output error", path)
            return real_lstat(path, **kwargs)

        monkeypatch.setattr(os, "lstat", lstat)
        with pytest.raises(OSError, match="Input/output error") as raised:
            scan_cache_dir(str(tmp_path))
        assert raised.value.filename == str(tmp_path / FP_B)

    @pytest.mark.skipif(os.geteuid() != 0, reason="only root gives files away")
    def test_cache_dir_of_another_owner_is_refused(self, tmp_path: Path) -> None:
        """A cache dir (or what its link leads to) not owned like its parent."""
        (tmp_path / "instances").mkdir()
        os.chown(tmp_path / "instances", 4242, 4242)
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "instances" / "_base").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(UntrustedStorage) as info:
            scan_cache_dir(str(tmp_path / "instances" / "_base"))
        message = str(info.value)
        assert f"resolved: {tmp_path / 'elsewhere'}" in message
        assert "belongs to uid 0 (root), not to uid 4242" in message

    def test_dir_key_is_the_directory(self, tmp_path: Path) -> None:
        """The snapshot records the cache dir's (st_dev, st_ino)."""
        st = os.stat(tmp_path)
        assert scan_cache_dir(str(tmp_path)).dir_key == (st.st_dev, st.st_ino)

    def test_stat_fields_are_exact(self, tmp_path: Path) -> None:
        """Key, nanosecond mtime and allocated bytes are lstat's, unrounded."""
        path = write(tmp_path / FP_A, b"\1" * 10000)
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
        st = os.lstat(path)
        (file,) = scan_cache_dir(str(tmp_path)).files
        assert file.key == (st.st_dev, st.st_ino)
        assert file.mtime_ns == MTIME_NS
        assert file.allocated_bytes == st.st_blocks * 512
        assert file.allocated_bytes >= 10000

    def test_allocated_bytes_of_a_sparse_file(self, tmp_path: Path) -> None:
        """A sparse file counts the blocks it holds, not its apparent size."""
        path = tmp_path / FP_A
        with open(path, "wb") as stream:
            stream.truncate(64 * 1024 * 1024)
        (file,) = scan_cache_dir(str(tmp_path)).files
        assert file.allocated_bytes == os.lstat(path).st_blocks * 512
        assert file.allocated_bytes < 64 * 1024 * 1024

    def test_hard_links_share_a_key(self, tmp_path: Path) -> None:
        """Two names of one inode are two files with the same key."""
        write(tmp_path / FP_A)
        os.link(tmp_path / FP_A, tmp_path / FP_B)
        files = scan_cache_dir(str(tmp_path)).files
        assert len(files) == 2
        assert files[0].key == files[1].key


@needs_qemu_img
class TestScanDisks:
    def test_absolute_backing_path(self, instances: Path) -> None:
        """A disk backed by an absolute path into the cache marks that file."""
        base = write(instances / "_base" / FP_A)
        disk = make_qcow2(instances / "uuid-1" / "disk", str(base))
        snapshot = scan(instances)
        assert snapshot.backing == {FP_A: str(disk)}
        assert snapshot.disk_count == 1
        assert snapshot.problems == ()

    def test_relative_backing_path(self, instances: Path) -> None:
        """A backing path relative to the disk's directory is resolved from there."""
        write(instances / "_base" / FP_A)
        disk = make_qcow2(instances / "uuid-1" / "disk", f"../_base/{FP_A}")
        assert scan(instances).backing == {FP_A: str(disk)}

    @pytest.mark.parametrize(
        "disk_name", ["disk", "disk.local", "disk.swap", "disk.rescue", "disk.eph0"]
    )
    def test_every_disk_name_counts(self, instances: Path, disk_name: str) -> None:
        """``disk`` and every ``disk.<x>`` but disk.info is read for its backing."""
        base = write(instances / "_base" / "swap_512")
        disk = make_qcow2(instances / "uuid-1" / disk_name, str(base))
        snapshot = scan(instances)
        assert snapshot.backing == {"swap_512": str(disk)}
        assert snapshot.disk_count == 1

    def test_disk_info_is_ignored(self, instances: Path) -> None:
        """nova's disk.info is not a disk, even when it is a qcow2 overlay."""
        base = write(instances / "_base" / FP_A)
        make_qcow2(instances / "uuid-1" / "disk.info", str(base))
        write(instances / "uuid-1" / "console.log")
        snapshot = scan(instances)
        assert snapshot.backing == {}
        assert snapshot.disk_count == 0

    def test_raw_disk_counts_without_backing(self, instances: Path) -> None:
        """A raw disk counts as a disk and marks nothing."""
        write(instances / "_base" / FP_A)
        write(instances / "uuid-1" / "disk")
        snapshot = scan(instances)
        assert (snapshot.disk_count, snapshot.backing) == (1, {})

    def test_chain_inside_the_cache_marks_every_link(self, instances: Path) -> None:
        """disk -> _base/A (qcow2) -> _base/B marks both A and B for the disk."""
        base = instances / "_base"
        write(base / FP_B)
        make_qcow2(base / FP_A, FP_B, fmt="raw")
        disk = make_qcow2(instances / "uuid-1" / "disk", str(base / FP_A), fmt="qcow2")
        write(base / FP_C)
        snapshot = scan(instances)
        assert snapshot.backing == {FP_A: str(disk), FP_B: str(disk)}

    def test_chain_shared_by_two_disks(self, instances: Path) -> None:
        """A chain reached from two disks is marked completely."""
        base = instances / "_base"
        write(base / FP_C)
        make_qcow2(base / FP_B, FP_C)
        make_qcow2(base / FP_A, FP_B, fmt="qcow2")
        make_qcow2(instances / "uuid-1" / "disk", str(base / FP_B), fmt="qcow2")
        make_qcow2(instances / "uuid-2" / "disk", str(base / FP_A), fmt="qcow2")
        snapshot = scan(instances)
        assert set(snapshot.backing) == {FP_A, FP_B, FP_C}
        assert snapshot.disk_count == 2

    def test_cycle_in_the_cache_terminates(self, instances: Path) -> None:
        """A -> B -> A inside the cache ends the walk with both marked."""
        base = instances / "_base"
        make_qcow2(base / FP_B)
        make_qcow2(base / FP_A, FP_B, fmt="qcow2")
        rebase_unsafe(base / FP_B, FP_A)
        assert qcow2.read_backing_file(str(base / FP_B)) == FP_A.encode()
        disk = make_qcow2(
            instances / "uuid-1" / "disk", str(base / FP_A), "qcow2", unsafe=True
        )
        snapshot = scan(instances)
        assert snapshot.backing == {FP_A: str(disk), FP_B: str(disk)}

    def test_self_cycle_terminates(self, instances: Path) -> None:
        """A cache file naming itself as its backing file ends the walk."""
        base = instances / "_base"
        make_qcow2(base / FP_A)
        rebase_unsafe(base / FP_A, FP_A)
        assert qcow2.read_backing_file(str(base / FP_A)) == FP_A.encode()
        disk = make_qcow2(
            instances / "uuid-1" / "disk", str(base / FP_A), "qcow2", unsafe=True
        )
        assert scan(instances).backing == {FP_A: str(disk)}

    def test_backing_through_a_symlinked_directory(
        self, instances: Path, tmp_path: Path
    ) -> None:
        """A backing path that reaches the cache through a symlink still marks."""
        base = write(instances / "_base" / FP_A).parent
        link = tmp_path / "images"
        link.symlink_to(base, target_is_directory=True)
        disk = make_qcow2(instances / "uuid-1" / "disk", str(link / FP_A))
        assert scan(instances).backing == {FP_A: str(disk)}

    def test_backing_through_a_hard_link(self, instances: Path, tmp_path: Path) -> None:
        """A backing file outside the cache that is the same inode still marks."""
        base = write(instances / "_base" / FP_A)
        os.link(base, tmp_path / "copy")
        disk = make_qcow2(instances / "uuid-1" / "disk", str(tmp_path / "copy"))
        assert scan(instances).backing == {FP_A: str(disk)}

    def test_backing_named_by_another_directory_marks_by_name(
        self, instances: Path, tmp_path: Path
    ) -> None:
        """A backing file elsewhere with a cache file's name marks it, as nova does.

        nova-compute in a container, or another mount point of a shared
        storage, writes its own path to the same cache (DESIGN 1.8 (c)).
        """
        write(instances / "_base" / FP_A)
        outside = write(tmp_path / "other" / FP_A)
        disk = make_qcow2(instances / "uuid-1" / "disk", str(outside))
        snapshot = scan(instances)
        assert (snapshot.disk_count, snapshot.backing) == (1, {FP_A: str(disk)})

    def test_missing_backing_file(self, instances: Path) -> None:
        """A disk whose backing file is gone marks nothing and breaks nothing."""
        base = write(instances / "_base" / FP_A)
        make_qcow2(instances / "uuid-1" / "disk", str(base))
        base.unlink()
        write(instances / "_base" / FP_B)
        disk2 = make_qcow2(instances / "uuid-2" / "disk", f"../_base/{FP_B}")
        snapshot = scan(instances)
        assert snapshot.backing == {FP_B: str(disk2)}
        assert snapshot.disk_count == 2

    @pytest.mark.parametrize("damage", ["truncated", "bad-version", "magic-only"])
    def test_unreadable_disk_is_a_problem(self, instances: Path, damage: str) -> None:
        """A qcow2 disk with a broken header is a problem; other disks still count."""
        base = instances / "_base"
        write(base / FP_A)
        write(base / FP_B)
        bad = make_qcow2(instances / "uuid-1" / "disk", str(base / FP_A))
        if damage == "truncated":
            os.truncate(bad, 100)
        elif damage == "bad-version":
            with open(bad, "r+b") as stream:
                stream.seek(4)
                stream.write(struct.pack(">I", 7))
        else:
            bad.write_bytes(b"QFI\xfb")
        good = make_qcow2(instances / "uuid-2" / "disk", str(base / FP_B))
        snapshot = scan(instances)
        assert snapshot.backing == {FP_B: str(good)}
        assert snapshot.disk_count == 2
        assert [p.path for p in snapshot.problems] == [str(bad)]
        assert snapshot.problems[0].reason

    def test_garbage_without_magic_is_raw(self, instances: Path) -> None:
        """A disk without the qcow2 magic is raw: no backing file, no problem."""
        write(instances / "uuid-1" / "disk", b"garbage" * 100)
        snapshot = scan(instances)
        assert (snapshot.disk_count, snapshot.backing, snapshot.problems) == (1, {}, ())

    def test_unreadable_cache_link_is_a_problem(self, instances: Path) -> None:
        """A broken qcow2 header in the cache stops the chain there, as a problem."""
        base = instances / "_base"
        write(base / FP_B)
        make_qcow2(base / FP_A, FP_B)
        os.truncate(base / FP_A, 100)
        disk = make_qcow2(
            instances / "uuid-1" / "disk", str(base / FP_A), "qcow2", unsafe=True
        )
        snapshot = scan(instances)
        assert snapshot.backing == {FP_A: str(disk)}
        assert [p.path for p in snapshot.problems] == [str(base.resolve() / FP_A)]

    def test_symlinked_instance_dir_and_disk_protect(
        self, instances: Path, tmp_path: Path
    ) -> None:
        """Disks behind a symlinked instance dir or a symlinked disk still count."""
        write(instances / "_base" / FP_A)
        write(instances / "_base" / FP_B)
        elsewhere = make_qcow2(
            tmp_path / "elsewhere" / "disk", str(instances / "_base" / FP_A)
        )
        (instances / "uuid-1").symlink_to(elsewhere.parent)
        real = make_qcow2(
            tmp_path / "volume" / "real.qcow2", str(instances / "_base" / FP_B)
        )
        (instances / "uuid-2").mkdir()
        (instances / "uuid-2" / "disk").symlink_to(real)
        snapshot = scan(instances)
        assert snapshot.disk_count == 2
        assert set(snapshot.backing) == {FP_A, FP_B}

    def test_relative_backing_of_a_symlinked_disk(
        self, instances: Path, tmp_path: Path
    ) -> None:
        """A relative backing name resolves from the link's directory, as qemu does."""
        write(instances / "_base" / FP_A)
        real = make_qcow2(tmp_path / "real.qcow2", f"../_base/{FP_A}", unsafe=True)
        (instances / "uuid-1").mkdir()
        (instances / "uuid-1" / "disk").symlink_to(real)
        assert set(scan(instances).backing) == {FP_A}

    def test_disk_read_error_stops_the_scan(
        self, instances: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An I/O error on a disk raises: its backing file could be any cache file.

        EIO cannot be produced on demand here (and root ignores permissions),
        so the header reader is made to fail as the kernel would.
        """
        base = write(instances / "_base" / FP_A)
        make_qcow2(instances / "uuid-1" / "disk", str(base))

        def fail(fd: int, path: str) -> None:
            raise OSError(errno.EIO, "Input/output error", path)

        monkeypatch.setattr(qcow2, "read_backing_name", fail)
        with pytest.raises(OSError, match="Input/output error"):
            scan(instances)

    def test_cache_file_swapped_for_a_link_is_not_followed(
        self, instances: Path, tmp_path: Path
    ) -> None:
        """A cache file replaced by a link after the cache scan: the chain stops.

        The link leads to a FIFO whose writer waits for a reader: had the
        chain read opened it, the writer would have returned.
        """
        base = instances / "_base"
        make_qcow2(base / FP_A)
        disk = make_qcow2(instances / "uuid-1" / "disk", str(base / FP_A), "qcow2")
        cache = scan_cache_dir(str(base))
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        (base / FP_A).unlink()
        (base / FP_A).symlink_to(fifo)
        writer = subprocess.Popen(["sh", "-c", f"exec 3>'{fifo}'"])
        try:
            with deadline(10):
                snapshot = scan_disks(str(instances), cache, SKIP_DIRS)
            assert writer.poll() is None, "the FIFO was opened"
        finally:
            writer.kill()
            writer.wait()
        assert snapshot.backing == {FP_A: str(disk)}
        assert [p.path for p in snapshot.problems] == [str(base / FP_A)]
        assert "symbolic link" in snapshot.problems[0].reason

    @pytest.mark.parametrize("target", ["fifo", "/dev/zero", "dir"])
    def test_symlinked_disk_to_no_file_is_not_opened(
        self, instances: Path, tmp_path: Path, target: str
    ) -> None:
        """A disk linking to a FIFO, device or dir is a problem, never opened."""
        if target == "fifo":
            os.mkfifo(tmp_path / "fifo")
            target = str(tmp_path / "fifo")
        elif target == "dir":
            target = str(tmp_path)
        (instances / "uuid-1").mkdir()
        (instances / "uuid-1" / "disk").symlink_to(target)
        snapshot = scan(instances)
        assert (snapshot.disk_count, snapshot.backing) == (1, {})
        assert "not a regular file" in snapshot.problems[0].reason

    def test_cache_dir_replaced_between_scans_stops_the_scan(
        self, instances: Path, tmp_path: Path
    ) -> None:
        """Chains are read in the directory that was scanned, or not at all."""
        cache = scan_cache_dir(str(instances / "_base"))
        (instances / "_base").rename(instances / "_old")
        (instances / "_base").mkdir()
        with pytest.raises(GatherError, match="replaced during the scan"):
            scan_disks(str(instances), cache, SKIP_DIRS)

    def test_skip_dirs_are_not_swept(self, instances: Path) -> None:
        """Disks in the directories named by skip_dirs are neither read nor counted."""
        base = write(instances / "_base" / FP_A)
        make_qcow2(instances / "locks" / "disk", str(base))
        make_qcow2(instances / "_base" / "disk", str(base))
        make_qcow2(instances / "snapshots" / "disk", str(base))
        snapshot = scan(instances, SKIP_DIRS | {"snapshots"})
        assert (snapshot.disk_count, snapshot.backing) == (0, {})
        assert scan(instances).disk_count == 1

    def test_nested_disks_are_not_counted(self, instances: Path) -> None:
        """Only disks directly inside an instance directory count."""
        base = write(instances / "_base" / FP_A)
        make_qcow2(instances / "uuid-1" / "nested" / "disk", str(base))
        make_qcow2(instances / "uuid-1" / "nested" / "deeper" / "disk", str(base))
        snapshot = scan(instances)
        assert (snapshot.disk_count, snapshot.backing) == (0, {})

    def test_disks_at_the_top_are_not_counted(self, instances: Path) -> None:
        """A disk file directly in instances_path is not in an instance directory."""
        base = write(instances / "_base" / FP_A)
        make_qcow2(instances / "disk", str(base))
        assert scan(instances).disk_count == 0

    def test_disk_count(self, instances: Path) -> None:
        """disk_count counts every disk file of every instance directory."""
        base = write(instances / "_base" / FP_A)
        for uuid in ("uuid-1", "uuid-2", "uuid-3_resize"):
            make_qcow2(instances / uuid / "disk", str(base))
            write(instances / uuid / "disk.config")
            write(instances / uuid / "disk.info", b"{}")
        (instances / "empty").mkdir()
        snapshot = scan(instances)
        assert snapshot.disk_count == 6
        assert list(snapshot.backing) == [FP_A]


class TestScanOpenFiles:
    def test_held_file_names_its_holder(self, tmp_path: Path) -> None:
        """A file a child process holds open is found, naming the child's pid."""
        held = write(tmp_path / FP_A)
        write(tmp_path / FP_B)
        files = scan_cache_dir(str(tmp_path)).files
        st_held = os.stat(held)
        code = (
            "import sys, time; f = open(sys.argv[1]); print('ok', flush=True); "
            "time.sleep(60)"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(held)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ok"
            holders = scan_open_files(files).holders
        finally:
            child.kill()
            child.wait()
        assert set(holders) == {(st_held.st_dev, st_held.st_ino)}
        assert f"pid {child.pid}" in holders[(st_held.st_dev, st_held.st_ino)]

    def test_file_nobody_holds(self, tmp_path: Path) -> None:
        """A file no process has open is not reported."""
        write(tmp_path / FP_B)
        assert scan_open_files(scan_cache_dir(str(tmp_path)).files).holders == {}

    def test_same_inode_on_another_device_is_not_held(self) -> None:
        """A file is held only if both its device and its inode match."""
        with open(__file__, "rb") as stream:
            st = os.fstat(stream.fileno())
            other_device = make_file(FP_A, dev=st.st_dev + 1, ino=st.st_ino)
            same = make_file(FP_B, dev=st.st_dev, ino=st.st_ino)
            holders = scan_open_files([other_device, same]).holders
        assert list(holders) == [(st.st_dev, st.st_ino)]
        assert f"pid {os.getpid()}" in holders[(st.st_dev, st.st_ino)]

    def test_no_files(self) -> None:
        """Asking about no files finds none, though processes hold many."""
        assert scan_open_files(()).holders == {}

    def test_descriptors_that_cannot_be_followed_count_as_unreadable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A process whose fds list but do not stat is unreadable, not ignored.

        That is cachemgr with CAP_DAC_READ_SEARCH but not CAP_SYS_PTRACE
        (tests/functional/test_systemd_unit.py shows the kernel doing it);
        here os.stat fails on /proc/<pid>/fd/N as the kernel would.
        """
        real_stat = os.stat

        def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
            if str(path).startswith("/proc/") and "/fd/" in str(path):
                raise PermissionError(errno.EACCES, "Permission denied", path)
            return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "stat", stat)
        snapshot = scan_open_files([make_file(FP_A, dev=1, ino=2)])
        assert snapshot.unreadable_processes >= 1
        assert snapshot.holders == {}
        own = f"pid {os.getpid()} ("
        named = snapshot.unreadable_examples
        assert 1 <= len(named) <= 5
        assert all(n.startswith("pid ") for n in named)
        assert snapshot.unreadable_processes > 5 or any(own in n for n in named)
