"""A generated sandbox host: an instances_path, a static inventory, a config.

It shows a newcomer every kind of decision without a Nova: files used by an
instance, by a disk's backing chain only, unused and old, unused but young,
and entries that are not cache files. Disks are real qcow2 overlays made
with qemu-img.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from cachemgr.cache import naming

__all__ = ["DEMO_INTERVAL", "SandboxError", "build_sandbox"]

HOST = "sandbox-host"
DAY = 86400
# Seconds between the passes of the sandbox's daemon: short, to watch it.
DEMO_INTERVAL = 3


class SandboxError(Exception):
    """The sandbox cannot be built here (qemu-img missing, dir not empty)."""


@dataclass(frozen=True, slots=True)
class _CacheEntry:
    name: str
    age_seconds: float
    why: str


def _entries() -> list[_CacheEntry]:
    fp = naming.fingerprint
    return [
        _CacheEntry(fp("cirros"), 3 * DAY, "image of instance 1 (and its backing)"),
        _CacheEntry(fp("cirros") + "_20", 3 * DAY, "resized variant of a used image"),
        _CacheEntry(fp("ubuntu"), 2 * DAY, "image of instance 2, which is resizing"),
        _CacheEntry(fp("old-image"), 5 * DAY, "unused for 5 days: removed"),
        _CacheEntry(fp("old-image") + "_sm", 2 * 3600, "unused resized: removed"),
        _CacheEntry(fp("new-image"), 600, "unused but 10 minutes old: too young"),
        _CacheEntry(fp("forgotten"), 5 * DAY, "backing of a disk nova forgot"),
        _CacheEntry("swap_512", 3 * DAY, "swap of instance 1"),
        _CacheEntry("swap_2048", 4 * DAY, "unused swap: removed"),
        _CacheEntry(
            f"ephemeral_1_{naming.ephemeral_extension(None, {}, None)}",
            3 * DAY,
            "ephemeral disk of instance 1",
        ),
        _CacheEntry(
            f"ephemeral_10_{naming.ephemeral_extension(None, {}, None)}",
            4 * DAY,
            "unused ephemeral: removed",
        ),
        _CacheEntry(fp("downloading") + ".part", 5 * DAY, "not a cache name: kept"),
    ]


def build_sandbox(root: str) -> str:
    """Build the sandbox under ``root`` (new or empty); return its config file.

    Raises:
        SandboxError: qemu-img is missing or ``root`` is not empty.
    """
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise SandboxError(
            "qemu-img not found: install it (Debian/Ubuntu: apt-get install "
            "qemu-utils) to make the sandbox's qcow2 disks"
        )
    os.makedirs(root, exist_ok=True)
    if os.listdir(root):
        raise SandboxError(f"{root} is not empty; name a new or empty directory")
    root = os.path.abspath(root)
    instances = os.path.join(root, "instances")
    base = os.path.join(instances, "_base")
    os.makedirs(base)
    now = time.time()
    for entry in _entries():
        path = os.path.join(base, entry.name)
        with open(path, "wb") as f:
            f.write(os.urandom(64 * 1024))
        os.utime(path, (now - entry.age_seconds, now - entry.age_seconds))
    os.symlink("/etc/hostname", os.path.join(base, "a-symlink"))
    _make_disk(
        qemu_img,
        instances,
        "11111111-1111-4111-8111-111111111111",
        naming.fingerprint("cirros"),
    )
    _make_disk(qemu_img, instances, "orphan-0000", naming.fingerprint("forgotten"))
    inventory = os.path.join(root, "instances.json")
    with open(inventory, "w") as f:
        json.dump(_inventory(), f, indent=2)
    config = os.path.join(root, "cachemgr.conf")
    with open(config, "w") as f:
        f.write(_config(instances, inventory, os.path.join(root, "status.json")))
    return config


def _make_disk(qemu_img: str, instances: str, directory: str, backing: str) -> None:
    """A qcow2 overlay ``disk`` whose backing file is ``_base/<backing>``."""
    path = os.path.join(instances, directory)
    os.makedirs(path)
    subprocess.run(
        [
            qemu_img,
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            os.path.join("..", "_base", backing),
            "disk",
            "1M",
        ],
        cwd=path,
        check=True,
    )


def _inventory() -> dict[str, object]:
    return {
        "instances": [
            {
                "uuid": "11111111-1111-4111-8111-111111111111",
                "id": 1,
                "host": HOST,
                "image_ref": "cirros",
                "vm_state": "active",
                "block_device_mapping": [
                    {
                        "source_type": "blank",
                        "destination_type": "local",
                        "guest_format": "swap",
                        "volume_size": 512,
                    },
                    {
                        "source_type": "blank",
                        "destination_type": "local",
                        "guest_format": None,
                        "volume_size": 1,
                    },
                ],
            },
            {
                "uuid": "22222222-2222-4222-8222-222222222222",
                "id": 2,
                "host": "other-host",
                "image_ref": "ubuntu",
                "vm_state": "active",
                "task_state": "resize_migrating",
            },
        ]
    }


def _config(instances: str, inventory: str, status_file: str) -> str:
    return (
        "[DEFAULT]\n"
        f"host = {HOST}\n"
        f"instances_path = {instances}\n"
        "\n[image_cache]\n"
        f"manager_interval = {DEMO_INTERVAL}\n"
        "lock_wait_seconds = 0.2\n"
        "# The demo's story must not depend on how full this machine's disk is.\n"
        "disk_high_watermark_percent = 0\n"
        "\n[inventory]\n"
        "driver = static\n"
        f"static_path = {inventory}\n"
        "\n[daemon]\n"
        f"status_file = {status_file}\n"
    )
