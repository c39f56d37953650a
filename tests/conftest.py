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
