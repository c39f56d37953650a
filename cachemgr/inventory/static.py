"""The ``static`` inventory driver: instances listed in a JSON file.

The file is the complete list of instances on this storage (DESIGN 1.6)::

    {"instances": [
      {"uuid": "...", "id": 42, "name": "optional", "host": "cmp1",
       "image_ref": "...", "kernel_id": "", "ramdisk_id": "",
       "vm_state": "active", "task_state": null, "os_type": null,
       "block_device_mapping": [
         {"source_type": "blank", "destination_type": "local",
          "guest_format": "swap", "volume_size": 512, "boot_index": -1}]}]}

Field names and meanings are nova's; unknown fields are ignored. The file is
read whole on every call, so an operator may rewrite it between passes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from oslo_config import cfg

from cachemgr.conf.inventory import DEFAULT_MAX_INSTANCES
from cachemgr.exceptions import (
    ConfigError,
    InventoryUnavailable,
    InventoryUntrustworthy,
)
from cachemgr.inventory.base import Inventory
from cachemgr.inventory.fields import (
    block_device_from_fields,
    instance_from_fields,
    instance_uuid,
    show,
    where_with_uuid,
)
from cachemgr.inventory.model import BlockDevice, Instance

__all__ = ["StaticInventory"]


class StaticInventory(Inventory):
    """Lists the instances of the JSON file named by ``[inventory] static_path``.

    Args:
        path: the JSON file.
        name_template: ``[DEFAULT] instance_name_template``, for instances
            listed without a ``name``.
    """

    def __init__(
        self,
        path: str,
        name_template: str,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self.path = path
        self.name_template = name_template
        self.max_instances = max_instances

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> StaticInventory:
        """The driver for ``[inventory] static_path``.

        Raises:
            ConfigError: ``[inventory] static_path`` is unset or empty.
        """
        path = conf.inventory.static_path
        if not path:
            raise ConfigError(
                "[inventory] static_path is required when [inventory] driver = static"
            )
        return cls(path, conf.instance_name_template, conf.inventory.max_instances)

    def list_instances(self, hosts: Sequence[str] = ()) -> tuple[Instance, ...]:
        """Every instance of the file, in file order, whatever ``hosts`` says.

        Raises:
            InventoryUnavailable: the file is missing, unreadable or a
                directory.
            InventoryUntrustworthy: the file is not valid JSON, not of the
                documented shape, has a bad field or lists a uuid twice.
        """
        document = self._read_document()
        entries = _instance_entries(document, self.path)
        if len(entries) > self.max_instances:
            raise InventoryUntrustworthy(
                f"{self.path}: lists {len(entries)} instances, more than "
                f"[inventory] max_instances = {self.max_instances}"
            )
        instances: list[Instance] = []
        index_by_uuid: dict[str, int] = {}
        for index, entry in enumerate(entries):
            instance = self._instance(entry, f"{self.path}: instances[{index}]")
            first = index_by_uuid.setdefault(instance.uuid, index)
            if first != index:
                where = where_with_uuid(
                    f"{self.path}: instances[{index}]", instance.uuid
                )
                raise InventoryUntrustworthy(
                    f"{where}: field 'uuid' is the same as in instances[{first}]; "
                    "each instance must be listed once"
                )
            instances.append(instance)
        return tuple(instances)

    def _read_document(self) -> object:
        try:
            with open(self.path, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as exc:
            raise InventoryUnavailable(
                f"{self.path}: cannot read the static inventory "
                f"([inventory] static_path): {exc.strerror or exc}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise InventoryUntrustworthy(
                f"{self.path}: not valid UTF-8 at byte {exc.start}"
            ) from exc
        try:
            return json.loads(
                text,
                object_pairs_hook=_object_without_repeats,
                parse_int=_integer,
                parse_constant=_no_constant,
            )
        except json.JSONDecodeError as exc:
            raise InventoryUntrustworthy(
                f"{self.path}: not valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno}"
            ) from exc
        except RecursionError:
            raise InventoryUntrustworthy(
                f"{self.path}: JSON nested too deep; instances are objects in a list"
            ) from None
        except _NotANumberError as exc:
            raise InventoryUntrustworthy(
                f"{self.path}: {exc.word} is not a JSON number"
            ) from None
        except _RepeatedKeyError as exc:
            raise InventoryUntrustworthy(
                f"{self.path}: key {exc.key!r} appears twice in one object; "
                "only one of the values would be read"
            ) from exc

    def _instance(self, entry: object, where: str) -> Instance:
        if not isinstance(entry, dict):
            raise InventoryUntrustworthy(
                f"{where}: must be an object of nova fields, got {show(entry)}"
            )
        # The uuid first: the block devices' messages are located by it.
        uuid = instance_uuid(entry, where)
        devices = _block_devices(
            entry.get("block_device_mapping"), where_with_uuid(where, uuid)
        )
        return instance_from_fields(
            entry, devices, name_template=self.name_template, where=where
        )


class _LongInteger:
    """An integer literal too long to be any nova field's value.

    Kept as its digits, so that the field check names the field instead of
    Python's conversion (4,300 digits at most) refusing the whole file
    without saying where.
    """

    __slots__ = ("digits",)

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"{self.digits[:12]}… ({len(self.digits)} digits, out of range)"


# Longer than any 64-bit integer; Python would convert up to 4,300 digits.
_MAX_DIGITS = 20


def _integer(digits: str) -> int | _LongInteger:
    if len(digits) > _MAX_DIGITS:
        return _LongInteger(digits)
    return int(digits)


class _NotANumberError(ValueError):
    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


def _no_constant(word: str) -> float:
    """``NaN``, ``Infinity``, ``-Infinity``: Python's JSON extensions, refused."""
    raise _NotANumberError(word)


class _RepeatedKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object; a repeated key raises instead of hiding a value.

    The dict is built in C; only an object that has a repeat is searched for
    it. The file holds an object per instance and per block device.
    """
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(key)
            seen.add(key)
    return result


def _instance_entries(document: object, path: str) -> Sequence[object]:
    if not isinstance(document, dict):
        raise InventoryUntrustworthy(
            f'{path}: the top level must be an object {{"instances": [...]}}, '
            f"got {show(document)}"
        )
    if "instances" not in document:
        raise InventoryUntrustworthy(
            f"{path}: field 'instances' is missing; it must be a list of "
            "instance objects"
        )
    entries = document["instances"]
    if not isinstance(entries, list):
        raise InventoryUntrustworthy(
            f"{path}: field 'instances' must be a list of instance objects, "
            f"got {show(entries)}"
        )
    return entries


def _block_devices(mappings: object, where: str) -> tuple[BlockDevice, ...]:
    """The block devices of one instance; absent or null means none."""
    if mappings is None:
        return ()
    if not isinstance(mappings, list):
        raise InventoryUntrustworthy(
            f"{where}: field 'block_device_mapping' must be a list of objects, "
            f"got {show(mappings)}"
        )
    return tuple(
        block_device_from_fields(
            mapping, where=f"{where}: block_device_mapping[{index}]"
        )
        for index, mapping in enumerate(mappings)
    )
