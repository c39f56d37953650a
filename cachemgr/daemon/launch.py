"""Launch the daemon under oslo.service, after the checks only it needs.

Everything here runs in the master, before the fork: the options a worker
would otherwise fail on (and oslo.service respawn, again and again) are
checked so that a bad one exits 2, and systemd's notify variables are taken
out of the environment for the worker to use (cachemgr.notify).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from oslo_config import cfg
from oslo_service import opts as oslo_service_opts
from oslo_service import service as oslo_service

from cachemgr.daemon.notify import Notifier
from cachemgr.daemon.service import CacheService
from cachemgr.daemon.signals import route_master_signals
from cachemgr.exceptions import ConfigError
from cachemgr.pipeline.settings import Settings

__all__ = ["check_daemon_options", "launch_daemon"]


def check_daemon_options(conf: cfg.ConfigOpts) -> None:
    """Check what only the daemon reads, so a bad value exits 2 before the
    launch instead of failing in a worker that oslo.service would respawn.

    Raises:
        ConfigError: an oslo.service option has a bad value.
    """
    oslo_service_opts.register_service_opts(conf)
    try:
        timeout = conf.graceful_shutdown_timeout
    except cfg.ConfigFileValueError as exc:
        raise ConfigError(f"[DEFAULT] graceful_shutdown_timeout: {exc}") from exc
    if timeout < 0:
        raise ConfigError(
            f"[DEFAULT] graceful_shutdown_timeout = {timeout}: must be 0 (wait "
            "forever) or a number of seconds"
        )


def launch_daemon(
    conf: cfg.ConfigOpts,
    settings: Settings,
    *,
    dry_run: bool,
    register_options: Callable[[cfg.ConfigOpts], None],
) -> int:
    """Launch the service under oslo.service and wait until it is stopped.

    ``register_options`` registers the options the command registered on
    ``conf``; a reload checks the files against them first.

    Returns the master's exit status (0: stopped cleanly).
    """
    notifier = Notifier.from_environ(os.environ)

    def register_all(scratch: cfg.ConfigOpts) -> None:
        register_options(scratch)
        oslo_service_opts.register_service_opts(scratch)

    daemon = CacheService(
        conf,
        settings,
        dry_run=dry_run,
        notifier=notifier,
        status_path=conf.daemon.status_file,
        metrics_path=conf.daemon.metrics_file,
        register_options=register_all,
    )
    route_master_signals(daemon.reload)
    launcher = oslo_service.launch(conf, daemon, restart_method="mutate")
    code = launcher.wait()
    return 0 if code in (0, None) else 1
