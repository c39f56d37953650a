"""Spawn and delete instances with nova 34's own libvirt image backend.

Run under the nova virtualenv's Python by test_image_backend_race.py, one
process per worker::

    python nova_spawner.py INSTANCES_PATH WORKER SECONDS IMAGE_ID...

Each spawn is nova's: ``Qcow2.cache()`` -> ``create_image`` ->
``images.fetch_to_raw`` under the external lock ``nova-<fp>``, the unlocked
utime of the base, ``verify_base_size``, then ``qemu-img create`` of the
overlay under the lock. Only what cannot run here is stubbed: Glance's
download writes the image bytes locally, and privsep runs in-process. A
pause of up to ``SPAWN_PAUSE_SECONDS`` before ``verify_base_size`` stands
for a loaded host (the issue saw up to 4 s between nova's utime and the
overlay).

The instance dir holds ``ready`` while the instance is live: written once
its disk exists, removed before the dir is. Lines on stdout, JSON:
``{"live": [[uuid, image_id], ...]}`` after each change, and a last
``{"done": {...counts...}}``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
import uuid

from nova import conf, objects, privsep
from nova.virt import images
from nova.virt.libvirt import imagebackend, imagecache
from nova.virt.libvirt import utils as libvirt_utils

SPAWN_PAUSE_SECONDS = 0.6
LIVE_PER_WORKER = 2
IMAGE_BYTES = b"\0" * (1 << 20)


def main() -> None:
    instances_path, worker, seconds, *image_ids = sys.argv[1:]
    configure(instances_path)
    backend = imagebackend.Backend(use_cow=True)
    rng = random.Random(worker)
    live: list[tuple[objects.Instance, str]] = []
    counts = {"spawned": 0, "failed": 0, "overlay_left": 0, "deleted": 0}
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        if len(live) >= LIVE_PER_WORKER:
            delete(live.pop(0)[0])
            counts["deleted"] += 1
        image_id = rng.choice(image_ids)
        instance = objects.Instance(
            uuid=str(uuid.uuid4()), id=rng.randrange(1, 1 << 30)
        )
        path = libvirt_utils.get_instance_path(instance)
        os.makedirs(path)
        disk = backend.by_name(instance, "disk", image_type="qcow2")
        try:
            disk.cache(
                fetch_func=libvirt_utils.fetch_image,
                context=None,
                filename=imagecache.get_cache_fname(image_id),
                image_id=image_id,
                size=None,
            )
        except Exception as exc:
            counts["failed"] += 1
            if os.path.exists(os.path.join(path, "disk")):
                counts["overlay_left"] += 1
            print(json.dumps({"spawn_failed": repr(exc)}), flush=True)
            shutil.rmtree(path)
            continue
        with open(os.path.join(path, "ready"), "w"):
            pass
        counts["spawned"] += 1
        live.append((instance, image_id))
        print(json.dumps({"live": [[i.uuid, img] for i, img in live]}), flush=True)
    print(json.dumps({"done": counts}), flush=True)


def configure(instances_path: str) -> None:
    """nova's options for this host, and the two stubs."""
    objects.register_all()
    cfg = conf.CONF
    cfg([], project="nova")
    cfg.set_override("instances_path", instances_path)
    cfg.set_override("images_type", "qcow2", group="libvirt")
    cfg.set_override(
        "lock_path", os.path.join(instances_path, "locks"), "oslo_concurrency"
    )
    # Deep inspection asks Glance for the image record; there is no Glance.
    cfg.set_override("disable_deep_image_inspection", True, group="workarounds")
    privsep.sys_admin_pctxt.set_client_mode(False)
    images.fetch = glance_download
    real_verify = imagebackend.Image.verify_base_size

    def verify_base_size(self, base, size, base_size=0):
        time.sleep(random.uniform(0, SPAWN_PAUSE_SECONDS))
        return real_verify(self, base, size, base_size)

    imagebackend.Image.verify_base_size = verify_base_size


def glance_download(context, image_href, path, trusted_certs=None):
    """Glance's download, as nova.virt.images.fetch writes it: to ``path``."""
    with open(path, "wb") as image:
        image.write(IMAGE_BYTES)


def delete(instance: objects.Instance) -> None:
    path = libvirt_utils.get_instance_path(instance)
    os.unlink(os.path.join(path, "ready"))
    shutil.rmtree(path)


if __name__ == "__main__":
    main()
