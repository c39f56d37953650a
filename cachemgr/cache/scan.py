"""Gather: one-sweep snapshots of the cache dir, the disks and open files.

Everything here only reads. Each function returns a frozen snapshot that the
pure planner consumes. A disk that cannot be read (EIO, EACCES) raises
OSError and stops the pass, since any cache file may be its backing file; a
disk whose qcow2 header is malformed (qemu would refuse it too) is recorded
as a problem and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import stat
import time
from collections.abc import Iterator, Mapping, Sequence

import psutil

from cachemgr.cache import naming, qcow2, safefs
from cachemgr.cache.disk_usage import FilesystemUse, filesystem_use
from cachemgr.cache.snapshot import (
    CacheFile,
    CacheSnapshot,
    DiskProblem,
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

LOG = logging.getLogger(__name__)

# How many unreadable processes the warning names.
_UNREADABLE_EXAMPLES = 5
# How far before the scan's start a change still counts as unread. A file's
# times come from the kernel's coarse clock (a tick behind time.time()),
# and qemu-img writes an overlay in steps (file, header, backing name);
# a directory changed shortly before the scan is read again, a few dozen
# directories on a busy host.
_CHANGE_MARGIN_NS = 10_000_000_000
# A disk without a backing name this small and this recent may be an
# overlay qemu-img is still writing (its first header has no backing
# name); a raw root disk or a config drive is larger or older.
_UNFINISHED_MAX_BYTES = 1 << 20
# How many instance directories the re-check stats between clock readings.
_DEADLINE_EVERY = 256


def scan_cache_dir(path: str, instances_path: str | None = None) -> CacheSnapshot:
    """lstat every entry of the cache dir once; symlinks are never followed.

    A missing cache dir is an empty cache (nova has downloaded nothing yet).
    Entries are read relative to one open descriptor of the dir, so that
    ``dir_key`` is the directory that was listed, and each lstat skips the
    walk of the whole path (7% of the scan's time at 100,000 files).

    The cache dir may be a symlink, but what it resolves to must belong to
    the owner of ``instances_path`` (by default the cache dir's parent):
    otherwise whoever planted the link would choose what root removes and
    touches (DESIGN 1.8).

    Raises:
        UntrustedStorage: the cache dir belongs to someone else.
        OSError: the dir or an entry cannot be read; ``filename`` is its path.
    """
    try:
        dir_fd, dir_stat = safefs.open_directory(path, follow=True)
    except FileNotFoundError:
        return CacheSnapshot(path=path, dir_key=None, files=())
    files: list[CacheFile] = []
    others: list[str] = []
    # Names bound locally: this loop runs once per cache file.
    classify, is_regular, lstat = naming.classify, stat.S_ISREG, os.lstat
    try:
        _check_owner(path, dir_stat, instances_path or os.path.dirname(path))
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
    instances_path: str, cache: CacheSnapshot, skip_dirs: frozenset[str]
) -> DiskSnapshot:
    """Read the backing chain of every disk in every instance directory.

    Every directory directly under instances_path is swept, not only the
    ones the inventory names: a disk the inventory forgot still protects
    its base file. Symlinked instance dirs are followed, and a symlinked
    disk is read when it leads to a regular file (reading more only keeps
    more). Every ``disk*`` entry that is not a directory counts as a disk,
    whatever its type, for the empty-inventory guard. Chains are followed
    while they stay in the cache dir.

    Raises:
        GatherError: the cache dir was replaced since it was scanned.
        OSError: instances_path, an instance dir or a disk cannot be read.
    """
    since_ns = time.time_ns() - _CHANGE_MARGIN_NS
    with _opened_cache_dir(cache) as cache_fd:
        resolver = _BackingResolver(cache, cache_fd, since_ns)
        disk_count = 0
        with os.scandir(instances_path) as top:
            dir_names = [e.name for e in top if e.name not in skip_dirs and e.is_dir()]
        for name in dir_names:
            for entry in _disks_in(os.path.join(instances_path, name)):
                disk_count += 1
                resolver.mark_disk(entry)
    return DiskSnapshot(
        disk_count=disk_count,
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

    def __init__(self, disks: DiskSnapshot, cache: CacheSnapshot, cache_fd: int):
        self._mark = disks.mark
        self._resolver = _BackingResolver(cache, cache_fd, disks.mark.since_ns)

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
            for entry in _disks_in(subdir):
                self._resolver.mark_disk(entry)
            if time.monotonic() > deadline:
                raise RecheckTooSlow(subdir)
        return self._resolver.backing

    def _changed_dirs(self, deadline: float) -> list[str]:
        """The instance directories that may hold a disk the scan missed."""
        mark = self._mark
        changed = []
        with os.scandir(mark.instances_path) as top:
            for count, entry in enumerate(top):
                if count % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                    raise RecheckTooSlow(mark.instances_path)
                name = entry.name
                if name in mark.skip_dirs:
                    continue
                try:
                    # Followed, as the scan follows a symlinked instance dir.
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode) and (
                    st.st_mtime_ns >= mark.since_ns
                    or name not in mark.dir_names
                    or name in mark.unfinished_dirs
                ):
                    changed.append(entry.path)
        return changed


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


class _BackingResolver:
    """Maps backing file names to cache file names; one header read per file.

    Within one pass it remembers what each backing path resolved to: on a
    shared storage thousands of disks name the same base file.
    """

    def __init__(
        self, cache: CacheSnapshot, cache_fd: int | None, since_ns: int
    ) -> None:
        self._cache = cache
        self._cache_fd = cache_fd
        self._cache_dir = os.path.realpath(cache.path)
        self._names = {f.name for f in cache.files}
        self._by_key: dict[FileKey, str] | None = None
        self._realdirs: dict[str, str] = {}
        self._names_of_path: dict[str, tuple[str, ...]] = {}
        self._parents_of: dict[str, tuple[str, ...]] = {}
        self._since_ns = since_ns
        self.backing: dict[str, str] = {}
        self.problems: list[DiskProblem] = []
        self.unfinished_dirs: set[str] = set()

    def problem(self, path: str, reason: str) -> None:
        LOG.warning("Disk %s: %s; its backing file, if any, is unknown", path, reason)
        self.problems.append(DiskProblem(path, reason))

    def mark_disk(self, entry: os.DirEntry[str]) -> None:
        """Mark every cache file on the disk's backing chain as used by it."""
        todo = list(
            self._backing_names(self._read_disk(entry), os.path.dirname(entry.path))
        )
        while todo:
            name = todo.pop()
            if name in self.backing:
                continue
            self.backing[name] = entry.path
            if name not in self._parents_of:
                parent = self._read_cache_file(name)
                self._parents_of[name] = self._backing_names(parent, self._cache.path)
            todo.extend(self._parents_of[name])

    def _read_disk(self, entry: os.DirEntry[str]) -> bytes | None:
        """A disk's backing name; None when it has none or is unusable.

        A symlink is read only once its target is known to be a regular file
        (safefs.open_through_link); a FIFO, device or socket is never opened.
        """
        path = entry.path
        try:
            if entry.is_symlink():
                fd, st = safefs.open_through_link(path)
            elif entry.is_file(follow_symlinks=False):
                fd, st = safefs.open_regular(path)
            else:
                mode = entry.stat(follow_symlinks=False).st_mode
                raise safefs.NotRegularFile(safefs.describe_type(mode), path)
        except safefs.NotRegularFile as exc:
            self.problem(path, exc.strerror)
            return None
        except FileNotFoundError:
            # Removed since the listing, or a dangling link: nothing to read.
            return None
        try:
            raw = qcow2.read_backing_name(fd, path)
        except qcow2.Qcow2Error as exc:
            self.problem(path, str(exc))
            return None
        finally:
            os.close(fd)
        if (
            raw is None
            and st.st_mtime_ns >= self._since_ns
            and st.st_size <= _UNFINISHED_MAX_BYTES
        ):
            self.unfinished_dirs.add(os.path.basename(os.path.dirname(path)))
        return raw

    def _read_cache_file(self, name: str) -> bytes | None:
        """The backing name of a cache file, read relative to the scanned dir."""
        path = os.path.join(self._cache.path, name)
        try:
            return qcow2.read_backing_file(name, dir_fd=self._cache_fd)
        except qcow2.Qcow2Error as exc:
            self.problem(path, str(exc))
            return None
        except safefs.NotRegularFile as exc:
            # Replaced since the cache scan (a symlink, a FIFO): not followed.
            self.problem(path, exc.strerror)
            return None
        except FileNotFoundError:
            return None

    def _backing_names(self, raw: bytes | None, base_dir: str) -> tuple[str, ...]:
        """The cache files a backing name may mean; see _resolve."""
        if raw is None:
            return ()
        name = os.fsdecode(raw)
        path = name if name.startswith("/") else os.path.join(base_dir, name)
        try:
            return self._names_of_path[path]
        except KeyError:
            found = self._names_of_path[path] = self._resolve(path)
            return found

    def _resolve(self, path: str) -> tuple[str, ...]:
        """The cache files ``path`` names: by path, else by inode; and by basename.

        (a) As the kernel resolves it: the directory with its symlinks and
        ``..`` resolved in order (never lexically first), then the last
        component. (b) By (st_dev, st_ino), for a path that reaches a cache
        file some other way (a hard link, another mount of the storage).
        (c) By the last component, as nova does, whatever directory the
        header names: nova-compute in a container or another mount point of
        a shared storage writes its own paths. Keeping more is the safe side.
        """
        dirname, name = os.path.split(path)
        if dirname not in self._realdirs:
            self._realdirs[dirname] = os.path.realpath(dirname)
        found: list[str] = []
        if self._realdirs[dirname] == self._cache_dir and name in self._names:
            found.append(name)
        else:
            by_inode = self._by_inode(path)
            if by_inode is not None:
                found.append(by_inode)
        if name in self._names and name not in found:
            found.append(name)
        return tuple(found)

    def _by_inode(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        if self._by_key is None:
            # Only a backing path outside the cache dir needs the inode map.
            self._by_key = {f.key: f.name for f in self._cache.files}
        return self._by_key.get((st.st_dev, st.st_ino))


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
