"""The scans with their reads overlapped decide exactly what sequential ones do.

One real tree with every problem a disk scan meets is scanned with
``concurrency=1`` (in order, in this thread) and ``concurrency=16`` with
every read handed to the pool (``PROBE_SLICES = 0``): the
snapshots, the plan, the warnings and their order, and the error raised
must be the same; and no file is opened or lstat'ed twice.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import logging
import os
import stat
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachemgr.cache import naming, overlap, qcow2
from cachemgr.cache.plan import make_plan
from cachemgr.cache.scan import DiskRecheck, scan_cache_dir, scan_disks
from cachemgr.cache.snapshot import CacheSnapshot, DiskSnapshot
from tests.unit.cache.helpers import POLICY, make_usage
from tests.unit.cache.test_scan import (
    SKIP_DIRS,
    make_qcow2,
    needs_qemu_img,
    rebase_unsafe,
    write,
)

pytestmark = needs_qemu_img

FPS = [naming.fingerprint(f"image-{i}") for i in range(40)]
NOW = 1_900_000_000.0


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """instances_path with chains, broken headers and hostile entries."""
    root = tmp_path_factory.mktemp("overlap")
    instances = root / "instances"
    base = instances / "_base"
    for fp in FPS[10:]:
        write(base / fp)
        write(base / f"{fp}_10737418240")
    write(base / "swap_512")
    write(base / "notes.txt")
    (base / "a-link").symlink_to(root / "nowhere")
    (base / "a-dir").mkdir()
    os.mkfifo(base / "a-fifo")
    # A chain inside the cache: FP_0 -> FP_1 -> FP_2, and FP_3 -> FP_3.
    write(base / FPS[2])
    make_qcow2(base / FPS[1], FPS[2])
    make_qcow2(base / FPS[0], FPS[1], fmt="qcow2")
    qcow2_self = make_qcow2(base / FPS[3])
    rebase_unsafe(qcow2_self, FPS[3])
    # A cache link whose header is broken: the chain stops there.
    make_qcow2(base / FPS[4], FPS[2])
    os.truncate(base / FPS[4], 100)
    for i in range(80):
        fp = FPS[10 + i % 30]
        backing = str(base / fp) if i % 3 else f"../_base/{fp}_10737418240"
        make_qcow2(instances / f"uuid-{i:03}" / "disk", backing, unsafe=True)
        if i % 4 == 0:
            write(instances / f"uuid-{i:03}" / "disk.config")
        write(instances / f"uuid-{i:03}" / "disk.info", b"{}")
    disk = instances / "uuid-chain" / "disk"
    make_qcow2(disk, str(base / FPS[0]), "qcow2", unsafe=True)
    make_qcow2(instances / "uuid-self" / "disk", str(qcow2_self), "qcow2", unsafe=True)
    make_qcow2(instances / "uuid-broken" / "disk", str(base / FPS[4]), unsafe=True)
    make_qcow2(instances / "uuid-missing" / "disk", str(base / "gone"), unsafe=True)
    bad = make_qcow2(instances / "uuid-bad" / "disk", str(base / FPS[5]), unsafe=True)
    with open(bad, "r+b") as stream:
        stream.seek(4)
        stream.write(struct.pack(">I", 7))
    (instances / "uuid-dangling").mkdir()
    (instances / "uuid-dangling" / "disk").symlink_to(root / "missing")
    (instances / "uuid-fifo").mkdir()
    os.mkfifo(instances / "uuid-fifo" / "disk")
    (instances / "uuid-dev").mkdir()
    (instances / "uuid-dev" / "disk.local").symlink_to("/dev/zero")
    real = make_qcow2(root / "volume" / "real.qcow2", str(base / FPS[6]), unsafe=True)
    write(base / FPS[6])
    (instances / "uuid-linked").mkdir()
    (instances / "uuid-linked" / "disk").symlink_to(real)
    write(base / FPS[7])
    os.link(base / FPS[7], root / "hard-link")
    make_qcow2(instances / "uuid-hard" / "disk", str(root / "hard-link"))
    return instances


def scanned(instances: Path, concurrency: int) -> tuple[CacheSnapshot, DiskSnapshot]:
    cache = scan_cache_dir(str(instances / "_base"), concurrency=concurrency)
    disks = scan_disks(str(instances), cache, SKIP_DIRS, concurrency=concurrency)
    # When each scan started is the only field allowed to differ.
    mark = dataclasses.replace(disks.mark, since_ns=0)
    return cache, dataclasses.replace(disks, mark=mark)


@pytest.fixture
def overlapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read handed to the pool, as on slow storage."""
    monkeypatch.setattr(overlap, "PROBE_SLICES", 0)


@pytest.mark.usefixtures("overlapped")
class TestSameAsSequential:
    def test_snapshots_and_plan(
        self, tree: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Same files, marks (and which disk marked each), problems, plan, logs."""
        caplog.set_level(logging.WARNING)
        sequential = scanned(tree, 1)
        sequential_log = [r.getMessage() for r in caplog.records]
        caplog.clear()
        concurrent = scanned(tree, 16)
        assert [r.getMessage() for r in caplog.records] == sequential_log
        assert concurrent == sequential
        assert list(concurrent[1].backing.items()) == list(
            sequential[1].backing.items()
        )
        disks = sequential[1]
        assert {FPS[0], FPS[1], FPS[2], FPS[3], FPS[4], FPS[6], FPS[7]} <= set(
            disks.backing
        )
        assert len(disks.problems) == 4, disks.problems
        used = make_usage()
        plans = [
            make_plan(cache, used, disks.backing, {}, POLICY, NOW)
            for cache, disks in (sequential, concurrent)
        ]
        assert plans[0] == plans[1]

    def test_read_error_is_raised_where_a_sequential_scan_meets_it(
        self,
        tree: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """EIO on one disk: the same error, after the same warnings."""
        real = qcow2.read_backing_name
        failing = str(tree / "uuid-040" / "disk")

        def read(fd: int, path: str) -> bytes | None:
            if path == failing:
                raise OSError(errno.EIO, "Input/output error", path)
            return real(fd, path)

        monkeypatch.setattr(qcow2, "read_backing_name", read)
        caplog.set_level(logging.WARNING)
        raised = []
        logs = []
        for concurrency in (1, 16):
            caplog.clear()
            with pytest.raises(OSError) as info:
                scanned(tree, concurrency)
            raised.append((info.value.errno, info.value.filename))
            logs.append([r.getMessage() for r in caplog.records])
        assert raised == [(errno.EIO, failing)] * 2
        assert logs[0] == logs[1]


@pytest.mark.usefixtures("overlapped")
@pytest.mark.usefixtures("overlapped")
def test_the_recheck_under_the_locks_finds_the_same_new_disks(tmp_path: Path) -> None:
    """The re-check's sweep of every instance dir, overlapped, finds the disks
    written since the scan that a sequential sweep finds, in the same order."""
    base = tmp_path / "instances" / "_base"
    for name in FPS[:3]:
        write(base / name)
    for n in range(40):
        make_qcow2(
            tmp_path / "instances" / f"uuid-{n:02d}" / "disk", str(base / FPS[0])
        )
    old = time.time() - 86400
    for n in range(40):
        os.utime(tmp_path / "instances" / f"uuid-{n:02d}", (old, old))
    cache = scan_cache_dir(str(base))
    disks = scan_disks(str(tmp_path / "instances"), cache, SKIP_DIRS)
    # Written after the scan: a new disk in an old dir, and a new dir.
    make_qcow2(tmp_path / "instances" / "uuid-07" / "disk.rescue", str(base / FPS[1]))
    make_qcow2(tmp_path / "instances" / "uuid-new" / "disk", str(base / FPS[2]))
    found = []
    for concurrency in (1, 16):
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with overlap.Overlap(concurrency) as pool:
                recheck = DiskRecheck(disks, cache, fd, pool)
                found.append(list(recheck.users(time.monotonic() + 30).items()))
        finally:
            os.close(fd)
    assert found[0] == found[1]
    assert {FPS[1], FPS[2]} <= dict(found[0]).keys()


def test_no_file_is_read_twice(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each entry is lstat'ed at most once and each file opened at most once.

    Directories are not counted: the cache dir is opened again by the disk
    scan, to check that it is still the directory that was listed, and
    resolving backing names lstats the directories above them.
    """
    opened: collections.Counter[str] = collections.Counter()
    stated: collections.Counter[str] = collections.Counter()
    real_open, real_lstat = os.open, os.lstat

    def counted_open(path, flags, mode=0o777, *, dir_fd=None):
        if not flags & os.O_DIRECTORY and not str(path).startswith("/proc/"):
            opened[f"{dir_fd is not None}:{path}"] += 1
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def counted_lstat(path, *, dir_fd=None):
        st = real_lstat(path, dir_fd=dir_fd)
        if not stat.S_ISDIR(st.st_mode):
            stated[f"{dir_fd is not None}:{path}"] += 1
        return st

    monkeypatch.setattr(os, "open", counted_open)
    monkeypatch.setattr(os, "lstat", counted_lstat)
    scanned(tree, 16)
    assert opened and stated
    assert [p for p, n in opened.items() if n > 1] == []
    assert [p for p, n in stated.items() if n > 1] == []


# A header cachemgr's reader accepts (qcow2.py checks these fields only):
# magic, version 3, the backing name at 512, 64 KiB clusters.
_HEADER = struct.Struct(">4sIQII")
_NAME_AT = 512
_POOL = FPS[:6]
_ENTRY_KINDS = ("raw", "qcow2", "broken", "fifo", "dangling", "missing")


def write_header(path: Path, backing: str | None) -> None:
    name = (backing or "").encode()
    header = _HEADER.pack(b"QFI\xfb", 3, _NAME_AT if name else 0, len(name), 16)
    data = header.ljust(_NAME_AT, b"\0") + name
    path.write_bytes(data.ljust(1024, b"\0"))


entries = st.tuples(
    st.sampled_from(_ENTRY_KINDS),
    st.sampled_from(_POOL),
    st.sampled_from(("absolute", "relative", "elsewhere")),
)


def build(root: Path, cache: list, dirs: list[list]) -> Path:
    """An instances_path: ``cache`` as (name, kind, backing, how) entries,
    each instance dir's disks likewise."""
    instances = root / "instances"
    base = instances / "_base"
    base.mkdir(parents=True)

    def make(path: Path, kind: str, backing: str, how: str) -> None:
        if kind == "raw":
            path.write_bytes(b"\1" * 100)
        elif kind in ("qcow2", "missing"):
            target = backing if kind == "qcow2" else f"{backing}.gone"
            names = {
                "absolute": str(base / target),
                "relative": os.path.relpath(base / target, path.parent),
                "elsewhere": f"/srv/other-mount/_base/{target}",
            }
            write_header(path, names[how])
        elif kind == "broken":
            path.write_bytes(b"QFI\xfb" + b"\0" * 10)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(root / "nowhere")

    for name, (kind, backing, how) in cache:
        make(base / name, kind, backing, how)
    for i, disks in enumerate(dirs):
        directory = instances / f"uuid-{i}"
        directory.mkdir()
        for j, (kind, backing, how) in enumerate(disks):
            make(directory / ("disk" if j == 0 else f"disk.{j}"), kind, backing, how)
    return instances


@settings(max_examples=60)
@given(
    cache=st.lists(
        st.tuples(st.sampled_from(_POOL), entries), unique_by=lambda e: e[0]
    ),
    dirs=st.lists(st.lists(entries, max_size=3), max_size=6),
)
def test_random_trees_scan_alike(cache: list, dirs: list[list]) -> None:
    """Any tree of chains, cycles and broken entries: the same snapshots and
    the same warnings in the same order, sequential or overlapped."""
    with tempfile.TemporaryDirectory() as root, pytest.MonkeyPatch.context() as mp:
        instances = build(Path(root), cache, dirs)
        mp.setattr(overlap, "PROBE_SLICES", 0)
        results = []
        for concurrency in (1, 16):
            with _warnings() as logged:
                results.append((scanned(instances, concurrency), logged))
        assert results[0] == results[1]


@contextlib.contextmanager
def _warnings() -> Iterator[list[str]]:
    """The messages of the warnings the scans log meanwhile."""
    logged: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("cachemgr.cache")
    logger.addHandler(handler)
    try:
        yield logged
    finally:
        logger.removeHandler(handler)
