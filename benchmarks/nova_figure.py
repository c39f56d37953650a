"""The nova driver's figure: M instances listed through a fake nova-conductor
on the local RabbitMQ, then a whole pass with that driver.

Imported by run.py, which puts the checkout on sys.path first.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from pass_timing import Launcher, PassRun, run_pass
from synthetic_tree import HOST, SEED, Tree

from tests.support.fixtures import nova_fixture


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


def broker_reachable(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 5672), 2).close()
    except OSError:
        return False
    return True


def measure_nova(tree: Tree, launcher: Launcher, url: str) -> NovaRun:
    """The nova driver lists M instances from a fake nova-conductor.

    The conductor runs in this process (tests/support/nova_conductor.serve), on an
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
    from tests.support.nova_conductor import FakeConductor, serve

    instances, bdms = _instance_primitives(count, SEED)
    conductor = FakeConductor(instances=instances, bdms=bdms)
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
        conductor_s=conductor.busy_seconds,
        instances=len(listed),
        messages=len(sizes.requests) + len(sizes.replies),
        max_request_bytes=max(sizes.requests, default=0),
        max_reply_bytes=max(sizes.replies, default=0),
        page_size=page_size,
        bdm_batch_size=bdm_batch_size,
        full_pass=full_pass,
    )
