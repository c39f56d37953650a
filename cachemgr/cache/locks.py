"""The external locks cachemgr shares with nova-compute (DESIGN 1.5).

nova-compute holds ``instances_path/locks/nova-<basename>`` (an fcntl lockf
lock through oslo.concurrency) while it downloads or copies a base file.
cachemgr takes the same lock before removing one, never waiting long.

Lock files are never unlinked: unlinking a lock file that another process
holds or waits on breaks the exclusion (the next locker gets a new inode).
They are empty, so leaving them costs an inode each.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from oslo_concurrency import lockutils

__all__ = [
    "LOCKS_DIR_NAME",
    "LOCK_FILE_PREFIX",
    "REMOVER_LOCK_PREFIX",
    "external_lock",
    "remover_lock",
]

LOCK_FILE_PREFIX = "nova-"
LOCKS_DIR_NAME = "locks"
REMOVER_LOCK_PREFIX = "cachemgr-"


@contextlib.contextmanager
def external_lock(
    lock_path: str, name: str, wait_seconds: float, prefix: str = LOCK_FILE_PREFIX
) -> Iterator[bool]:
    """Hold the lock ``<prefix><name>`` for the block; yield whether it was taken.

    A lock still held by another process after ``wait_seconds`` yields
    False, and the caller must leave the file alone.
    """
    if not os.path.isdir(lock_path):
        # Only the locks dir itself: never create a missing instances_path.
        with contextlib.suppress(FileExistsError):
            os.mkdir(lock_path, mode=0o755)
            _chown_like(lock_path, os.path.dirname(lock_path))
    lock = lockutils.external_lock(name, lock_file_prefix=prefix, lock_path=lock_path)
    if not lock.acquire(blocking=True, timeout=wait_seconds, delay=0.01, max_delay=0.1):
        yield False
        return
    try:
        _chown_like(lock.path, lock_path)
        yield True
    finally:
        lock.release()


def remover_lock(lock_path: str) -> contextlib.AbstractContextManager[bool]:
    """cachemgr's own lock: one host of a shared storage removes at a time.

    Not waited on: the host that does not get it refreshes and reports, and
    removes on a later pass.
    """
    return external_lock(lock_path, "remover", 0.0, prefix=REMOVER_LOCK_PREFIX)


def _chown_like(path: str, model: str) -> None:
    """Give ``path`` the owner of ``model`` when root created it.

    Run as root, cachemgr would otherwise leave a root-owned locks dir or
    lock file that nova-compute, running as its own user, cannot open for
    writing: its next download of that image would fail.
    """
    if os.geteuid() != 0:
        return
    owner = os.stat(model)
    st = os.stat(path)
    if (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
        os.chown(path, owner.st_uid, owner.st_gid)
