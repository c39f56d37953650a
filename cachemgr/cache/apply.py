"""Apply: the only code that changes the cache dir.

It works relative to an open descriptor of the cache dir, so a path swapped
after the scan cannot redirect it, and removes a file only under nova's lock
after re-checking that it is still the file the plan decided on.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable

from cachemgr.cache import locks
from cachemgr.cache.outcome import ApplyResult, Outcome, Result
from cachemgr.cache.plan import Action, Decision
from cachemgr.cache.snapshot import CacheSnapshot

__all__ = ["ApplyResult", "Outcome", "Result", "apply_plan"]


def apply_plan(
    decisions: Iterable[Decision],
    cache: CacheSnapshot,
    lock_path: str,
    lock_wait_seconds: float,
    stop_requested: Callable[[], bool] | None = None,
) -> ApplyResult:
    """Touch the TOUCH decisions and remove the REMOVE ones; keep the rest.

    A failure on one file is recorded in its outcome and the others go on.
    ``stop_requested`` is asked before each file: once it answers True the
    remaining decisions are left undone, without an outcome, so a stopping
    daemon never cuts a file operation in half.
    """
    todo = [d for d in decisions if d.action is not Action.KEEP]
    if not todo:
        return ApplyResult(outcomes=())
    dir_fd = os.open(cache.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dir_stat = os.fstat(dir_fd)
        if (dir_stat.st_dev, dir_stat.st_ino) != cache.dir_key:
            detail = f"{cache.path} is not the directory that was scanned"
            return ApplyResult(tuple(Outcome(d, Result.CHANGED, detail) for d in todo))
        outcomes = []
        for decision in todo:
            if stop_requested is not None and stop_requested():
                break
            if decision.action is Action.TOUCH:
                outcomes.append(_touch(dir_fd, decision))
            else:
                outcomes.append(_remove(dir_fd, decision, lock_path, lock_wait_seconds))
        return ApplyResult(outcomes=tuple(outcomes))
    finally:
        os.close(dir_fd)


def _touch(dir_fd: int, decision: Decision) -> Outcome:
    """Set the file's times to now, as nova does for a base file in use."""
    try:
        os.utime(decision.file.name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        return _failure(decision, exc)
    return Outcome(decision, Result.DONE)


def _remove(
    dir_fd: int, decision: Decision, lock_path: str, lock_wait_seconds: float
) -> Outcome:
    """Unlink the file under nova's lock if it is still the one planned."""
    file = decision.file
    try:
        with locks.external_lock(lock_path, file.name, lock_wait_seconds) as taken:
            if not taken:
                detail = f"nova's lock held by another process for {lock_wait_seconds}s"
                return Outcome(decision, Result.LOCKED, detail)
            st = os.stat(file.name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                return Outcome(decision, Result.CHANGED, "no longer a regular file")
            if (st.st_dev, st.st_ino) != file.key:
                return Outcome(decision, Result.CHANGED, "replaced since the scan")
            if st.st_mtime_ns != file.mtime_ns:
                return Outcome(decision, Result.CHANGED, "modified since the scan")
            os.unlink(file.name, dir_fd=dir_fd)
    except OSError as exc:
        return _failure(decision, exc)
    return Outcome(decision, Result.DONE)


def _failure(decision: Decision, exc: OSError) -> Outcome:
    if exc.errno == errno.ENOENT:
        return Outcome(decision, Result.VANISHED, "gone before it was reached")
    return Outcome(decision, Result.FAILED, f"{exc.strerror} (errno {exc.errno})")
