"""``cachemgr --once`` with the nova driver, end to end, on the real broker.

The real command runs as a subprocess against the fake nova-conductor
(tests/support/nova_conductor.py) serving nova 34's captured instances; the host
is compute-01 and nova's storage registry names compute-02 as recent and
compute-03 as gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fixtures import nova_fixture
from tests.support.hosts import DAY, Host, fingerprint
from tests.support.nova_conductor import FakeConductor, Serving, serve

pytestmark = pytest.mark.broker

EXPECTED = nova_fixture("imagecache_expected.json")
USED = sorted(
    [u["libvirt_base_file"] for u in EXPECTED["used_images"].values()]
    + EXPECTED["used_swap_images"]
    + EXPECTED["used_ephemeral_images"]
)
UNUSED = [fingerprint("retired-image"), "swap_2048", "ephemeral_5_0706d66"]


@pytest.fixture
def conductor(broker_url: str) -> Iterator[Serving]:
    with serve(FakeConductor(), broker_url) as serving:
        yield serving


def storage_host(tmp_path: Path, url: str, exchange: str, **inventory: object) -> Host:
    """compute-01 with every used and unused file old, on a shared storage."""
    host = Host(tmp_path, name="compute-01")
    for name in USED + UNUSED:
        host.cache_file(name, age=10 * DAY)
    host.disk("11111111-1111-4111-8111-111111111111", host.base / USED[0])
    (host.instances_path / "compute_nodes").write_text(
        json.dumps({"compute-02": time.time() - 3600, "compute-03": 0})
    )
    host.write_nova(url, exchange, **inventory)
    return host


def test_keeps_what_the_conductor_instances_use(
    tmp_path: Path, conductor: Serving
) -> None:
    """Every base file of the storage hosts' instances stays; the rest goes."""
    host = storage_host(tmp_path, conductor.url, conductor.exchange, page_size=3)

    run = host.run()

    assert run.returncode == 0, run.output
    assert host.cache_names() == set(USED)
    assert run.summary()["removed"] == len(UNUSED)
    asked = {tuple(r.args[0]["host"]) for r in conductor.conductor.requests[:1]}
    assert asked == {("compute-01", "compute-02")}
    assert host.registered_hosts() == {"compute-01", "compute-02", "compute-03"}


def test_dry_run_asks_but_writes_nothing(tmp_path: Path, conductor: Serving) -> None:
    """A dry run asks the conductor and changes nothing, registry included."""
    host = storage_host(tmp_path, conductor.url, conductor.exchange)
    before = host.mtimes()

    run = host.run("--dry-run")

    assert run.returncode == 0, run.output
    assert host.mtimes() == before
    assert run.summary()["removed"] == len(UNUSED)
    assert conductor.conductor.requests


def test_broker_down_exits_1_quickly(tmp_path: Path) -> None:
    """With the default timeouts, a closed port fails the pass within 30 s."""
    host = storage_host(tmp_path, "rabbit://guest:guest@127.0.0.1:1/", "nova")
    before = host.mtimes(except_registry=True)

    started = time.monotonic()
    run = host.run(timeout=60)

    assert time.monotonic() - started < 30
    assert run.returncode == 1, run.output
    assert host.mtimes(except_registry=True) == before
    errors = run.lines("ERROR")
    assert any("127.0.0.1:1" in line and "refused" in line for line in errors), errors


def test_no_conductor_exits_1(tmp_path: Path, broker_url: str) -> None:
    """Nobody answering on the topic fails the pass after the call timeout."""
    host = storage_host(
        tmp_path, broker_url, "cachemgr-test-nobody", call_timeout_seconds=2
    )
    before = host.mtimes(except_registry=True)

    run = host.run(timeout=60)

    assert run.returncode == 1, run.output
    assert host.mtimes(except_registry=True) == before
    assert any("did not answer" in line for line in run.lines("ERROR"))


def test_debug_logs_the_object_versions_of_each_reply(
    tmp_path: Path, conductor: Serving
) -> None:
    """--debug shows what the conductor sent: object names and versions."""
    host = storage_host(tmp_path, conductor.url, conductor.exchange)

    run = host.run("--debug")

    assert run.returncode == 0, run.output
    debug = run.lines("DEBUG")
    assert any(
        "conductor reply to InstanceList.get_by_filters (marker None): "
        "InstanceList 2.6, Instance 2.8 (x8)" in line
        for line in debug
    ), run.output
    assert any(
        "conductor reply to BlockDeviceMappingList.get_by_instance_uuids "
        "(instances 0 to 7): BlockDeviceMappingList 1.18, BlockDeviceMapping "
        "1.21 (x8)" in line
        for line in debug
    ), run.output
