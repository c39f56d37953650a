"""The version manifests sent to nova-conductor are nova 34's own."""

from cachemgr.inventory import nova_versions
from tests.support.fixtures import nova_fixture

MANIFEST = nova_fixture("manifest.json")["obj_tree_get_versions"]


def test_instance_list_manifest_is_nova_34s() -> None:
    """InstanceList's manifest is obj_tree_get_versions('InstanceList')."""
    assert MANIFEST["InstanceList"] == nova_versions.INSTANCE_LIST


def test_block_device_mapping_list_manifest_is_nova_34s() -> None:
    """BlockDeviceMappingList's manifest is nova's, nested objects included."""
    assert MANIFEST["BlockDeviceMappingList"] == nova_versions.BLOCK_DEVICE_MAPPING_LIST
