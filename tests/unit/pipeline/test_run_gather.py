"""Tests for run_pass's gather on real files under tmp_path: an inventory that
waits on the network is read while the storage is scanned, and its failures
still come first."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.cache import scan
from cachemgr.exceptions import GatherError, InventoryUnavailable
from cachemgr.inventory.base import Inventory
from cachemgr.inventory.model import Instance
from cachemgr.pipeline.run import run_pass
from cachemgr.pipeline.settings import Settings, load_settings

IMAGE = "a" * 40
UNUSED = "b" * 40
OLD = 10 * 86400
# How long the test inventory waits for the scan before it gives up.
WAIT_S = 10


def make_host(tmp_path: Path) -> Settings:
    """Two old unused cache files; one instance dir whose disk is raw."""
    instances = tmp_path / "instances"
    base = instances / "_base"
    base.mkdir(parents=True)
    then = time.time() - OLD
    for name in (IMAGE, UNUSED):
        (base / name).write_bytes(b"x" * 4096)
        os.utime(base / name, (then, then))
    (instances / "uuid-1").mkdir()
    (instances / "uuid-1" / "disk").write_bytes(b"raw")
    (tmp_path / "cachemgr.conf").write_text(
        f"[DEFAULT]\nhost = cmp1\ninstances_path = {instances}\n"
    )
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", str(tmp_path / "cachemgr.conf")])
    return load_settings(conf)


def make_disk_unscannable(tmp_path: Path) -> None:
    """The instance's disk becomes a symlink loop: the disk scan fails (ELOOP)."""
    disk_dir = tmp_path / "instances" / "uuid-1"
    (disk_dir / "disk").unlink()
    os.symlink("loop", disk_dir / "loop")
    os.symlink(disk_dir / "loop", disk_dir / "disk")


class SlowNetworkInventory(Inventory):
    """An inventory on the network that answers once the disks were scanned.

    Read before the scan, as a file inventory is, it would wait in vain.
    """

    waits_on_network = True

    def __init__(self, scanned: threading.Event, fail: bool = False) -> None:
        self.scanned = scanned
        self.fail = fail
        self.thread: str | None = None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Inventory:
        raise NotImplementedError

    def list_instances(self, hosts: Sequence[str]) -> tuple[Instance, ...]:
        self.thread = threading.current_thread().name
        if not self.scanned.wait(WAIT_S):
            raise InventoryUnavailable("the disks were not scanned meanwhile")
        if self.fail:
            raise InventoryUnavailable("conductor gone")
        return (Instance("uuid-1", "instance-1", host="cmp1"),)


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the real disk scan has run."""
    event = threading.Event()
    real_scan_disks = scan.scan_disks

    def scan_disks(*args, **kwargs):
        try:
            return real_scan_disks(*args, **kwargs)
        finally:
            event.set()

    monkeypatch.setattr(scan, "scan_disks", scan_disks)
    return event


class TestNetworkInventoryOverlapsTheScan:
    def test_storage_scanned_while_the_inventory_waits(
        self, tmp_path: Path, scanned: threading.Event
    ) -> None:
        """The inventory gets its answer only after the scan: both completed."""
        settings = make_host(tmp_path)
        inventory = SlowNetworkInventory(scanned)
        result = run_pass(settings, inventory, dry_run=True)
        assert inventory.thread is not None
        assert inventory.thread != threading.current_thread().name
        assert result.summary.files == 2
        assert result.summary.disks == 1
        assert result.summary.removed == 2  # would remove: nothing uses them

    def test_inventory_failure_comes_first(
        self, tmp_path: Path, scanned: threading.Event
    ) -> None:
        """The inventory fails: that error, not a scan result, ends the pass."""
        settings = make_host(tmp_path)
        with pytest.raises(InventoryUnavailable, match="conductor gone"):
            run_pass(settings, SlowNetworkInventory(scanned, fail=True), dry_run=False)
        assert sorted(os.listdir(settings.cache_dir)) == [IMAGE, UNUSED]

    def test_inventory_failure_before_a_scan_failure(
        self, tmp_path: Path, scanned: threading.Event
    ) -> None:
        """Both fail: the inventory's error is the one reported."""
        settings = make_host(tmp_path)
        make_disk_unscannable(tmp_path)
        with pytest.raises(InventoryUnavailable, match="conductor gone"):
            run_pass(settings, SlowNetworkInventory(scanned, fail=True), dry_run=True)

    def test_scan_failure_after_the_inventory_answered(
        self, tmp_path: Path, scanned: threading.Event
    ) -> None:
        """The scan fails, the inventory answers: the pass fails, removing nothing."""
        settings = make_host(tmp_path)
        make_disk_unscannable(tmp_path)
        with pytest.raises(GatherError, match="cannot scan"):
            run_pass(settings, SlowNetworkInventory(scanned), dry_run=False)
        assert sorted(os.listdir(settings.cache_dir)) == [IMAGE, UNUSED]
