"""The shared storage's record of its last pass: ``cachemgr-storage.json``.

On a storage shared by many hosts one pass per interval is enough (DESIGN
1.11): the host that completes one writes
``{"format": 1, "last_completed": {"host", "ended_at_epoch", "files",
"removed"}}`` into instances_path, under the remover lock, and a host whose
pass comes due reads it to know whether another host has just done the
work. It is read like every other file of the storage (DESIGN 1.8: no
symlink followed, no FIFO opened, bounded size) and written atomically.

The file is a hint, never a reason to remove anything: one that is missing,
unreadable or malformed is said at WARNING (but missing) and read as no
record, and the pass runs, which rewrites it.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
from dataclasses import dataclass

from cachemgr.cache import safefs

__all__ = ["RECORD_FILE_NAME", "LastPass", "read_last_pass", "write_last_pass"]

LOG = logging.getLogger("cachemgr.storage_record")

RECORD_FILE_NAME = "cachemgr-storage.json"
FORMAT = 1
# The record is about a hundred bytes; a larger file is not cachemgr's.
_MAX_BYTES = 64 * 1024
_NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@dataclass(frozen=True, slots=True)
class LastPass:
    """The last pass completed on the storage, by whichever host."""

    host: str
    ended_at_epoch: float
    files: int
    removed: int


def read_last_pass(instances_path: str) -> LastPass | None:
    """The storage's last completed pass; None if there is no usable record."""
    path = os.path.join(instances_path, RECORD_FILE_NAME)
    try:
        data = _read_bounded(instances_path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        LOG.warning(
            "Cannot read %s: %s; this pass runs as if no host had passed",
            path,
            exc.strerror,
        )
        return None
    try:
        return _decode(data)
    except ValueError as exc:
        LOG.warning(
            "%s is not cachemgr's record (%s); this pass runs as if no host "
            "had passed, and rewrites it",
            path,
            exc,
        )
        return None


def write_last_pass(instances_path: str, last: LastPass) -> bool:
    """Replace the record atomically; False, with a WARNING, if it cannot be.

    Called under the remover lock. A full or read-only file system is only
    a WARNING: the next host whose pass comes due then passes too, which
    costs load, never a file.
    """
    path = os.path.join(instances_path, RECORD_FILE_NAME)
    document = {
        "format": FORMAT,
        "last_completed": {
            "host": last.host,
            "ended_at_epoch": round(last.ended_at_epoch, 3),
            "files": last.files,
            "removed": last.removed,
        },
    }
    try:
        safefs.replace_in_directory(
            instances_path,
            RECORD_FILE_NAME,
            (json.dumps(document, sort_keys=True) + "\n").encode(),
        )
    except OSError as exc:
        level = logging.WARNING
        if exc.errno not in _NO_ROOM_ERRNOS:
            level = logging.ERROR
        LOG.log(
            level,
            "Cannot record this pass in %s: %s; other hosts of the storage "
            "will pass on their own timers",
            path,
            exc.strerror or exc,
        )
        return False
    return True


def _read_bounded(instances_path: str) -> bytes:
    """The file's bytes, read without following a link or blocking.

    Raises:
        FileNotFoundError: there is no record yet.
        OSError: it cannot be read, or is not a regular file
            (safefs.NotRegularFile says what it is).
    """
    dir_fd, _ = safefs.open_directory(instances_path, follow=True)
    try:
        fd, _ = safefs.open_regular(RECORD_FILE_NAME, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as stream:
        return stream.read(_MAX_BYTES + 1)


def _decode(data: bytes) -> LastPass:
    """The record's last pass, every field checked.

    Raises:
        ValueError: what is wrong, naming the field.
    """
    if len(data) > _MAX_BYTES:
        raise ValueError(f"larger than {_MAX_BYTES} bytes")
    try:
        document = json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f'not a JSON object with "format": {FORMAT}')
    last = document.get("last_completed")
    if not isinstance(last, dict):
        raise ValueError('"last_completed" is not an object')
    host = last.get("host")
    if not isinstance(host, str) or not host or not host.isprintable():
        raise ValueError('"last_completed.host" is not a host name')
    ended = last.get("ended_at_epoch")
    if isinstance(ended, bool) or not isinstance(ended, int | float):
        raise ValueError('"last_completed.ended_at_epoch" is not a number')
    try:
        ended = float(ended)
    except OverflowError:
        ended = math.inf
    if not math.isfinite(ended):
        raise ValueError('"last_completed.ended_at_epoch" is not finite')
    counts = {}
    for key in ("files", "removed"):
        value = last.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f'"last_completed.{key}" is not a count')
        counts[key] = value
    return LastPass(host, ended, counts["files"], counts["removed"])
