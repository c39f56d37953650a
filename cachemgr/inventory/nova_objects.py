"""nova-conductor's replies, decoded into Instance records; pure.

The conductor answers ``object_class_action_versions`` with an
oslo.versionedobjects primitive::

    {"nova_object.name": "InstanceList", "nova_object.namespace": "nova",
     "nova_object.version": "2.6",
     "nova_object.data": {"objects": [{"nova_object.name": "Instance", ...}]}}

A primitive is accepted only if each object has the expected name, the
``nova`` namespace and a major version this module was written for: a new
major version may rename or drop the fields that decide what is in use, so
it is refused rather than guessed at. Minor versions only add fields.
The fields themselves are checked by :mod:`cachemgr.inventory.fields`.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Iterator, Mapping, Sequence

from cachemgr.exceptions import InventoryUntrustworthy
from cachemgr.inventory.fields import (
    block_device_from_fields,
    instance_from_fields,
    instance_uuid,
    show,
)
from cachemgr.inventory.model import BlockDevice, Instance

__all__ = [
    "SUPPORTED_MAJOR_VERSIONS",
    "decode_block_device_mappings",
    "decode_instance_list",
    "describe_versions",
    "instance_objects",
]

# The object major versions whose fields this module knows (nova 28.0.0 to
# 34.0.0 send InstanceList 2.6, Instance 2.8, BlockDeviceMappingList 1.18 and
# BlockDeviceMapping 1.21).
SUPPORTED_MAJOR_VERSIONS: Mapping[str, int] = {
    "InstanceList": 2,
    "Instance": 2,
    "BlockDeviceMappingList": 1,
    "BlockDeviceMapping": 1,
}

_NAMESPACE = "nova"
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)")


def decode_instance_list(
    primitive: object,
    *,
    name_template: str,
    where: str = "conductor reply",
    block_devices: Mapping[str, Sequence[BlockDevice]] | None = None,
) -> list[Instance]:
    """The instances of an ``InstanceList`` primitive, in reply order.

    Each is built once, with its ``block_devices`` (by instance uuid; none
    for an instance without an entry, and entries of other uuids ignored).

    Args:
        primitive: the reply, as decoded from JSON.
        name_template: ``[DEFAULT] instance_name_template``; the primitive
            has no ``name``, nova's clients compute it.
        where: what the primitive is, the prefix of every message.
        block_devices: the block devices of each instance uuid.

    Raises:
        InventoryUntrustworthy: an object has the wrong name, namespace or
            major version, or a field is missing or of the wrong type.
    """
    devices = block_devices or {}
    return [
        instance_from_fields(
            data,
            tuple(devices.get(instance_uuid(data, item), ())),
            name_template=name_template,
            where=item,
        )
        for item, data in instance_objects(primitive, where)
    ]


def instance_objects(
    primitive: object, where: str = "conductor reply"
) -> list[tuple[str, Mapping[str, object]]]:
    """(where, fields) of each ``Instance`` of an ``InstanceList`` primitive.

    The objects' names, namespace and major versions are checked; their
    fields are left to :func:`cachemgr.inventory.fields.instance_from_fields`,
    so that a driver can build each instance once its block devices are
    known.

    Raises:
        InventoryUntrustworthy: an object has the wrong name, namespace or
            major version.
    """
    return list(_list_items(primitive, "InstanceList", "Instance", where))


def decode_block_device_mappings(
    primitive: object, *, where: str = "conductor reply"
) -> dict[str, list[BlockDevice]]:
    """The block devices of a ``BlockDeviceMappingList`` primitive, by instance.

    As nova's ``bdms_by_instance_uuid``: keyed by ``instance_uuid``, each
    list in reply order.

    Raises:
        InventoryUntrustworthy: an object has the wrong name, namespace or
            major version, a mapping has no ``instance_uuid``, or a field is
            of the wrong type.
    """
    by_uuid: dict[str, list[BlockDevice]] = {}
    items = _list_items(
        primitive, "BlockDeviceMappingList", "BlockDeviceMapping", where
    )
    for item, data in items:
        uuid = data.get("instance_uuid")
        if not isinstance(uuid, str) or not uuid:
            raise InventoryUntrustworthy(
                f"{item}: field 'instance_uuid' must be a non-empty string, "
                f"got {show(uuid)}"
            )
        device = block_device_from_fields(data, where=f"{item} (instance_uuid {uuid})")
        by_uuid.setdefault(uuid, []).append(device)
    return by_uuid


def describe_versions(primitive: object) -> str:
    """The object names and versions a reply carries, e.g.
    ``InstanceList 2.6, Instance 2.8 (x3)``: the list's, then each distinct
    item version with its count. Whatever the reply holds, never raises: it
    is logged before the reply is checked.
    """
    if not isinstance(primitive, Mapping):
        return f"no nova object ({type(primitive).__name__})"
    parts = [_name_and_version(primitive)]
    data = primitive.get("nova_object.data")
    objects = data.get("objects") if isinstance(data, Mapping) else None
    if isinstance(objects, list):
        counts = collections.Counter(_name_and_version(item) for item in objects)
        parts += [f"{what} (x{count})" for what, count in sorted(counts.items())]
    return ", ".join(parts)


def _name_and_version(primitive: object) -> str:
    if not isinstance(primitive, Mapping):
        return f"no nova object ({type(primitive).__name__})"
    name = primitive.get("nova_object.name")
    version = primitive.get("nova_object.version")
    return f"{name} {version}"


def _list_items(
    primitive: object, list_name: str, item_name: str, where: str
) -> Iterator[tuple[str, Mapping[str, object]]]:
    """(where, data) for each item of a list object primitive."""
    data = _object_data(primitive, list_name, where)
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise InventoryUntrustworthy(
            f"{where}: {list_name}: field 'objects' must be a list of "
            f"{item_name} objects, got {show(objects)}"
        )
    for index, item in enumerate(objects):
        item_where = f"{where}: {list_name}.objects[{index}]"
        yield item_where, _object_data(item, item_name, item_where)


def _object_data(primitive: object, name: str, where: str) -> Mapping[str, object]:
    """The ``nova_object.data`` of a primitive, once its header is checked."""
    # The dict test first: an ABC's isinstance is slow, and replies are dicts.
    if not isinstance(primitive, dict) and not isinstance(primitive, Mapping):
        raise InventoryUntrustworthy(
            f"{where}: must be a nova object primitive of {name}, got {show(primitive)}"
        )
    got_name = primitive.get("nova_object.name")
    if got_name != name:
        raise InventoryUntrustworthy(
            f"{where}: field 'nova_object.name' must be {name!r}, got {show(got_name)}"
        )
    namespace = primitive.get("nova_object.namespace")
    if namespace != _NAMESPACE:
        raise InventoryUntrustworthy(
            f"{where}: {name}: field 'nova_object.namespace' must be "
            f"{_NAMESPACE!r}, got {show(namespace)}"
        )
    major = SUPPORTED_MAJOR_VERSIONS[name]
    version = primitive.get("nova_object.version")
    if not isinstance(version, str) or _major_version(version) != major:
        raise InventoryUntrustworthy(
            f"{where}: {name}: field 'nova_object.version' must be "
            f"'{major}.<minor>' (the major version cachemgr understands), "
            f"got {show(version)}"
        )
    data = primitive.get("nova_object.data")
    if not isinstance(data, dict) and not isinstance(data, Mapping):
        raise InventoryUntrustworthy(
            f"{where}: {name}: field 'nova_object.data' must be an object, "
            f"got {show(data)}"
        )
    return data


@functools.lru_cache(maxsize=64)
def _major_version(version: str) -> int | None:
    """The major of ``<major>.<minor>``, else None; remembered, as every
    object of a reply carries one of a few version strings."""
    match = _VERSION.fullmatch(version)
    return int(match.group(1)) if match else None
