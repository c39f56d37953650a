"""Apply: the only code that changes the cache dir.

It works relative to an open descriptor of the cache dir, so a path swapped
after the scan cannot redirect it, and removes a file only under nova's lock
after re-checking that it is still the file the plan decided on and that no
disk written since the disk scan uses it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from cachemgr.cache import locks, safefs, scan
from cachemgr.cache.outcome import ApplyResult, FileOutcome, Result
from cachemgr.cache.overlap import Overlap
from cachemgr.cache.plan import Action, Decision
from cachemgr.cache.snapshot import CacheSnapshot, DiskSnapshot

__all__ = ["ApplyResult", "FileOutcome", "Result", "apply_plan"]

# The least time the disk re-check may hold nova's lock, for a lock wait of
# 0 s: stat'ing 20,000 instance directories takes tens of milliseconds.
_MIN_RECHECK_SECONDS = 1.0
# Removals whose locks are held together for one disk re-check: its sweep
# stats every instance directory (about 75 ms at 20,000), which one per
# file would make 70,000 removals take hours. Holding every lock of the
# batch while the sweep runs keeps it as sound as a sweep per file.
_BATCH = 64
_BUSY = object()
"""What _Remover._lock answers for a lock another process holds, unwaited."""


def apply_plan(
    decisions: Iterable[Decision],
    cache: CacheSnapshot,
    disks: DiskSnapshot,
    lock_path: str,
    lock_wait_seconds: float,
    stop_requested: Callable[[], bool] | None = None,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    scan_concurrency: int = 1,
) -> ApplyResult:
    """Touch the TOUCH decisions and remove the REMOVE ones; keep the rest.

    A failure on one file is recorded in its outcome and the others go on.
    ``stop_requested`` is asked before each file: once it answers True the
    remaining decisions are left undone, without an outcome, and the result
    says it stopped, so a stopping daemon never cuts a file operation in half.
    The refreshes come first, then the removals, in name order: each takes
    nova's lock (waiting for it), and the files after it whose locks are
    free at once join it for one shared re-check of the disks.
    ``on_outcome`` is called with each outcome as soon as it is made, before
    the next file: the log tells of a removal even if the pass is killed
    right after it (DESIGN 1.7). ``scan_concurrency`` bounds the overlapped
    stats of the re-check's sweep on slow storage.
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
        asked = stop_requested if stop_requested is not None else lambda: False
        for decision in todo:
            if decision.action is Action.TOUCH:
                if asked():
                    return ApplyResult.of(outcomes, stopped=True)
                record(_touch(dir_fd, decision))
        removals = [d for d in todo if d.action is Action.REMOVE]
        with (
            Overlap(scan_concurrency) as overlap,
            _Remover(
                dir_fd,
                lock_path,
                lock_wait_seconds,
                scan.DiskRecheck(disks, cache, dir_fd, overlap),
            ) as remover,
        ):
            done = 0
            while done < len(removals):
                if asked():
                    return ApplyResult.of(outcomes, stopped=True)
                done = remover.remove(removals, done, asked, record)
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

    def remove(
        self,
        removals: Sequence[Decision],
        start: int,
        stop_requested: Callable[[], bool],
        record: Callable[[FileOutcome], None],
    ) -> int:
        """Remove ``removals[start]`` and the batch after it; the next index.

        The first file's lock is waited for as long as a lock may be; the
        files after it join while their locks are free at once (a busy one
        ends the batch and comes next, waited for in its turn), up to
        _BATCH and until a stop is asked for. One re-check of the disks then
        serves the whole batch, and each file is unlinked and told at once,
        in order: nova never waits on cachemgr for more than a sweep.
        """
        with contextlib.ExitStack() as held:
            first = removals[start]
            kept = self._lock(held, first)
            if kept is not None:
                record(kept)
                return start + 1
            batch = [first]
            following = start + 1
            while (
                following < len(removals)
                and len(batch) < _BATCH
                and not stop_requested()
            ):
                decision = removals[following]
                kept = self._lock(held, decision, join=True)
                if kept is _BUSY:
                    break
                following += 1
                if kept is None:
                    batch.append(decision)
                else:
                    record(kept)  # type: ignore[arg-type]
            users = self._recheck_users()
            for decision in batch:
                record(self._unlink_if_unchanged(decision, users))
        return following

    def _lock(
        self, held: contextlib.ExitStack, decision: Decision, *, join: bool = False
    ) -> FileOutcome | object | None:
        """Take the file's nova lock on ``held``.

        None if taken. To ``join`` a batch the lock must be free at once, or
        the answer is _BUSY; otherwise it is waited for up to the lock wait.
        Else the outcome that keeps the file (lock held too long, lock file
        unsafe, an error).
        """
        try:
            lock_dir = self._lock_dir()
            if lock_dir is None:
                return FileOutcome(decision, Result.LOCKED, str(self._unusable))
            wait = 0.0 if join else self._wait
            if held.enter_context(lock_dir.lock(decision.file.name, wait)):
                return None
            if join:
                return _BUSY
            detail = f"nova's lock held by another process for {wait}s"
            return FileOutcome(decision, Result.LOCKED, detail)
        except locks.UnsafeLockFile as exc:
            return FileOutcome(decision, Result.LOCKED, str(exc))
        except OSError as exc:
            return _failure(decision, exc)

    def _recheck_users(self) -> Mapping[str, str] | None:
        """The disks written since the scan, by the cache file they use;
        None when the re-check could not end within its time."""
        try:
            return self._recheck.users(time.monotonic() + self._recheck_seconds)
        except scan.RecheckTooSlow:
            return None

    def _lock_dir(self) -> locks.LockDir | None:
        if self._locks is None and self._unusable is None:
            try:
                self._locks = locks.LockDir(self._lock_path)
            except locks.UnsafeLockFile as exc:
                self._unusable = str(exc)
        return self._locks

    def _unlink_if_unchanged(
        self, decision: Decision, users: Mapping[str, str] | None
    ) -> FileOutcome:
        file = decision.file
        try:
            st = os.stat(file.name, dir_fd=self._dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                return FileOutcome(decision, Result.CHANGED, "no longer a regular file")
            if (st.st_dev, st.st_ino) != file.key:
                return FileOutcome(decision, Result.CHANGED, "replaced since the scan")
            if st.st_mtime_ns != file.mtime_ns:
                return FileOutcome(decision, Result.CHANGED, "modified since the scan")
            if users is None:
                detail = (
                    "the disks written since the scan could not be read again "
                    f"within {self._recheck_seconds}s"
                )
                return FileOutcome(decision, Result.CHANGED, detail)
            disk = users.get(file.name)
            if disk is not None:
                detail = f"backing file of {disk}, a disk written since the scan"
                return FileOutcome(decision, Result.CHANGED, detail)
            os.unlink(file.name, dir_fd=self._dir_fd)
        except OSError as exc:
            return _failure(decision, exc)
        return FileOutcome(decision, Result.DONE)


def _failure(decision: Decision, exc: OSError) -> FileOutcome:
    if exc.errno == errno.ENOENT:
        return FileOutcome(decision, Result.VANISHED, "gone before it was reached")
    return FileOutcome(decision, Result.FAILED, f"{exc.strerror} (errno {exc.errno})")
