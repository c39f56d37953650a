"""Hypothesis strategies: random compute hosts for the pure planner.

A host is its cache dir (files of every kind plus names that are not cache
names), the instances of the inventory, the cache files disks' backing
chains reach, the files processes hold open, the policy and ``now``. The
names are drawn from small pools so that instances, disks and processes
often refer to files that exist, and sometimes to files that do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hypothesis import strategies as st

from cachemgr.cache import naming
from cachemgr.cache.plan import Policy
from cachemgr.cache.snapshot import CacheFile, CacheSnapshot, FileKey
from cachemgr.cache.usage import EphemeralNaming
from cachemgr.inventory.model import BlockDevice, Instance

__all__ = [
    "LOCAL_HOST",
    "Host",
    "cache_names",
    "ephemeral_namings",
    "hosts",
    "instances",
    "junk_names",
    "policies",
]

IMAGE_IDS = tuple(f"1d0c6a3e-0000-4000-8000-{n:012d}" for n in range(6))
SWAP_SIZES = (0, 512, 1024, 2048)
EPHEMERAL_SIZES = (0, 1, 20)
OS_TYPES = (None, "linux", "windows", "freebsd")
HOSTS = ("cmp1", "cmp2")
LOCAL_HOST = "cmp1"
MAX_AGE_SECONDS = 4 * 86400
_FP0 = naming.fingerprint(IMAGE_IDS[0])


@dataclasses.dataclass(frozen=True)
class Host:
    """Everything make_plan reads about one compute host."""

    cache: CacheSnapshot
    instances: tuple[Instance, ...]
    ephemeral: EphemeralNaming
    backing: Mapping[str, str]
    open_files: Mapping[FileKey, str]
    policy: Policy
    now: float


_EPHEMERAL_NAMINGS = st.builds(
    EphemeralNaming,
    mkfs_commands=st.dictionaries(
        st.sampled_from(["linux", "windows", "default"]),
        st.sampled_from(["mkfs.ext4 -F", "mkfs.xfs", "mkfs.ntfs -Q"]),
        max_size=2,
    ),
    default_ephemeral_format=st.sampled_from([None, "ext3", "xfs"]),
)

_FINGERPRINTS = st.sampled_from([naming.fingerprint(i) for i in IMAGE_IDS])
# A name is drawn as a function of the ephemeral naming, since that decides
# the extension of ephemeral names.
_NAME_SPECS = st.one_of(
    _FINGERPRINTS.map(lambda fp: lambda _: fp),
    st.tuples(_FINGERPRINTS, st.integers(0, 2**40)).map(
        lambda t: lambda _: f"{t[0]}_{t[1]}"
    ),
    _FINGERPRINTS.map(lambda fp: lambda _: f"{fp}_sm"),
    st.sampled_from(SWAP_SIZES).map(lambda mb: lambda _: naming.swap_name(mb)),
    st.tuples(st.sampled_from(EPHEMERAL_SIZES), st.sampled_from(OS_TYPES)).map(
        lambda t: lambda eph: naming.ephemeral_name(t[0], eph.extension(t[1]))
    ),
)

_NEAR_MISSES = [
    _FP0.upper(),
    _FP0[:39],
    f"{_FP0}_",
    f"{_FP0}_SM",
    f"{_FP0}.part",
    f"{_FP0}_10.tmp",
    "swap_",
    "swap_x",
    "ephemeral_1_abcdef",
    "ephemeral_1_abcdefgh",
    "ephemeral__abcdef0",
    ".lock",
]
_JUNK_NAMES = st.one_of(
    st.sampled_from(_NEAR_MISSES),
    st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1),
).filter(lambda n: n not in (".", "..") and naming.classify(n) is None)

_AGES = st.one_of(st.sampled_from([0, 1, 3600, 86400]), st.integers(0, 2 * 86400))
_POLICIES = st.builds(
    Policy, original_minimum_age_seconds=_AGES, resized_minimum_age_seconds=_AGES
)

_BLOCK_DEVICES = st.lists(
    st.builds(
        BlockDevice,
        source_type=st.sampled_from(["blank", "image", "volume"]),
        destination_type=st.sampled_from(["local", "volume"]),
        guest_format=st.sampled_from([None, "swap", "ext4"]),
        volume_size=st.sampled_from(SWAP_SIZES + EPHEMERAL_SIZES + (None,)),
        boot_index=st.sampled_from([None, -1, 0]),
        no_device=st.booleans(),
    ),
    max_size=3,
).map(tuple)

_REFS = st.one_of(st.none(), st.just(""), st.sampled_from(IMAGE_IDS))
_INSTANCES = st.builds(
    Instance,
    uuid=st.uuids().map(str),
    name=st.text("abcdefgh-0123456789", min_size=1, max_size=12),
    host=st.sampled_from(HOSTS),
    image_ref=_REFS,
    kernel_id=_REFS,
    ramdisk_id=_REFS,
    task_state=st.sampled_from([None, "resize_migrating"]),
    os_type=st.sampled_from(OS_TYPES),
    block_devices=_BLOCK_DEVICES,
)

# Per file: its age in ns (exactly at the usual minimums, or anything from
# an hour in the future to days old), a few ns of jitter, st_dev, size.
_FILE_ATTRS = st.tuples(
    st.one_of(
        st.sampled_from([0, 1, 3600, 86400]).map(lambda s: s * 10**9),
        st.integers(-3600 * 10**9, MAX_AGE_SECONDS * 10**9),
    ),
    st.one_of(st.just(0), st.integers(-1000, 1000)),
    st.sampled_from([1, 2]),
    st.integers(0, 2**40),
)
_NOWS = st.floats(1e9, 2e9, allow_nan=False, allow_infinity=False)
_DISK_PATHS = st.builds(
    "/var/lib/nova/instances/{}/{}".format,
    st.uuids(),
    st.sampled_from(["disk", "disk.local", "disk.swap"]),
)
_HOLDERS = st.builds("pid {} (qemu-system-x86)".format, st.integers(1, 2**22))
_STRAY_KEYS = st.tuples(st.integers(1, 2), st.integers(1, 2**32))


def ephemeral_namings() -> st.SearchStrategy[EphemeralNaming]:
    """nova's ``virt_mkfs`` and ``default_ephemeral_format``, or their absence."""
    return _EPHEMERAL_NAMINGS


def cache_names(ephemeral: EphemeralNaming) -> st.SearchStrategy[str]:
    """Names of every cache kind, built from the pools instances draw from."""
    return _NAME_SPECS.map(lambda spec: spec(ephemeral))


def junk_names() -> st.SearchStrategy[str]:
    """Names that are not cache names: near misses and arbitrary text."""
    return _JUNK_NAMES


def policies() -> st.SearchStrategy[Policy]:
    """Minimum ages, nova's defaults among them."""
    return _POLICIES


def instances() -> st.SearchStrategy[Instance]:
    """Instances that use images, kernels, swap and ephemeral disks of the pools."""
    return _INSTANCES


@st.composite
def _cache_files(
    draw: st.DrawFn, ephemeral: EphemeralNaming, now: float
) -> tuple[CacheFile, ...]:
    names = draw(
        st.lists(
            st.one_of(cache_names(ephemeral), _JUNK_NAMES), unique=True, max_size=16
        )
    )
    # Mostly distinct inodes; a few small numbers make hard links now and then.
    inodes = draw(
        st.lists(
            st.one_of(st.integers(1, 4), st.integers(5, 2**32)),
            min_size=len(names),
            max_size=len(names),
        )
    )
    attrs = draw(st.lists(_FILE_ATTRS, min_size=len(names), max_size=len(names)))
    now_ns = int(now * 1_000_000_000)
    return tuple(
        CacheFile(
            name=name,
            kind=naming.classify(name),
            dev=dev,
            ino=ino,
            mtime_ns=now_ns - age_ns + jitter,
            allocated_bytes=size,
        )
        for name, ino, (age_ns, jitter, dev, size) in zip(
            names, inodes, attrs, strict=False
        )
    )


@st.composite
def hosts(draw: st.DrawFn) -> Host:
    """A random host: cache files, instances, disks, open files, policy, now."""
    ephemeral = draw(_EPHEMERAL_NAMINGS)
    now = draw(_NOWS)
    files = draw(_cache_files(ephemeral, now))
    names = [f.name for f in files]
    keys = [f.key for f in files]
    # Backing chains and open handles name files that exist and ones that
    # do not (a disk whose base file is gone, a file opened elsewhere).
    backing_names = st.one_of(cache_names(ephemeral), *_sample(names))
    open_keys = st.one_of(_STRAY_KEYS, *_sample(keys))
    return Host(
        cache=CacheSnapshot(
            path="/var/lib/nova/instances/_base", dir_key=(1, 2), files=files
        ),
        instances=tuple(draw(st.lists(_INSTANCES, max_size=6))),
        ephemeral=ephemeral,
        backing=draw(st.dictionaries(backing_names, _DISK_PATHS, max_size=6)),
        open_files=draw(st.dictionaries(open_keys, _HOLDERS, max_size=6)),
        policy=draw(_POLICIES),
        now=now,
    )


def _sample(values: list) -> list[st.SearchStrategy]:
    return [st.sampled_from(values)] if values else []
