"""The guard against an empty inventory while disks exist (DESIGN 1.6)."""

from __future__ import annotations

import pytest

from cachemgr.exceptions import InventoryUntrustworthy
from cachemgr.pipeline.guard import check_inventory_trust


class TestCheckInventoryTrust:
    def test_empty_inventory_with_disks_is_refused(self) -> None:
        """No instances but a disk: refused, naming the host option and the count."""
        with pytest.raises(
            InventoryUntrustworthy, match=r"2 instance disk.*\[DEFAULT\] host \(cmp1\)"
        ):
            check_inventory_trust(0, 2, "/var/lib/nova/instances", "cmp1")

    @pytest.mark.parametrize(
        ("instances", "disks"), [(0, 0), (1, 0), (1, 5), (3, 1)], ids=str
    )
    def test_other_combinations_pass(self, instances: int, disks: int) -> None:
        """Instances listed, or no disk at all: the inventory is believed."""
        check_inventory_trust(instances, disks, "/x", "cmp1")
