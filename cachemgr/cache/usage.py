"""Which cache names the instances use: the seed's _list_running_instances.

Pure: instances in, names out. Unlike nova, every resized variant of a used
image is in use (nova drops some while mutating a list it iterates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cachemgr.cache import naming
from cachemgr.inventory.model import Instance

__all__ = ["EphemeralNaming", "ImageUse", "Usage", "used_names"]


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
class ImageUse:
    """How many local and remote instances use one image, and which."""

    local: int
    remote: int
    instance_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Usage:
    """The names in use, as nova's image cache manager computes them."""

    used_images: Mapping[str, ImageUse]
    instance_names: frozenset[str]
    used_swap_images: frozenset[str]
    used_ephemeral_images: frozenset[str]

    @property
    def instances_by_fingerprint(self) -> Mapping[str, tuple[str, ...]]:
        """Base file name -> the instances using that image, for the log."""
        return {
            naming.fingerprint(ref): use.instance_names
            for ref, use in self.used_images.items()
        }


def used_names(
    instances: Iterable[Instance], host: str, ephemeral: EphemeralNaming
) -> Usage:
    """The cache names the instances use; ``host`` splits local from remote."""
    counts: dict[str, tuple[int, int, list[str]]] = {}
    dirs: set[str] = set()
    swaps: set[str] = set()
    ephemerals: set[str] = set()
    # One md5 per os_type, not one per instance with an ephemeral disk.
    extensions: dict[str | None, str] = {}
    for instance in instances:
        dirs.update(_directory_names(instance))
        for ref in instance.image_ids:
            local, remote, names = counts.get(ref, (0, 0, []))
            if instance.host == host:
                local += 1
            else:
                remote += 1
            names.append(instance.name)
            counts[ref] = (local, remote, names)
        swap = next((d for d in instance.block_devices if d.is_swap), None)
        if swap is not None:
            swaps.add(naming.swap_name(swap.volume_size or 0))
        eph = next((d for d in instance.block_devices if d.is_ephemeral), None)
        if eph is not None:
            ext = extensions.get(instance.os_type)
            if ext is None:
                ext = extensions[instance.os_type] = ephemeral.extension(
                    instance.os_type
                )
            ephemerals.add(naming.ephemeral_name(eph.volume_size or 0, ext))
    return Usage(
        used_images={
            ref: ImageUse(local, remote, tuple(names))
            for ref, (local, remote, names) in counts.items()
        },
        instance_names=frozenset(dirs),
        used_swap_images=frozenset(swaps),
        used_ephemeral_images=frozenset(ephemerals),
    )


def _directory_names(instance: Instance) -> tuple[str, ...]:
    """The directory names an instance may have under instances_path."""
    names = (instance.name, instance.uuid)
    if instance.is_resizing:
        return names + tuple(f"{name}_resize" for name in names)
    return names
