"""A fake nova-conductor: an oslo.messaging RPC server that answers
``object_class_action_versions`` with nova's own primitives.

It serves the instances and block device mappings it is given (by default
the nova 34 captures in shared/fixtures/nova/), filtered by host, paged by
``limit``/``marker`` in the reply order nova uses, and records every
request. ``fault`` makes it misbehave the ways a real conductor or bus can.
"""

from __future__ import annotations

import contextlib
import copy
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import oslo_messaging
from oslo_config import cfg

from tests.support.fixtures import list_primitive, nova_fixture

__all__ = ["FakeConductor", "Forbidden", "MarkerNotFound", "Request", "serve"]


class MarkerNotFound(Exception):
    """nova's exception for an unknown marker; the client sees its name."""


class Forbidden(Exception):
    """nova's exception for a non-admin context."""


@dataclass
class Request:
    context: dict[str, object]
    objname: str
    objmethod: str
    object_versions: dict[str, str]
    args: list[object]
    kwargs: dict[str, object]


Fault = Callable[[Request, int], object]
"""(request, call number) -> None to answer normally, else raise or return."""


@dataclass
class FakeConductor:
    """The endpoint; ``instances`` and ``bdms`` are nova object primitives.

    It answers from indexes, as a database would, so that at 20,000
    instances (the benchmark) it costs less than the driver it serves; the
    indexes are made again whenever a test has changed the lists.
    ``busy_seconds`` is the time spent answering.
    """

    instances: list[dict] = field(
        default_factory=lambda: _objects(nova_fixture("instance_list.json"))
    )
    bdms: list[dict] = field(
        default_factory=lambda: _objects(nova_fixture("bdm_list_by_uuid.json"))
    )
    fault: Fault | None = None
    requests: list[Request] = field(default_factory=list)
    busy_seconds: float = 0.0
    _rows: dict[tuple, tuple[list[dict], dict[str, int]]] = field(
        default_factory=dict, repr=False
    )
    _bdms_index: tuple[tuple, dict[str, list[dict]]] | None = field(
        default=None, repr=False
    )

    target = oslo_messaging.Target(version="3.0")

    def object_class_action_versions(
        self, context, objname, objmethod, object_versions, args, kwargs
    ):
        started = time.perf_counter()
        try:
            return self._answer(
                context, objname, objmethod, object_versions, args, kwargs
            )
        finally:
            self.busy_seconds += time.perf_counter() - started

    def _answer(self, context, objname, objmethod, object_versions, args, kwargs):
        request = Request(context, objname, objmethod, object_versions, args, kwargs)
        self.requests.append(request)
        if not context.get("is_admin"):
            raise Forbidden("Forbidden")
        if self.fault is not None:
            answer = self.fault(request, len(self.requests))
            if answer is not None:
                return answer
        if (objname, objmethod) == ("InstanceList", "get_by_filters"):
            return self._instance_page(args[0], kwargs)
        if (objname, objmethod) == ("BlockDeviceMappingList", "get_by_instance_uuids"):
            by_uuid = self._bdms_by_uuid()
            found = [b for uuid in args[0] for b in by_uuid.get(uuid, ())]
            return list_primitive("BlockDeviceMappingList", "1.18", found)
        raise NotImplementedError(f"{objname}.{objmethod}")

    def _instance_page(self, filters: dict, kwargs: dict) -> dict:
        rows, position = self._rows_of(tuple(filters["host"]))
        start = 0
        marker = kwargs.get("marker")
        if marker is not None:
            if marker not in position:
                raise MarkerNotFound(f"Marker {marker} could not be found.")
            start = position[marker] + 1
        limit = kwargs.get("limit") or len(rows)
        return list_primitive("InstanceList", "2.6", rows[start : start + limit])

    def _rows_of(self, hosts: tuple[str, ...]) -> tuple[list[dict], dict[str, int]]:
        """The hosts' instances not deleted, in nova's order, and each uuid's
        position; kept while the list holds the same objects."""
        key = (hosts, tuple(map(id, self.instances)))
        if key not in self._rows:
            wanted = set(hosts)
            rows = [
                i
                for i in self.instances
                if i["nova_object.data"]["host"] in wanted
                and not i["nova_object.data"]["deleted"]
            ]
            position = {r["nova_object.data"]["uuid"]: n for n, r in enumerate(rows)}
            self._rows = {key: (rows, position)}
        return self._rows[key]

    def _bdms_by_uuid(self) -> dict[str, list[dict]]:
        """The mappings by instance uuid, in reply order; kept likewise."""
        key = tuple(map(id, self.bdms))
        if self._bdms_index is None or self._bdms_index[0] != key:
            index: dict[str, list[dict]] = {}
            for bdm in self.bdms:
                uuid = bdm["nova_object.data"]["instance_uuid"]
                index.setdefault(uuid, []).append(bdm)
            self._bdms_index = (key, index)
        return self._bdms_index[1]


def _objects(primitive: object) -> list[dict]:
    return copy.deepcopy(primitive["nova_object.data"]["objects"])  # type: ignore[index]


def make_instance(index: int, host: str, image_ref: str) -> dict:
    """A minimal Instance 2.8 primitive, as nova-conductor would send it."""
    template = _objects(nova_fixture("instance_list.json"))[-1]
    data = template["nova_object.data"]
    data.update(
        id=index,
        uuid=str(uuid.UUID(int=index, version=4)),
        host=host,
        image_ref=image_ref,
        task_state=None,
        vm_state="active",
    )
    return template


@dataclass
class Serving:
    """A running fake conductor: where it listens and what it serves."""

    conductor: FakeConductor
    url: str
    exchange: str


@contextlib.contextmanager
def serve(conductor: FakeConductor, url: str) -> Iterator[Serving]:
    """Run ``conductor`` on ``url`` on an exchange of its own, for one test."""
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=url)
    exchange = f"cachemgr-test-{uuid.uuid4().hex[:12]}"
    target = oslo_messaging.Target(
        exchange=exchange, topic="conductor", server="fake-conductor"
    )
    server = oslo_messaging.get_rpc_server(transport, target, [conductor])
    server.start()
    try:
        yield Serving(conductor=conductor, url=url, exchange=exchange)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def slow(seconds: float) -> Fault:
    """A fault that answers normally, but only after ``seconds``."""

    def fault(request: Request, number: int) -> None:
        time.sleep(seconds)

    return fault
