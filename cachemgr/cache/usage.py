"""Which cache names the instances use: the seed's _list_running_instances.

Pure: instances in, names out. Unlike nova, every resized variant of a used
image is in use (nova drops some while mutating a list it iterates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cachemgr.cache import naming
from cachemgr.inventory.model import Instance

__all__ = ["EphemeralNaming", "Usage", "used_names"]


@dataclass(frozen=True, slots=True)
class EphemeralNaming:
    """The nova options that decide an ephemeral file's extension."""

    mkfs_commands: Mapping[str, str] = field(default_factory=dict)
    default_ephemeral_format: str | None = None

    def extension(self, os_type: str | None) -> str:
        return naming.ephemeral_extension(
            os_type, self.mkfs_commands, self.default_ephemeral_format
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """The cache names the instances use, in the shape the plan reads them.

    nova's manager also counts local and remote users and lists instance
    directory names; cachemgr sweeps every directory and decides nothing by
    those counts, so it does not compute them.
    """

    image_users: Mapping[str, tuple[str, ...]]
    """Base file name (an image's fingerprint) -> the instances using it."""
    other_names: frozenset[str]
    """The ``swap_<MB>`` and ``ephemeral_<GB>_<ext>`` names in use."""


def used_names(instances: Iterable[Instance], ephemeral: EphemeralNaming) -> Usage:
    """The cache names the instances use."""
    users: dict[str, list[str]] = {}
    others: set[str] = set()
    # One sha1 per image and one md5 per os_type, not one per instance.
    fingerprints: dict[str, str] = {}
    extensions: dict[str | None, str] = {}
    for instance in instances:
        for ref in instance.image_ids:
            fingerprint = fingerprints.get(ref)
            if fingerprint is None:
                fingerprint = fingerprints[ref] = naming.fingerprint(ref)
            users.setdefault(fingerprint, []).append(instance.name)
        swap = next((d for d in instance.block_devices if d.is_swap), None)
        if swap is not None:
            others.add(naming.swap_name(swap.volume_size or 0))
        eph = next((d for d in instance.block_devices if d.is_ephemeral), None)
        if eph is not None:
            ext = extensions.get(instance.os_type)
            if ext is None:
                ext = extensions[instance.os_type] = ephemeral.extension(
                    instance.os_type
                )
            others.add(naming.ephemeral_name(eph.volume_size or 0, ext))
    return Usage(
        image_users={fp: tuple(names) for fp, names in users.items()},
        other_names=frozenset(others),
    )
