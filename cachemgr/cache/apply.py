"""Apply: the only code that changes the cache dir.

It works relative to an open descriptor of the cache dir, so a path swapped
after the scan cannot redirect it, and removes a file only under nova's lock
after re-checking that it is still the file the plan decided on and that no
disk written since the disk scan uses it.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterable

from cachemgr.cache import locks, safefs, scan
from cachemgr.cache.outcome import ApplyResult, FileOutcome, Result
from cachemgr.cache.plan import Action, Decision
from cachemgr.cache.snapshot import CacheSnapshot, DiskSnapshot

__all__ = ["ApplyResult", "FileOutcome", "Result", "apply_plan"]

# The least time the disk re-check may hold nova's lock, for a lock wait of
# 0 s: stat'ing 20,000 instance directories takes tens of milliseconds.
_MIN_RECHECK_SECONDS = 1.0


def apply_plan(
    decisions: Iterable[Decision],
    cache: CacheSnapshot,
    disks: DiskSnapshot,
    lock_path: str,
    lock_wait_seconds: float,
    stop_requested: Callable[[], bool] | None = None,
    on_outcome: Callable[[FileOutcome], None] | None = None,
) -> ApplyResult:
    """Touch the TOUCH decisions and remove the REMOVE ones; keep the rest.

    A failure on one file is recorded in its outcome and the others go on.
    ``stop_requested`` is asked before each file: once it answers True the
    remaining decisions are left undone, without an outcome, and the result
    says it stopped, so a stopping daemon never cuts a file operation in half.
    ``on_outcome`` is called with each outcome as soon as it is made, before
    the next file: the log tells of a removal even if the pass is killed
    right after it (DESIGN 1.7).
    """
    todo = [d for d in decisions if d.action is not Action.KEEP]
    if not todo:
        return ApplyResult.of(())
    outcomes: list[FileOutcome] = []

    def record(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    dir_fd, dir_stat = safefs.open_directory(cache.path, follow=True)
    try:
        if (dir_stat.st_dev, dir_stat.st_ino) != cache.dir_key:
            detail = f"{cache.path} is not the directory that was scanned"
            for decision in todo:
                record(FileOutcome(decision, Result.CHANGED, detail))
            return ApplyResult.of(outcomes)
        recheck = scan.DiskRecheck(disks, cache, dir_fd)
        with _Remover(dir_fd, lock_path, lock_wait_seconds, recheck) as remover:
            for decision in todo:
                if stop_requested is not None and stop_requested():
                    return ApplyResult.of(outcomes, stopped=True)
                if decision.action is Action.TOUCH:
                    record(_touch(dir_fd, decision))
                else:
                    record(remover.remove(decision))
        return ApplyResult.of(outcomes)
    finally:
        os.close(dir_fd)


def _touch(dir_fd: int, decision: Decision) -> FileOutcome:
    """Set the file's times to now, as nova does for a base file in use.

    Through a descriptor of the file itself, opened as DESIGN 1.8 says, and
    only if it is still the file the scan saw.
    """
    file = decision.file
    try:
        fd, st = safefs.open_regular(file.name, dir_fd=dir_fd)
    except safefs.NotRegularFile:
        return FileOutcome(decision, Result.CHANGED, "no longer a regular file")
    except OSError as exc:
        return _failure(decision, exc)
    try:
        if (st.st_dev, st.st_ino) != file.key:
            return FileOutcome(decision, Result.CHANGED, "replaced since the scan")
        os.utime(fd)
    except OSError as exc:
        return _failure(decision, exc)
    finally:
        os.close(fd)
    return FileOutcome(decision, Result.DONE)


class _Remover:
    """Removes planned files under nova's locks, the locks dir opened once.

    A locks dir that cannot be opened safely (a symlink planted in its
    place) keeps every file of the pass; so does a lock file that cannot,
    for its own file. Both are told as a lock that could not be taken.

    The disk re-check holds nova's lock no longer than cachemgr waits for
    it (at least _MIN_RECHECK_SECONDS): a spawn waits on cachemgr no longer
    than cachemgr would wait on the spawn.
    """

    def __init__(
        self,
        dir_fd: int,
        lock_path: str,
        lock_wait_seconds: float,
        recheck: scan.DiskRecheck,
    ) -> None:
        self._dir_fd = dir_fd
        self._lock_path = lock_path
        self._wait = lock_wait_seconds
        self._recheck = recheck
        self._recheck_seconds = max(lock_wait_seconds, _MIN_RECHECK_SECONDS)
        self._locks: locks.LockDir | None = None
        self._unusable: str | None = None

    def __enter__(self) -> _Remover:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._locks is not None:
            self._locks.close()

    def remove(self, decision: Decision) -> FileOutcome:
        """Unlink the file under nova's lock if it is still the one planned."""
        try:
            lock_dir = self._lock_dir()
            if lock_dir is None:
                return FileOutcome(decision, Result.LOCKED, str(self._unusable))
            with lock_dir.lock(decision.file.name, self._wait) as taken:
                if not taken:
                    detail = f"nova's lock held by another process for {self._wait}s"
                    return FileOutcome(decision, Result.LOCKED, detail)
                return self._unlink_if_unchanged(decision)
        except locks.UnsafeLockFile as exc:
            return FileOutcome(decision, Result.LOCKED, str(exc))
        except OSError as exc:
            return _failure(decision, exc)

    def _lock_dir(self) -> locks.LockDir | None:
        if self._locks is None and self._unusable is None:
            try:
                self._locks = locks.LockDir(self._lock_path)
            except locks.UnsafeLockFile as exc:
                self._unusable = str(exc)
        return self._locks

    def _unlink_if_unchanged(self, decision: Decision) -> FileOutcome:
        file = decision.file
        st = os.stat(file.name, dir_fd=self._dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            return FileOutcome(decision, Result.CHANGED, "no longer a regular file")
        if (st.st_dev, st.st_ino) != file.key:
            return FileOutcome(decision, Result.CHANGED, "replaced since the scan")
        if st.st_mtime_ns != file.mtime_ns:
            return FileOutcome(decision, Result.CHANGED, "modified since the scan")
        deadline = time.monotonic() + self._recheck_seconds
        try:
            disk = self._recheck.user_of(file.name, deadline)
        except scan.RecheckTooSlow:
            detail = (
                "the disks written since the scan could not be read again "
                f"within {self._recheck_seconds}s"
            )
            return FileOutcome(decision, Result.CHANGED, detail)
        if disk is not None:
            detail = f"backing file of {disk}, a disk written since the scan"
            return FileOutcome(decision, Result.CHANGED, detail)
        os.unlink(file.name, dir_fd=self._dir_fd)
        return FileOutcome(decision, Result.DONE)


def _failure(decision: Decision, exc: OSError) -> FileOutcome:
    if exc.errno == errno.ENOENT:
        return FileOutcome(decision, Result.VANISHED, "gone before it was reached")
    return FileOutcome(decision, Result.FAILED, f"{exc.strerror} (errno {exc.errno})")
