"""Pinned images (DESIGN 1.9): what the operator says to keep, until when.

The file is read at every pass::

    {"pins": [{"image_id": "<glance id>", "until": "2027-01-31T00:00:00Z",
               "comment": "golden image, pre-cached for the launch"}]}

``until`` may be null (no end); a time must name its zone. An active pin
keeps the image's base file and every resized variant, whatever their age
and under disk pressure too. Any problem with a configured file refuses
the pass: a pin that silently stopped working would let its image go.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import stat

from cachemgr.cache import naming
from cachemgr.cache.snapshot import NO_PINS, Pin, Pins
from cachemgr.exceptions import CachemgrError

__all__ = ["NO_PINS", "Pin", "Pins", "PinsError", "read_pins"]

LOG = logging.getLogger(__name__)

# An operator's file of a few hundred pins; anything far larger is not one.
_MAX_BYTES = 4 * 1024 * 1024


class PinsError(CachemgrError):
    """The pinned images file cannot be used: the pass is refused (exit 1)."""


def read_pins(path: str | None, now: float) -> Pins:
    """The pins of ``path`` active at ``now``; none when no file is configured.

    Raises:
        PinsError: the file is missing, unreadable, not JSON, or an entry is
            invalid; the message names the file and the entry.
    """
    if not path:
        return NO_PINS
    where = f"[image_cache] pinned_images_file {path}"
    document = _load(path, where)
    if not isinstance(document, dict) or not isinstance(document.get("pins"), list):
        raise PinsError(f'{where}: must be an object {{"pins": [...]}}')
    active: dict[str, Pin] = {}
    for index, entry in enumerate(document["pins"]):
        pin = _pin(entry, f"{where}: pins[{index}]")
        if pin.until is not None and pin.until <= now:
            LOG.debug("Pin of image %s ended at %s: ignored", pin.image_id, pin.until)
            continue
        active[naming.fingerprint(pin.image_id)] = pin
    return Pins(active)


def _load(path: str, where: str) -> object:
    """The file's JSON; opened without blocking, a regular file only."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PinsError(f"{where}: cannot read it: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PinsError(f"{where}: not a regular file")
        try:
            data = stream.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise PinsError(f"{where}: cannot read it: {exc.strerror}") from None
    if len(data) > _MAX_BYTES:
        raise PinsError(f"{where}: larger than {_MAX_BYTES} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise PinsError(f"{where}: JSON nested too deep") from None
    except ValueError as exc:
        raise PinsError(f"{where}: not valid JSON: {exc}") from None


def _pin(entry: object, where: str) -> Pin:
    if not isinstance(entry, dict):
        raise PinsError(f"{where}: must be an object with 'image_id'")
    image_id = entry.get("image_id")
    if not isinstance(image_id, str) or not image_id.strip():
        raise PinsError(f"{where}: 'image_id' must be a non-empty string")
    try:
        image_id.encode()
    except UnicodeEncodeError:
        raise PinsError(f"{where}: 'image_id' is not valid text") from None
    comment = entry.get("comment", "")
    if not isinstance(comment, str):
        raise PinsError(f"{where}: 'comment' must be a string")
    return Pin(image_id, _until(entry.get("until"), where), comment)


def _until(value: object, where: str) -> float | None:
    """An ISO 8601 time that names its zone, as epoch seconds; None for null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PinsError(f"{where}: 'until' must be a time or null, got {value!r}")
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise PinsError(
            f"{where}: 'until' {value!r} is not an ISO 8601 time "
            "(e.g. 2027-01-31T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise PinsError(
            f"{where}: 'until' {value!r} names no time zone; add Z or +hh:mm"
        )
    return when.timestamp()
