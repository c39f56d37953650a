"""Instance and BlockDevice records from dicts of nova fields; pure.

The static driver's JSON file and the conductor's object primitives both
carry nova's field names. This module is the one place that checks those
fields and builds the records, so both drivers accept and reject the same
things with the same messages. Fields it does not know are ignored, so an
operator may dump full nova records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from cachemgr.exceptions import InventoryUntrustworthy
from cachemgr.inventory.model import BlockDevice, Instance, instance_name

__all__ = [
    "block_device_from_fields",
    "instance_from_fields",
    "instance_uuid",
    "show",
    "where_with_uuid",
]

# The longest repr of a bad value quoted in a message.
_SHOW_LIMIT = 60
# nova keeps its integer fields (id, volume_size, boot_index) in SQL INTEGER
# columns: no value outside 32 bits comes from nova.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class _FieldType(NamedTuple):
    """The exact types a field's value may have, and the words for them.

    Exact types (``type(value) in types``), not isinstance: JSON and object
    primitives hold plain str, int and bool, and ``True`` is then no integer.
    One set lookup per field: an inventory has tens of thousands of records.
    """

    types: frozenset[type]
    expected: str


_STRING = _FieldType(frozenset({str, type(None)}), "a string or null")
_INTEGER = _FieldType(frozenset({int, type(None)}), "an integer or null")
_BOOLEAN = _FieldType(frozenset({bool, type(None)}), "true, false or null")


class _Schema:
    """Some of a record's fields, in the order its class takes them."""

    def __init__(self, *fields: tuple[str, _FieldType]) -> None:
        self.fields = fields
        self.keys = tuple(key for key, _ in fields)
        self.allowed = tuple(field_type.types for _, field_type in fields)


# The Instance fields but uuid and name.
_INSTANCE_SCHEMA = _Schema(
    ("host", _STRING),
    ("id", _INTEGER),
    ("image_ref", _STRING),
    ("kernel_id", _STRING),
    ("ramdisk_id", _STRING),
    ("vm_state", _STRING),
    ("task_state", _STRING),
    ("os_type", _STRING),
)
_BDM_SCHEMA = _Schema(
    ("source_type", _STRING),
    ("destination_type", _STRING),
    ("guest_format", _STRING),
    ("volume_size", _INTEGER),
    ("boot_index", _INTEGER),
    ("no_device", _BOOLEAN),
)


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
    uuid = instance_uuid(fields, where)
    where = where_with_uuid(where, uuid)
    host, instance_id, *images_and_states = _checked(fields, _INSTANCE_SCHEMA, where)
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
    else:
        _check_text(name, where, "name")
    return Instance(
        uuid, name, host, instance_id, *images_and_states, tuple(block_devices)
    )


def instance_uuid(fields: Mapping[str, object], where: str) -> str:
    """The checked ``uuid`` of nova's Instance fields, by which all else is located.

    Raises:
        InventoryUntrustworthy: ``fields`` is not an object, or its uuid is
            missing or not a non-empty string.
    """
    _require_object(fields, where)
    if "uuid" not in fields:
        raise InventoryUntrustworthy(
            f"{where}: field 'uuid' is missing; it must be a non-empty string"
        )
    uuid = fields["uuid"]
    if not isinstance(uuid, str) or not uuid:
        raise _field_error(where, "uuid", "a non-empty string", uuid)
    _check_text(uuid, where, "uuid")
    return uuid


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
    (
        source_type,
        destination_type,
        guest_format,
        volume_size,
        boot_index,
        no_device,
    ) = _checked(fields, _BDM_SCHEMA, where)
    return BlockDevice(
        source_type,
        destination_type,
        guest_format,
        volume_size,
        boot_index,
        no_device=bool(no_device),
    )


def _require_object(fields: object, where: str) -> None:
    # The dict test first: an ABC's isinstance is slow, and JSON gives dicts.
    if not isinstance(fields, dict) and not isinstance(fields, Mapping):
        raise InventoryUntrustworthy(
            f"{where}: must be an object of nova fields, got {show(fields)}"
        )


def _checked(fields: Mapping[str, object], schema: _Schema, where: str) -> list[object]:
    """The values of ``schema``'s fields, in its order; absent ones are None.

    Raises:
        InventoryUntrustworthy: a value is not of its field's type.
    """
    values = [fields.get(key) for key in schema.keys]
    for key, value, allowed in zip(schema.keys, values, schema.allowed, strict=True):
        kind = type(value)
        if kind not in allowed:
            raise _type_error(fields, schema, where)
        if kind is str:
            _check_text(value, where, key)  # type: ignore[arg-type]
        elif kind is int and not _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            raise _field_error(
                where, key, f"an integer from {_INT_MIN} to {_INT_MAX}", value
            )
    return values


def _check_text(value: str, where: str, key: str) -> None:
    """Refuse a string that cannot be written as UTF-8 (a lone surrogate).

    JSON's ``"\\ud800"`` decodes to such a string; it would fail later, far
    from its field, when hashed into a file name or logged.
    """
    if value.isascii():
        return
    try:
        value.encode()
    except UnicodeEncodeError:
        raise _field_error(where, key, "valid text", value) from None


def _type_error(
    fields: Mapping[str, object], schema: _Schema, where: str
) -> InventoryUntrustworthy:
    """The error for the first field of ``schema`` whose value is mistyped."""
    for key, field_type in schema.fields:
        value = fields.get(key)
        if type(value) not in field_type.types:
            return _field_error(where, key, field_type.expected, value)
    raise AssertionError(f"no field of {schema.keys} is mistyped")


def _field_error(
    where: str, key: str, expected: str, value: object
) -> InventoryUntrustworthy:
    return InventoryUntrustworthy(
        f"{where}: field {key!r} must be {expected}, got {show(value)}"
    )
