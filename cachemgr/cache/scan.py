"""Gather: one-sweep snapshots of the cache dir, the disks and open files.

Everything here only reads. Each function returns a frozen snapshot that the
pure planner consumes. A disk that cannot be read (EIO, EACCES) raises
OSError and stops the pass, since any cache file may be its backing file; a
disk whose qcow2 header is malformed (qemu would refuse it too) is recorded
as a problem and the sweep goes on.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator, Sequence

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

# How many unreadable processes the warning names.
_UNREADABLE_EXAMPLES = 5


def scan_cache_dir(path: str) -> CacheSnapshot:
    """lstat every entry of the cache dir once; symlinks are never followed.

    A missing cache dir is an empty cache (nova has downloaded nothing yet).
    Entries are read relative to one open descriptor of the dir, so that
    ``dir_key`` is the directory that was listed, and each lstat skips the
    walk of the whole path (7% of the scan's time at 100,000 files).

    Raises:
        OSError: the dir or an entry cannot be read; ``filename`` is its path.
    """
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return CacheSnapshot(path=path, dir_key=None, files=())
    files: list[CacheFile] = []
    others: list[str] = []
    # Names bound locally: this loop runs once per cache file.
    classify, is_regular, lstat = naming.classify, stat.S_ISREG, os.lstat
    try:
        dir_stat = os.fstat(dir_fd)
        try:
            names = os.listdir(dir_fd)
        except OSError as exc:
            exc.filename = path
            raise
        for name in names:
            try:
                st = lstat(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                exc.filename = os.path.join(path, name)
                raise
            if not is_regular(st.st_mode):
                others.append(name)
                continue
            # Positional, in CacheFile's field order: keywords cost 0.2 us more.
            files.append(
                CacheFile(
                    name,
                    classify(name),
                    st.st_dev,
                    st.st_ino,
                    st.st_mtime_ns,
                    st.st_blocks * 512,
                )
            )
    finally:
        os.close(dir_fd)
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
                paths = [
                    e.path for e in entries if is_disk_name(e.name) and e.is_file()
                ]
        except FileNotFoundError:
            continue
        yield from paths


class _BackingResolver:
    """Maps backing file paths to cache file names; one header read per file.

    Within one pass it remembers what each backing path resolved to: on a
    shared storage thousands of disks name the same base file.
    """

    def __init__(self, cache: CacheSnapshot) -> None:
        self._cache = cache
        self._cache_dir = os.path.realpath(cache.path)
        self._names = {f.name for f in cache.files}
        self._by_key: dict[FileKey, str] | None = None
        self._realdirs: dict[str, str] = {}
        self._name_of_path: dict[str, str | None] = {}
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
            backing = _read_backing_file(path)
        except qcow2.Qcow2Error as exc:
            self.problem(path, str(exc))
            return None
        except FileNotFoundError:
            return None
        if backing is None or backing.startswith("/"):
            return backing
        return os.path.join(os.path.dirname(path), backing)

    def _cache_name(self, path: str | None) -> str | None:
        """The cache file ``path`` names, by directory or by inode, or None."""
        if path is None:
            return None
        try:
            return self._name_of_path[path]
        except KeyError:
            name = self._name_of_path[path] = self._resolve(path)
            return name

    def _resolve(self, path: str) -> str | None:
        dirname, name = os.path.split(os.path.normpath(path))
        if dirname not in self._realdirs:
            self._realdirs[dirname] = os.path.realpath(dirname)
        if self._realdirs[dirname] == self._cache_dir and name in self._names:
            return name
        try:
            st = os.stat(path)
        except OSError:
            return None
        if self._by_key is None:
            # Only a backing path outside the cache dir needs the inode map.
            self._by_key = {f.key: f.name for f in self._cache.files}
        return self._by_key.get((st.st_dev, st.st_ino))


def _read_backing_file(path: str) -> str | None:
    """qcow2.read_backing_file of ``path``, following it if it is a symlink.

    Only a symlink is resolved (its open fails with ELOOP under O_NOFOLLOW):
    realpath on every disk would lstat each component of each path, the
    largest cost of a scan of 20,000 disks.
    """
    try:
        return qcow2.read_backing_file(path)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    return qcow2.read_backing_file(os.path.realpath(path))


def scan_open_files(files: Sequence[CacheFile]) -> OpenFiles:
    """Which of ``files`` any process holds open: one sweep of /proc/*/fd.

    Files are matched by (st_dev, st_ino) of each descriptor's target, so a
    process in another mount namespace (a containerised libvirt) still
    counts. Processes whose descriptors cannot be read are counted.
    """
    pid_by_key: dict[FileKey, int] = {}
    unreadable: list[int] = []
    for pid in psutil.pids():
        try:
            with os.scandir(f"/proc/{pid}/fd") as fds:
                for fd in fds:
                    key = _fd_key(fd.path)
                    if key is not None:
                        pid_by_key.setdefault(key, pid)
        except FileNotFoundError:
            continue
        except PermissionError:
            unreadable.append(pid)
    # Open inodes first: a set of ints tests 100,000 files without building
    # a (dev, ino) key for each.
    open_inodes = {ino for _, ino in pid_by_key}
    held = [f.key for f in files if f.ino in open_inodes and f.key in pid_by_key]
    return OpenFiles(
        holders={key: _describe_process(pid_by_key[key]) for key in held},
        unreadable_processes=len(unreadable),
        unreadable_examples=tuple(
            _describe_process(pid) for pid in unreadable[:_UNREADABLE_EXAMPLES]
        ),
    )


def _fd_key(fd_path: str) -> FileKey | None:
    """The target of one descriptor; None when it closed meanwhile.

    PermissionError goes up: a process whose descriptors can be listed but
    not followed (CAP_DAC_READ_SEARCH without CAP_SYS_PTRACE) is unreadable.
    """
    try:
        st = os.stat(fd_path)
    except PermissionError:
        raise
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _describe_process(pid: int) -> str:
    try:
        return f"pid {pid} ({psutil.Process(pid).name()})"
    except psutil.Error:
        return f"pid {pid}"
