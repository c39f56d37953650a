"""The benchmark's synthetic storage: cache files of every kind, instance
directories with real qcow2 overlays, a static inventory; and reading it back.

Imported by run.py, which puts the checkout on sys.path first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from tests.support.hosts import blank_local_mapping

DEFAULT_FILES = 100_000
DEFAULT_INSTANCES = 20_000
QUICK_FILES = 10_000
QUICK_INSTANCES = 2_000
DEFAULT_BROKER = "rabbit://guest:guest@127.0.0.1:5672/"
SEED = 20_260_101
HOST = "bench-host"
OTHER_HOSTS = ("bench-02", "bench-03")
HOUR = 3600
DAY = 86400
# The share of the instance dirs the static inventory lists; the disks of
# the others protect their base files by their backing chains alone.
LISTED_SHARE = 0.95
# md5(file system)[:7] of nova's reference file systems; vfat is what every
# instance gets under the default options (shared/fixtures/nova/README.md).
EPHEMERAL_EXTS = ("0706d66", "40d1d2c", "66f137c", "979f413", "310201b", "68e98b8")
USED_EPHEMERAL_EXT = "0706d66"
TREE_FILE = "tree.json"
# The template's backing file name, overwritten in every copy.
TEMPLATE_BACKING = "/" + "x" * 40


@dataclass
class Tree:
    """A generated storage: where it is and what is in it."""

    root: str
    instances_path: str
    cache_dir: str
    config: str
    files: int
    instances: int
    disks: int
    listed: int
    generate_s: float = 0.0


@dataclass(frozen=True)
class _Image:
    image_id: str
    fp: str
    variants: tuple[str, ...]


class _Qcow2Template:
    """One qemu-img-made overlay, copied with its backing file name patched.

    Only the header, refcount and L1 clusters hold data: a copy writes their
    non-zero 4 KiB blocks and leaves the rest a hole, as qemu-img does. The
    name sits after the header extensions; a copy writes its own name there
    and its length in the header (offset 16).
    """

    def __init__(self, workdir: str) -> None:
        qemu_img = shutil.which("qemu-img")
        if qemu_img is None:
            sys.exit("qemu-img not found: install qemu-utils")
        self.qemu_img = qemu_img
        path = os.path.join(workdir, "template.qcow2")
        command = [qemu_img, "create", "-q", "-u", "-f", "qcow2", "-F", "raw"]
        subprocess.run([*command, "-b", TEMPLATE_BACKING, path, "20G"], check=True)
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        _, _, offset, size, cluster_bits = struct.unpack_from(">4sIQII", data)
        assert data[offset : offset + size] == TEMPLATE_BACKING.encode()
        self.size = len(data)
        self.name_offset = offset
        self.name_room = min(1023, (1 << cluster_bits) - offset)
        head = bytearray(data[:4096])
        head[offset : offset + size] = bytes(size)
        self.head = bytes(head)
        self.blocks = [
            (at, data[at : at + 4096])
            for at in range(4096, len(data), 4096)
            if any(data[at : at + 4096])
        ]

    def write(self, path: str, backing: str) -> None:
        name = backing.encode()
        assert 0 < len(name) <= self.name_room, backing
        head = bytearray(self.head)
        struct.pack_into(">I", head, 16, len(name))
        head[self.name_offset : self.name_offset + len(name)] = name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.pwrite(fd, head, 0)
            for at, block in self.blocks:
                os.pwrite(fd, block, at)
            os.ftruncate(fd, self.size)
        finally:
            os.close(fd)

    def check(self, path: str, backing: str) -> None:
        """qemu-img itself reads a copy: qcow2, with that backing file."""
        info = json.loads(
            subprocess.run(
                [self.qemu_img, "info", "-U", "--output=json", path],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        if info.get("format") != "qcow2" or info.get("backing-filename") != backing:
            sys.exit(f"qemu-img does not read {path} as the overlay meant: {info}")


def _fingerprint(image_id: str) -> str:
    return hashlib.sha1(image_id.encode()).hexdigest()


def _new_file(path: str, mtime: float) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    ns = int(mtime * 1e9)
    os.utime(path, ns=(ns, ns))


def generate(root: str, files: int, instances: int, seed: int = SEED) -> Tree:
    """Write the storage under ``root`` (new); see benchmarks/README.md."""
    started = time.monotonic()
    rng = random.Random(seed)
    instances_path = os.path.join(root, "instances")
    cache_dir = os.path.join(instances_path, "_base")
    os.makedirs(cache_dir)
    os.makedirs(os.path.join(instances_path, "locks"))
    images, swaps, ephemerals = _write_cache(cache_dir, files, rng)
    records, disks = _write_instances(
        instances_path,
        cache_dir,
        instances,
        rng,
        _Qcow2Template(root),
        images=images[: max(1, len(images) // 4)],
        swaps=swaps[: max(1, len(swaps) // 2)],
        ephemerals=[n for n in ephemerals if n.endswith(USED_EPHEMERAL_EXT)],
    )
    rng.shuffle(records)
    listed = records[: max(1, int(len(records) * LISTED_SHARE))]
    inventory = os.path.join(root, "instances.json")
    with open(inventory, "w") as f:
        json.dump({"instances": listed}, f)
    config = os.path.join(root, "cachemgr.conf")
    with open(config, "w") as f:
        f.write(
            f"[DEFAULT]\nhost = {HOST}\ninstances_path = {instances_path}\n"
            f"[inventory]\ndriver = static\nstatic_path = {inventory}\n"
        )
    regular = sum(e.is_file(follow_symlinks=False) for e in os.scandir(cache_dir))
    tree = Tree(
        root=root,
        instances_path=instances_path,
        cache_dir=cache_dir,
        config=config,
        files=regular,
        instances=instances,
        disks=disks,
        listed=len(listed),
        generate_s=time.monotonic() - started,
    )
    with open(os.path.join(root, TREE_FILE), "w") as f:
        json.dump(dataclasses.asdict(tree), f)
    return tree


def _write_cache(
    cache_dir: str, files: int, rng: random.Random
) -> tuple[list[_Image], list[str], list[str]]:
    """``files`` regular files, and a symlink and a directory; the images,
    swap and ephemeral names written.

    2% names that are not cache names, 1% swap, 1% ephemeral, the rest
    originals with 0 to 2 resized variants each. A tenth are younger than
    an hour, the rest up to 30 days old.
    """
    now = time.time()

    def mtime() -> float:
        if rng.random() < 0.1:
            return now - rng.uniform(0, HOUR - 600)
        return now - rng.uniform(HOUR, 30 * DAY)

    junk = max(3, files // 50)
    swaps = [f"swap_{256 * (i + 1)}" for i in range(max(2, files // 100))]
    ephemerals = [
        f"ephemeral_{i // 6 + 1}_{EPHEMERAL_EXTS[i % 6]}"
        for i in range(max(2, files // 100))
    ]
    image_files = files - junk - len(swaps) - len(ephemerals)
    images: list[_Image] = []
    made = 0
    while made < image_files:
        image_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        fp = _fingerprint(image_id)
        count = min(image_files - made - 1, rng.choice((0, 1, 1, 2)))
        sizes_gb = rng.sample((10, 20, 40, 80), count)
        variants = tuple(
            f"{fp}_sm" if v == 1 and len(images) % 3 == 0 else f"{fp}_{gb << 30}"
            for v, gb in enumerate(sizes_gb)
        )
        images.append(_Image(image_id, fp, variants))
        made += 1 + count
    junk_forms = ("{fp}.part", "{fp}.converted", "tmp{n:08x}", "{fp}_x", "{fp}.lck")
    junk_names = [
        junk_forms[n % len(junk_forms)].format(fp=images[n % len(images)].fp, n=n)
        for n in range(junk)
    ]
    for image in images:
        for name in (image.fp, *image.variants):
            _new_file(os.path.join(cache_dir, name), mtime())
    for name in swaps + ephemerals + junk_names:
        _new_file(os.path.join(cache_dir, name), mtime())
    os.symlink("/etc/hostname", os.path.join(cache_dir, "a-symlink"))
    os.mkdir(os.path.join(cache_dir, "a-directory"))
    return images, swaps, ephemerals


def _write_instances(
    instances_path: str,
    cache_dir: str,
    count: int,
    rng: random.Random,
    template: _Qcow2Template,
    *,
    images: list[_Image],
    swaps: list[str],
    ephemerals: list[str],
) -> tuple[list[dict[str, object]], int]:
    """``count`` instance dirs using ``images``, ``swaps`` and ``ephemerals``;
    their static inventory records and the number of disk files.

    ``disk`` is backed by the image or a variant (absolute names mostly, as
    nova writes them, some relative); some instances also have
    ``disk.local`` and ``disk.swap`` overlays of an ephemeral and a swap
    file, and a raw ``disk.config``; all have ``disk.info``, ``console.log``.
    """
    now = time.time()
    records: list[dict[str, object]] = []
    disks = 0
    for index in range(count):
        instance_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        image = images[rng.randrange(len(images))]
        directory = os.path.join(instances_path, instance_uuid)
        os.mkdir(directory)
        base = rng.choice((image.fp, *image.variants))
        if rng.random() < 0.7:
            backing = os.path.join(cache_dir, base)
        else:
            backing = os.path.join("..", "_base", base)
        template.write(os.path.join(directory, "disk"), backing)
        if index == 0:
            template.check(os.path.join(directory, "disk"), backing)
        disks += 1
        bdms: list[dict[str, object]] = [
            {
                "source_type": "image",
                "destination_type": "local",
                "guest_format": None,
                "volume_size": None,
                "boot_index": 0,
            }
        ]
        if ephemerals and rng.random() < 0.3:
            name = rng.choice(ephemerals)
            path = os.path.join(directory, "disk.local")
            template.write(path, os.path.join(cache_dir, name))
            bdms.append(blank_local_mapping(None, int(name.split("_")[1])))
            disks += 1
        if rng.random() < 0.2:
            name = rng.choice(swaps)
            path = os.path.join(directory, "disk.swap")
            template.write(path, os.path.join(cache_dir, name))
            bdms.append(blank_local_mapping("swap", int(name.split("_")[1])))
            disks += 1
        if rng.random() < 0.1:
            with open(os.path.join(directory, "disk.config"), "wb") as f:
                f.write(bytes(2048))  # a raw config drive
            disks += 1
        with open(os.path.join(directory, "disk.info"), "w") as f:
            json.dump({os.path.join(directory, "disk"): "qcow2"}, f)
        _new_file(os.path.join(directory, "console.log"), now)
        records.append(
            {
                "uuid": instance_uuid,
                "id": index + 1,
                "host": HOST if index % 3 == 0 else OTHER_HOSTS[index % 2],
                "image_ref": image.image_id,
                "kernel_id": None,
                "ramdisk_id": None,
                "vm_state": "active",
                "task_state": None,
                "os_type": "linux" if index % 2 else None,
                "block_device_mapping": bdms,
            }
        )
    return records, disks


def load_tree(root: str) -> Tree:
    """A tree that an earlier run generated and kept (--keep)."""
    try:
        with open(os.path.join(root, TREE_FILE)) as f:
            return Tree(**json.load(f))
    except (OSError, ValueError, TypeError) as exc:
        sys.exit(f"--tree {root}: not a tree kept by --keep ({exc})")
