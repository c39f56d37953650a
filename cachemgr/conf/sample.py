"""``python -m cachemgr.conf.sample``: regenerate the sample config quietly.

oslo-config-generator itself prints an EventletDeprecationWarning: the
oslo.messaging and oslo.service namespaces import oslo_service.service,
which imports eventlet (through futurist and its default backend).
cachemgr never runs eventlet (it uses oslo.service's threading backend), so
the warning only alarms whoever regenerates the sample. This runs the same
generator with the same filter the ``cachemgr`` command installs.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["main"]

GENERATOR_CONF = "etc/cachemgr/cachemgr-config-generator.conf"


def main(argv: list[str] | None = None) -> int:
    """oslo-config-generator with ``argv`` (default: the checkout's config)."""
    warnings.filterwarnings("ignore", message="\nEventlet is deprecated")
    from oslo_config import generator

    args = sys.argv[1:] if argv is None else argv
    generator.main(args=args or ["--config-file", GENERATOR_CONF])
    return 0


if __name__ == "__main__":
    sys.exit(main())
