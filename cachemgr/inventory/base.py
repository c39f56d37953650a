"""The inventory interface and driver loading by entry point.

Drivers are named by ``[inventory] driver`` and found in the
``cachemgr.inventory_drivers`` entry point group, as oslo.messaging finds its
transport drivers.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from oslo_config import cfg
from stevedore import driver as stevedore_driver

from cachemgr.exceptions import ConfigError
from cachemgr.inventory.model import Instance

__all__ = ["DRIVER_NAMESPACE", "Inventory", "load_inventory"]

DRIVER_NAMESPACE = "cachemgr.inventory_drivers"


class Inventory(abc.ABC):
    """Lists every instance whose disks may live on this storage."""

    uses_storage_hosts: bool = False
    """Whether list_instances needs the hosts of nova's storage registry."""

    waits_on_network: bool = False
    """Whether list_instances mostly waits for replies, so a pass scans the
    storage meanwhile (in another thread). A driver that mostly computes
    (parsing a file) would only take the scan's turns at the GIL."""

    @classmethod
    @abc.abstractmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Inventory:
        """Build the driver from the options.

        Raises:
            ConfigError: an option the driver needs is missing or wrong.
        """

    @abc.abstractmethod
    def list_instances(self, hosts: Sequence[str]) -> tuple[Instance, ...]:
        """All instances, or an error: never a partial list.

        Args:
            hosts: the hosts sharing this storage (this one first); only
                drivers with ``uses_storage_hosts`` read it.

        Raises:
            InventoryUnavailable: the source could not be read.
            InventoryUntrustworthy: what was read cannot be believed.
        """

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing
        """Release what the driver holds (connections); it may be reused."""


def load_inventory(conf: cfg.ConfigOpts) -> Inventory:
    """The driver named by ``[inventory] driver``, built from ``conf``."""
    name = conf.inventory.driver
    try:
        manager = stevedore_driver.DriverManager(DRIVER_NAMESPACE, name)
    except Exception as exc:  # stevedore raises several types
        raise ConfigError(
            f"[inventory] driver = {name}: no such inventory driver ({exc})"
        ) from exc
    return manager.driver.from_conf(conf)
