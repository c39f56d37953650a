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
    "instance_arguments",
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
    arguments = instance_arguments(fields, name_template=name_template, where=where)
    return Instance(**arguments, block_devices=tuple(block_devices))


def instance_arguments(
    fields: Mapping[str, object], *, name_template: str, where: str
) -> dict[str, object]:
    """Instance's keyword arguments but ``block_devices``, from nova's fields.

    For a reader that checks an instance's own fields before its block
    devices: it builds the Instance once, where dataclasses.replace would
    build it twice. Checks and messages are :func:`instance_from_fields`'s.
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
    instance_id = fields.get("id")
    if not _is_optional_int(instance_id):
        raise _field_error(where, "id", "an integer or null", instance_id)
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
    arguments = _optional_strs(fields, _INSTANCE_STR_FIELDS, where)
    arguments.update(uuid=uuid, name=name, id=instance_id)
    return arguments


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
    strings = _optional_strs(fields, _BDM_STR_FIELDS, where)
    ints = {key: fields.get(key) for key in _BDM_INT_FIELDS}
    for key, value in ints.items():
        if not _is_optional_int(value):
            raise _field_error(where, key, "an integer or null", value)
    no_device = fields.get("no_device")
    if no_device is not None and not isinstance(no_device, bool):
        raise _field_error(where, "no_device", "true, false or null", no_device)
    return BlockDevice(no_device=bool(no_device), **strings, **ints)


def _require_object(fields: object, where: str) -> None:
    # The dict test first: an ABC's isinstance is slow, and JSON gives dicts.
    if not isinstance(fields, dict) and not isinstance(fields, Mapping):
        raise InventoryUntrustworthy(
            f"{where}: must be an object of nova fields, got {show(fields)}"
        )


def _optional_strs(
    fields: Mapping[str, object], keys: Sequence[str], where: str
) -> dict[str, object]:
    """``{key: value}`` for ``keys``, each value checked to be a string or None.

    One call for all of a record's strings, not one per field: an inventory
    has tens of thousands of records.
    """
    values = {key: fields.get(key) for key in keys}
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise _field_error(where, key, "a string or null", value)
    return values


def _is_optional_int(value: object) -> bool:
    # bool is an int subclass; true is not a size or an id.
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _field_error(
    where: str, key: str, expected: str, value: object
) -> InventoryUntrustworthy:
    return InventoryUntrustworthy(
        f"{where}: field {key!r} must be {expected}, got {show(value)}"
    )
