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
import socket  # noqa: E402

import pytest  # noqa: E402

BROKER = ("127.0.0.1", 5672)


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The local RabbitMQ; missing, it skips the test, or fails it in CI."""
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        message = f"RabbitMQ is not reachable on {BROKER[0]}:{BROKER[1]}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: broker tests must run)")
        pytest.skip(message)
    return f"rabbit://guest:guest@{BROKER[0]}:{BROKER[1]}/"
