"""Tests for cachemgr.inventory.nova_objects, on the captured nova replies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cachemgr.exceptions import InventoryUntrustworthy
from cachemgr.inventory import nova_objects
from cachemgr.inventory.model import BlockDevice, Instance
from cachemgr.inventory.nova_objects import (
    decode_block_device_mappings,
    decode_instance_list,
)
from tests.support.fixtures import nova_fixture

TEMPLATE = "instance-%08x"
UUID_1 = "11111111-1111-4111-8111-111111111111"
UUID_3 = "33333333-3333-4333-8333-333333333333"
UUID_4 = "44444444-4444-4444-8444-444444444444"
UUID_5 = "55555555-5555-4555-8555-555555555555"
UUID_7 = "77777777-7777-4777-8777-777777777777"

SWAP_512 = BlockDevice("blank", "local", "swap", 512, -1)
EPHEMERAL_1 = BlockDevice("blank", "local", None, 1, -1)
IMAGE_ROOT = BlockDevice("image", "local", None, None, 0)


def decode_instances(name: str) -> list[Instance]:
    return decode_instance_list(nova_fixture(name), name_template=TEMPLATE)


def summary(instance: Instance) -> dict[str, object]:
    """The fields imagecache_expected.json lists for each instance."""
    keys = ("host", "id", "name", "os_type", "task_state", "uuid", "vm_state")
    return {key: getattr(instance, key) for key in keys}


def instance_list() -> Any:
    return nova_fixture("instance_list.json")


def bdm_list() -> Any:
    return nova_fixture("bdm_list_by_uuid.json")


class TestDecodeInstanceList:
    def test_synthetic_reply(self) -> None:
        """The 8 instances decode to what nova's own objects gave, in order."""
        expected = nova_fixture("imagecache_expected.json")["instances"]
        assert [summary(i) for i in decode_instances("instance_list.json")] == expected

    def test_image_fields(self) -> None:
        """image_ref, kernel_id and ramdisk_id are kept, an empty one included."""
        by_uuid = {i.uuid: i for i in decode_instances("instance_list.json")}
        ami = by_uuid[UUID_3]
        assert (ami.image_ref, ami.kernel_id, ami.ramdisk_id) == (
            "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c03",
            "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c04",
            "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d05",
        )
        volume = by_uuid[UUID_4]
        assert (volume.image_ref, volume.kernel_id, volume.ramdisk_id) == (
            "",
            None,
            None,
        )

    def test_no_block_devices(self) -> None:
        """Decoded instances have no block devices until they are attached."""
        assert all(not i.block_devices for i in decode_instances("instance_list.json"))

    def test_page_two(self) -> None:
        """The second page holds the 3 instances after the marker."""
        instances = decode_instances("instance_list_page2.json")
        assert [i.uuid for i in instances] == nova_fixture("manifest.json")[
            "page2_uuids"
        ]

    def test_real_conductor_reply(self) -> None:
        """A real conductor's 8 instances match its seed (ids from the database)."""
        seed = {row["uuid"]: row for row in nova_fixture("real_conductor/seed.json")}
        instances = decode_instances("real_conductor/instance_list.json")
        assert len(instances) == 8
        for instance in instances:
            row = seed[instance.uuid]
            assert (instance.id, instance.name, instance.host, instance.vm_state) == (
                row["id"],
                row["name"],
                row["host"],
                row["vm_state"],
            )

    def test_real_conductor_same_instances(self) -> None:
        """The real and synthetic replies differ only in the last instance's id."""
        real = decode_instances("real_conductor/instance_list.json")
        synthetic = decode_instances("instance_list.json")
        assert [i.uuid for i in real] == [i.uuid for i in synthetic]
        assert real[1:] == synthetic[1:]
        assert (real[0].name, synthetic[0].name) == (
            "instance-00000008",
            "instance-00001a2b",
        )

    def test_name_template(self) -> None:
        """Names come from the given template."""
        instances = decode_instance_list(instance_list(), name_template="vm-%d")
        assert instances[-1].name == "vm-1"

    def test_newer_minor_versions(self) -> None:
        """A newer minor version only adds fields and is accepted."""
        primitive = instance_list()
        primitive["nova_object.version"] = "2.99"
        primitive["nova_object.data"]["objects"][0]["nova_object.version"] = "2.10"
        assert len(decode_instance_list(primitive, name_template=TEMPLATE)) == 8

    def test_empty_list(self) -> None:
        """A list without objects decodes to no instances."""
        primitive = instance_list()
        primitive["nova_object.data"]["objects"] = []
        assert decode_instance_list(primitive, name_template=TEMPLATE) == []

    def test_where(self) -> None:
        """A caller-given location prefixes the messages."""
        primitive = instance_list()
        primitive["nova_object.name"] = "Other"
        with pytest.raises(InventoryUntrustworthy, match=r"^page 2: field"):
            decode_instance_list(primitive, name_template=TEMPLATE, where="page 2")

    @pytest.mark.parametrize(
        ("key", "value", "message"),
        [
            (
                "nova_object.name",
                "BlockDeviceMappingList",
                "conductor reply: field 'nova_object.name' must be 'InstanceList', "
                "got 'BlockDeviceMappingList'",
            ),
            (
                "nova_object.namespace",
                "cinder",
                "conductor reply: InstanceList: field 'nova_object.namespace' must "
                "be 'nova', got 'cinder'",
            ),
            (
                "nova_object.version",
                "3.0",
                "conductor reply: InstanceList: field 'nova_object.version' must be "
                "'2.<minor>' (the major version cachemgr understands), got '3.0'",
            ),
            (
                "nova_object.version",
                2.6,
                "conductor reply: InstanceList: field 'nova_object.version' must be "
                "'2.<minor>' (the major version cachemgr understands), got 2.6",
            ),
            (
                "nova_object.data",
                [],
                "conductor reply: InstanceList: field 'nova_object.data' must be an "
                "object, got []",
            ),
        ],
    )
    def test_bad_list_header(self, key: str, value: object, message: str) -> None:
        """The list's name, namespace, major version and data are checked."""
        primitive = instance_list()
        primitive[key] = value
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_instance_list(primitive, name_template=TEMPLATE)

    @pytest.mark.parametrize(
        ("key", "value", "message"),
        [
            (
                "nova_object.name",
                "Migration",
                "conductor reply: InstanceList.objects[2]: field 'nova_object.name' "
                "must be 'Instance', got 'Migration'",
            ),
            (
                "nova_object.namespace",
                None,
                "conductor reply: InstanceList.objects[2]: Instance: field "
                "'nova_object.namespace' must be 'nova', got None",
            ),
            (
                "nova_object.version",
                "3.0",
                "conductor reply: InstanceList.objects[2]: Instance: field "
                "'nova_object.version' must be '2.<minor>' (the major version "
                "cachemgr understands), got '3.0'",
            ),
            (
                "nova_object.version",
                "1.0",
                "conductor reply: InstanceList.objects[2]: Instance: field "
                "'nova_object.version' must be '2.<minor>' (the major version "
                "cachemgr understands), got '1.0'",
            ),
            (
                "nova_object.version",
                "2",
                "conductor reply: InstanceList.objects[2]: Instance: field "
                "'nova_object.version' must be '2.<minor>' (the major version "
                "cachemgr understands), got '2'",
            ),
        ],
    )
    def test_bad_item_header(self, key: str, value: object, message: str) -> None:
        """Each item's name, namespace and major version are checked."""
        primitive = instance_list()
        primitive["nova_object.data"]["objects"][2][key] = value
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_instance_list(primitive, name_template=TEMPLATE)

    def test_objects_not_a_list(self) -> None:
        """A list object without an ``objects`` list is refused."""
        primitive = instance_list()
        del primitive["nova_object.data"]["objects"]
        message = (
            "conductor reply: InstanceList: field 'objects' must be a list of "
            "Instance objects, got None"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_instance_list(primitive, name_template=TEMPLATE)

    def test_item_not_an_object(self) -> None:
        """An item that is not a primitive is refused."""
        primitive = instance_list()
        primitive["nova_object.data"]["objects"][0] = "x"
        message = (
            "conductor reply: InstanceList.objects[0]: must be a nova object "
            "primitive of Instance, got 'x'"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_instance_list(primitive, name_template=TEMPLATE)

    def test_not_a_primitive(self) -> None:
        """A reply that is not an object is refused."""
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(
                "conductor reply: must be a nova object primitive of InstanceList"
            ),
        ):
            decode_instance_list(None, name_template=TEMPLATE)

    def test_missing_uuid(self) -> None:
        """An instance without a uuid is refused, naming its index."""
        primitive = instance_list()
        del primitive["nova_object.data"]["objects"][3]["nova_object.data"]["uuid"]
        message = "conductor reply: InstanceList.objects[3]: field 'uuid' is missing"
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}"):
            decode_instance_list(primitive, name_template=TEMPLATE)

    def test_missing_id(self) -> None:
        """An instance without an id has no name and is refused."""
        primitive = instance_list()
        del primitive["nova_object.data"]["objects"][7]["nova_object.data"]["id"]
        message = (
            f"conductor reply: InstanceList.objects[7] (uuid {UUID_1}): field "
            "'name' is missing and so is field 'id'"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}"):
            decode_instance_list(primitive, name_template=TEMPLATE)

    def test_bad_field(self) -> None:
        """A field of the wrong type names the item, its uuid and the field."""
        primitive = instance_list()
        primitive["nova_object.data"]["objects"][7]["nova_object.data"]["host"] = 1
        message = (
            f"conductor reply: InstanceList.objects[7] (uuid {UUID_1}): field "
            "'host' must be a string or null, got 1"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_instance_list(primitive, name_template=TEMPLATE)


class TestDecodeBlockDeviceMappings:
    def test_synthetic_reply(self) -> None:
        """The 8 mappings are grouped by instance, in reply order."""
        by_uuid = decode_block_device_mappings(bdm_list())
        assert list(by_uuid) == [UUID_1, UUID_3, UUID_4, UUID_5]
        assert [len(devices) for devices in by_uuid.values()] == [3, 2, 1, 2]
        assert by_uuid[UUID_1] == [IMAGE_ROOT, SWAP_512, EPHEMERAL_1]
        assert by_uuid[UUID_4] == [BlockDevice("volume", "volume", None, 10, 0)]
        assert by_uuid[UUID_5][1] == BlockDevice("blank", "local", "ntfs", 20, -1)

    def test_real_conductor_reply(self) -> None:
        """A real conductor's reply decodes to the same block devices."""
        real = decode_block_device_mappings(
            nova_fixture("real_conductor/bdm_list_by_uuid.json")
        )
        assert real == decode_block_device_mappings(bdm_list())

    def test_empty_list(self) -> None:
        """A list without objects decodes to no mappings."""
        primitive = bdm_list()
        primitive["nova_object.data"]["objects"] = []
        assert decode_block_device_mappings(primitive) == {}

    @pytest.mark.parametrize(
        ("key", "value", "message"),
        [
            (
                "nova_object.name",
                "InstanceList",
                "conductor reply: field 'nova_object.name' must be "
                "'BlockDeviceMappingList', got 'InstanceList'",
            ),
            (
                "nova_object.namespace",
                "ironic",
                "conductor reply: BlockDeviceMappingList: field "
                "'nova_object.namespace' must be 'nova', got 'ironic'",
            ),
            (
                "nova_object.version",
                "3.0",
                "conductor reply: BlockDeviceMappingList: field "
                "'nova_object.version' must be '1.<minor>' (the major version "
                "cachemgr understands), got '3.0'",
            ),
        ],
    )
    def test_bad_list_header(self, key: str, value: object, message: str) -> None:
        """The list's name, namespace and major version are checked."""
        primitive = bdm_list()
        primitive[key] = value
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_block_device_mappings(primitive)

    @pytest.mark.parametrize(
        ("key", "value", "message"),
        [
            (
                "nova_object.name",
                "Instance",
                "conductor reply: BlockDeviceMappingList.objects[4]: field "
                "'nova_object.name' must be 'BlockDeviceMapping', got 'Instance'",
            ),
            (
                "nova_object.namespace",
                "cinder",
                "conductor reply: BlockDeviceMappingList.objects[4]: "
                "BlockDeviceMapping: field 'nova_object.namespace' must be 'nova', "
                "got 'cinder'",
            ),
            (
                "nova_object.version",
                "3.0",
                "conductor reply: BlockDeviceMappingList.objects[4]: "
                "BlockDeviceMapping: field 'nova_object.version' must be "
                "'1.<minor>' (the major version cachemgr understands), got '3.0'",
            ),
        ],
    )
    def test_bad_item_header(self, key: str, value: object, message: str) -> None:
        """Each mapping's name, namespace and major version are checked."""
        primitive = bdm_list()
        primitive["nova_object.data"]["objects"][4][key] = value
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_block_device_mappings(primitive)

    @pytest.mark.parametrize("value", ["absent", None, ""])
    def test_missing_instance_uuid(self, value: object) -> None:
        """A mapping without an instance_uuid cannot be attributed and is refused."""
        primitive = bdm_list()
        data = primitive["nova_object.data"]["objects"][2]["nova_object.data"]
        if value == "absent":
            del data["instance_uuid"]
            shown = "None"
        else:
            data["instance_uuid"] = value
            shown = repr(value)
        message = (
            "conductor reply: BlockDeviceMappingList.objects[2]: field "
            f"'instance_uuid' must be a non-empty string, got {shown}"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_block_device_mappings(primitive)

    def test_bad_field(self) -> None:
        """A field of the wrong type names the mapping, its instance and field."""
        primitive = bdm_list()
        primitive["nova_object.data"]["objects"][1]["nova_object.data"][
            "volume_size"
        ] = "512"
        message = (
            "conductor reply: BlockDeviceMappingList.objects[1] (instance_uuid "
            f"{UUID_1}): field 'volume_size' must be an integer or null, got '512'"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(message)}$"):
            decode_block_device_mappings(primitive)


class TestDecodeWithBlockDevices:
    def test_fixture_replies(self) -> None:
        """Each instance gets its own mappings; one without any gets none."""
        instances = decode_instance_list(
            nova_fixture("instance_list.json"),
            name_template=TEMPLATE,
            block_devices=decode_block_device_mappings(bdm_list()),
        )
        by_uuid = {i.uuid: i for i in instances}
        assert [i.uuid for i in instances] == [
            i.uuid for i in decode_instances("instance_list.json")
        ]
        assert by_uuid[UUID_1].block_devices == (IMAGE_ROOT, SWAP_512, EPHEMERAL_1)
        assert by_uuid[UUID_7].block_devices == ()

    def test_other_uuids_are_ignored(self) -> None:
        """Mappings of uuids the list does not hold are ignored."""
        (first, *_) = decode_instances("instance_list.json")
        result = decode_instance_list(
            instance_list(),
            name_template=TEMPLATE,
            block_devices={first.uuid: [EPHEMERAL_1], "b": [IMAGE_ROOT]},
        )
        assert result[0] == first._replace(block_devices=(EPHEMERAL_1,))
        assert all(i.block_devices == () for i in result[1:])


class TestDescribeVersions:
    def test_names_the_list_and_each_item_version(self) -> None:
        """The captured nova 34 reply: the list's version, the items' with a count."""
        assert (
            nova_objects.describe_versions(nova_fixture("instance_list.json"))
            == "InstanceList 2.6, Instance 2.8 (x8)"
        )

    def test_mixed_item_versions_are_counted_apart(self) -> None:
        """Items of two versions: both shown, sorted, each with its count."""
        reply = nova_fixture("bdm_list_by_uuid.json")
        reply["nova_object.data"]["objects"][0]["nova_object.version"] = "1.20"
        assert nova_objects.describe_versions(reply) == (
            "BlockDeviceMappingList 1.18, BlockDeviceMapping 1.20 (x1), "
            "BlockDeviceMapping 1.21 (x7)"
        )

    def test_never_raises_on_garbage(self) -> None:
        """It is logged before the checks: anything at all is described."""
        assert nova_objects.describe_versions([1]) == "no nova object (list)"
        garbage = {"nova_object.name": "X", "nova_object.data": {"objects": [3]}}
        assert nova_objects.describe_versions(garbage) == (
            "X None, no nova object (int) (x1)"
        )
