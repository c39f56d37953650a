"""Gather: one-sweep snapshots of the cache dir, the disks and open files.

Everything here only reads. Each function returns a frozen snapshot that the
pure planner consumes. A disk that cannot be read (EIO, EACCES) raises
OSError and stops the pass, since any cache file may be its backing file; a
disk whose qcow2 header is malformed (qemu would refuse it too) is recorded
as a problem and the sweep goes on.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator

import psutil

from cachemgr.cache import naming, qcow2
from cachemgr.cache.snapshot import (
    CacheFile,
    CacheSnapshot,
    DiskProblem,
    DiskSnapshot,
    FileKey,
    OpenFiles,
)

__all__ = [
    "is_disk_name",
    "scan_cache_dir",
    "scan_disks",
    "scan_open_files",
]

LOG = logging.getLogger(__name__)


def scan_cache_dir(path: str) -> CacheSnapshot:
    """lstat every entry of the cache dir once; symlinks are never followed.

    A missing cache dir is an empty cache (nova has downloaded nothing yet).
    """
    try:
        dir_stat = os.stat(path)
    except FileNotFoundError:
        return CacheSnapshot(path=path, dir_key=None, files=())
    files: list[CacheFile] = []
    others: list[str] = []
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                others.append(entry.name)
                continue
            files.append(
                CacheFile(
                    name=entry.name,
                    kind=naming.classify(entry.name),
                    dev=st.st_dev,
                    ino=st.st_ino,
                    mtime_ns=st.st_mtime_ns,
                    allocated_bytes=st.st_blocks * 512,
                )
            )
    return CacheSnapshot(
        path=path,
        dir_key=(dir_stat.st_dev, dir_stat.st_ino),
        files=tuple(files),
        other_entries=tuple(others),
    )


def is_disk_name(name: str) -> bool:
    """``disk`` or ``disk.<x>``, but not nova's ``disk.info`` (DESIGN 1.6)."""
    return name == "disk" or (name.startswith("disk.") and name != "disk.info")


def scan_disks(
    instances_path: str, cache: CacheSnapshot, skip_dirs: frozenset[str]
) -> DiskSnapshot:
    """Read the backing chain of every disk in every instance directory.

    Every directory directly under instances_path is swept, not only the
    ones the inventory names: a disk the inventory forgot still protects
    its base file. Symlinked instance dirs and disks are followed (reading
    more only keeps more). Chains are followed while they stay in the cache
    dir.

    Raises:
        OSError: instances_path, an instance dir or a disk cannot be read.
    """
    resolver = _BackingResolver(cache)
    disk_count = 0
    for disk_path in _disk_paths(instances_path, skip_dirs):
        disk_count += 1
        resolver.mark_chain(disk_path)
    return DiskSnapshot(
        disk_count=disk_count,
        backing=dict(resolver.backing),
        problems=tuple(resolver.problems),
    )


def _disk_paths(instances_path: str, skip_dirs: frozenset[str]) -> Iterator[str]:
    """Paths of the ``disk*`` files (regular, or links to one) one level down."""
    with os.scandir(instances_path) as top:
        subdirs = [e.path for e in top if e.name not in skip_dirs and e.is_dir()]
    for subdir in subdirs:
        try:
            with os.scandir(subdir) as entries:
                names = [
                    e.name for e in entries if is_disk_name(e.name) and e.is_file()
                ]
        except FileNotFoundError:
            continue
        for name in names:
            yield os.path.join(subdir, name)


class _BackingResolver:
    """Maps backing file paths to cache file names; one header read per file."""

    def __init__(self, cache: CacheSnapshot) -> None:
        self._cache_dir = os.path.realpath(cache.path)
        self._names = {f.name for f in cache.files}
        self._by_key = {f.key: f.name for f in cache.files}
        self._realdirs: dict[str, str] = {}
        self._parent_of: dict[str, str | None] = {}
        self.backing: dict[str, str] = {}
        self.problems: list[DiskProblem] = []

    def problem(self, path: str, reason: str) -> None:
        LOG.warning("Disk %s: %s; its backing file, if any, is unknown", path, reason)
        self.problems.append(DiskProblem(path, reason))

    def mark_chain(self, disk_path: str) -> None:
        """Mark every cache file on the disk's backing chain as used by it."""
        name = self._cache_name(self._read_backing(disk_path))
        while name is not None and name not in self.backing:
            self.backing[name] = disk_path
            if name not in self._parent_of:
                parent = self._read_backing(os.path.join(self._cache_dir, name))
                self._parent_of[name] = self._cache_name(parent)
            name = self._parent_of[name]

    def _read_backing(self, path: str) -> str | None:
        """The backing file of ``path`` as an absolute path, or None.

        A relative backing name is relative to the directory ``path`` is in,
        as qemu resolves it, even when ``path`` is a symlink.
        """
        try:
            backing = qcow2.read_backing_file(os.path.realpath(path))
        except qcow2.Qcow2Error as exc:
            self.problem(path, str(exc))
            return None
        except FileNotFoundError:
            return None
        if backing is None:
            return None
        return os.path.join(os.path.dirname(path), backing)

    def _cache_name(self, path: str | None) -> str | None:
        """The cache file ``path`` names, by directory or by inode, or None."""
        if path is None:
            return None
        dirname, name = os.path.split(os.path.normpath(path))
        if dirname not in self._realdirs:
            self._realdirs[dirname] = os.path.realpath(dirname)
        if self._realdirs[dirname] == self._cache_dir and name in self._names:
            return name
        try:
            st = os.stat(path)
        except OSError:
            return None
        return self._by_key.get((st.st_dev, st.st_ino))


def scan_open_files(keys: frozenset[FileKey]) -> OpenFiles:
    """Which of ``keys`` any process holds open: one sweep of /proc/*/fd.

    Files are matched by (st_dev, st_ino) of each descriptor's target, so a
    process in another mount namespace (a containerised libvirt) still
    counts. Processes whose descriptors cannot be read are counted.
    """
    holders: dict[FileKey, str] = {}
    unreadable = 0
    for pid in psutil.pids():
        try:
            with os.scandir(f"/proc/{pid}/fd") as fds:
                for fd in fds:
                    key = _fd_key(fd.path)
                    if key in keys and key not in holders:
                        holders[key] = _describe_process(pid)
        except FileNotFoundError:
            continue
        except PermissionError:
            unreadable += 1
    return OpenFiles(holders=holders, unreadable_processes=unreadable)


def _fd_key(fd_path: str) -> FileKey | None:
    try:
        st = os.stat(fd_path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _describe_process(pid: int) -> str:
    try:
        return f"pid {pid} ({psutil.Process(pid).name()})"
    except psutil.Error:
        return f"pid {pid}"
