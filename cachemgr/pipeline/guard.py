"""The guards against an inventory that cannot be believed; pure.

DESIGN 1.6: an empty inventory while disks exist. DESIGN 1.9: an inventory
far smaller than the last completed pass's (a restart that lost the hosts,
a half-answered listing), which would make almost every base file unused
at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from cachemgr.exceptions import InventoryUntrustworthy

__all__ = [
    "InventoryBaseline",
    "baseline_of",
    "check_inventory_trust",
    "inventory_shrink",
]

# Fewer than this many instances lost is never a shrink: small clouds move.
_MIN_SHRINK = 10


@dataclass(frozen=True, slots=True)
class InventoryBaseline:
    """The instance count of the last completed pass, and when it ended."""

    instances: int
    ended_at: float


def baseline_of(entry: Mapping[str, object] | None) -> InventoryBaseline | None:
    """The baseline in a status file's pass entry; None if it has none."""
    if not isinstance(entry, Mapping):
        return None
    counters = entry.get("counters")
    ended_at = entry.get("ended_at_epoch")
    if not isinstance(counters, Mapping) or not isinstance(ended_at, (int, float)):
        return None
    instances = counters.get("instances")
    if type(instances) is not int or instances < 0:
        return None
    return InventoryBaseline(instances, float(ended_at))


def inventory_shrink(
    count: int, baseline: InventoryBaseline | None, limit_percent: int
) -> str | None:
    """Why ``count`` instances is a shrink the pass must not act on, or None.

    A shrink is fewer than ``(100 - limit_percent)`` percent of the
    baseline (exactly: ``100 * count < (100 - limit) * baseline``) and at
    least 10 instances fewer. ``limit_percent`` 0 is off.
    """
    if not limit_percent or baseline is None:
        return None
    before = baseline.instances
    if 100 * count >= (100 - limit_percent) * before or before - count < _MIN_SHRINK:
        return None
    when = datetime.datetime.fromtimestamp(baseline.ended_at, datetime.UTC)
    return (
        f"the inventory lists {count} instances, fewer than "
        f"{100 - limit_percent}% of the {before} of the last completed pass "
        f"(ended {when:%Y-%m-%dT%H:%M:%SZ}; [image_cache] "
        f"inventory_shrink_limit_percent = {limit_percent}); the files in use "
        "were refreshed. If the cloud really shrank, run "
        "cachemgr --once --accept-inventory once to accept it"
    )


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
