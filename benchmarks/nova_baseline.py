"""nova 34.0.0's own libvirt image cache manager pass over a synthetic tree.

Run with the nova virtualenv's Python, on a tree ``benchmarks/run.py --keep``
made::

    /opt/nova34-venv/bin/python benchmarks/nova_baseline.py TREE_DIR \
        [--limit-disks K] [--log-file PATH]

It reads TREE_DIR/cachemgr.conf (``[DEFAULT] host`` and ``instances_path``),
TREE_DIR/instances.json (the static inventory) and TREE_DIR/tree.json (the
tree's size, for the header, as run.py prints it), builds nova
``objects.Instance`` objects from the inventory, all hosts' instances as
``ComputeManager._run_image_cache_manager_pass`` hands them over, and times
``nova.virt.libvirt.imagecache.ImageCacheManager.update()`` on them with
``[image_cache] remove_unused_base_images = False``. nova's code runs
unchanged; a subclass only times its stages: scanning ``_base``, listing
the running instances, listing the backing files (one ``qemu-img info``
subprocess per instance disk, run as nova runs it, under
``oslo_concurrency.prlimit``), and aging and verifying the base, swap and
ephemeral files. nova logs at INFO, as nova-compute does, to ``--log-file``
(default: /dev/null).

Two calls are replaced, so that the pass needs neither a database nor root
and leaves the tree as it was:

* ``objects.BlockDeviceMappingList.bdms_by_instance_uuid`` is a database
  query (through nova-conductor on a compute host); it returns the block
  device mappings built from the inventory's ``block_device_mapping``
  entries instead. Its cost is not in the figures.
* ``nova.privsep.path.utime``, with which nova touches the in-use base,
  swap and ephemeral files, runs in the privsep daemon, which cannot start
  here; it is a no-op, counted. The figures leave out the cost of those
  utime calls and of their trips to the daemon.

nova inspects only the ``disk`` file of the instance directories the
inventory names (``nova_disks_inspected``), not every disk file of the tree.
``nova_per_disk_ms`` is ``_list_backing_images``'s time per ``qemu-img``
run: the subprocess and nova's list lookups for its backing file.
``--limit-disks K`` runs ``qemu-img`` on the first K disks only and gives
the others no backing file (which leaves more files unexplained; none is
removed), so that the full-size time can be extrapolated:
``nova_update_s + nova_per_disk_ms * (nova_disks_inspected - nova_qemu_img_calls)``.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import nova.privsep.fs  # nova/virt/imagecache.py uses it; the driver imports it
import nova.privsep.path
from nova import config, context, objects
from nova.virt.libvirt import imagecache
from nova.virt.libvirt import utils as libvirt_utils
from oslo_log import log

CONF = config.CONF
BDM_FIELDS = ("source_type", "destination_type", "guest_format", "volume_size")
STAGE_NOTES = {
    "scan_base": "_scan_base_images: list _base",
    "list_running": "_list_running_instances (DB lookup replaced)",
    "verify_cached": "_age_and_verify_cached_images, with list_backing",
    "list_backing": "_list_backing_images: qemu-img info per disk",
    "verify_swap": "_age_and_verify_swap_images",
    "verify_ephemeral": "_age_and_verify_ephemeral_images",
}


@dataclass
class Counters:
    """What the pass did outside Python: subprocesses and skipped touches."""

    disks: int = 0
    qemu_img_calls: int = 0
    qemu_img_s: float = 0.0
    utime_calls: int = 0


class TimedImageCacheManager(imagecache.ImageCacheManager):
    """nova's manager, its stages timed (cumulative seconds by stage)."""

    def __init__(self) -> None:
        super().__init__()
        self.durations: dict[str, float] = {}

    def _timed(self, stage: str, method: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args)
        finally:
            elapsed = time.perf_counter() - start
            self.durations[stage] = self.durations.get(stage, 0.0) + elapsed

    def _scan_base_images(self, base_dir: str) -> None:
        self._timed("scan_base", super()._scan_base_images, base_dir)

    def _list_running_instances(self, ctx: Any, all_instances: Any) -> dict:
        method = super()._list_running_instances
        return self._timed("list_running", method, ctx, all_instances)

    def _list_backing_images(self) -> list[str]:
        return self._timed("list_backing", super()._list_backing_images)

    def _age_and_verify_cached_images(
        self, ctx: Any, all_instances: Any, base_dir: str
    ) -> None:
        method = super()._age_and_verify_cached_images
        self._timed("verify_cached", method, ctx, all_instances, base_dir)

    def _age_and_verify_swap_images(self, ctx: Any, base_dir: str) -> None:
        self._timed("verify_swap", super()._age_and_verify_swap_images, ctx, base_dir)

    def _age_and_verify_ephemeral_images(self, ctx: Any, base_dir: str) -> None:
        method = super()._age_and_verify_ephemeral_images
        self._timed("verify_ephemeral", method, ctx, base_dir)


def read_conf(tree: str) -> tuple[str, str]:
    """``[DEFAULT] host`` and ``instances_path`` of TREE/cachemgr.conf."""
    parser = configparser.ConfigParser()
    with open(os.path.join(tree, "cachemgr.conf"), encoding="utf-8") as f:
        parser.read_file(f)
    return parser["DEFAULT"]["host"], parser["DEFAULT"]["instances_path"]


def configure_nova(host: str, instances_path: str, log_file: str) -> None:
    """nova's CONF as nova-compute would have it, removal switched off."""
    config.parse_args(
        ["nova_baseline"], default_config_files=[], configure_db=False, init_rpc=False
    )
    CONF.set_override("host", host)
    CONF.set_override("instances_path", instances_path)
    CONF.set_override("log_file", log_file)
    CONF.set_override("subdirectory_name", "_base", group="image_cache")
    CONF.set_override("remove_unused_base_images", False, group="image_cache")
    log.setup(CONF, "nova")
    objects.register_all()


def build_instances(ctx: Any, entries: list[dict]) -> Any:
    """An InstanceList with the fields ``_list_running_instances`` reads."""
    instances = []
    for entry in entries:
        instance = objects.Instance(
            ctx,
            uuid=entry["uuid"],
            id=entry["id"],
            host=entry["host"],
            image_ref=entry["image_ref"],
            kernel_id=entry["kernel_id"],
            ramdisk_id=entry["ramdisk_id"],
            vm_state=entry["vm_state"],
            task_state=entry["task_state"],
            os_type=entry["os_type"],
        )
        if entry.get("name", instance.name) != instance.name:
            sys.exit(
                f"{entry['uuid']}: name {entry['name']!r} is not nova's "
                f"instance_name_template % id ({instance.name!r})"
            )
        instances.append(instance)
    return objects.InstanceList(ctx, objects=instances)


def build_bdms(ctx: Any, entries: list[dict]) -> dict[str, Any]:
    """Each instance's BlockDeviceMappingList, from the inventory."""
    return {
        entry["uuid"]: objects.BlockDeviceMappingList(
            ctx,
            objects=[
                objects.BlockDeviceMapping(
                    ctx,
                    instance_uuid=entry["uuid"],
                    boot_index=mapping["boot_index"],
                    no_device=False,
                    device_name=None,
                    disk_bus=None,
                    device_type=None,
                    encrypted=False,
                    encryption_secret_uuid=None,
                    encryption_format=None,
                    encryption_options=None,
                    **{key: mapping[key] for key in BDM_FIELDS},
                )
                for mapping in entry["block_device_mapping"]
            ],
        )
        for entry in entries
    }


def replace_db_lookup(bdms: dict[str, Any]) -> None:
    """``bdms_by_instance_uuid`` answers from ``bdms`` instead of the DB."""

    def bdms_by_instance_uuid(ctx: Any, uuids: Iterable[str]) -> dict[str, Any]:
        return {uuid: bdms[uuid] for uuid in uuids if bdms[uuid]}

    objects.BlockDeviceMappingList.bdms_by_instance_uuid = staticmethod(
        bdms_by_instance_uuid
    )


def replace_utime(counters: Counters) -> None:
    """The privsep utime is a no-op that counts its calls."""

    def utime(path: str) -> None:
        counters.utime_calls += 1

    nova.privsep.path.utime = utime


def count_qemu_img(counters: Counters, limit: int | None) -> None:
    """Time and count ``get_disk_backing_file`` (one ``qemu-img info`` each);
    past ``limit`` disks, answer "no backing file" without running it."""
    real = libvirt_utils.get_disk_backing_file

    def get_disk_backing_file(path: str, *args: Any, **kwargs: Any) -> str | None:
        counters.disks += 1
        if limit is not None and counters.qemu_img_calls >= limit:
            return None
        start = time.perf_counter()
        try:
            return real(path, *args, **kwargs)
        finally:
            counters.qemu_img_calls += 1
            counters.qemu_img_s += time.perf_counter() - start

    libvirt_utils.get_disk_backing_file = get_disk_backing_file


def report(
    tree: str,
    size: dict[str, Any],
    update_s: float,
    durations: dict[str, float],
    counters: Counters,
) -> None:
    def line(key: str, value: str, note: str = "") -> None:
        print(f"{key:<24} {value:>12}  {note}".rstrip())

    print(
        f"# nova 34.0.0 libvirt ImageCacheManager on {tree} "
        f"(files={size['files']}, disks={size['disks']})"
    )
    line("nova_disks_inspected", str(counters.disks), "listed instances' disk files")
    line("nova_update_s", f"{update_s:.3f}", "ImageCacheManager.update(), whole")
    for stage, seconds in durations.items():
        line(f"nova_{stage}_s", f"{seconds:.3f}", STAGE_NOTES[stage])
    line("nova_qemu_img_calls", str(counters.qemu_img_calls), "qemu-img info runs")
    line("nova_qemu_img_s", f"{counters.qemu_img_s:.3f}", "their wall-clock total")
    per_disk_s = durations.get("list_backing", 0.0) / max(counters.qemu_img_calls, 1)
    line(
        "nova_per_disk_ms", f"{per_disk_s * 1000:.1f}", "list_backing per qemu-img run"
    )
    line("nova_utime_skipped", str(counters.utime_calls), "privsep utime calls, no-op")
    skipped = counters.disks - counters.qemu_img_calls
    if skipped:
        estimate = update_s + per_disk_s * skipped
        line(
            "nova_update_est_s",
            f"{estimate:.1f}",
            f"extrapolated: {skipped} disks skipped by --limit-disks",
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", help="a tree benchmarks/run.py --keep made")
    parser.add_argument(
        "--limit-disks",
        type=int,
        metavar="K",
        help="run qemu-img info on the first K disks only; extrapolate",
    )
    parser.add_argument("--log-file", default=os.devnull, help="nova's log")
    args = parser.parse_args(argv)

    host, instances_path = read_conf(args.tree)
    with open(os.path.join(args.tree, "instances.json"), encoding="utf-8") as f:
        entries = json.load(f)["instances"]
    with open(os.path.join(args.tree, "tree.json"), encoding="utf-8") as f:
        size = json.load(f)
    configure_nova(host, instances_path, args.log_file)
    ctx = context.get_admin_context()
    instances = build_instances(ctx, entries)
    replace_db_lookup(build_bdms(ctx, entries))
    counters = Counters()
    replace_utime(counters)
    count_qemu_img(counters, args.limit_disks)

    manager = TimedImageCacheManager()
    start = time.perf_counter()
    manager.update(ctx, instances)
    update_s = time.perf_counter() - start

    report(args.tree, size, update_s, manager.durations, counters)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
