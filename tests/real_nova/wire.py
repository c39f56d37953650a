"""A plain oslo.messaging client of nova-conductor that imports no nova and
no cachemgr: what the conductor sends back, for comparing with the fixtures.
"""

from __future__ import annotations

from typing import Protocol

import oslo_messaging
from oslo_config import cfg

from tests.support.fixtures import nova_fixture

__all__ = ["call"]

# nova 34's obj_tree_get_versions() of each list, as captured.
MANIFESTS = nova_fixture("manifest.json")["obj_tree_get_versions"]


class Where(Protocol):
    url: str
    exchange: str


def call(where: Where, objname: str, objmethod: str, args: list, kwargs: dict) -> dict:
    """``object_class_action_versions`` on topic ``conductor``, version 3.0."""
    # The global CONF: oslo.messaging registers its tracing options there only.
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=where.url)
    try:
        target = oslo_messaging.Target(
            exchange=where.exchange, topic="conductor", version="3.0"
        )
        client = oslo_messaging.get_rpc_client(transport, target, timeout=20)
        return client.call(
            {"is_admin": True, "read_deleted": "no"},
            "object_class_action_versions",
            objname=objname,
            objmethod=objmethod,
            object_versions=MANIFESTS[objname],
            args=args,
            kwargs=kwargs,
        )
    finally:
        transport.cleanup()
