"""Test-wide setup: the oslo.service backend and the Hypothesis profile."""

import warnings

warnings.filterwarnings("ignore", message="\nEventlet is deprecated")

# Before anything imports oslo_messaging (which would select eventlet).
from oslo_service import backend  # noqa: E402

backend.init_backend(backend.BackendType.THREADING)

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "cachemgr",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("cachemgr")


import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import NoReturn  # noqa: E402

import pytest  # noqa: E402

from tests.support import rabbit  # noqa: E402

BROKER = ("127.0.0.1", 5672)


@pytest.fixture(scope="session")
def broker_vhost() -> Iterator[str]:
    """A private vhost on the local RabbitMQ for this test session.

    Missing broker (or rabbitmqctl): the test is skipped, or fails in CI.
    """
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        _unavailable(f"RabbitMQ is not reachable on {BROKER[0]}:{BROKER[1]}: {exc}")
    if shutil.which("rabbitmqctl") is None:
        _unavailable("rabbitmqctl is missing: broker tests need a vhost of their own")
    with rabbit.private_vhost() as vhost:
        yield vhost


@pytest.fixture(scope="session")
def broker_url(broker_vhost: str) -> str:
    """guest on the session's private vhost of the local RabbitMQ."""
    return f"rabbit://guest:guest@{rabbit.BROKER}/{broker_vhost}"


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: broker tests must run)")
    pytest.skip(message)
