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

from tests.support import rabbit, redis_server  # noqa: E402

BROKER = ("127.0.0.1", 5672)


@pytest.fixture(scope="session")
def broker_vhost() -> Iterator[str]:
    """A private vhost on the local RabbitMQ for this test session.

    Missing broker (or rabbitmqctl): the test is skipped, or fails in CI.
    """
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        _unavailable(
            f"RabbitMQ is not reachable on {BROKER[0]}:{BROKER[1]}: {exc}", "broker"
        )
    if shutil.which("rabbitmqctl") is None:
        _unavailable(
            "rabbitmqctl is missing: broker tests need a vhost of their own", "broker"
        )
    with rabbit.private_vhost() as vhost:
        yield vhost


@pytest.fixture(scope="session")
def broker_url(broker_vhost: str) -> str:
    """guest on the session's private vhost of the local RabbitMQ."""
    return f"rabbit://guest:guest@{rabbit.BROKER}/{broker_vhost}"


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a private redis-server (password redis_server.PASSWORD)
    for this test session.

    Missing redis-server: the test is skipped, or fails in CI.
    """
    if redis_server.REDIS_SERVER is None:
        _unavailable("redis-server is missing", "redis")
    with redis_server.private_redis(tmp_path_factory.mktemp("redis")) as port:
        yield port


def _unavailable(message: str, kind: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: {kind} tests must run)")
    pytest.skip(message)
