"""The external locks cachemgr shares with nova-compute (DESIGN 1.5, 1.8).

nova-compute holds ``instances_path/locks/nova-<basename>`` (an fcntl lockf
lock through oslo.concurrency) while it downloads or copies a base file.
cachemgr takes the same lock before removing one, never waiting long.

oslo.concurrency opens a lock file by path, following a symlink and
blocking on a FIFO; the owner of instances_path could plant either there.
So cachemgr opens the locks dir and each lock file itself (no symlink
followed, no blocking, regular files only, owner changed through the
descriptor) and takes the same POSIX ``lockf`` lock on that descriptor: a
``lockf`` on the same file excludes oslo.concurrency's holders and theirs
exclude it, whichever process took it first.

Lock files are never unlinked: unlinking a lock file that another process
holds or waits on breaks the exclusion (the next locker gets a new inode).
They are empty, so leaving them costs an inode each.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator

from cachemgr.cache import safefs
from cachemgr.exceptions import CachemgrError

__all__ = [
    "LOCKS_DIR_NAME",
    "LOCK_FILE_PREFIX",
    "REMOVER_LOCK_PREFIX",
    "LockDir",
    "UnsafeLockFile",
    "external_lock",
]

LOCK_FILE_PREFIX = "nova-"
LOCKS_DIR_NAME = "locks"
REMOVER_LOCK_PREFIX = "cachemgr-"
# How often a held lock is tried again while waiting, as oslo.concurrency does.
_RETRY_SECONDS = (0.01, 0.1)


class UnsafeLockFile(CachemgrError):
    """The locks dir or a lock file is not what it must be (a symlink, a FIFO...).

    Not an OSError, so that no caller can take it for a passing I/O error:
    each one decides what a lock it cannot trust means for its file.
    """

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} cannot be opened safely: {why}")


class LockDir:
    """``instances_path/locks``, opened once for the locks of one stage.

    The dir is made (mode 0755, the owner of instances_path) when missing,
    but a missing instances_path is never made.

    Raises:
        UnsafeLockFile: the locks dir is a symlink or not a directory.
        OSError: instances_path or the locks dir cannot be opened.
    """

    def __init__(self, lock_path: str) -> None:
        self.path = lock_path
        parent, name = os.path.split(lock_path)
        parent_fd, parent_st = safefs.open_directory(parent, follow=True)
        try:
            self._fd = _open_or_make_dir(parent_fd, parent_st, name, lock_path)
        finally:
            os.close(parent_fd)
        self._owner = os.fstat(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> LockDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def lock(
        self, name: str, wait_seconds: float, prefix: str = LOCK_FILE_PREFIX
    ) -> Iterator[bool]:
        """Hold ``<prefix><name>`` for the block; yield whether it was taken.

        A lock still held by another process after ``wait_seconds`` yields
        False, and the caller must leave the file alone.

        Raises:
            UnsafeLockFile: the lock file is a symlink, FIFO, device...
            OSError: it cannot be opened or locked.
        """
        file_name = prefix + name.replace("/", "_")
        try:
            fd, _ = safefs.open_regular(
                file_name, os.O_RDWR | os.O_CREAT, dir_fd=self._fd
            )
        except safefs.NotRegularFile as exc:
            raise UnsafeLockFile(
                os.path.join(self.path, file_name), f"it is {exc.what}"
            ) from None
        try:
            safefs.give_like(fd, self._owner)
            taken = _lockf(fd, wait_seconds)
            try:
                yield taken
            finally:
                if taken:
                    fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _open_or_make_dir(
    parent_fd: int, parent_st: os.stat_result, name: str, path: str
) -> int:
    try:
        try:
            fd, _ = safefs.open_directory(name, dir_fd=parent_fd)
            return fd
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, mode=0o755, dir_fd=parent_fd)
            fd, _ = safefs.open_directory(name, dir_fd=parent_fd)
            safefs.give_like(fd, parent_st)
            return fd
    except safefs.NotRegularFile as exc:
        raise UnsafeLockFile(path, f"it is {exc.what}") from None
    except NotADirectoryError:
        raise UnsafeLockFile(path, "it is not a directory") from None


def _lockf(fd: int, wait_seconds: float) -> bool:
    """Take an exclusive lockf lock, trying again until ``wait_seconds`` pass."""
    deadline = time.monotonic() + wait_seconds
    delay = _RETRY_SECONDS[0]
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, _RETRY_SECONDS[1])


@contextlib.contextmanager
def external_lock(
    lock_path: str, name: str, wait_seconds: float, prefix: str = LOCK_FILE_PREFIX
) -> Iterator[bool]:
    """One lock of ``lock_path`` for the block; see LockDir.lock."""
    with (
        LockDir(lock_path) as lock_dir,
        lock_dir.lock(name, wait_seconds, prefix) as taken,
    ):
        yield taken
