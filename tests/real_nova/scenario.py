"""The instances seeded into the real nova-conductor's cell database.

Standard library only: the seeding script imports this module under the
nova virtualenv's Python, the test under the repository's. The expected
cache names are computed here from nova's rules (shared/fixtures/nova/
README.md), independently of cachemgr's code; the test also asks nova's own
image cache code for them through the conductor (nova_oracle.py).

This host is ``compute-01``; nova's storage registry names ``compute-02``
as recent and ``compute-03`` as gone, so the storage hosts are compute-01
and compute-02.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

LOCAL_HOST = "compute-01"
STORAGE_HOSTS = ("compute-01", "compute-02")
# md5("vfat")[:7]: every ephemeral file's extension with no virt_mkfs and no
# default_ephemeral_format, whatever the os_type.
VFAT_EXT = "0706d66"
# The created_at of the first instance; the others are hours after it.
CREATED_AT_BASE = "2026-01-05T10:00:00"

IMAGE_CIRROS = "0c3e2b52-6a2d-4e0e-9f1b-6f4f7a1d2c01"
IMAGE_UBUNTU = "6a8e1f7b-2c4d-4e5f-8a9b-0c1d2e3f4a5b"
IMAGE_AMI = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"
KERNEL_AKI = "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f"
RAMDISK_ARI = "d4e5f6a7-b8c9-4d0e-9f1a-3b4c5d6e7f80"
IMAGE_WINDOWS = "e5f6a7b8-c9d0-4e1f-8a2b-4c5d6e7f8091"
IMAGE_REMOTE_ONLY = "f6a7b8c9-d0e1-4f2a-9b3c-5d6e7f809102"
IMAGE_SOFT_DELETED = "a7b8c9d0-e1f2-4a3b-8c4d-6e7f80910213"
IMAGE_OTHER_STORAGE = "18c9d0e1-f2a3-4b4c-9d5e-7f8091021324"
IMAGE_HARD_DELETED = "29d0e1f2-a3b4-4c5d-8e6f-809102132435"
IMAGE_RETIRED = "3ae1f2a3-b4c5-4d6e-9f70-910213243546"
FILLER_IMAGES = (
    "4bf2a3b4-c5d6-4e7f-8a81-021324354657",
    "5c03b4c5-d6e7-4f80-9b92-132435465768",
    "6d14c5d6-e7f8-4091-8ca3-243546576879",
)


def swap(size_mb: int, **extra: object) -> dict[str, object]:
    """A swap BDM as nova-api makes one from a flavor's swap (MB)."""
    return {
        "source_type": "blank",
        "destination_type": "local",
        "guest_format": "swap",
        "volume_size": size_mb,
        "boot_index": -1,
        "device_type": "disk",
        "delete_on_termination": True,
        **extra,
    }


def ephemeral(size_gb: int, guest_format: str | None = None) -> dict[str, object]:
    """An ephemeral BDM as nova-api makes one from a flavor's ephemeral (GB)."""
    return {
        "source_type": "blank",
        "destination_type": "local",
        "guest_format": guest_format,
        "volume_size": size_gb,
        "boot_index": -1,
        "device_type": "disk",
        "delete_on_termination": True,
    }


def image_root(image_id: str) -> dict[str, object]:
    """The root disk BDM of an instance booted from an image."""
    return {
        "source_type": "image",
        "destination_type": "local",
        "image_id": image_id,
        "boot_index": 0,
        "device_name": "/dev/vda",
        "device_type": "disk",
        "delete_on_termination": True,
    }


def volume_root(volume_id: str) -> dict[str, object]:
    """The root disk BDM of an instance booted from a volume."""
    return {
        "source_type": "volume",
        "destination_type": "volume",
        "volume_id": volume_id,
        "volume_size": 10,
        "boot_index": 0,
        "device_name": "/dev/vda",
        "device_type": "disk",
        "delete_on_termination": False,
    }


@dataclass(frozen=True)
class Seeded:
    """One instance row and its block device mappings."""

    uuid: str
    host: str
    image_ref: str | None
    note: str
    # nova-api stores '' for an image without a kernel or ramdisk; nova's
    # image cache counts '' as an image id (sha1('') = da39a3ee...).
    kernel_id: str | None = ""
    ramdisk_id: str | None = ""
    vm_state: str = "active"
    task_state: str | None = None
    os_type: str | None = "linux"
    # Hours after CREATED_AT_BASE; equal values test nova's id tie-break.
    created_hours: int = 0
    bdms: tuple[dict[str, object], ...] = ()
    # "live", or "destroyed": Instance.destroy(), deleted == id in the DB.
    fate: str = "live"
    # Give the instance a real qcow2 disk backed by its image's base file.
    disk: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def listed(self) -> bool:
        """Whether nova-compute's query returns it (soft-deleted ones too)."""
        return self.fate == "live" and self.host in STORAGE_HOSTS


def _uuid(n: int) -> str:
    return f"{n:08x}-1111-4111-8111-{n:012x}"


_NAMED: tuple[Seeded, ...] = (
    Seeded(
        _uuid(1),
        "compute-01",
        IMAGE_CIRROS,
        "active, swap 512 MB and ephemeral 1 GB, a real qcow2 disk",
        created_hours=3,
        bdms=(image_root(IMAGE_CIRROS), swap(512), ephemeral(1)),
        disk=True,
    ),
    Seeded(
        _uuid(2),
        "compute-01",
        IMAGE_UBUNTU,
        "resize in progress (task_state resize_migrating)",
        task_state="resize_migrating",
        created_hours=3,
        bdms=(image_root(IMAGE_UBUNTU),),
    ),
    Seeded(
        _uuid(3),
        "compute-01",
        IMAGE_AMI,
        "vm_state resized, AMI with kernel and ramdisk, swap 1024 MB",
        kernel_id=KERNEL_AKI,
        ramdisk_id=RAMDISK_ARI,
        vm_state="resized",
        created_hours=1,
        bdms=(image_root(IMAGE_AMI), swap(1024)),
    ),
    Seeded(
        _uuid(4),
        "compute-02",
        "",
        "boot from volume (image_ref ''), on the other storage host",
        created_hours=5,
        bdms=(volume_root("0f0f0f0f-0000-4000-8000-000000000004"),),
    ),
    Seeded(
        _uuid(5),
        "compute-01",
        IMAGE_WINDOWS,
        "task_state resize_prep, os_type windows, ephemeral 20 GB ntfs",
        task_state="resize_prep",
        os_type="windows",
        created_hours=0,
        bdms=(image_root(IMAGE_WINDOWS), ephemeral(20, "ntfs")),
    ),
    Seeded(
        _uuid(6),
        "compute-02",
        IMAGE_REMOTE_ONLY,
        "task_state resize_finish, its image used only on compute-02",
        task_state="resize_finish",
        created_hours=2,
        bdms=(image_root(IMAGE_REMOTE_ONLY), swap(256)),
    ),
    Seeded(
        _uuid(7),
        "compute-01",
        IMAGE_SOFT_DELETED,
        "soft-deleted (vm_state soft-delete, deleted 0): still listed",
        vm_state="soft-delete",
        created_hours=4,
        bdms=(image_root(IMAGE_SOFT_DELETED), ephemeral(2)),
    ),
    Seeded(
        _uuid(8),
        "compute-01",
        IMAGE_CIRROS,
        "stopped, same image as the first, null kernel and ramdisk; a "
        "no_device swap is not swap",
        kernel_id=None,
        ramdisk_id=None,
        vm_state="stopped",
        created_hours=3,
        bdms=(
            swap(4096, no_device=True, device_name="/dev/vdc"),
            image_root(IMAGE_CIRROS),
        ),
    ),
    Seeded(
        _uuid(9),
        "compute-03",
        IMAGE_OTHER_STORAGE,
        "EXCLUDED: on a host that does not share this storage",
        created_hours=2,
        bdms=(image_root(IMAGE_OTHER_STORAGE), swap(8192)),
    ),
    Seeded(
        _uuid(10),
        "compute-01",
        IMAGE_HARD_DELETED,
        "EXCLUDED: deleted (Instance.destroy, deleted == id)",
        created_hours=6,
        bdms=(image_root(IMAGE_HARD_DELETED), swap(2048), ephemeral(5)),
        fate="destroyed",
    ),
)
_FILLERS = tuple(
    Seeded(
        _uuid(11 + n),
        "compute-02" if n % 2 else "compute-01",
        FILLER_IMAGES[n % len(FILLER_IMAGES)],
        "filler, so that small pages take many calls",
        created_hours=n % 4,
        bdms=(image_root(FILLER_IMAGES[n % len(FILLER_IMAGES)]),),
    )
    for n in range(14)
)
INSTANCES: tuple[Seeded, ...] = (*_NAMED, *_FILLERS)

LISTED = tuple(i for i in INSTANCES if i.listed)


def fingerprint(image_id: str) -> str:
    """nova libvirt's base file name for an image id: sha1, 40 hex."""
    return hashlib.sha1(image_id.encode("utf-8")).hexdigest()


def _first(bdms: tuple[dict[str, object], ...], is_swap: bool) -> dict | None:
    for bdm in bdms:
        if bdm.get("no_device"):
            continue
        if bdm["source_type"] != "blank" or bdm["destination_type"] != "local":
            continue
        if (bdm.get("guest_format") == "swap") == is_swap:
            return bdm
    return None


def used_image_ids() -> set[str]:
    """image_ref, kernel_id and ramdisk_id of the listed instances."""
    refs = set()
    for instance in LISTED:
        for ref in (instance.image_ref, instance.kernel_id, instance.ramdisk_id):
            if ref is not None:
                refs.add(ref)
    return refs


def used_swap_and_ephemeral() -> set[str]:
    """``swap_<MB>`` and ``ephemeral_<GB>_<ext>`` of the listed instances."""
    names = set()
    for instance in LISTED:
        found = _first(instance.bdms, is_swap=True)
        if found is not None:
            names.add(f"swap_{found['volume_size']}")
        found = _first(instance.bdms, is_swap=False)
        if found is not None:
            names.add(f"ephemeral_{found['volume_size']}_{VFAT_EXT}")
    return names


def unused_image_ids() -> set[str]:
    """The images of the excluded instances, and one no instance has."""
    return {IMAGE_OTHER_STORAGE, IMAGE_HARD_DELETED, IMAGE_RETIRED}


# Swap and ephemeral files that only excluded instances, or a no_device
# mapping, or nobody use.
UNUSED_SWAP_AND_EPHEMERAL = (
    "swap_2048",
    "swap_4096",
    "swap_8192",
    "ephemeral_5_" + VFAT_EXT,
    "ephemeral_1_40d1d2c",
    "ephemeral_20_68e98b8",
)
# Resized variants made for every image's base file.
VARIANT_SUFFIXES = ("_10737418240", "_21474836480", "_sm")
# Entries that are not cache names: always left alone.
NOT_CACHE_NAMES = ("README", "0c3e2b52.part", "swap_512.tmp")
