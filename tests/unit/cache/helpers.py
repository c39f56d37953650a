"""Tiny builders for cache tests, like kubelet's ``makeImage``.

Every builder fills the fields a test does not care about with plain
defaults, so a test states only what matters to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from fractions import Fraction

from cachemgr.cache import naming
from cachemgr.cache.disk_usage import FilesystemUse
from cachemgr.cache.plan import Plan, Policy, make_plan
from cachemgr.cache.snapshot import (
    NO_PINS,
    CacheFile,
    CacheSnapshot,
    FileKey,
    Pins,
)
from cachemgr.cache.usage import EphemeralNaming, Usage, used_names
from cachemgr.inventory.model import BlockDevice, Instance

__all__ = [
    "CACHE_DIR",
    "DAY",
    "EPHEMERAL",
    "HOUR",
    "NOW",
    "POLICY",
    "make_cache",
    "make_file",
    "make_instance",
    "make_usage",
    "plan_for",
]

NOW = 1_700_000_000.0
"""The time plans are made at, unless a test says otherwise."""
HOUR = 3600
DAY = 86400
POLICY = Policy(original_minimum_age_seconds=DAY, resized_minimum_age_seconds=HOUR)
"""nova's default minimum ages."""
EPHEMERAL = EphemeralNaming()
"""No virt_mkfs, no default_ephemeral_format: nova's defaults."""
CACHE_DIR = "/var/lib/nova/instances/_base"

_inodes = itertools.count(1000)
_instance_ids = itertools.count(1)


def make_file(
    name: str,
    *,
    age: float = 0.0,
    now: float = NOW,
    ino: int | None = None,
    dev: int = 1,
    blocks_bytes: int = 4096,
) -> CacheFile:
    """A cache file ``age`` seconds old at ``now``, with an inode of its own.

    The mtime is computed exactly (no float rounding), so ``age`` is the
    file's exact age at ``now``.
    """
    mtime_ns = round((Fraction(now) - Fraction(age)) * 10**9)
    return CacheFile(
        name=name,
        kind=naming.classify(name),
        dev=dev,
        ino=next(_inodes) if ino is None else ino,
        mtime_ns=mtime_ns,
        allocated_bytes=blocks_bytes,
    )


def make_instance(
    uuid: str | None = None,
    image_ref: str | None = None,
    host: str = "cmp1",
    swap_mb: int | None = None,
    ephemeral_gb: int | None = None,
    os_type: str | None = None,
    *,
    name: str | None = None,
    kernel_id: str | None = None,
    ramdisk_id: str | None = None,
    vm_state: str = "active",
    task_state: str | None = None,
) -> Instance:
    """An instance with an optional swap and ephemeral disk, as nova maps them."""
    number = next(_instance_ids)
    devices = []
    if swap_mb is not None:
        devices.append(_blank_disk("swap", swap_mb))
    if ephemeral_gb is not None:
        devices.append(_blank_disk("ext4", ephemeral_gb))
    return Instance(
        uuid=uuid or f"00000000-0000-4000-8000-{number:012d}",
        name=name or f"instance-{number:08x}",
        host=host,
        id=number,
        image_ref=image_ref,
        kernel_id=kernel_id,
        ramdisk_id=ramdisk_id,
        vm_state=vm_state,
        task_state=task_state,
        os_type=os_type,
        block_devices=tuple(devices),
    )


def _blank_disk(guest_format: str, size: int) -> BlockDevice:
    return BlockDevice(
        source_type="blank",
        destination_type="local",
        guest_format=guest_format,
        volume_size=size,
        boot_index=-1,
    )


def make_usage(*instances: Instance) -> Usage:
    """The names ``instances`` use, with nova's default ephemeral naming."""
    return used_names(instances, EPHEMERAL)


def make_cache(
    *files: CacheFile, path: str = CACHE_DIR, others: Iterable[str] = ()
) -> CacheSnapshot:
    """A cache dir snapshot holding ``files`` and the non-regular ``others``."""
    return CacheSnapshot(
        path=path, dir_key=(1, 1), files=tuple(files), other_entries=tuple(others)
    )


def plan_for(
    files: Iterable[CacheFile],
    instances: Iterable[Instance] = (),
    *,
    backing: Mapping[str, str] | None = None,
    open_files: Mapping[FileKey, str] | None = None,
    others: Iterable[str] = (),
    policy: Policy = POLICY,
    now: float = NOW,
    pins: Pins = NO_PINS,
    filesystem: FilesystemUse | None = None,
) -> Plan:
    """``make_plan`` over plain data, with empty defaults for every input."""
    return make_plan(
        make_cache(*files, others=others),
        make_usage(*instances),
        backing or {},
        open_files or {},
        policy,
        now,
        pins=pins,
        filesystem=filesystem,
    )
