"""The guard against an inventory that cannot be believed (DESIGN 1.6); pure."""

from __future__ import annotations

from cachemgr.exceptions import InventoryUntrustworthy

__all__ = ["check_inventory_trust"]


def check_inventory_trust(
    instance_count: int, disk_count: int, instances_path: str, host: str
) -> None:
    """Refuse an empty inventory while disks exist on the storage.

    Most likely ``[DEFAULT] host`` does not match nova's name for this host,
    or the inventory points at the wrong cloud: removing "unused" files then
    would delete every base file the running instances need.

    Raises:
        InventoryUntrustworthy: no instances, yet ``disk_count`` > 0.
    """
    if instance_count == 0 and disk_count > 0:
        raise InventoryUntrustworthy(
            f"the inventory lists no instances, but {disk_count} instance disk "
            f"file(s) exist under {instances_path}; check that [DEFAULT] host "
            f"({host}) is nova's name for this host and that the inventory "
            f"describes this storage"
        )
