"""nova's shared-storage registry: ``instances_path/compute_nodes``.

nova-compute records ``{host: epoch seconds}`` there under the lock
``nova-storage-registry-lock``; the hosts seen in the last 24 hours share
the storage, and their instances' base files are in use. cachemgr reads and
writes it the same way, so nova-compute and cachemgr on any host of the
storage see each other. The write is atomic (temporary file, fsync, rename):
a crash never leaves a truncated registry.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
from collections.abc import Iterator

from cachemgr.cache import locks, safefs
from cachemgr.exceptions import InventoryUnavailable, InventoryUntrustworthy
from cachemgr.inventory.fields import show

__all__ = [
    "LOCK_WAIT_SECONDS",
    "RECENT_SECONDS",
    "REGISTRY_FILE_NAME",
    "register_storage_use",
    "storage_users",
]

# The logger's name predates the module's move: operators' filters use it.
LOG = logging.getLogger("cachemgr.inventory.registry")

REGISTRY_FILE_NAME = "compute_nodes"
RECENT_SECONDS = 24 * 3600
_LOCK_NAME = "storage-registry-lock"
# nova holds the registry lock only to read or rewrite a small file.
LOCK_WAIT_SECONDS = 10.0
# nova writes about 40 bytes a host; a larger file is not nova's.
_MAX_BYTES = 16 * 1024 * 1024
# A full file system or quota, or a read-only mount: the pass goes on, as
# removing unused base files is what frees the space (DESIGN 1.8).
_NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def storage_users(
    instances_path: str,
    host: str,
    now: float,
    *,
    locked: bool = True,
    lock_wait_seconds: float = LOCK_WAIT_SECONDS,
) -> list[str]:
    """The hosts seen on this storage in the last 24 hours, this one first.

    ``locked=False`` (a dry run, which must not create lock files) reads
    without nova's lock, and may see a registry nova is rewriting as empty.
    So does a pass whose registry lock file cannot be opened safely, with a
    WARNING.

    Raises:
        InventoryUnavailable: the registry's lock stayed held or the file
            could not be read.
        InventoryUntrustworthy: the file is not nova's JSON.
    """
    with (
        _storage_dir(instances_path) as dir_fd,
        _registry_lock(instances_path, lock_wait_seconds, locked),
    ):
        seen, _model = _read(dir_fd, instances_path)
    others = sorted(
        name
        for name, when in seen.items()
        if name != host and now - when < RECENT_SECONDS
    )
    return [host, *others]


def register_storage_use(
    instances_path: str,
    host: str,
    now: float,
    *,
    lock_wait_seconds: float = LOCK_WAIT_SECONDS,
) -> None:
    """Record that ``host`` uses this storage now, as nova-compute does.

    Without it, cachemgr on another host of the storage would not ask for
    this host's instances and could remove their base files. A full or
    read-only file system, or a registry lock file that cannot be opened
    safely, leaves the registry as it is, with a WARNING.

    Raises:
        InventoryUnavailable: the registry could not be locked or written.
        InventoryUntrustworthy: the file is not nova's JSON; it is kept for
            the operator rather than overwritten.
    """
    path = os.path.join(instances_path, REGISTRY_FILE_NAME)
    with (
        _storage_dir(instances_path) as dir_fd,
        _registry_lock(instances_path, lock_wait_seconds, True) as locked,
    ):
        if not locked:
            LOG.warning("This host is not recorded in %s this pass", path)
            return
        seen, model = _read(dir_fd, instances_path)
        seen[host] = now
        try:
            safefs.replace_file(
                dir_fd,
                REGISTRY_FILE_NAME,
                json.dumps(seen).encode(),
                mode=0o644 if model is None else model.st_mode & 0o777,
                model=os.fstat(dir_fd) if model is None else model,
            )
        except OSError as exc:
            if exc.errno not in _NO_ROOM_ERRNOS:
                raise InventoryUnavailable(
                    f"cannot record this host in {path}: {exc.strerror}"
                ) from exc
            LOG.warning(
                "Cannot record this host in %s: %s; the pass goes on, as "
                "removing unused files frees space",
                path,
                exc.strerror,
            )


@contextlib.contextmanager
def _storage_dir(instances_path: str) -> Iterator[int]:
    try:
        fd, _ = safefs.open_directory(instances_path, follow=True)
    except OSError as exc:
        raise InventoryUnavailable(
            f"cannot open {instances_path}: {exc.strerror}"
        ) from exc
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _registry_lock(
    instances_path: str, wait_seconds: float, wanted: bool
) -> Iterator[bool]:
    """nova's registry lock for the block, if ``wanted``; yield whether it is held."""
    with contextlib.ExitStack() as stack:
        yield wanted and _take_registry_lock(stack, instances_path, wait_seconds)


def _take_registry_lock(
    stack: contextlib.ExitStack, instances_path: str, wait_seconds: float
) -> bool:
    """Enter nova's registry lock on ``stack``; False if its file is unsafe.

    A lock file that cannot be opened safely (DESIGN 1.8) is not used: the
    caller goes on unlocked, after a WARNING naming it.

    Raises:
        InventoryUnavailable: the lock stayed held or cannot be opened.
    """
    lock_path = os.path.join(instances_path, locks.LOCKS_DIR_NAME)
    try:
        taken = stack.enter_context(
            locks.external_lock(lock_path, _LOCK_NAME, wait_seconds)
        )
    except locks.UnsafeLockFile as exc:
        unsafe = exc
    except OSError as exc:
        raise InventoryUnavailable(
            f"cannot lock the storage registry in {instances_path}: "
            f"{exc.strerror} ({exc.filename})"
        ) from exc
    else:
        if not taken:
            raise InventoryUnavailable(
                f"{lock_path}/{locks.LOCK_FILE_PREFIX}{_LOCK_NAME} stayed held "
                f"for {wait_seconds}s; the storage registry cannot be used"
            )
        return True
    # Logged outside the except block: oslo.log would append the exception.
    LOG.warning(
        "The storage registry lock is not used: %s; the registry is read without it",
        unsafe,
    )
    return False


def _read(
    dir_fd: int, instances_path: str
) -> tuple[dict[str, float], os.stat_result | None]:
    """The registry and the file's fstat; a missing one is empty.

    Raises:
        InventoryUnavailable: it is not a regular file (a symlink, a FIFO:
            never followed nor opened) or cannot be read.
        InventoryUntrustworthy: it is not nova's ``{host: seconds}``; it is
            left as it is, for the operator to look at.
    """
    path = os.path.join(instances_path, REGISTRY_FILE_NAME)
    try:
        fd, st = safefs.open_regular(REGISTRY_FILE_NAME, dir_fd=dir_fd)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        raise InventoryUnavailable(
            f"cannot read the storage registry {path}: {exc.strerror}"
        ) from exc
    with os.fdopen(fd, "rb") as stream:
        try:
            data = stream.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise InventoryUnavailable(
                f"cannot read the storage registry {path}: {exc.strerror}"
            ) from exc
    return _decode(data, path), st


def _decode(data: bytes, path: str) -> dict[str, float]:
    """nova's ``{host: epoch seconds}``, every entry checked.

    Raises:
        InventoryUntrustworthy: not that, with what is wrong and where.
    """
    where = f"the storage registry {path}"
    if len(data) > _MAX_BYTES:
        raise InventoryUntrustworthy(f"{where} is larger than {_MAX_BYTES} bytes")
    try:
        document = json.loads(data)
    except RecursionError:
        raise InventoryUntrustworthy(f"{where}: JSON nested too deep") from None
    except ValueError as exc:
        # Bad JSON, bad UTF-8, or an integer too long to convert.
        raise InventoryUntrustworthy(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InventoryUntrustworthy(
            f"{where} must be a JSON object {{host: seconds}}, got {show(document)}"
        )
    return {name: _seconds(name, when, where) for name, when in document.items()}


def _seconds(name: str, when: object, where: str) -> float:
    """One entry's time: a finite number of seconds, of a host name of valid text."""
    try:
        name.encode()
    except UnicodeEncodeError:
        raise InventoryUntrustworthy(
            f"{where}: host {show(name)} is not valid text"
        ) from None
    if not isinstance(when, bool) and isinstance(when, (int, float)):
        try:
            seconds = float(when)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    raise InventoryUntrustworthy(
        f"{where}: host {show(name)} must have a finite number of seconds, "
        f"got {show(when)}"
    )
