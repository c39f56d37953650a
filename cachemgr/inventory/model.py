"""The instance records every inventory driver produces; no I/O.

Field names and meanings are nova's (Instance and BlockDeviceMapping), so
that a record built from a conductor reply and one read from a static file
mean the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["RESIZE_TASK_STATES", "BlockDevice", "Instance", "instance_name"]

# nova.compute.task_states values under which an instance has a second
# directory named <name>_resize (the seed's ``resize_states``).
RESIZE_TASK_STATES = frozenset(
    {"resize_prep", "resize_migrating", "resize_migrated", "resize_finish"}
)


class BlockDevice(NamedTuple):
    """The BlockDeviceMapping fields that decide swap and ephemeral files.

    Instance and BlockDevice are NamedTuples, not frozen dataclasses: an
    inventory builds tens of thousands of them, and a frozen dataclass takes
    three times as long to build. Immutable all the same.
    """

    source_type: str | None = None
    destination_type: str | None = None
    guest_format: str | None = None
    volume_size: int | None = None
    boot_index: int | None = None
    no_device: bool = False

    @property
    def is_local_blank(self) -> bool:
        """A blank local disk: nova makes swap and ephemeral disks from these."""
        return (
            not self.no_device
            and self.source_type == "blank"
            and self.destination_type == "local"
        )

    @property
    def is_swap(self) -> bool:
        """nova's ``new_format_is_swap``."""
        return self.is_local_blank and self.guest_format == "swap"

    @property
    def is_ephemeral(self) -> bool:
        """nova's ``new_format_is_ephemeral``."""
        return self.is_local_blank and self.guest_format != "swap"


class Instance(NamedTuple):
    """One instance whose disks may live on this storage.

    ``name`` is nova's ``instance.name``: ``instance_name_template % id``
    unless the inventory gave one.
    """

    uuid: str
    name: str
    host: str | None = None
    id: int | None = None
    image_ref: str | None = None
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    vm_state: str | None = None
    task_state: str | None = None
    os_type: str | None = None
    block_devices: tuple[BlockDevice, ...] = ()

    @property
    def is_resizing(self) -> bool:
        """Whether nova keeps a ``_resize`` twin of this instance's directory."""
        return self.task_state in RESIZE_TASK_STATES or self.vm_state == "resized"

    @property
    def image_ids(self) -> tuple[str, ...]:
        """The image ids whose base files this instance's disks come from.

        An empty ``image_ref`` (boot from volume) is kept, as nova keeps it.
        """
        refs = (self.image_ref, self.kernel_id, self.ramdisk_id)
        return tuple(ref for ref in refs if ref is not None)


def instance_name(template: str, fields: Mapping[str, object]) -> str:
    """nova's ``Instance.name``: ``template % id``, else ``template % fields``.

    As in nova, a template that names fields (``%(uuid)s``) is filled from
    the instance's fields, and one that cannot be filled gives the uuid.
    """
    try:
        return template % fields["id"]
    except (KeyError, TypeError, ValueError):
        pass
    try:
        return template % fields
    except (KeyError, TypeError, ValueError):
        return str(fields.get("uuid", ""))
