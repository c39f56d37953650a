"""The nova inventory driver against a fake nova-conductor on the real broker.

The conductor is an oslo.messaging RPC server on the local RabbitMQ that
answers with nova 34's own primitives (tests/support/nova_conductor.py), on an
exchange of its own per test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.cache import naming, usage
from cachemgr.exceptions import InventoryUnavailable, InventoryUntrustworthy
from cachemgr.inventory import nova_versions
from cachemgr.inventory.nova import NovaInventory
from tests.support import rabbit
from tests.support.fixtures import list_primitive, nova_fixture
from tests.support.nova_conductor import (
    FakeConductor,
    Forbidden,
    Request,
    Serving,
    make_instance,
    serve,
)

pytestmark = pytest.mark.broker

HOSTS = ["compute-01", "compute-02"]
EXPECTED = nova_fixture("imagecache_expected.json")
REQUEST = nova_fixture("request_instance_list.json")["message"]["args"]
BDM_REQUEST = nova_fixture("request_bdms.json")["message"]["args"]

MakeInventory = Callable[..., NovaInventory]


@pytest.fixture
def conductor(broker_url: str) -> Iterator[Serving]:
    with serve(FakeConductor(), broker_url) as serving:
        yield serving


@pytest.fixture
def make_inventory(tmp_path: Path) -> Iterator[MakeInventory]:
    """Build the driver from a config file, as the command does (global CONF)."""
    made: list[NovaInventory] = []

    def make(url: str, exchange: str, **inventory: object) -> NovaInventory:
        options = {"call_timeout_seconds": 5, **inventory}
        lines = ["[DEFAULT]", f"transport_url = {url}", "[inventory]"]
        lines += [f"conductor_exchange = {exchange}"]
        lines += [f"{key} = {value}" for key, value in options.items()]
        path = tmp_path / "cachemgr.conf"
        path.write_text("\n".join(lines) + "\n")
        cachemgr_conf.register_opts(cfg.CONF)
        cfg.CONF(["--config-file", str(path)], project="cachemgr")
        made.append(NovaInventory.from_conf(cfg.CONF))
        return made[-1]

    yield make
    for inventory in made:
        inventory.close()
    cfg.CONF.reset()


def calls(conductor: FakeConductor, objname: str) -> list[Request]:
    return [r for r in conductor.requests if r.objname == objname]


class TestListInstances:
    def test_reproduces_nova_image_cache_usage(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """The decoded instances give exactly what nova's own manager computes."""
        inventory = make_inventory(conductor.url, conductor.exchange)
        instances = inventory.list_instances(HOSTS)
        used = usage.used_names(instances, usage.EphemeralNaming())
        assert used.image_users == {
            want["libvirt_base_file"]: tuple(want["instance_names"])
            for want in EXPECTED["used_images"].values()
        }
        assert used.other_names == set(
            EXPECTED["used_swap_images"] + EXPECTED["used_ephemeral_images"]
        )

    def test_asks_what_nova_compute_asks(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """Filters, kwargs, manifests and context are those of nova's ConductorAPI."""
        make_inventory(conductor.url, conductor.exchange).list_instances(HOSTS)
        first = calls(conductor.conductor, "InstanceList")[0]
        assert first.objmethod == "get_by_filters"
        assert first.args == REQUEST["args"]
        assert first.kwargs == {**REQUEST["kwargs"], "limit": 1000}
        assert first.object_versions == REQUEST["object_versions"]
        assert first.object_versions == nova_versions.INSTANCE_LIST
        assert first.context["is_admin"] is True
        bdm = calls(conductor.conductor, "BlockDeviceMappingList")[0]
        assert bdm.objmethod == BDM_REQUEST["objmethod"] == "get_by_instance_uuids"
        assert sorted(bdm.args[0]) == sorted(BDM_REQUEST["args"][0])
        assert bdm.kwargs == {}
        assert bdm.object_versions == BDM_REQUEST["object_versions"]

    def test_pages_with_limit_and_marker(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """Pages of 3 ask with the last uuid of the previous page as marker."""
        inventory = make_inventory(conductor.url, conductor.exchange, page_size=3)
        instances = inventory.list_instances(HOSTS)
        pages = calls(conductor.conductor, "InstanceList")
        assert [p.kwargs.get("marker") for p in pages] == [
            None,
            instances[2].uuid,
            instances[5].uuid,
        ]
        assert all(p.kwargs["limit"] == 3 for p in pages)
        assert len({i.uuid for i in instances}) == len(instances) == 8

    def test_full_last_page_asks_once_more(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """A last page exactly full is followed by an empty one, then it stops."""
        inventory = make_inventory(conductor.url, conductor.exchange, page_size=4)
        assert len(inventory.list_instances(HOSTS)) == 8
        assert len(calls(conductor.conductor, "InstanceList")) == 3

    def test_block_devices_in_batches(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """Mappings come in batches and each lands on its instance."""
        inventory = make_inventory(conductor.url, conductor.exchange, bdm_batch_size=3)
        instances = inventory.list_instances(HOSTS)
        batches = calls(conductor.conductor, "BlockDeviceMappingList")
        assert [len(b.args[0]) for b in batches] == [3, 3, 2]
        by_uuid = {i.uuid: i for i in instances}
        swap = by_uuid["11111111-1111-4111-8111-111111111111"].block_devices[1]
        assert (swap.guest_format, swap.volume_size) == ("swap", 512)

    def test_only_the_hosts_asked_for(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """The host filter is the registry's host list, passed through."""
        inventory = make_inventory(conductor.url, conductor.exchange)
        instances = inventory.list_instances(["compute-02"])
        assert {i.host for i in instances} == {"compute-02"}
        assert {i.id for i in instances} == {4, 6}

    def test_names_from_the_template(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """``name`` is not on the wire: it comes from instance_name_template."""
        inventory = make_inventory(conductor.url, conductor.exchange)
        names = {i.name for i in inventory.list_instances(HOSTS)}
        assert "instance-00001a2b" in names


class TestFailures:
    def _failing(self, conductor: Serving, fault) -> None:
        conductor.conductor.fault = fault

    def test_marker_not_found_is_untrustworthy(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """A marker the conductor rejects makes the whole inventory untrustworthy."""
        conductor.conductor.instances.pop(3)  # the page-1 marker vanishes
        inventory = make_inventory(conductor.url, conductor.exchange, page_size=3)

        def drop_marker(request: Request, number: int) -> None:
            if request.kwargs.get("marker"):
                conductor.conductor.instances[:] = conductor.conductor.instances[3:]

        self._failing(conductor, drop_marker)
        with pytest.raises(InventoryUntrustworthy, match="MarkerNotFound"):
            inventory.list_instances(HOSTS)

    def test_page_failing_mid_way(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """A second page that fails fails everything: no partial list."""

        def fail_second(request: Request, number: int) -> None:
            if number == 2:
                raise RuntimeError("database went away")

        self._failing(conductor, fail_second)
        inventory = make_inventory(conductor.url, conductor.exchange, page_size=3)
        with pytest.raises(InventoryUnavailable, match="RuntimeError: database went"):
            inventory.list_instances(HOSTS)

    def test_endless_listing_is_bounded(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """A conductor answering full pages of new instances forever is refused."""

        def endless(request: Request, number: int) -> object:
            if request.objname != "InstanceList":
                return None
            page = [make_instance(number * 10 + i, HOSTS[0], "img") for i in range(3)]
            return list_primitive("InstanceList", "2.6", page)

        self._failing(conductor, endless)
        inventory = make_inventory(
            conductor.url, conductor.exchange, page_size=3, max_instances=7
        )
        with pytest.raises(
            InventoryUntrustworthy, match=r"more than \[inventory\] max_instances = 7"
        ):
            inventory.list_instances(HOSTS)
        assert len(calls(conductor.conductor, "InstanceList")) == 3

    @pytest.mark.parametrize(
        ("reply", "message"),
        [
            ("garbage", "must be a nova object primitive"),
            ({"nova_object.name": "InstanceList"}, "nova_object"),
            (
                {
                    "nova_object.name": "InstanceList",
                    "nova_object.namespace": "nova",
                    "nova_object.version": "3.0",
                    "nova_object.data": {"objects": []},
                },
                "3.0",
            ),
        ],
        ids=["not-an-object", "no-namespace", "major-3"],
    )
    def test_malformed_reply_is_untrustworthy(
        self,
        conductor: Serving,
        make_inventory: MakeInventory,
        reply: object,
        message: str,
    ) -> None:
        """A reply that is not an InstanceList 2.x primitive is refused, by field."""
        self._failing(conductor, lambda request, number: reply)
        inventory = make_inventory(conductor.url, conductor.exchange)
        with pytest.raises(InventoryUntrustworthy, match=message):
            inventory.list_instances(HOSTS)

    def test_remote_error_names_its_type(
        self, conductor: Serving, make_inventory: MakeInventory
    ) -> None:
        """A nova exception arrives as RemoteError and the message names its type."""

        def forbid(request: Request, number: int) -> None:
            raise Forbidden("Forbidden")

        self._failing(conductor, forbid)
        inventory = make_inventory(conductor.url, conductor.exchange)
        with pytest.raises(InventoryUnavailable, match="with Forbidden: Forbidden"):
            inventory.list_instances(HOSTS)

    def test_no_conductor_times_out(
        self, broker_url: str, make_inventory: MakeInventory
    ) -> None:
        """Nobody on the topic: refused after the call timeout, not hung."""
        inventory = make_inventory(
            broker_url, "cachemgr-test-nobody", call_timeout_seconds=1
        )
        started = time.monotonic()
        with pytest.raises(InventoryUnavailable, match="did not answer"):
            inventory.list_instances(HOSTS)
        assert time.monotonic() - started < 15

    def test_broker_down_fails_fast(self, make_inventory: MakeInventory) -> None:
        """A closed port is refused within the connect timeout, naming the host."""
        inventory = make_inventory(
            "rabbit://guest:guest@127.0.0.1:1/", "nova", connect_timeout_seconds=2
        )
        started = time.monotonic()
        with pytest.raises(InventoryUnavailable, match=r"guest@127\.0\.0\.1:1"):
            inventory.list_instances(HOSTS)
        assert time.monotonic() - started < 15


def test_fingerprints_in_expected_file_are_nova_names() -> None:
    """The expected base files are sha1(image id): the fixture agrees with naming."""
    for ref, want in EXPECTED["used_images"].items():
        assert naming.fingerprint(ref) == want["libvirt_base_file"]


@pytest.fixture
def restricted_url(broker_vhost: str) -> Iterator[str]:
    """A RabbitMQ user with only the permissions README.rst documents.

    configure and write on the conductor exchange and ``reply_.*``, read on
    ``reply_.*``; here the conductor exchanges are this test run's own.
    """
    pattern = "^(cachemgr-test-.*|reply_.*)$"
    with rabbit.restricted_user(broker_vhost, pattern, pattern, "^reply_.*$") as (
        name,
        password,
    ):
        yield f"rabbit://{name}:{password}@{rabbit.BROKER}/{broker_vhost}"


def test_documented_rabbitmq_permissions_suffice(
    conductor: Serving, make_inventory: MakeInventory, restricted_url: str
) -> None:
    """The driver works with the RabbitMQ permissions the README documents."""
    inventory = make_inventory(restricted_url, conductor.exchange)
    assert len(inventory.list_instances(HOSTS)) == 8
