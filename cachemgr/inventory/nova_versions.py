"""The object version manifests cachemgr sends to nova-conductor.

Captured from nova 34.0.0 (``obj_tree_get_versions``); the object versions
have been the same since nova 28.0.0 (2023.2). The conductor backports to
these when it is newer, and refuses (IncompatibleObjectVersion) when it is
older than the top-level version: sending the full tree keeps nested
objects at the versions we decode (shared/fixtures/nova/README.md).
"""

__all__ = ["BLOCK_DEVICE_MAPPING_LIST", "INSTANCE_LIST"]

# The object tree both lists hang from; each list adds its own objects.
_SHARED: dict[str, str] = {
    "ComputeNode": "1.19",
    "DeviceBus": "1.0",
    "DeviceMetadata": "1.0",
    "EC2Ids": "1.0",
    "Flavor": "1.2",
    "HVSpec": "1.2",
    "Instance": "2.8",
    "InstanceDeviceMetadata": "1.0",
    "InstanceFault": "1.2",
    "InstanceInfoCache": "1.5",
    "InstanceNUMACell": "1.6",
    "InstanceNUMATopology": "1.3",
    "InstancePCIRequest": "1.4",
    "InstancePCIRequests": "1.1",
    "KeyPair": "1.4",
    "KeyPairList": "1.3",
    "MigrationContext": "1.2",
    "PciDevice": "1.7",
    "PciDeviceList": "1.3",
    "PciDevicePool": "1.1",
    "PciDevicePoolList": "1.1",
    "Resource": "1.0",
    "ResourceList": "1.0",
    "ResourceMetadata": "1.0",
    "SecurityGroup": "1.2",
    "SecurityGroupList": "1.1",
    "Service": "1.22",
    "ServiceList": "1.19",
    "Tag": "1.1",
    "TagList": "1.1",
    "TrustedCerts": "1.0",
    "VirtCPUFeature": "1.0",
    "VirtCPUModel": "1.0",
    "VirtCPUTopology": "1.0",
}

INSTANCE_LIST: dict[str, str] = {**_SHARED, "InstanceList": "2.6"}

BLOCK_DEVICE_MAPPING_LIST: dict[str, str] = {
    **_SHARED,
    "BlockDeviceMapping": "1.21",
    "BlockDeviceMappingList": "1.18",
}
