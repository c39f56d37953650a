"""run_pass pauses the cyclic garbage collector, and always turns it back on.

The pause is a speed measure (benchmarks/README.md); what matters for
correctness is that a pass, completed or failed, leaves the collector as it
found it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.exceptions import InventoryUnavailable
from cachemgr.inventory.base import Inventory
from cachemgr.inventory.model import Instance
from cachemgr.pipeline.run import run_pass
from cachemgr.pipeline.settings import Settings, load_settings


def make_settings(tmp_path: Path) -> Settings:
    """A storage with one cache file, no instance and no disk."""
    instances = tmp_path / "instances"
    (instances / "_base").mkdir(parents=True)
    (instances / "_base" / ("a" * 40)).write_bytes(b"x")
    (tmp_path / "cachemgr.conf").write_text(
        f"[DEFAULT]\nhost = cmp1\ninstances_path = {instances}\n"
        "[inventory]\ndriver = static\nstatic_path = unused.json\n"
    )
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", str(tmp_path / "cachemgr.conf")])
    return load_settings(conf)


class RecordingInventory(Inventory):
    """No instances; records whether the collector ran while asked."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.collector_on: list[bool] = []

    @classmethod
    def from_conf(cls, conf: object) -> RecordingInventory:
        return cls()

    def list_instances(self, hosts: Sequence[str]) -> tuple[Instance, ...]:
        self.collector_on.append(gc.isenabled())
        if self.fail:
            raise InventoryUnavailable("broker down")
        return ()


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_during_the_pass_and_on_after(collector_on, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    inventory = RecordingInventory()

    run_pass(settings, inventory, dry_run=True)

    assert inventory.collector_on == [False]
    assert gc.isenabled()


def test_on_after_a_failed_pass(collector_on, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)

    with pytest.raises(InventoryUnavailable):
        run_pass(settings, RecordingInventory(fail=True), dry_run=True)

    assert gc.isenabled()


def test_left_off_if_it_was_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    gc.disable()
    try:
        run_pass(settings, RecordingInventory(), dry_run=True)
        assert not gc.isenabled()
    finally:
        gc.enable()
