"""The backing file name in a qcow2 header, read in-process (DESIGN 1.4 rule 2).

A scan reads one header per instance disk, tens of thousands per host, so this
costs one ``pread`` of the first bytes and a second one only when the name lies
beyond them; no qemu-img subprocess. The checks are qemu's own
(``block/qcow2.c``): a header qemu would refuse is a ``Qcow2Error``, never a
guess, so a disk we cannot read keeps its backing file rather than freeing it.
"""

from __future__ import annotations

import os
import struct

from cachemgr.cache import safefs

__all__ = ["Qcow2Error", "read_backing_file", "read_backing_name"]

_MAGIC = b"QFI\xfb"
_VERSIONS = (2, 3)
# magic, version, backing_file_offset, backing_file_size, cluster_bits
_HEADER = struct.Struct(">4sIQII")
# First read. A v3 header written by qemu >= 5 puts the name at about 528,
# so 512 bytes would need a second read for most overlays; 1024 holds the
# usual name and, unlike a whole page, costs no more than 512 (reading
# 4096 made reading 20,000 headers 8% slower).
_HEAD_SIZE = 1024
_MIN_CLUSTER_BITS = 9
_MAX_CLUSTER_BITS = 21
# qemu refuses longer names ("Backing file name too long").
_MAX_NAME_SIZE = 1023


class Qcow2Error(ValueError):
    """A file with the qcow2 magic whose header cannot be believed."""


def read_backing_file(path: str, *, dir_fd: int | None = None) -> bytes | None:
    """The backing file name stored in a qcow2 header, as qemu reads it.

    The name is the header field's bytes up to the first NUL (qemu reads it
    as a C string), not necessarily UTF-8, and may be relative to the disk's
    directory. None when the file is not qcow2 (raw, empty, any other
    format) or is qcow2 without a backing file.

    Opened as DESIGN 1.8 says: never through a symlink, never blocking, and
    only a regular file is read.

    Raises:
        Qcow2Error: a qcow2 file with a malformed header.
        safefs.NotRegularFile: a symlink, directory, FIFO, socket or device.
        OSError: the file cannot be opened or read.
    """
    fd, _ = safefs.open_regular(path, dir_fd=dir_fd)
    try:
        return read_backing_name(fd, path)
    finally:
        os.close(fd)


def read_backing_name(fd: int, path: str) -> bytes | None:
    """Parse the header of an open regular file; see read_backing_file."""
    head = os.pread(fd, _HEAD_SIZE, 0)
    if head[: len(_MAGIC)] != _MAGIC:
        return None
    if len(head) < _HEADER.size:
        raise Qcow2Error(f"{path}: truncated header ({len(head)} bytes)")
    _, version, offset, size, cluster_bits = _HEADER.unpack_from(head)
    if version not in _VERSIONS:
        raise Qcow2Error(f"{path}: version {version} is not 2 or 3")
    if not _MIN_CLUSTER_BITS <= cluster_bits <= _MAX_CLUSTER_BITS:
        raise Qcow2Error(
            f"{path}: cluster_bits {cluster_bits} outside "
            f"{_MIN_CLUSTER_BITS}..{_MAX_CLUSTER_BITS}"
        )
    if offset == 0:
        return None
    if not 0 < size <= _MAX_NAME_SIZE:
        raise Qcow2Error(
            f"{path}: backing_file_size {size} outside 1..{_MAX_NAME_SIZE}"
        )
    cluster_size = 1 << cluster_bits
    if offset + size > cluster_size:
        raise Qcow2Error(
            f"{path}: backing_file_offset {offset} + backing_file_size {size} "
            f"beyond the first cluster ({cluster_size} bytes)"
        )
    name = _read_name(fd, head, offset, size)
    if len(name) < size:
        raise Qcow2Error(
            f"{path}: backing file name truncated at {len(name)} of {size} bytes"
        )
    # qemu copies the field into a C string: whatever follows a NUL is
    # invisible to it, and an empty name is no backing file.
    return name.split(b"\0", 1)[0] or None


def _read_name(fd: int, head: bytes, offset: int, size: int) -> bytes:
    """The name's bytes: from the first read when it holds them, else one pread."""
    if offset + size <= len(head):
        return head[offset : offset + size]
    return os.pread(fd, size, offset)
