"""``cachemgr``: parse the command line, run one pass or the loop, exit 0/1/2.

Exit status (DESIGN 1.1): 0 the pass completed or the daemon stopped
cleanly; 1 the pass failed or was refused and nothing was removed; 2 a
configuration error, named on stderr. ``--status`` has its own
(cachemgr.cmd.status).
"""

from __future__ import annotations

import warnings

# futurist imports eventlet, which warns that it is deprecated; cachemgr
# never uses it, and the warning would only alarm operators.
warnings.filterwarnings("ignore", message="\nEventlet is deprecated")

# The threading backend must be chosen before anything imports
# oslo_messaging, which would otherwise lock in eventlet.
from oslo_service import backend  # noqa: E402

backend.init_backend(backend.BackendType.THREADING)

import contextlib  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from importlib import metadata  # noqa: E402

from oslo_config import cfg  # noqa: E402
from oslo_log import log  # noqa: E402

from cachemgr import conf as cachemgr_conf  # noqa: E402
from cachemgr.cache import coordination  # noqa: E402
from cachemgr.cmd.status import show_status  # noqa: E402
from cachemgr.conf import unknown  # noqa: E402
from cachemgr.daemon import launch, metrics, status  # noqa: E402
from cachemgr.daemon.publish import Publisher  # noqa: E402
from cachemgr.daemon.service import pass_interval  # noqa: E402
from cachemgr.daemon.status import DaemonState  # noqa: E402
from cachemgr.exceptions import ConfigError  # noqa: E402
from cachemgr.inventory.base import Inventory, load_inventory  # noqa: E402
from cachemgr.pipeline.result import PassOutcome  # noqa: E402
from cachemgr.pipeline.settings import Settings, load_settings  # noqa: E402
from cachemgr.pipeline.turn import take_turn  # noqa: E402

__all__ = ["main"]

LOG = logging.getLogger("cachemgr")

EXIT_OK = 0
EXIT_PASS_FAILED = 1
EXIT_CONFIG = 2

cli_opts = [
    cfg.BoolOpt("once", default=False, help="Run exactly one pass, then exit."),
    cfg.BoolOpt(
        "dry-run",
        default=False,
        help="Decide everything and log what would be removed and refreshed; "
        "change nothing on disk.",
    ),
    cfg.BoolOpt(
        "accept-inventory",
        default=False,
        help="With --once: accept the inventory as it is, however much smaller "
        "than the last completed pass's ([image_cache] "
        "inventory_shrink_limit_percent), and record it.",
    ),
    cfg.BoolOpt(
        "status",
        default=False,
        help="Show the status file ([daemon] status_file) and exit: 0 if the "
        "last completed pass ended within two intervals, 1 if not, 2 if "
        "there is no status file to read. Runs no pass.",
    ),
]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cachemgr`` console script."""
    conf = cfg.CONF
    try:
        settings, inventory = _configure(conf, sys.argv[1:] if argv is None else argv)
    except (cfg.Error, ConfigError) as exc:
        print(f"cachemgr: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if conf.status:
        inventory.close()
        return show_status(conf.daemon.status_file)
    try:
        _prepare_outputs(conf)
    except ConfigError as exc:
        inventory.close()
        _report_config_error(exc)
        return EXIT_CONFIG
    _say_if_shrink_guard_is_off(conf, settings)
    if conf.once:
        try:
            return run_once(
                settings,
                inventory,
                dry_run=conf.dry_run,
                publisher=_publisher(conf),
                accept_inventory=conf.accept_inventory,
            )
        finally:
            inventory.close()
    if conf.accept_inventory:
        inventory.close()
        _report_config_error(ConfigError("--accept-inventory goes with --once"))
        return EXIT_CONFIG
    return run_daemon(conf, settings, inventory, dry_run=conf.dry_run)


DESCRIPTION = (
    "Keep the image cache of an OpenStack compute host clean, as nova-compute's "
    "image cache manager does: learn which instances exist (from nova-conductor, "
    "or a static JSON file), refresh the cached base files under "
    "instances_path/_base they use, and remove the unused ones once they are "
    "old enough, never one that an instance, a disk's backing chain, an open "
    "file or a nova download still needs. Without --once it runs as a daemon, "
    "one pass every [image_cache] manager_interval seconds, until SIGTERM."
)
EPILOG = (
    "Exit status: 0 the pass completed (or the daemon stopped cleanly); 1 the "
    "pass failed or was refused, nothing was removed; 2 configuration error, "
    "named on stderr. Documentation: man 8 cachemgr; README.rst and "
    "etc/cachemgr/cachemgr.conf.sample (every option, with its help) in the "
    "source."
)


def register_options(conf: cfg.ConfigOpts) -> None:
    """Every option of the command: its own, cachemgr's, oslo.log's."""
    conf.register_cli_opts(cli_opts)
    cachemgr_conf.register_opts(conf)
    log.register_options(conf)


def _configure(conf: cfg.ConfigOpts, args: list[str]) -> tuple[Settings, Inventory]:
    register_options(conf)
    _drop_shell_completion(conf)
    conf(
        args,
        project="cachemgr",
        version=metadata.version("cachemgr"),
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    log.setup(conf, "cachemgr")
    unknown.warn_unknown(conf)
    try:
        settings = load_settings(conf)
        inventory = load_inventory(conf)
    except ConfigError as exc:
        error = exc
    else:
        return settings, inventory
    # Logged outside the except block: oslo.log would repeat the message.
    LOG.error("Configuration error: %s", error)
    raise error


def _drop_shell_completion(conf: cfg.ConfigOpts) -> None:
    """Remove oslo.config's ``--shell_completion``, which only crashes here.

    oslo.config registers it on every ConfigOpts, but its wheel ships no
    ``templates/bash-completion.template``, so ``--shell_completion bash``
    ends in a FileNotFoundError traceback. Unregistered, it is not offered
    by ``--help``; an empty list of shells stops oslo.config's own check of
    argv, which runs before any parsing, so the option is then an unknown
    argument (exit 2) like any other.
    """
    conf.unregister_opt(cfg.ConfigOpts._shell_completion_opt)
    conf.supported_shell_completion = []


def _prepare_outputs(conf: cfg.ConfigOpts) -> None:
    """The status file's directory (made if need be) and the metrics file's,
    checked in either mode before the pass, so that a bad path exits 2.

    Raises:
        ConfigError: naming the option, the path and what is wrong.
    """
    if conf.daemon.status_file:
        status.prepare_status_dir(conf.daemon.status_file)
    if conf.daemon.metrics_file:
        metrics.check_metrics_path(conf.daemon.metrics_file)


def _publisher(conf: cfg.ConfigOpts) -> Publisher:
    return Publisher(conf.daemon.status_file, conf.daemon.metrics_file)


def _report_config_error(error: ConfigError | cfg.Error) -> None:
    # Logged outside the except block: oslo.log would repeat the message.
    LOG.error("Configuration error: %s", error)
    print(f"cachemgr: configuration error: {error}", file=sys.stderr)


def _say_if_shrink_guard_is_off(conf: cfg.ConfigOpts, settings: Settings) -> None:
    """The shrink guard compares with the status file's last completed pass."""
    if settings.shrink_limit_percent and not conf.daemon.status_file:
        LOG.info(
            "The inventory shrink guard is off: [daemon] status_file is unset, "
            "so no pass is remembered to compare with"
        )


def run_once(
    settings: Settings,
    inventory: Inventory,
    *,
    dry_run: bool,
    publisher: Publisher,
    accept_inventory: bool = False,
) -> int:
    """Run one pass and publish it, as the daemon does; 0 if it completed,
    1 if it failed, was refused or was stopped by SIGINT/SIGTERM (at the
    next file boundary, said in the log). ``accept_inventory`` lifts the
    shrink guard for this pass, whose inventory then becomes the baseline."""
    baseline = publisher.baseline(settings)
    if accept_inventory:
        LOG.info(
            "--accept-inventory: this pass accepts its inventory, whatever the "
            "last completed pass listed"
        )
        baseline = None
    coordinator = coordination.StorageCoordinator(
        settings.coordination_url, settings.host, settings.lock_path
    )
    with _stop_on_signals() as stopped, contextlib.ExitStack() as connected:
        connected.callback(coordinator.stop)
        attempt = take_turn(
            settings,
            lambda: inventory,
            coordinator.remover_lock,
            dry_run=dry_run,
            may_skip=False,
            interval=pass_interval(settings.manager_interval) or 0.0,
            stop_requested=stopped.is_set,
            baseline=baseline,
        )
    publisher.publish(attempt, settings, DaemonState.ONCE, None)
    return EXIT_OK if attempt.outcome is PassOutcome.COMPLETED else EXIT_PASS_FAILED


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT (Ctrl-C) and SIGTERM ask the pass to stop at its next file
    boundary instead of killing it inside a file operation; a second one of
    the same signal has its default effect, at once."""
    stopped = threading.Event()

    def request_stop(signo: int, _frame: object) -> None:
        signal.signal(signo, previous[signo])
        stopped.set()

    previous = {
        signo: signal.signal(signo, request_stop)
        for signo in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stopped
    finally:
        for signo, handler in previous.items():
            signal.signal(signo, handler)


def run_daemon(
    conf: cfg.ConfigOpts, settings: Settings, inventory: Inventory, *, dry_run: bool
) -> int:
    """Run the oslo.service daemon until SIGTERM; 0 if it stopped cleanly."""
    # Built only to check its options (drivers connect on first use). The
    # worker builds its own after the fork: a message bus transport made
    # before the fork does not work in the child (OSLO-NOTES).
    inventory.close()
    try:
        launch.check_daemon_options(conf)
    except (cfg.Error, ConfigError) as exc:
        error = exc
    else:
        error = None
    if error is not None:
        _report_config_error(error)
        return EXIT_CONFIG
    _warn_if_passes_disabled(conf)
    # The master re-reads the files on SIGHUP and calls its mutate hooks.
    conf.register_mutate_hook(unknown.warn_unknown)
    code = launch.launch_daemon(
        conf, settings, dry_run=dry_run, register_options=register_options
    )
    if code != 0:
        return EXIT_PASS_FAILED
    return EXIT_OK


def _warn_if_passes_disabled(conf: cfg.ConfigOpts) -> None:
    """A daemon with ``manager_interval = -1`` never cleans: say so loudly."""
    interval = conf.image_cache.manager_interval
    if interval >= 0:
        return
    where = conf.get_location("manager_interval", "image_cache").detail
    LOG.warning(
        "[image_cache] manager_interval = %d%s: passes are disabled, the daemon "
        "idles and never cleans the cache; set it to a number of seconds "
        "(nova's default is 2400) or run cachemgr --once from a timer",
        interval,
        f" in {where}" if where else "",
    )


if __name__ == "__main__":
    sys.exit(main())
