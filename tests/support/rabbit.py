"""The local RabbitMQ for tests: private vhosts and users via rabbitmqctl.

oslo.messaging names a topic queue after the topic alone (``conductor``),
whatever the exchange, so two conductors on one vhost share each other's
requests: every test run that serves a conductor gets a vhost of its own.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator

__all__ = ["BROKER", "private_vhost", "rabbitmqctl", "restricted_user"]

BROKER = "127.0.0.1:5672"


def rabbitmqctl(*args: str) -> None:
    """Run ``rabbitmqctl args``; fail the test with its stderr if it fails."""
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None, "rabbitmqctl is needed to manage the test broker"
    result = subprocess.run(
        [ctl, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"rabbitmqctl {args}: {result.stderr}"


@contextlib.contextmanager
def private_vhost(prefix: str = "cachemgr-test") -> Iterator[str]:
    """A new vhost where guest may do anything; deleted afterwards."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextlib.contextmanager
def restricted_user(
    vhost: str, configure: str, write: str, read: str
) -> Iterator[tuple[str, str]]:
    """A user with only the given permissions on ``vhost``: (name, password)."""
    name = f"cachemgr-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_user", name, "secret")
    try:
        rabbitmqctl("set_permissions", "-p", vhost, name, configure, write, read)
        yield name, "secret"
    finally:
        rabbitmqctl("delete_user", name)
