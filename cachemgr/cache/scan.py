"""Gather: one-sweep snapshots of the cache dir, the disks and open files.

Everything here only reads. Each function returns a frozen snapshot that the
pure planner consumes. A disk that cannot be read (EIO, EACCES) raises
OSError and stops the pass, since any cache file may be its backing file; a
disk whose qcow2 header is malformed (qemu would refuse it too) is recorded
as a problem and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import pwd
import stat
import time
from collections.abc import Iterator, Mapping, Sequence

import psutil

from cachemgr.cache import naming, safefs
from cachemgr.cache.chains import BackingResolver
from cachemgr.cache.disk_usage import FilesystemUse, filesystem_use
from cachemgr.cache.overlap import Overlap
from cachemgr.cache.snapshot import (
    CacheFile,
    CacheSnapshot,
    DiskSnapshot,
    FileKey,
    OpenFiles,
    ScanMark,
)
from cachemgr.exceptions import GatherError, UntrustedStorage

__all__ = [
    "DiskRecheck",
    "RecheckTooSlow",
    "is_disk_name",
    "measure_filesystem_use",
    "scan_cache_dir",
    "scan_disks",
    "scan_open_files",
]


# How many unreadable processes the warning names.
_UNREADABLE_EXAMPLES = 5
# How far before the scan's start a change still counts as unread. A file's
# times come from the kernel's coarse clock (a tick behind time.time()),
# and qemu-img writes an overlay in steps (file, header, backing name);
# a directory changed shortly before the scan is read again, a few dozen
# directories on a busy host.
_CHANGE_MARGIN_NS = 10_000_000_000
# How many instance directories the re-check stats between clock readings.
_DEADLINE_EVERY = 256


def scan_cache_dir(
    path: str, instances_path: str | None = None, *, concurrency: int = 1
) -> CacheSnapshot:
    """lstat every entry of the cache dir once; symlinks are never followed.

    A missing cache dir is an empty cache (nova has downloaded nothing yet).
    Entries are read relative to one open descriptor of the dir, so that
    ``dir_key`` is the directory that was listed, and each lstat skips the
    walk of the whole path (7% of the scan's time at 100,000 files). On
    slow storage up to ``concurrency`` lstats are in flight at once
    (overlap.Overlap); the snapshot lists the files in the listing's order
    all the same.

    The cache dir may be a symlink, but what it resolves to must belong to
    the owner of ``instances_path`` (by default the cache dir's parent):
    otherwise whoever planted the link would choose what root removes and
    touches (DESIGN 1.8).

    Raises:
        UntrustedStorage: the cache dir belongs to someone else.
        OSError: the dir or an entry cannot be read; ``filename`` is its path
            (the first such entry in the listing's order).
    """
    try:
        dir_fd, dir_stat = safefs.open_directory(path, follow=True)
    except FileNotFoundError:
        return CacheSnapshot(path=path, dir_key=None, files=())
    files: list[CacheFile] = []
    others: list[str] = []
    try:
        _check_owner(path, dir_stat, instances_path or os.path.dirname(path))
        try:
            names = os.listdir(dir_fd)
        except OSError as exc:
            exc.filename = path
            raise
        with Overlap(concurrency) as overlap:
            parts = overlap.map_chunks(
                functools.partial(_lstat_names, path, dir_fd), names
            )
        for part_files, part_others, error in parts:
            files.extend(part_files)
            others.extend(part_others)
            if error is not None:
                raise error
    finally:
        os.close(dir_fd)
    return CacheSnapshot(
        path=path,
        dir_key=(dir_stat.st_dev, dir_stat.st_ino),
        files=tuple(files),
        other_entries=tuple(others),
    )


def _lstat_names(
    path: str, dir_fd: int, names: Sequence[str]
) -> tuple[list[CacheFile], list[str], OSError | None]:
    """The regular files and the other entries among ``names``, in order,
    up to the first that cannot be read (its error, naming it)."""
    files: list[CacheFile] = []
    others: list[str] = []
    # Names bound locally: this loop runs once per cache file.
    classify, is_regular, lstat = naming.classify, stat.S_ISREG, os.lstat
    for name in names:
        try:
            st = lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            continue
        except OSError as exc:
            exc.filename = os.path.join(path, name)
            return files, others, exc
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
    return files, others, None


def _check_owner(path: str, dir_stat: os.stat_result, instances_path: str) -> None:
    owner = os.stat(instances_path).st_uid
    if dir_stat.st_uid == owner:
        return
    real = os.path.realpath(path)
    shown = path if real == path else f"{path} (resolved: {real})"
    raise UntrustedStorage(
        f"the cache dir {shown} belongs to {_user(dir_stat.st_uid)}, not to "
        f"{_user(owner)}, the owner of instances_path {instances_path}: nothing "
        "is removed or refreshed there; check who replaced it (a symlink in "
        "place of the cache dir?) and give it back to nova's user"
    )


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def measure_filesystem_use(path: str) -> FilesystemUse:
    """df's figures for the file system holding ``path`` (one statvfs).

    Raises:
        OSError: ``path`` cannot be reached.
    """
    return filesystem_use(os.statvfs(path))


def is_disk_name(name: str) -> bool:
    """``disk`` or ``disk.<x>``, but not nova's ``disk.info`` (DESIGN 1.6)."""
    return name == "disk" or (name.startswith("disk.") and name != "disk.info")


def scan_disks(
    instances_path: str,
    cache: CacheSnapshot,
    skip_dirs: frozenset[str],
    *,
    concurrency: int = 1,
) -> DiskSnapshot:
    """Read the backing chain of every disk in every instance directory.

    Every directory directly under instances_path is swept, not only the
    ones the inventory names: a disk the inventory forgot still protects
    its base file. Symlinked instance dirs are followed, and a symlinked
    disk is read when it leads to a regular file (reading more only keeps
    more). Every ``disk*`` entry that is not a directory counts as a disk,
    whatever its type, for the empty-inventory guard. Chains are followed
    while they stay in the cache dir. On slow storage up to
    ``concurrency`` listings and reads are in flight at once; the snapshot,
    the problems logged and the error raised are a sequential sweep's.

    Raises:
        GatherError: the cache dir was replaced since it was scanned.
        OSError: instances_path, an instance dir or a disk cannot be read.
    """
    since_ns = time.time_ns() - _CHANGE_MARGIN_NS
    with _opened_cache_dir(cache) as cache_fd, Overlap(concurrency) as overlap:
        resolver = BackingResolver(cache, cache_fd, since_ns)
        with os.scandir(instances_path) as top:
            dir_names = [e.name for e in top if e.name not in skip_dirs and e.is_dir()]
        paths = [os.path.join(instances_path, name) for name in dir_names]
        disks: list[os.DirEntry[str]] = []
        unlisted: OSError | None = None
        for listing in itertools.chain(*overlap.map_chunks(_list_disks, paths)):
            if isinstance(listing, OSError):
                unlisted = listing
                break
            disks.extend(listing)
        # The disks listed before a directory that cannot be, as a
        # sequential sweep would have read them before failing there.
        resolver.mark_disks(disks, overlap)
        if unlisted is not None:
            raise unlisted
    return DiskSnapshot(
        disk_count=len(disks),
        backing=dict(resolver.backing),
        mark=ScanMark(
            instances_path=instances_path,
            skip_dirs=skip_dirs,
            since_ns=since_ns,
            dir_names=frozenset(dir_names),
            unfinished_dirs=frozenset(resolver.unfinished_dirs),
        ),
        problems=tuple(resolver.problems),
    )


class RecheckTooSlow(Exception):
    """The re-check did not end in time; the file it was for is kept."""


class DiskRecheck:
    """Finds the disks written since the disk scan, under a base file's lock.

    nova creates an overlay holding the lock of its base file, after its
    unlocked refresh of the base's mtime: a pass can plan to remove a base
    whose overlay its disk scan did not see yet. Holding that lock, no
    overlay on the base is half made, so reading again what changed since
    the scan finds every disk that uses it. One re-check stats each
    instance directory and reads only the ones changed since the scan (a
    new name, a newer mtime, an unfinished disk); its resolver is the
    scan's, and remembers, over the rechecks of one apply, what each
    backing name resolved to.
    """

    def __init__(
        self,
        disks: DiskSnapshot,
        cache: CacheSnapshot,
        cache_fd: int,
        overlap: Overlap | None = None,
    ):
        self._mark = disks.mark
        self._resolver = BackingResolver(cache, cache_fd, disks.mark.since_ns)
        # The stats of every instance dir, overlapped on slow storage: at
        # 20,000 dirs and 1 ms a round trip, one at a time would outlast the
        # deadline and keep every file. The few changed dirs are then read
        # in order, in this thread.
        self._overlap = overlap or Overlap(1)
        self._sequential = Overlap(1)

    def users(self, deadline: float) -> Mapping[str, str]:
        """Cache file name -> a disk changed since the scan whose chain reaches it.

        Sound for every cache file whose nova lock the caller holds: no
        overlay on it can be half made. One sweep serves them all.

        Args:
            deadline: time.monotonic() by which to have answered.

        Raises:
            RecheckTooSlow: the deadline passed first.
            OSError: instances_path or a directory cannot be read.
        """
        for subdir in self._changed_dirs(deadline):
            self._resolver.mark_disks(_disks_in(subdir), self._sequential)
            if time.monotonic() > deadline:
                raise RecheckTooSlow(subdir)
        return self._resolver.backing

    def _changed_dirs(self, deadline: float) -> list[str]:
        """The instance directories that may hold a disk the scan missed."""
        mark = self._mark
        with os.scandir(mark.instances_path) as top:
            entries = [e for e in top if e.name not in mark.skip_dirs]
        if time.monotonic() > deadline:
            raise RecheckTooSlow(mark.instances_path)

        def changed(part: Sequence[os.DirEntry[str]]) -> list[str]:
            found = []
            for count, entry in enumerate(part):
                if count % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                    raise RecheckTooSlow(mark.instances_path)
                if self._changed(entry):
                    found.append(entry.path)
            return found

        return [p for part in self._overlap.map_chunks(changed, entries) for p in part]

    def _changed(self, entry: os.DirEntry[str]) -> bool:
        mark = self._mark
        try:
            # Followed, as the scan follows a symlinked instance dir.
            st = entry.stat()
        except FileNotFoundError:
            return False
        return stat.S_ISDIR(st.st_mode) and (
            st.st_mtime_ns >= mark.since_ns
            or entry.name not in mark.dir_names
            or entry.name in mark.unfinished_dirs
        )


@contextlib.contextmanager
def _opened_cache_dir(cache: CacheSnapshot) -> Iterator[int | None]:
    """The scanned cache dir, for reading chains relative to it; None if missing."""
    if cache.dir_key is None:
        yield None
        return
    fd, st = safefs.open_directory(cache.path, follow=True)
    try:
        if (st.st_dev, st.st_ino) != cache.dir_key:
            raise GatherError(
                f"the cache dir {cache.path} was replaced during the scan; "
                "nothing is removed this pass"
            )
        yield fd
    finally:
        os.close(fd)


def _list_disks(paths: Sequence[str]) -> list[list[os.DirEntry[str]] | OSError]:
    """The disks of each instance dir, or why it cannot be listed."""
    listings: list[list[os.DirEntry[str]] | OSError] = []
    for path in paths:
        try:
            listings.append(_disks_in(path))
        except OSError as exc:
            listings.append(exc)
    return listings


def _disks_in(subdir: str) -> list[os.DirEntry[str]]:
    """The ``disk*`` entries of an instance dir that are not directories."""
    try:
        with os.scandir(subdir) as entries:
            return [
                e
                for e in entries
                if is_disk_name(e.name) and not e.is_dir(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return []


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
