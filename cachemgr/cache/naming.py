"""nova libvirt's cache file names (DESIGN 1.3); pure.

Only names of these four shapes are ever candidates for removal; every other
entry of the cache directory is left alone.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "Kind",
    "classify",
    "ephemeral_extension",
    "ephemeral_name",
    "fingerprint",
    "parse_virt_mkfs",
    "swap_name",
]


class Kind(enum.Enum):
    """What a cache file is, which decides its minimum age."""

    ORIGINAL = "original"
    RESIZED = "resized"
    SWAP = "swap"
    EPHEMERAL = "ephemeral"


_PATTERNS = (
    (Kind.ORIGINAL, r"[0-9a-f]{40}"),
    (Kind.RESIZED, r"[0-9a-f]{40}_(?:[0-9]+|sm)"),
    (Kind.SWAP, r"swap_[0-9]+"),
    (Kind.EPHEMERAL, r"ephemeral_[0-9]+_[0-9a-f]{7}"),
)
# One alternation, one match per name: a scan classifies 100,000 names.
_CLASSIFIER = re.compile("|".join(f"(?P<{k.name}>{p})" for k, p in _PATTERNS))
_KIND_OF_GROUP = {kind.name: kind for kind, _ in _PATTERNS}

# nova.virt.disk.api: the file system nova formats an ephemeral disk with
# when neither virt_mkfs nor default_ephemeral_format says otherwise.
_DEFAULT_FS_BY_OS_TYPE = {"linux": "ext4", "windows": "ntfs"}
_DEFAULT_FS = "vfat"


def fingerprint(image_id: str) -> str:
    """The base file name nova's libvirt driver gives an image id."""
    return hashlib.sha1(image_id.encode("utf-8")).hexdigest()


def classify(name: str) -> Kind | None:
    """The kind of a cache file name, or None for a name that is not ours."""
    match = _CLASSIFIER.fullmatch(name)
    return None if match is None else _KIND_OF_GROUP[match.lastgroup]


def swap_name(size_mb: int) -> str:
    """nova's swap base file for a swap disk of ``size_mb`` MB."""
    return f"swap_{size_mb}"


def parse_virt_mkfs(entries: Iterable[str]) -> dict[str, str]:
    """nova's ``[DEFAULT] virt_mkfs`` as ``{os_type: mkfs command}``.

    Raises:
        ValueError: an entry has no ``=``; the message quotes the entry.
    """
    commands: dict[str, str] = {}
    for entry in entries:
        os_type, sep, command = entry.partition("=")
        if not sep:
            raise ValueError(f"{entry!r} is not of the form os_type=mkfs command")
        if os_type:
            commands[os_type] = command
    return commands


def ephemeral_extension(
    os_type: str | None,
    mkfs_commands: Mapping[str, str],
    default_ephemeral_format: str | None,
) -> str:
    """The 7 hex characters nova puts at the end of an ephemeral file name.

    nova hashes the mkfs command that would format the disk, or, without
    one, the file system name; an os_type without its own mkfs command
    counts as 'default' (so a Windows guest gets vfat unless configured).
    """
    fs_os = os_type if os_type and mkfs_commands.get(os_type) else "default"
    source = mkfs_commands.get(fs_os) or (
        default_ephemeral_format or _DEFAULT_FS_BY_OS_TYPE.get(fs_os, _DEFAULT_FS)
    )
    return hashlib.md5(source.encode("utf-8"), usedforsecurity=False).hexdigest()[:7]


def ephemeral_name(size_gb: int, extension: str) -> str:
    """nova's ephemeral base file for a disk of ``size_gb`` GB."""
    return f"ephemeral_{size_gb}_{extension}"
