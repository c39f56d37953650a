"""Backing chains: which cache files the chain of each disk reaches.

Marking a chain needs reads: the disk's header, the directories of its
backing name resolved, sometimes a stat of the backing file, then the
header of each cache file on the chain. On network storage each is a round
trip, so ``BackingResolver.mark_disks`` makes them first, level by level
and overlapped (``overlap.Overlap``), each file read once; then it walks
the chains in the disks' order from what was read. The marks, the
problems logged and their order, and the error raised (and where) are a
sequential walk's, whatever order the reads answered in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeVar

from cachemgr.cache import qcow2, safefs
from cachemgr.cache.overlap import Overlap
from cachemgr.cache.snapshot import CacheSnapshot, DiskProblem, FileKey

__all__ = ["BackingResolver"]

LOG = logging.getLogger(__name__)

T = TypeVar("T")

# A disk without a backing name this small and this recent may be an
# overlay qemu-img is still writing (its first header has no backing
# name); a raw root disk or a config drive is larger or older.
_UNFINISHED_MAX_BYTES = 1 << 20


class _Header(NamedTuple):
    """What one header read found: a backing file, or why it has none."""

    backing: str | None
    """The backing name as a path (a relative one joined to the directory
    of the file that names it), made in the thread that read it."""
    problem: str | None = None
    unfinished: bool = False


_NOTHING = _Header(None)
_Read = _Header | OSError
"""A read's result; an OSError is raised where a sequential walk met it."""


class BackingResolver:
    """Maps backing file names to cache file names; one read per file.

    Within one pass it remembers what each backing path resolved to and
    each cache file's backing names: on a shared storage thousands of
    disks name the same base file, and the re-checks of one apply reuse
    what the scan read.
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
        self._inode_keys: dict[str, FileKey | None] = {}
        self._names_of_path: dict[str, tuple[str, ...]] = {}
        self._cache_reads: dict[str, _Read] = {}
        self._parents_of: dict[str, tuple[str, ...]] = {}
        self._since_ns = since_ns
        self.backing: dict[str, str] = {}
        self.problems: list[DiskProblem] = []
        self.unfinished_dirs: set[str] = set()

    def mark_disks(self, entries: Sequence[os.DirEntry[str]], overlap: Overlap) -> None:
        """Mark every cache file on each disk's backing chain as used by it.

        Raises:
            OSError: a disk or a cache file on a chain cannot be read; the
                disks before it are marked and their problems logged.
        """
        headers = _flat(overlap.map_chunks(self._read_disks, entries))
        self._read_chains(
            [header.backing for header in headers if isinstance(header, _Header)],
            overlap,
        )
        for entry, header in zip(entries, headers, strict=True):
            self._mark(entry.path, header)

    def _mark(self, path: str, header: _Read) -> None:
        if isinstance(header, OSError):
            raise header
        if header.problem is not None:
            self._problem(path, header.problem)
        if header.unfinished:
            self.unfinished_dirs.add(os.path.basename(os.path.dirname(path)))
        todo = list(self._backing_names(header.backing))
        while todo:
            name = todo.pop()
            if name in self.backing:
                continue
            self.backing[name] = path
            if name not in self._parents_of:
                self._parents_of[name] = self._parents(name)
            todo.extend(self._parents_of[name])

    def _parents(self, name: str) -> tuple[str, ...]:
        """The backing names of a cache file, from its header read before."""
        read = self._cache_reads.pop(name)
        if isinstance(read, OSError):
            raise read
        if read.problem is not None:
            self._problem(os.path.join(self._cache.path, name), read.problem)
        return self._backing_names(read.backing)

    def _problem(self, path: str, reason: str) -> None:
        LOG.warning("Disk %s: %s; its backing file, if any, is unknown", path, reason)
        self.problems.append(DiskProblem(path, reason))

    def _read_chains(self, paths: list[str | None], overlap: Overlap) -> None:
        """Resolve the disks' backing files and read every cache file their
        chains reach, a level of the chains at a time."""
        while paths:
            names = dict.fromkeys(self._resolve_all(paths, overlap))
            todo = [
                name
                for name in names
                if name not in self._parents_of and name not in self._cache_reads
            ]
            reads = _flat(overlap.map_chunks(self._read_cache_files, todo))
            self._cache_reads.update(zip(todo, reads, strict=True))
            paths = [read.backing for read in reads if isinstance(read, _Header)]

    def _resolve_all(self, paths: Iterable[str | None], overlap: Overlap) -> list[str]:
        """The cache files the backing paths mean, each new one resolved."""
        unique = dict.fromkeys(path for path in paths if path is not None)
        new = [path for path in unique if path not in self._names_of_path]
        dirs = [
            d
            for d in dict.fromkeys(os.path.dirname(path) for path in new)
            if d not in self._realdirs
        ]
        found = _flat(overlap.map_chunks(_realpaths, dirs))
        self._realdirs.update(zip(dirs, found, strict=True))
        inside = [self._in_cache_dir(path) for path in new]
        elsewhere = [path for path, i in zip(new, inside, strict=True) if not i]
        keys = _flat(overlap.map_chunks(_stat_keys, elsewhere))
        self._inode_keys.update(zip(elsewhere, keys, strict=True))
        for path, in_cache_dir in zip(new, inside, strict=True):
            self._names_of_path[path] = self._resolve(path, in_cache_dir)
        return [name for path in unique for name in self._names_of_path[path]]

    def _backing_names(self, path: str | None) -> tuple[str, ...]:
        """The cache files a backing path may mean, resolved before; see _resolve."""
        return () if path is None else self._names_of_path[path]

    def _in_cache_dir(self, path: str) -> bool:
        dirname, name = os.path.split(path)
        return self._realdirs[dirname] == self._cache_dir and name in self._names

    def _resolve(self, path: str, in_cache_dir: bool) -> tuple[str, ...]:
        """The cache files ``path`` names: by path, else by inode; and by basename.

        (a) As the kernel resolves it: the directory with its symlinks and
        ``..`` resolved in order (never lexically first), then the last
        component. (b) By (st_dev, st_ino), for a path that reaches a cache
        file some other way (a hard link, another mount of the storage).
        (c) By the last component, as nova does, whatever directory the
        header names: nova-compute in a container or another mount point of
        a shared storage writes its own paths. Keeping more is the safe side.
        """
        name = os.path.basename(path)
        found: list[str] = []
        if in_cache_dir:
            found.append(name)
        else:
            by_inode = self._by_inode(self._inode_keys[path])
            if by_inode is not None:
                found.append(by_inode)
        if name in self._names and name not in found:
            found.append(name)
        return tuple(found)

    def _by_inode(self, key: FileKey | None) -> str | None:
        if key is None:
            return None
        if self._by_key is None:
            # Only a backing path outside the cache dir needs the inode map.
            self._by_key = {f.key: f.name for f in self._cache.files}
        return self._by_key.get(key)

    def _read_disks(self, entries: Sequence[os.DirEntry[str]]) -> list[_Read]:
        return [self._read_disk(entry) for entry in entries]

    def _read_disk(self, entry: os.DirEntry[str]) -> _Read:
        """A disk's backing name, or why it has none.

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
        except OSError as exc:
            # FileNotFoundError: removed since the listing, or a dangling link.
            return _failed(exc)
        try:
            raw = qcow2.read_backing_name(fd, path)
        except (OSError, qcow2.Qcow2Error) as exc:
            return _failed(exc)
        finally:
            os.close(fd)
        if raw is not None:
            return _Header(_path_of(raw, os.path.dirname(path)))
        unfinished = (
            st.st_mtime_ns >= self._since_ns and st.st_size <= _UNFINISHED_MAX_BYTES
        )
        return _Header(None, None, unfinished)

    def _read_cache_files(self, names: Sequence[str]) -> list[_Read]:
        return [self._read_cache_file(name) for name in names]

    def _read_cache_file(self, name: str) -> _Read:
        """The backing name of a cache file, read relative to the scanned dir.

        One replaced since the cache scan (a symlink, a FIFO) is not followed.
        """
        try:
            raw = qcow2.read_backing_file(name, dir_fd=self._cache_fd)
        except (OSError, qcow2.Qcow2Error) as exc:
            return _failed(exc)
        return _NOTHING if raw is None else _Header(_path_of(raw, self._cache.path))


def _failed(exc: OSError | qcow2.Qcow2Error) -> _Read:
    """What a failed read tells the walk: a problem, nothing, or an error.

    A malformed header or what is not a regular file is a problem (the
    chain stops there); a file gone is nothing to read; any other error
    stops the scan where the walk meets it.
    """
    if isinstance(exc, qcow2.Qcow2Error):
        return _Header(None, str(exc))
    if isinstance(exc, safefs.NotRegularFile):
        return _Header(None, exc.strerror)
    if isinstance(exc, FileNotFoundError):
        return _NOTHING
    return exc


def _path_of(raw: bytes, base_dir: str) -> str:
    """A backing name as a path; a relative one is from ``base_dir``."""
    name = os.fsdecode(raw)
    return name if name.startswith("/") else os.path.join(base_dir, name)


def _realpaths(dirs: Sequence[str]) -> list[str]:
    return [os.path.realpath(d) for d in dirs]


def _stat_keys(paths: Sequence[str]) -> list[FileKey | None]:
    """(st_dev, st_ino) of what each path leads to; None if it leads nowhere."""
    keys: list[FileKey | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            keys.append(None)
        else:
            keys.append((st.st_dev, st.st_ino))
    return keys


def _flat(parts: Iterable[list[T]]) -> list[T]:
    """The slices' results as one list, in order."""
    return [item for part in parts for item in part]
