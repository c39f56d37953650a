"""The remover lock of a storage, taken through tooz (DESIGN 1.8, 1.11).

Coordination is OpenStack's own: ``[coordination] backend_url`` names a
tooz backend, so a cloud that runs etcd, Redis or ZooKeeper for cinder or
octavia points cachemgr at it, and a host that dies loses the lock with its
session rather than leaving it to a stale file.

The default, and any ``file://`` URL, is not tooz's FileDriver: that opens
lock files by path through fasteners (``open(path, 'a')``: a planted
symlink is followed, a FIFO blocks the pass, a file is created wherever a
link points) and makes ``groups/`` and ``tmp/`` by path, which DESIGN 1.8
forbids under instances_path. :class:`SafeFileDriver` subclasses tooz's
bare CoordinationDriver rather than FileDriver, so that none of that code
(its start, its groups, its driver lock) can run: its one lock is the same
``lockf`` on the same file, ``<dir>/<name>``, opened through
:class:`cachemgr.cache.locks.LockDir`. Holders of tooz's FileDriver, of
oslo.concurrency and of earlier cachemgr releases (which lock
``locks/cachemgr-remover`` themselves) therefore exclude it and it
excludes them, which keeps a rolling upgrade safe.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from importlib import metadata

import tooz
from tooz import coordination, locking, utils

from cachemgr.cache import locks
from cachemgr.exceptions import CachemgrError, ConfigError

__all__ = [
    "REMOVER_LOCK_NAME",
    "CoordinationError",
    "SafeFileDriver",
    "SafeFileLock",
    "StorageCoordinator",
    "check_backend_url",
]

LOG = logging.getLogger(__name__)

OPTION = "[coordination] backend_url"
REMOVER_LOCK_NAME = locks.REMOVER_LOCK_PREFIX + "remover"
_FILE_SCHEME = "file"
# Query parameters whose values are never shown (tooz's redis driver takes
# ?password= and ?sentinel_password=, etcd3gw's ?token=...).
_SECRET_KEY = re.compile("pass|secret|token", re.IGNORECASE)
# POSIX record locks belong to the process, not to a descriptor: a second
# lockf of the same file in this process would succeed, and closing it would
# drop the first. So the threads of this process take turns first.
_IN_PROCESS: dict[str, threading.Lock] = {}


class CoordinationError(CachemgrError):
    """The coordination backend is unreachable or failed; the message names
    ``[coordination] backend_url`` (its password masked) and the cause."""


def check_backend_url(url: str) -> None:
    """Fail now, by name, on a backend_url that no coordinator can use.

    Empty and ``file:///dir`` URLs are cachemgr's own file driver; other
    schemes must name a tooz backend (entry point group ``tooz.backends``)
    whose client library is installed.

    Raises:
        ConfigError: unknown scheme, a backend whose client library is
            missing, an option its driver cannot read, or a file URL that
            is not an absolute directory.
    """
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    shown = f"{OPTION} = {redact_url(url)}"
    if parts.scheme == _FILE_SCHEME:
        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError(
                f"{shown}: a file URL names an absolute directory, file:///dir"
            )
        return
    backends = {ep.name: ep for ep in metadata.entry_points(group="tooz.backends")}
    if parts.scheme not in backends:
        known = ", ".join(sorted({*backends, _FILE_SCHEME}))
        raise ConfigError(f"{shown}: unknown scheme {parts.scheme!r}; known: {known}")
    try:
        backends[parts.scheme].load()
    except ImportError as exc:
        raise ConfigError(
            f"{shown}: tooz's {parts.scheme} driver cannot be loaded: {exc} "
            "(install its client library)"
        ) from None
    try:
        # Builds the driver without connecting: its options are read now.
        coordination.get_coordinator(url, b"cachemgr-check")
    except (tooz.ToozError, ValueError) as exc:
        cause = str(exc) or type(exc).__name__
        for secret in _secrets(url):
            cause = cause.replace(secret, "***")
        raise ConfigError(f"{shown}: {cause}") from None


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ***."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = urllib.parse.urlencode(
        [
            (key, "***" if _SECRET_KEY.search(key) else value)
            for key, value in urllib.parse.parse_qsl(parts.query)
        ],
        safe="*",
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _secrets(url: str) -> list[str]:
    """What :func:`redact_url` hides, to scrub from a driver's messages too."""
    parts = urllib.parse.urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [
        value
        for key, value in urllib.parse.parse_qsl(parts.query)
        if value and _SECRET_KEY.search(key)
    ]
    return found


class SafeFileLock(locking.Lock):
    """An exclusive ``lockf`` lock on ``<directory>/<name>``, opened safely.

    The directory and the file are opened for each acquire, so that the
    lock is always taken on the file that the path names now, as
    oslo.concurrency and tooz's FileDriver do. Shared locks are not offered.
    """

    def __init__(self, directory: str, name: bytes) -> None:
        super().__init__(name)
        self._directory = directory
        self._threads = _IN_PROCESS.setdefault(
            f"{directory}/{name.decode()}", threading.Lock()
        )
        self._held: contextlib.ExitStack | None = None

    def acquire(
        self,
        blocking: bool | float = True,
        shared: bool = False,
        timeout: float | None = None,
    ) -> bool:
        """Take the lock, waiting as tooz's locks do (see tooz.locking.Lock).

        Raises:
            UnsafeLockFile: the directory or the lock file is a symlink, a
                FIFO, a directory...
            tooz.ToozError: they cannot be opened or locked (an OSError).
        """
        if shared:
            raise tooz.NotImplemented("shared file locks are not supported")
        blocking, timeout = utils.convert_blocking(blocking, timeout)
        wait = (timeout if timeout is not None else math.inf) if blocking else 0.0
        deadline = time.monotonic() + wait
        turn = -1 if wait == math.inf else min(wait, threading.TIMEOUT_MAX)
        if not self._threads.acquire(timeout=turn):
            return False
        stack = contextlib.ExitStack()
        stack.callback(self._threads.release)
        try:
            lock_dir = stack.enter_context(locks.LockDir(self._directory))
            left = max(deadline - time.monotonic(), 0.0)
            taken = stack.enter_context(
                lock_dir.lock(self.name.decode(), left, prefix="")
            )
        except OSError as exc:
            stack.close()
            raise tooz.ToozError(str(exc)) from exc
        except BaseException:
            stack.close()
            raise
        if not taken:
            stack.close()
            return False
        self._held = stack
        return True

    def release(self) -> bool:
        """Unlock and close the lock file; False when it was not held."""
        held, self._held = self._held, None
        if held is None:
            return False
        held.close()
        return True

    def is_still_owner(self) -> bool:
        return self._held is not None


class SafeFileDriver(coordination.CoordinationDriver):
    """A tooz driver whose only service is :class:`SafeFileLock` in one
    directory. Groups and leader election are tooz's NotImplemented:
    cachemgr uses none. Built directly, not through tooz's stevedore
    namespace, so that ``file://`` URLs of other programs still load tooz's
    FileDriver."""

    CHARACTERISTICS = (
        coordination.Characteristics.NON_TIMEOUT_BASED,
        coordination.Characteristics.DISTRIBUTED_ACROSS_THREADS,
        coordination.Characteristics.DISTRIBUTED_ACROSS_PROCESSES,
    )

    def __init__(self, member_id: bytes, directory: str) -> None:
        super().__init__(member_id, None, {})
        self._directory = os.path.normpath(directory)

    def get_lock(self, name: bytes) -> SafeFileLock:
        return SafeFileLock(self._directory, name)


class StorageCoordinator:
    """The remover lock of one storage, through tooz.

    ``backend_url`` empty means the file driver in ``lock_path``
    (``instances_path/locks``); a ``file://`` URL, the file driver in its
    path. Build it in the process that uses it (after oslo.service's fork):
    a backend's connection and heartbeat thread do not survive a fork.

    Raises:
        ConfigError: ``backend_url`` fails :func:`check_backend_url`.
        CoordinationError: tooz refuses the URL's options.
    """

    def __init__(self, backend_url: str, member_id: str, lock_path: str) -> None:
        check_backend_url(backend_url)
        self._shown = (
            redact_url(backend_url) if backend_url else f"(unset: {lock_path})"
        )
        self._secrets = _secrets(backend_url)
        member = member_id.encode()
        parts = urllib.parse.urlsplit(backend_url)
        self._driver: coordination.CoordinationDriver
        if not backend_url:
            self._driver = SafeFileDriver(member, lock_path)
        elif parts.scheme == _FILE_SCHEME:
            self._driver = SafeFileDriver(member, parts.path)
        else:
            with self._backend_errors("use it"):
                self._driver = coordination.get_coordinator(backend_url, member)

    def start(self) -> None:
        """Connect, and start the heartbeat of backends whose sessions need
        one (the lock of a host that stops beating expires); no-op when
        started.

        An unreachable backend is given up on when tooz's client gives up:
        for Redis after about a minute (tooz tries a refused connection 15
        times, redis-py 8 retries each 10 times with backoff); the URL's
        options cannot shorten it.

        Raises:
            CoordinationError: the backend cannot be reached.
        """
        if not self._driver.is_started:
            with self._backend_errors("connect to it"):
                self._driver.start(start_heart=True)

    def stop(self) -> None:
        """Disconnect (releasing what is held); no-op when stopped. A backend
        that fails now is only logged: its session expires on its own."""
        if not self._driver.is_started:
            return
        try:
            with self._backend_errors("disconnect from it"):
                self._driver.stop()
        except CoordinationError as exc:
            LOG.warning("%s", exc)

    def __enter__(self) -> StorageCoordinator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def remover_lock(self) -> Iterator[bool]:
        """Hold the remover lock for the block, never waiting: yield True when
        taken, False when another member holds it. Starts the coordinator
        when it is not started.

        Raises:
            UnsafeLockFile: file driver: the lock file or its directory
                cannot be opened safely (DESIGN 1.8: nothing is removed).
            CoordinationError: the backend cannot be reached or failed.
        """
        self.start()
        lock = self._driver.get_lock(REMOVER_LOCK_NAME.encode())
        with self._backend_errors("take the remover lock"):
            taken = lock.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self._release(lock)

    def _release(self, lock: locking.Lock) -> None:
        """Release, only logging a failure: the block's work is done, and a
        lock that cannot be released expires with the session."""
        try:
            with self._backend_errors("release the remover lock"):
                released = lock.release()
        except CoordinationError as exc:
            LOG.warning("%s", exc)
            return
        if not released:
            LOG.warning(
                "%s = %s: the remover lock was lost before its release (its "
                "session expired): another host may have removed files meanwhile",
                OPTION,
                self._shown,
            )

    @contextlib.contextmanager
    def _backend_errors(self, doing: str) -> Iterator[None]:
        """Turn tooz's errors into a CoordinationError that names the option
        and shows no password, not even one a driver put in its message."""
        try:
            yield
        # A ValueError is an option of the URL that tooz cannot convert
        # (?db=x, ?lock_timeout=x), raised when built or when started.
        except (tooz.ToozError, ValueError) as exc:
            cause = str(exc) or type(exc).__name__
            for secret in self._secrets:
                cause = cause.replace(secret, "***")
            raise CoordinationError(
                f"{OPTION} = {self._shown}: cannot {doing}: {cause}"
            ) from None
