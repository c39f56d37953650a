"""cachemgr at shared-storage scale: generate a synthetic storage, time a pass.

Usage, from a checkout (qemu-img installed; the nova figure needs RabbitMQ)::

    python benchmarks/run.py [--files N] [--instances M] [--quick] [--scaling]
                             [--cold] [--keep DIR | --tree DIR] [--repeat K]
                             [--broker URL | --no-nova]

It builds, in a temporary directory, an instances_path with N cache files
of every kind (originals, ``_<size>``/``_sm`` variants, swap, ephemeral,
names that are not cache names; plus a symlink and a subdirectory) of
varied ages, M instance directories each with a real qcow2 overlay (copies
of one ``qemu-img``-made template with the backing file name patched; one
copy is checked with ``qemu-img info``) whose backing file is in the cache,
and a static inventory naming most of those instances. Then it prints one
line per figure: the file system floor, a ``cachemgr --once --dry-run``
pass end to end with its own stage durations and its peak memory, the nova
driver's inventory of M instances through a fake nova-conductor on the
local RabbitMQ and a whole pass with that driver, and the targets met or
missed. benchmarks/README.md says
what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    # The fake conductor, the nova fixtures and the inventory entries' shape
    # live in the checkout's tests/.
    sys.path.insert(0, REPO)

from cachemgr.pipeline.report import SUMMARY_PREFIX  # noqa: E402
from tests.fixtures import list_primitive, nova_fixture  # noqa: E402
from tests.functional.hosts import blank_local_mapping  # noqa: E402

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
STAGES = ("gather", "plan", "apply", "report")
STAGE_LINE_RE = re.compile(r"Stage durations: (.*)$", re.MULTILINE)
STAGE_RE = re.compile(r"(\w+)_s=([0-9.]+)")
SUMMARY_RE = re.compile(re.escape(SUMMARY_PREFIX) + "(.*)$", re.MULTILINE)

# Issue 5's targets, for a 2-core machine at 100,000 files and 20,000 disks.
TARGET_RATIO = 2.0
TARGET_E2E_S = 15.0
TARGET_RSS_MB = 300.0
TARGET_NOVA_S = 10.0


# --------------------------------------------------------------------------
# The synthetic storage


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


# --------------------------------------------------------------------------
# The floor and the pass


def drop_caches() -> None:
    """Empty the page, dentry and inode caches (root only)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as exc:
        sys.exit(f"--cold: cannot drop the page cache ({exc}); run as root")


def floor(tree: Tree) -> float:
    """What any correct pass must at least do, as the plainest loop.

    lstat every entry of the cache dir; list every directory under
    instances_path; open every ``disk*`` file, read its first 512 bytes.
    """
    started = time.perf_counter()
    with os.scandir(tree.cache_dir) as entries:
        for entry in entries:
            entry.stat(follow_symlinks=False)
    with os.scandir(tree.instances_path) as top:
        directories = [e.path for e in top if e.is_dir(follow_symlinks=False)]
    for directory in directories:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("disk") and entry.name != "disk.info":
                    fd = os.open(entry.path, os.O_RDONLY)
                    try:
                        os.read(fd, 512)
                    finally:
                        os.close(fd)
    return time.perf_counter() - started


@dataclass
class PassRun:
    """One ``cachemgr --once --dry-run`` process."""

    seconds: float
    max_rss_mb: float
    stages: dict[str, float]
    summary: dict[str, str]


CACHEMGR = [sys.executable, "-m", "cachemgr.cmd.cachemgr"]

# Runs one command at a time for the benchmark and answers its time and
# peak memory. Linux counts in a child's ru_maxrss the memory of the
# process it was exec'd from, so a pass started by this (large) benchmark
# process would report the benchmark's size; started by this small one, it
# reports its own.
_LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    request = json.loads(line)
    with open(request["stderr"], "wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            request["argv"], stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    answer = {"seconds": seconds, "maxrss_kb": usage.ru_maxrss,
              "returncode": os.waitstatus_to_exitcode(status)}
    print(json.dumps(answer), flush=True)
"""


class Launcher:
    """A small process that starts the passes; see _LAUNCHER."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], stderr: str) -> tuple[float, float, int]:
        """(seconds, max RSS in MB, exit status) of ``argv``."""
        assert self._process.stdin and self._process.stdout
        request = {"argv": argv, "stderr": stderr}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._process.stdout.readline())
        return answer["seconds"], answer["maxrss_kb"] / 1024, answer["returncode"]

    def close(self) -> None:
        assert self._process.stdin
        self._process.stdin.close()
        self._process.wait()


def run_pass(
    tree: Tree,
    launcher: Launcher,
    *,
    debug: bool,
    extra_config: str | None = None,
    name: str = "pass",
) -> PassRun:
    """The real command, timed from its start to its exit, and its peak RSS.

    ``extra_config`` is read after the tree's config file, overriding it.
    """
    log_file = os.path.join(tree.root, f"{name}-debug.log" if debug else f"{name}.log")
    stderr_file = log_file + ".stderr"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(log_file)
    command = [*CACHEMGR, "--config-file", tree.config, "--once", "--dry-run"]
    if extra_config is not None:
        command += ["--config-file", extra_config]
    command += ["--log-file", log_file] + (["--debug"] if debug else [])
    seconds, max_rss_mb, returncode = launcher.run(command, stderr_file)
    with open(log_file, encoding="utf-8") as f:
        log = f.read()
    if returncode != 0:
        with open(stderr_file, encoding="utf-8", errors="replace") as f:
            stderr = f.read()
        sys.exit(f"cachemgr exited {returncode}:\n{stderr}\n{log[-3000:]}")
    summary = SUMMARY_RE.search(log)
    if summary is None:
        sys.exit(f"no summary line in {log_file}")
    stage_line = STAGE_LINE_RE.search(log)
    stages = {}
    if stage_line is not None:
        stages = {k: float(v) for k, v in STAGE_RE.findall(stage_line.group(1))}
    return PassRun(
        seconds=seconds,
        max_rss_mb=max_rss_mb,
        stages=stages,
        summary=dict(kv.split("=", 1) for kv in summary.group(1).split()),
    )


def process_start() -> float:
    """Starting Python and importing the command: a floor under end to end."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cachemgr.cmd.cachemgr"], check=True)
    return time.perf_counter() - started


# --------------------------------------------------------------------------
# The nova driver through a fake conductor


@dataclass
class NovaRun:
    seconds: float
    conductor_s: float
    instances: int
    messages: int
    max_request_bytes: int
    max_reply_bytes: int
    page_size: int
    bdm_batch_size: int
    full_pass: PassRun
    """A --debug pass with the nova driver on the tree, from the same conductor."""


def _init_messaging() -> None:
    """Select oslo.service's threading backend before oslo_messaging loads."""
    import warnings

    warnings.filterwarnings("ignore", message="\nEventlet is deprecated")
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)  # again: a no-op


class _MessageSizes:
    """The size of every message body this process publishes to the broker.

    kombu's Producer is wrapped so that the figure is what the broker gets:
    oslo.messaging's envelope, encoded. Replies go to ``reply_*`` queues.
    """

    def __init__(self) -> None:
        self.requests: list[int] = []
        self.replies: list[int] = []
        self._local = threading.local()

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        from kombu import messaging

        publish = messaging.Producer.publish
        prepare = messaging.Producer._prepare
        local = self._local

        def publish_wrapper(producer, body, routing_key=None, *args, **kwargs):
            local.routing_key = routing_key or ""
            return publish(producer, body, routing_key, *args, **kwargs)

        def prepare_wrapper(producer, *args, **kwargs):
            body, content_type, encoding = prepare(producer, *args, **kwargs)
            to_reply = getattr(local, "routing_key", "").startswith("reply_")
            (self.replies if to_reply else self.requests).append(len(body))
            return body, content_type, encoding

        messaging.Producer.publish = publish_wrapper
        messaging.Producer._prepare = prepare_wrapper
        try:
            yield
        finally:
            messaging.Producer.publish = publish
            messaging.Producer._prepare = prepare


def _instance_primitives(count: int, seed: int) -> tuple[list[dict], list[dict]]:
    """``count`` Instance 2.8 primitives and their BlockDeviceMapping 1.21
    primitives, copies of nova 34's own (shared/fixtures/nova)."""
    import copy

    instance = nova_fixture("instance_list.json")["nova_object.data"]["objects"][-1]
    bdm = nova_fixture("bdm_list_by_uuid.json")["nova_object.data"]["objects"][0]
    rng = random.Random(seed)

    def new_uuid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    images = [new_uuid() for _ in range(max(1, count // 4))]
    instances, bdms = [], []
    for index in range(count):
        primitive = copy.deepcopy(instance)
        instance_uuid = new_uuid()
        primitive["nova_object.data"].update(
            id=index + 1,
            uuid=instance_uuid,
            host=HOST,
            image_ref=rng.choice(images),
            task_state=None,
            vm_state="active",
        )
        instances.append(primitive)
        wanted = [("image", None, None, 0)]
        if index % 3 == 0:
            wanted.append(("blank", "swap", 512, -1))
        if index % 4 == 0:
            wanted.append(("blank", None, 1, -1))
        for n, (source, guest_format, size, boot_index) in enumerate(wanted):
            mapping = copy.deepcopy(bdm)
            mapping["nova_object.data"].update(
                id=index * 4 + n,
                uuid=new_uuid(),
                instance_uuid=instance_uuid,
                source_type=source,
                guest_format=guest_format,
                volume_size=size,
                boot_index=boot_index,
            )
            bdms.append(mapping)
    return instances, bdms


class _IndexedConductor:
    """tests/nova_conductor.FakeConductor's answers, from indexes.

    The test conductor filters every instance for every page and every
    mapping for every batch, which at 20,000 instances costs more than the
    driver being measured; a real conductor answers from database indexes.
    The replies are the same: host filter, nova's order, ``limit`` and
    ``marker`` paging.
    """

    def __init__(self, instances: list[dict], bdms: list[dict]) -> None:
        import oslo_messaging  # after _init_messaging()

        self.target = oslo_messaging.Target(version="3.0")
        self.instances = instances
        self.bdms_by_uuid: dict[str, list[dict]] = {}
        for bdm in bdms:
            key = bdm["nova_object.data"]["instance_uuid"]
            self.bdms_by_uuid.setdefault(key, []).append(bdm)
        self._rows: dict[tuple[str, ...], tuple[list[dict], dict[str, int]]] = {}
        self.endpoint_seconds = 0.0

    def object_class_action_versions(
        self, context, objname, objmethod, object_versions, args, kwargs
    ):
        started = time.perf_counter()
        try:
            if objmethod == "get_by_filters":
                rows, position = self._rows_for(tuple(args[0]["host"]))
                marker = kwargs.get("marker")
                start = 0 if marker is None else position[marker] + 1
                page = rows[start : start + (kwargs.get("limit") or len(rows))]
                return list_primitive("InstanceList", "2.6", page)
            if objmethod == "get_by_instance_uuids":
                found = [b for u in args[0] for b in self.bdms_by_uuid.get(u, ())]
                return list_primitive("BlockDeviceMappingList", "1.18", found)
            raise NotImplementedError(f"{objname}.{objmethod}")
        finally:
            self.endpoint_seconds += time.perf_counter() - started

    def _rows_for(self, hosts: tuple[str, ...]) -> tuple[list[dict], dict[str, int]]:
        if hosts not in self._rows:
            rows = [
                i
                for i in self.instances
                if i["nova_object.data"]["host"] in hosts
                and not i["nova_object.data"]["deleted"]
            ]
            position = {r["nova_object.data"]["uuid"]: n for n, r in enumerate(rows)}
            self._rows[hosts] = (rows, position)
        return self._rows[hosts]


def broker_reachable(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 5672), 2).close()
    except OSError:
        return False
    return True


def measure_nova(tree: Tree, launcher: Launcher, url: str) -> NovaRun:
    """The nova driver lists M instances from a fake nova-conductor.

    The conductor runs in this process (tests/nova_conductor.serve), on an
    exchange of its own. The figure is ``NovaInventory.list_instances``,
    from building the driver (first connection included) to the last
    decoded instance, with the driver's default page and batch sizes. Then
    a whole ``--dry-run --debug`` pass with the nova driver runs on the
    tree against the same conductor: its gather stage reads the inventory
    while it scans the storage. Its instances are not the tree's (their
    images are random), so its summary differs from the static pass's.
    """
    count, workdir = tree.instances, tree.root
    _init_messaging()
    from oslo_config import cfg

    from cachemgr import conf as cachemgr_conf
    from cachemgr.inventory.nova import NovaInventory
    from tests.nova_conductor import serve

    conductor = _IndexedConductor(*_instance_primitives(count, SEED))
    sizes = _MessageSizes()
    conf = cfg.CONF  # serve() and oslo.messaging's tracing read the global one
    cachemgr_conf.register_opts(conf)
    try:
        with serve(conductor, url) as serving:
            path = os.path.join(workdir, "nova.conf")
            with open(path, "w") as f:
                f.write(
                    f"[DEFAULT]\ntransport_url = {url}\n"
                    f"[inventory]\nconductor_exchange = {serving.exchange}\n"
                )
            conf(["--config-file", path], project="cachemgr")
            with sizes.recording():
                started = time.perf_counter()
                inventory = NovaInventory.from_conf(conf)
                try:
                    listed = inventory.list_instances([HOST])
                finally:
                    inventory.close()
                seconds = time.perf_counter() - started
            with open(path, "a") as f:
                f.write("driver = nova\n")
            full_pass = run_pass(
                tree, launcher, debug=True, extra_config=path, name="pass-nova"
            )
        page_size = conf.inventory.page_size
        bdm_batch_size = conf.inventory.bdm_batch_size
    finally:
        conf.reset()
    if len(listed) != count:
        sys.exit(f"the nova driver listed {len(listed)} of {count} instances")
    return NovaRun(
        seconds=seconds,
        conductor_s=conductor.endpoint_seconds,
        instances=len(listed),
        messages=len(sizes.requests) + len(sizes.replies),
        max_request_bytes=max(sizes.requests, default=0),
        max_reply_bytes=max(sizes.replies, default=0),
        page_size=page_size,
        bdm_batch_size=bdm_batch_size,
        full_pass=full_pass,
    )


# --------------------------------------------------------------------------
# Measuring one tree, reporting, scaling


@dataclass
class Result:
    tree: Tree
    cold: bool
    floor_runs: list[float]
    start_s: float
    info: PassRun
    debug: PassRun
    nova: NovaRun | None

    @property
    def floor_s(self) -> float:
        return min(self.floor_runs)

    @property
    def core_s(self) -> float:
        """gather + plan + apply, as the fastest --debug pass logged them."""
        return _core_s(self.debug)

    @property
    def ratio(self) -> float:
        return self.core_s / self.floor_s


def measure(
    tree: Tree,
    launcher: Launcher,
    *,
    cold: bool,
    repeat: int,
    nova_url: str | None,
) -> Result:
    """Every figure for one tree.

    Warm (the default): the floor runs once before anything is timed, so
    the page cache holds the whole tree for every figure. Cold: the caches
    are dropped before each floor run and each pass.

    The floor and the two passes take turns, ``repeat`` rounds, so
    that a noisy neighbour on a shared machine slows both alike; each
    figure is its fastest round, the one least disturbed.
    """

    def prepare() -> None:
        if cold:
            drop_caches()

    if not cold:
        floor(tree)
    floor_runs: list[float] = []
    info_runs: list[PassRun] = []
    debug_runs: list[PassRun] = []
    for _ in range(repeat):
        prepare()
        floor_runs.append(floor(tree))
        prepare()
        info_runs.append(run_pass(tree, launcher, debug=False))
        prepare()
        debug_runs.append(run_pass(tree, launcher, debug=True))
    start_s = min(process_start() for _ in range(3))
    info = min(info_runs, key=lambda run: run.seconds)
    debug = min(debug_runs, key=_core_s)
    nova = measure_nova(tree, launcher, nova_url) if nova_url else None
    return Result(tree, cold, floor_runs, start_s, info, debug, nova)


def _core_s(run: PassRun) -> float:
    """gather + plan + apply, as the pass logged them."""
    return sum(run.stages.get(stage, 0.0) for stage in ("gather", "plan", "apply"))


def report(result: Result, out: TextIO) -> None:
    tree, info, debug, nova = result.tree, result.info, result.debug, result.nova

    def line(key: str, value: str, note: str = "") -> None:
        print(f"{key:<24} {value:>12}  {note}".rstrip(), file=out)

    print(
        f"# files={tree.files} instances={tree.instances} disks={tree.disks} "
        f"listed={tree.listed} cpus={os.cpu_count()} "
        f"python={sys.version.split()[0]}",
        file=out,
    )
    if result.cold:
        print(
            "# page cache COLD: dropped (echo 3 > /proc/sys/vm/drop_caches) "
            "before each floor run and each pass",
            file=out,
        )
    else:
        print(
            "# page cache WARM: not dropped; the floor ran once before any "
            "figure was taken, so the whole tree is cached",
            file=out,
        )
    runs = ", ".join(f"{r:.3f}" for r in result.floor_runs)
    line("generate_s", f"{tree.generate_s:.2f}", "writing the synthetic storage")
    line("floor_s", f"{result.floor_s:.3f}", f"fastest of {runs}")
    line("process_start_s", f"{result.start_s:.3f}", "python + imports, no pass")
    line("pass_e2e_s", f"{info.seconds:.3f}", "cachemgr --once --dry-run, INFO")
    line("pass_max_rss_mb", f"{info.max_rss_mb:.1f}")
    line("pass_debug_e2e_s", f"{debug.seconds:.3f}", "the same with --debug")
    line("pass_debug_max_rss_mb", f"{debug.max_rss_mb:.1f}")
    for stage in STAGES:
        seconds = debug.stages.get(stage, float("nan"))
        line(f"stage_{stage}_s", f"{seconds:.3f}", "logged by the --debug pass")
    line("gather_plan_apply_s", f"{result.core_s:.3f}")
    line("ratio_to_floor", f"{result.ratio:.2f}", "(gather+plan+apply) / floor")
    keys = ("files", "in_use", "removed", "too_young", "kept_unknown", "disks")
    line("pass_summary", "", " ".join(f"{k}={info.summary.get(k)}" for k in keys))
    if nova is None:
        line("nova_inventory_s", "skipped", "no broker, or --no-nova")
        return
    line("nova_inventory_s", f"{nova.seconds:.3f}", f"{nova.instances} instances")
    line("nova_conductor_s", f"{nova.conductor_s:.3f}", "of it in the fake conductor")
    line(
        "nova_messages",
        str(nova.messages),
        f"page_size={nova.page_size} bdm_batch_size={nova.bdm_batch_size}",
    )
    line("nova_max_reply_bytes", str(nova.max_reply_bytes), "largest reply body")
    line("nova_max_request_bytes", str(nova.max_request_bytes))
    full = nova.full_pass
    line("nova_pass_e2e_s", f"{full.seconds:.3f}", "a --debug pass, nova driver")
    line(
        "nova_pass_gather_s",
        f"{full.stages.get('gather', float('nan')):.3f}",
        "its gather: the inventory read while the storage is scanned",
    )


def targets(result: Result, out: TextIO) -> None:
    """Each target met or missed, and by how much."""
    tree = result.tree
    if (tree.files, tree.instances) != (DEFAULT_FILES, DEFAULT_INSTANCES):
        print(
            f"# the targets are set for {DEFAULT_FILES} files and "
            f"{DEFAULT_INSTANCES} instances; this run had {tree.files} and "
            f"{tree.instances}",
            file=out,
        )
    checks = [
        ("ratio (gather+plan+apply)/floor", result.ratio, TARGET_RATIO),
        ("end to end s", result.info.seconds, TARGET_E2E_S),
        ("max RSS MB", result.info.max_rss_mb, TARGET_RSS_MB),
    ]
    if result.nova is not None:
        checks.append(("nova inventory s", result.nova.seconds, TARGET_NOVA_S))
    for label, value, target in checks:
        verdict = "met"
        if value > target:
            verdict = f"MISSED by {value - target:.2f} ({value / target:.2f}x)"
        print(f"target {label:<32} {value:9.3f} <= {target:<5g} {verdict}", file=out)


def scaling(results: list[Result], out: TextIO) -> None:
    print("# scaling: each size generated and measured alike", file=out)
    print(
        f"{'files':>7} {'inst':>6} {'disks':>6} {'floor_s':>8} {'core_s':>7} "
        f"{'ratio':>5} {'e2e_s':>6} {'rss_mb':>6} {'nova_s':>6} {'reply_kb':>8} "
        f"{'core_us/entry':>13}",
        file=out,
    )
    for r in results:
        entries = r.tree.files + r.tree.disks
        nova_s = f"{r.nova.seconds:6.2f}" if r.nova else f"{'-':>6}"
        reply = f"{r.nova.max_reply_bytes / 1024:8.0f}" if r.nova else f"{'-':>8}"
        print(
            f"{r.tree.files:>7} {r.tree.instances:>6} {r.tree.disks:>6} "
            f"{r.floor_s:8.3f} {r.core_s:7.3f} {r.ratio:5.2f} "
            f"{r.info.seconds:6.2f} {r.info.max_rss_mb:6.1f} {nova_s} {reply} "
            f"{r.core_s / entries * 1e6:13.2f}",
            file=out,
        )
    first, last = results[0], results[-1]
    size = (last.tree.files + last.tree.disks) / (first.tree.files + first.tree.disks)
    print(
        f"growth x{size:.2f} in entries: floor x{last.floor_s / first.floor_s:.2f}, "
        f"gather+plan+apply x{last.core_s / first.core_s:.2f}, "
        f"end to end x{last.info.seconds / first.info.seconds:.2f}",
        file=out,
    )


@contextlib.contextmanager
def workdir(keep: str | None) -> Iterator[str]:
    if keep is not None:
        os.makedirs(keep, exist_ok=True)
        if os.listdir(keep):
            sys.exit(f"--keep {keep}: not empty; name a new or empty directory")
        yield os.path.abspath(keep)
        return
    root = tempfile.mkdtemp(prefix="cachemgr-bench-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help="N")
    parser.add_argument("--instances", type=int, default=DEFAULT_INSTANCES, help="M")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"N={QUICK_FILES} M={QUICK_INSTANCES}: under a minute",
    )
    parser.add_argument(
        "--scaling", action="store_true", help="also at N/4,M/4 and N/2,M/2"
    )
    parser.add_argument(
        "--cold", action="store_true", help="drop the page cache (root) first"
    )
    parser.add_argument("--keep", metavar="DIR", help="generate in DIR, keep it")
    parser.add_argument("--tree", metavar="DIR", help="measure a tree kept before")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of floor and passes; the fastest of each counts",
    )
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="for the nova figure")
    parser.add_argument("--no-nova", action="store_true", help="skip the nova figure")
    args = parser.parse_args(argv)
    files, instances = args.files, args.instances
    if args.quick:
        files, instances = QUICK_FILES, QUICK_INSTANCES
    if files < 20 or instances < 1 or args.repeat < 1:
        parser.error("--files must be >= 20, --instances and --repeat >= 1")
    if args.tree and (args.keep or args.scaling):
        parser.error("--tree measures one kept tree: no --keep, no --scaling")
    # Only errors from the libraries (the amqp client warns on close).
    logging.basicConfig(level=logging.ERROR)
    out = sys.stdout
    nova_url = None
    if not args.no_nova:
        if broker_reachable(args.broker):
            nova_url = args.broker
        else:
            print(f"# no broker at {args.broker}: the nova figure is skipped")

    launcher = Launcher()  # first, while this process is small
    try:
        results = _run(args, launcher, files, instances, nova_url, out)
    finally:
        launcher.close()
    targets(results[-1], out)
    if args.scaling:
        scaling(results, out)
    return 0


def _run(
    args: argparse.Namespace,
    launcher: Launcher,
    files: int,
    instances: int,
    nova_url: str | None,
    out: TextIO,
) -> list[Result]:
    """Measure the kept tree, or generate and measure each size."""

    def measured(tree: Tree) -> Result:
        result = measure(
            tree, launcher, cold=args.cold, repeat=args.repeat, nova_url=nova_url
        )
        report(result, out)
        out.flush()
        return result

    if args.tree:
        return [measured(load_tree(args.tree))]
    sizes = [(files, instances)]
    if args.scaling:
        sizes = [(files // 4, instances // 4), (files // 2, instances // 2), *sizes]
    with workdir(args.keep) as root:
        return [
            measured(generate(os.path.join(root, f"n{n}-m{m}"), n, max(1, m)))
            for n, m in sizes
        ]


if __name__ == "__main__":
    sys.exit(main())
