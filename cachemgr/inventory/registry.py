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
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping

from cachemgr.cache import locks
from cachemgr.exceptions import InventoryUnavailable

__all__ = [
    "LOCK_WAIT_SECONDS",
    "RECENT_SECONDS",
    "REGISTRY_FILE_NAME",
    "register_storage_use",
    "storage_users",
]

LOG = logging.getLogger(__name__)

REGISTRY_FILE_NAME = "compute_nodes"
RECENT_SECONDS = 24 * 3600
_LOCK_NAME = "storage-registry-lock"
# nova holds the registry lock only to read or rewrite a small file.
LOCK_WAIT_SECONDS = 10.0


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

    Raises:
        InventoryUnavailable: the registry's lock stayed held or the file
            could not be read.
    """
    if locked:
        with _registry_lock(instances_path, lock_wait_seconds):
            seen = _read(instances_path)
    else:
        seen = _read(instances_path)
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
    this host's instances and could remove their base files.

    Raises:
        InventoryUnavailable: the registry could not be locked or written.
    """
    path = os.path.join(instances_path, REGISTRY_FILE_NAME)
    with _registry_lock(instances_path, lock_wait_seconds):
        seen = dict(_read(instances_path))
        seen[host] = now
        try:
            _write_atomically(path, seen)
        except OSError as exc:
            raise InventoryUnavailable(
                f"cannot record this host in {path}: {exc.strerror}"
            ) from exc


@contextlib.contextmanager
def _registry_lock(instances_path: str, wait_seconds: float) -> Iterator[None]:
    lock_path = os.path.join(instances_path, locks.LOCKS_DIR_NAME)
    with contextlib.ExitStack() as stack:
        try:
            taken = stack.enter_context(
                locks.external_lock(lock_path, _LOCK_NAME, wait_seconds)
            )
        except OSError as exc:
            raise InventoryUnavailable(
                f"cannot lock the storage registry in {instances_path}: "
                f"{exc.strerror} ({exc.filename})"
            ) from exc
        if not taken:
            raise InventoryUnavailable(
                f"{lock_path}/{locks.LOCK_FILE_PREFIX}{_LOCK_NAME} stayed held "
                f"for {wait_seconds}s; the storage registry cannot be used"
            )
        yield


def _read(instances_path: str) -> Mapping[str, float]:
    """The registry; a missing one is empty, a corrupt one is reported and empty."""
    path = os.path.join(instances_path, REGISTRY_FILE_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InventoryUnavailable(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        LOG.warning(
            "Cannot decode %s (%s): treating it as naming no other host", path, exc
        )
        return {}
    if not isinstance(data, dict):
        LOG.warning(
            "%s is not a JSON object: treating it as naming no other host", path
        )
        return {}
    return {
        str(name): float(when)
        for name, when in data.items()
        if isinstance(when, (int, float)) and not isinstance(when, bool)
    }


def _write_atomically(path: str, seen: Mapping[str, float]) -> None:
    """Replace ``path`` whole, keeping the owner and mode nova-compute needs."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".compute_nodes.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(seen, f)
            f.flush()
            _copy_owner_and_mode(path, directory, f.fileno())
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _copy_owner_and_mode(path: str, directory: str, fd: int) -> None:
    """The old file's owner and mode, else 0644 and the directory's owner.

    mkstemp makes a 0600 file owned by us; nova-compute, running as its own
    user, must still be able to read and rewrite the registry.
    """
    try:
        model = os.stat(path)
        mode = model.st_mode & 0o777
    except FileNotFoundError:
        model = os.stat(directory)
        mode = 0o644
    os.fchmod(fd, mode)
    if os.geteuid() == 0:
        os.fchown(fd, model.st_uid, model.st_gid)
