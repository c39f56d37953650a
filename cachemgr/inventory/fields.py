"""Instance and BlockDevice records from dicts of nova fields; pure.

The static driver's JSON file and the conductor's object primitives both
carry nova's field names. This module is the one place that checks those
fields and builds the records, so both drivers accept and reject the same
things with the same messages. Fields it does not know are ignored, so an
operator may dump full nova records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cachemgr.exceptions import InventoryUntrustworthy
from cachemgr.inventory.model import BlockDevice, Instance, instance_name

__all__ = [
    "block_device_from_fields",
    "instance_from_fields",
    "show",
    "where_with_uuid",
]

# The longest repr of a bad value quoted in a message.
_SHOW_LIMIT = 60

# Nullable string fields of nova's Instance that cachemgr reads.
_INSTANCE_STR_FIELDS = (
    "host",
    "image_ref",
    "kernel_id",
    "ramdisk_id",
    "vm_state",
    "task_state",
    "os_type",
)

_BDM_STR_FIELDS = ("source_type", "destination_type", "guest_format")
_BDM_INT_FIELDS = ("volume_size", "boot_index")


def show(value: object) -> str:
    """``repr(value)``, cut to a length that fits in one log line."""
    return _cut(repr(value))


def where_with_uuid(where: str, uuid: str) -> str:
    """``where`` followed by the instance uuid that the fields gave."""
    return f"{where} (uuid {_cut(uuid)})"


def _cut(text: str) -> str:
    if len(text) > _SHOW_LIMIT:
        return text[: _SHOW_LIMIT - 1] + "…"
    return text


def instance_from_fields(
    fields: Mapping[str, object],
    block_devices: Sequence[BlockDevice],
    *,
    name_template: str,
    where: str,
) -> Instance:
    """The Instance described by nova's Instance fields.

    Args:
        fields: nova field name to value; unknown names are ignored.
        block_devices: the instance's block device mappings.
        name_template: ``[DEFAULT] instance_name_template``, used when
            ``fields`` has no ``name`` (conductor primitives never do).
        where: where the fields came from, the prefix of every message.

    Raises:
        InventoryUntrustworthy: a field is missing or has the wrong type; the
            message names ``where``, the uuid when known, the field, what was
            expected and the value got.
    """
    _require_object(fields, where)
    if "uuid" not in fields:
        raise InventoryUntrustworthy(
            f"{where}: field 'uuid' is missing; it must be a non-empty string"
        )
    uuid = fields["uuid"]
    if not isinstance(uuid, str) or not uuid:
        raise _field_error(where, "uuid", "a non-empty string", uuid)
    where = where_with_uuid(where, uuid)
    instance_id = _optional_int(fields, "id", where)
    name = fields.get("name")
    if name is None:
        if instance_id is None:
            raise InventoryUntrustworthy(
                f"{where}: field 'name' is missing and so is field 'id', "
                "from which the name would be computed with "
                "instance_name_template"
            )
        name = instance_name(name_template, fields)
    elif not isinstance(name, str) or not name:
        raise _field_error(where, "name", "a non-empty string", name)
    strings = {key: _optional_str(fields, key, where) for key in _INSTANCE_STR_FIELDS}
    return Instance(
        uuid=uuid,
        name=name,
        id=instance_id,
        block_devices=tuple(block_devices),
        **strings,
    )


def block_device_from_fields(
    fields: Mapping[str, object], *, where: str
) -> BlockDevice:
    """The BlockDevice described by nova's BlockDeviceMapping fields.

    Args:
        fields: nova field name to value; unknown names are ignored.
        where: where the fields came from, the prefix of every message.

    Raises:
        InventoryUntrustworthy: a field has the wrong type; the message names
            ``where``, the field, what was expected and the value got.
    """
    _require_object(fields, where)
    strings = {key: _optional_str(fields, key, where) for key in _BDM_STR_FIELDS}
    ints = {key: _optional_int(fields, key, where) for key in _BDM_INT_FIELDS}
    no_device = fields.get("no_device")
    if no_device is not None and not isinstance(no_device, bool):
        raise _field_error(where, "no_device", "true, false or null", no_device)
    return BlockDevice(no_device=bool(no_device), **strings, **ints)


def _require_object(fields: object, where: str) -> None:
    if not isinstance(fields, Mapping):
        raise InventoryUntrustworthy(
            f"{where}: must be an object of nova fields, got {show(fields)}"
        )


def _optional_str(fields: Mapping[str, object], key: str, where: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise _field_error(where, key, "a string or null", value)
    return value


def _optional_int(fields: Mapping[str, object], key: str, where: str) -> int | None:
    value = fields.get(key)
    # bool is an int subclass; true is not a size or an id.
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise _field_error(where, key, "an integer or null", value)
    return value


def _field_error(
    where: str, key: str, expected: str, value: object
) -> InventoryUntrustworthy:
    return InventoryUntrustworthy(
        f"{where}: field {key!r} must be {expected}, got {show(value)}"
    )
