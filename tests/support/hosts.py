"""Temporary compute hosts for the functional tests, and the one way to run
the real ``cachemgr`` on them.

A :class:`Host` is an instances_path with a cache dir of files of chosen
names and ages, instance directories with real qcow2 overlays made by
``qemu-img``, a static inventory (DESIGN 1.6) and a config file. Expected
names are computed here from nova's rules, independently of cachemgr's code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid as uuid_module
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONTRACT_KEYS",
    "DAY",
    "HOUR",
    "QEMU_IMG",
    "VFAT_EXT",
    "Host",
    "Run",
    "blank_local_mapping",
    "child_process",
    "fingerprint",
    "held_lock",
    "held_open",
    "run_cachemgr",
]

HOUR = 3600
DAY = 86400
QEMU_IMG = shutil.which("qemu-img")
# md5("vfat")[:7]: nova's ephemeral extension with no virt_mkfs and no
# default_ephemeral_format, whatever the os_type (shared/fixtures/nova/README.md).
VFAT_EXT = "0706d66"

# The contract keys of DESIGN 1.7, in order; more key=value pairs may follow.
CONTRACT_KEYS = (
    "files",
    "in_use",
    "removed",
    "too_young",
    "kept_unknown",
    "kept_open",
    "bytes_removed",
    "errors",
)
_SUMMARY_RE = re.compile(
    r"Image cache pass complete: "
    + " ".join(rf"{key}=(?P<{key}>\d+)" for key in CONTRACT_KEYS)
    + r" duration_s=(?P<duration_s>\d+\.\d+)(?P<more>(?: \w+=\S+)*)\s*$",
    re.MULTILINE,
)


def fingerprint(image_id: str) -> str:
    """nova libvirt's base file name for an image id."""
    return hashlib.sha1(image_id.encode()).hexdigest()


@dataclass(frozen=True)
class Run:
    """What one ``cachemgr`` process did: exit status, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def contract_counters(self) -> dict[str, float | str]:
        """The summary line's contract counters, ``files`` to ``errors``."""
        summary = self.summary()
        return {key: summary[key] for key in CONTRACT_KEYS}

    def summary(self) -> dict[str, float | str]:
        """The counters of the one summary line (contract keys and the rest)."""
        found = list(_SUMMARY_RE.finditer(self.output))
        assert len(found) == 1, f"expected one summary line in:\n{self.output}"
        match = found[0]
        counters: dict[str, float | str] = {k: int(match[k]) for k in CONTRACT_KEYS}
        counters["duration_s"] = float(match["duration_s"])
        for pair in match["more"].split():
            key, _, value = pair.partition("=")
            counters[key] = _number(value)
        return counters

    def lines(self, level: str) -> list[str]:
        """The log lines at ``level`` (``INFO``, ``ERROR``, ...)."""
        return [
            line for line in self.output.splitlines() if f" {level} " in f" {line} "
        ]


def _number(text: str) -> float | str:
    """A summary value: an int, a float, or a word (``mode=dry-run``)."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def run_cachemgr(*args: str, timeout: float = 60, cwd: Path | None = None) -> Run:
    """Run the real ``cachemgr`` command with ``args``; the one way tests do."""
    result = subprocess.run(
        [sys.executable, "-m", "cachemgr.cmd.cachemgr", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


class Host:
    """A compute host's instances_path under ``root``, built step by step."""

    def __init__(self, root: Path, name: str = "cmp1") -> None:
        self.root = root
        self.name = name
        self.instances_path = root / "instances"
        self.base = self.instances_path / "_base"
        self.inventory_path = root / "inventory.json"
        self.config_path = root / "cachemgr.conf"
        # What cachemgr writes for monitoring, outside instances_path.
        self.state_dir = root / "state"
        self.status_path = self.state_dir / "status.json"
        self.now = time.time()
        self.instances: list[dict[str, object]] = []
        self.base.mkdir(parents=True)

    # -- the cache dir -------------------------------------------------------

    def cache_file(self, name: str, *, age: float, size: int = 4096) -> Path:
        """A regular file in the cache dir whose mtime is ``age`` seconds ago."""
        path = self.base / name
        path.write_bytes(b"\xab" * size)
        self.set_age(path, age)
        return path

    def cache_qcow2(
        self, name: str, backing: Path | None, *, age: float, unsafe: bool = False
    ) -> Path:
        """A qcow2 file in the cache dir backed by ``backing``, ``age`` seconds old."""
        path = make_qcow2(self.base / name, backing, unsafe)
        self.set_age(path, age)
        return path

    def set_age(self, path: Path, age: float) -> None:
        """Set ``path``'s atime and mtime (not a symlink's target's) to now - age."""
        when = self.now - age
        os.utime(path, (when, when), follow_symlinks=False)

    # -- instances -----------------------------------------------------------

    def instance(
        self,
        image_ref: str = "",
        *,
        host: str | None = None,
        swap_mb: int | None = None,
        ephemeral_gb: int | None = None,
        **fields: object,
    ) -> str:
        """Add an instance to the inventory; return its uuid (its dir name)."""
        uuid = str(fields.pop("uuid", uuid_module.uuid4()))
        devices = []
        if swap_mb is not None:
            devices.append(blank_local_mapping("swap", swap_mb))
        if ephemeral_gb is not None:
            devices.append(blank_local_mapping(None, ephemeral_gb))
        self.instances.append(
            {
                "uuid": uuid,
                "id": len(self.instances) + 1,
                "host": host or self.name,
                "image_ref": image_ref,
                "kernel_id": "",
                "ramdisk_id": "",
                "vm_state": "active",
                "task_state": None,
                "os_type": None,
                "block_device_mapping": devices,
                **fields,
            }
        )
        return uuid

    def disk(
        self,
        directory: str,
        backing: Path | None = None,
        *,
        name: str = "disk",
        unsafe: bool = False,
    ) -> Path:
        """A real qcow2 overlay ``directory/name`` backed by ``backing`` (raw).

        ``unsafe`` lets ``backing`` be missing, as after a lost base file.
        """
        return make_qcow2(self.instances_path / directory / name, backing, unsafe)

    def raw_disk(self, directory: str, data: bytes, *, name: str = "disk") -> Path:
        """A disk file of the given bytes (raw, or garbage)."""
        path = self.instances_path / directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    # -- configuration -------------------------------------------------------

    def write(
        self,
        options: Mapping[str, Mapping[str, object]] | None = None,
        *,
        inventory: bool = True,
    ) -> None:
        """Write the config file and, unless told not to, the inventory.

        ``options`` overrides the defaults by ``{section: {name: value}}``; a
        value of None leaves the option out.
        """
        sections: dict[str, dict[str, object]] = {
            "DEFAULT": {"host": self.name, "instances_path": self.instances_path},
            # Removal under disk pressure off unless a test turns it on: what
            # a test expects must not depend on how full this machine is.
            "image_cache": {"lock_wait_seconds": 0.2, "disk_high_watermark_percent": 0},
            "inventory": {"driver": "static", "static_path": self.inventory_path},
            "daemon": {"status_file": self.status_path},
        }
        for section, values in (options or {}).items():
            sections.setdefault(section, {}).update(values)
        text = []
        for section, values in sections.items():
            text.append(f"[{section}]")
            text += [f"{k} = {v}" for k, v in values.items() if v is not None]
            text.append("")
        self.config_path.write_text("\n".join(text), encoding="utf-8")
        if inventory:
            self.inventory_path.write_text(
                json.dumps({"instances": self.instances}, indent=1), encoding="utf-8"
            )

    def write_nova(self, url: str, exchange: str, **inventory: object) -> None:
        """Write a config for the nova driver: ``url``, conductor ``exchange``."""
        self.write(
            {
                "DEFAULT": {"transport_url": url},
                "inventory": {
                    "driver": "nova",
                    "static_path": None,
                    "conductor_exchange": exchange,
                    **inventory,
                },
            },
            inventory=False,
        )

    def run(self, *args: str, timeout: float = 60) -> Run:
        """``cachemgr --config-file <this host's> --once <args>``."""
        return run_cachemgr(
            "--config-file",
            str(self.config_path),
            "--once",
            *args,
            timeout=timeout,
            cwd=self.root,
        )

    # -- what is on disk -----------------------------------------------------

    def cache_names(self) -> set[str]:
        """Every entry of the cache dir, whatever its type."""
        return set(os.listdir(self.base))

    def mtimes(self, *, except_registry: bool = False) -> dict[str, int]:
        """Relative path -> lstat st_mtime_ns of every entry under root but
        the status and metrics files of ``state_dir``.

        ``except_registry`` leaves out nova's storage registry, its lock,
        cachemgr's remover lock and the directories they are in: a pass
        registers this host and takes the remover lock before it gathers,
        even when it then refuses to remove anything.
        """
        registry = {
            "instances",
            "instances/compute_nodes",
            "instances/locks",
            "instances/locks/nova-storage-registry-lock",
            "instances/locks/cachemgr-remover",
        }
        found: dict[str, int] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            if dirpath == str(self.root) and self.state_dir.name in dirnames:
                dirnames.remove(self.state_dir.name)
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                relative = os.path.relpath(path, self.root)
                if except_registry and relative in registry:
                    continue
                found[relative] = os.lstat(path).st_mtime_ns
        return found

    def registered_hosts(self) -> set[str]:
        """The hosts recorded in nova's storage registry, compute_nodes."""
        path = self.instances_path / "compute_nodes"
        return set(json.loads(path.read_text())) if path.exists() else set()

    def allocated(self, *names: str) -> int:
        """The allocated bytes (st_blocks * 512) of cache files."""
        return sum(os.lstat(self.base / n).st_blocks * 512 for n in names)


def blank_local_mapping(guest_format: str | None, size: int) -> dict[str, object]:
    """A static inventory's blank local block device: swap or ephemeral."""
    return {
        "source_type": "blank",
        "destination_type": "local",
        "guest_format": guest_format,
        "volume_size": size,
        "boot_index": -1,
    }


def make_qcow2(path: Path, backing: Path | None, unsafe: bool = False) -> Path:
    """Create a 1 MiB qcow2 at ``path`` with ``qemu-img``, backed by raw ``backing``."""
    assert QEMU_IMG, "qemu-img is not installed"
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [QEMU_IMG, "create", "-q", "-f", "qcow2"]
    if backing is not None:
        cmd += ["-b", str(backing), "-F", "raw"]
    if unsafe:
        cmd.append("-u")
    cmd += [str(path), "1M"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return path


@contextlib.contextmanager
def child_process(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child running ``code`` for the block; it prints ``open`` or
    ``locked`` when ready, and is killed (SIGKILL) at the end."""
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline().strip()
        assert ready in ("open", "locked"), child.stderr.read() if child.stderr else ""
        yield child
    finally:
        child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


_HOLD_OPEN = """
import sys, time
held = open(sys.argv[1], "rb")
print("open", flush=True)
time.sleep(120)
"""

_HOLD_LOCK = """
import sys, time
from oslo_concurrency import lockutils
with lockutils.lock(sys.argv[1], external=True, lock_path=sys.argv[2],
                    lock_file_prefix=sys.argv[3]):
    print("locked", flush=True)
    time.sleep(120)
"""


def held_open(path: Path) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """Another process holding ``path`` open for reading, for the block."""
    return child_process(_HOLD_OPEN, str(path))


def held_lock(
    name: str, lock_path: Path, prefix: str = "nova-"
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """Another process holding the external lock ``<prefix><name>``, for the block."""
    return child_process(_HOLD_LOCK, name, str(lock_path), prefix)
