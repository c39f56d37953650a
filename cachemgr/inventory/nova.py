"""The ``nova`` inventory driver: the instances of every storage host, from
nova-conductor over the message bus, exactly as nova-compute asks for them.

Instances come in pages (``limit``/``marker``) and block device mappings in
batches, so no reply grows past the broker's message size limit. A page or
batch that fails makes the whole inventory fail: never a partial list.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from oslo_config import cfg

from cachemgr.conf.inventory import DEFAULT_MAX_INSTANCES
from cachemgr.exceptions import InventoryUntrustworthy
from cachemgr.inventory import nova_objects, nova_versions
from cachemgr.inventory.base import Inventory
from cachemgr.inventory.conductor import ConductorClient, check_transport_url
from cachemgr.inventory.fields import instance_from_fields, instance_uuid
from cachemgr.inventory.model import BlockDevice, Instance

__all__ = ["NovaInventory"]

LOG = logging.getLogger(__name__)


class NovaInventory(Inventory):
    """Asks nova-conductor for the instances of the storage's hosts."""

    uses_storage_hosts = True
    waits_on_network = True

    def __init__(
        self,
        client: ConductorClient,
        *,
        name_template: str,
        page_size: int,
        bdm_batch_size: int,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self._client = client
        self._name_template = name_template
        self._page_size = page_size
        self._bdm_batch_size = bdm_batch_size
        self._max_instances = max_instances

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> NovaInventory:
        """The driver for the conductor on ``transport_url``; no connection yet.

        Raises:
            ConfigError: ``[DEFAULT] transport_url`` cannot be used.
        """
        check_transport_url(conf)
        group = conf.inventory
        client = ConductorClient(
            conf,
            exchange=group.conductor_exchange,
            topic=group.conductor_topic,
            call_timeout_seconds=group.call_timeout_seconds,
            connect_timeout_seconds=group.connect_timeout_seconds,
        )
        return cls(
            client,
            name_template=conf.instance_name_template,
            page_size=group.page_size,
            bdm_batch_size=group.bdm_batch_size,
            max_instances=group.max_instances,
        )

    def list_instances(self, hosts: Sequence[str]) -> tuple[Instance, ...]:
        """Every instance on ``hosts`` that is not deleted (soft-deleted too)."""
        self._client.check_broker()
        listed = self._instances(hosts)
        devices = self._block_devices([uuid for uuid, _, _ in listed])
        # Built once, with their block devices: the pages gave their fields.
        return tuple(
            instance_from_fields(
                fields,
                tuple(devices.get(uuid, ())),
                name_template=self._name_template,
                where=where,
            )
            for uuid, where, fields in listed
        )

    def close(self) -> None:
        self._client.close()

    def _instances(
        self, hosts: Sequence[str]
    ) -> list[tuple[str, str, Mapping[str, object]]]:
        """(uuid, where, fields) of every instance listed, page after page."""
        filters = {"deleted": False, "soft_deleted": True, "host": list(hosts)}
        instances: list[tuple[str, str, Mapping[str, object]]] = []
        seen: set[str] = set()
        marker: str | None = None
        while True:
            kwargs: dict[str, object] = {
                "expected_attrs": [],
                "limit": self._page_size,
                "use_slave": True,
            }
            if marker is not None:
                kwargs["marker"] = marker
            reply = self._client.call(
                "InstanceList",
                "get_by_filters",
                nova_versions.INSTANCE_LIST,
                [filters],
                kwargs,
            )
            where = f"conductor reply to InstanceList.get_by_filters (marker {marker})"
            LOG.debug("%s: %s", where, nova_objects.describe_versions(reply))
            page = [
                (instance_uuid(fields, item), item, fields)
                for item, fields in nova_objects.instance_objects(reply, where)
            ]
            for uuid, _, _ in page:
                if uuid in seen:
                    raise InventoryUntrustworthy(
                        f"{where}: instance {uuid} was already listed "
                        "on an earlier page"
                    )
                seen.add(uuid)
            instances.extend(page)
            if len(instances) > self._max_instances:
                raise InventoryUntrustworthy(
                    f"{where}: nova-conductor listed more than [inventory] "
                    f"max_instances = {self._max_instances} instances; is it "
                    "answering the same pages again?"
                )
            if len(page) < self._page_size:
                return instances
            marker = page[-1][0]

    def _block_devices(self, uuids: list[str]) -> dict[str, list[BlockDevice]]:
        devices: dict[str, list[BlockDevice]] = {}
        for start in range(0, len(uuids), self._bdm_batch_size):
            batch = uuids[start : start + self._bdm_batch_size]
            reply = self._client.call(
                "BlockDeviceMappingList",
                "get_by_instance_uuids",
                nova_versions.BLOCK_DEVICE_MAPPING_LIST,
                [batch],
                {},
            )
            where = (
                "conductor reply to BlockDeviceMappingList.get_by_instance_uuids "
                f"(instances {start} to {start + len(batch) - 1})"
            )
            LOG.debug("%s: %s", where, nova_objects.describe_versions(reply))
            decoded = nova_objects.decode_block_device_mappings(reply, where=where)
            for uuid, found in decoded.items():
                devices.setdefault(uuid, []).extend(found)
        return devices
