"""The daemon: an oslo.service Service that runs image cache passes on a timer.

``cachemgr.launch`` hands it to ``oslo_service.service.launch`` (the
threading backend: a cotyledon master process and one forked worker).

- In the worker, one timer (a dynamic looping call) wakes up, pings the
  systemd watchdog, runs a pass when one is due, and sleeps until the next
  pass or the next ping. One thread runs every pass, so two passes never
  overlap; a pass that outlasts the interval is reported and followed by one
  pass, not by a backlog.
- SIGTERM: oslo.service calls ``stop``; the pass in progress finishes the
  file operation it is in, stops cleanly, and the worker exits 0.
- SIGINT: the master turns it into SIGTERM (cachemgr.signals).
- SIGHUP: the master's ``reload`` tells systemd a reload starts, checks the
  files and, only when they are good, puts them in force and stops the
  worker as for SIGTERM; cotyledon forks a new one, whose READY=1 ends the
  reload. Bad files leave the worker running with the previous settings.
  The schedule lives in memory shared with the master, so a reload does
  not bring the next pass forward.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable

from oslo_config import cfg
from oslo_service import service as oslo_service

from cachemgr.cache import coordination
from cachemgr.daemon import reload
from cachemgr.daemon.notify import Notifier
from cachemgr.daemon.publish import Publisher
from cachemgr.daemon.status import DaemonState
from cachemgr.exceptions import ConfigError, ConfigFileError
from cachemgr.inventory.base import Inventory, load_inventory
from cachemgr.pipeline import run
from cachemgr.pipeline.attempt import PassRunner
from cachemgr.pipeline.result import PassOutcome, PassResult
from cachemgr.pipeline.settings import Settings
from cachemgr.pipeline.turn import take_turn

__all__ = ["CacheService", "pass_interval", "seconds_to_wait"]

# The logger's name predates the module's move: operators' filters use it.
LOG = logging.getLogger("cachemgr.service")

# How long the timer sleeps when nothing is due and no watchdog waits.
MAX_IDLE_SECONDS = 3600.0
_NEVER = -1.0


def pass_interval(manager_interval: int) -> float | None:
    """Seconds between passes; nova's 0 means 60 and -1 means no passes."""
    if manager_interval < 0:
        return None
    return float(manager_interval or 60)


def seconds_to_wait(
    now: float, next_due: float | None, ping_period: float | None
) -> float:
    """How long the timer sleeps: until the next pass is due (None: no pass
    is ever due), but never longer than the watchdog's ping period."""
    wait = MAX_IDLE_SECONDS if next_due is None else max(0.0, next_due - now)
    if ping_period is not None:
        wait = min(wait, ping_period)
    return wait


class CacheService(oslo_service.Service):
    """One pass every ``[image_cache] manager_interval`` seconds.

    Built in the master; ``start`` runs in each worker after the fork, so
    the inventory (and a nova driver's message bus transport) is made there.

    Args:
        conf: the parsed options.
        settings: the checked options of a pass; ``reload`` replaces them
            in the master before a new worker is forked.
        dry_run: decide and log only, change nothing.
        notifier: systemd's notify socket, taken before the launch.
        status_path: the status file, or "" for none.
        metrics_path: the metrics file, or "" for none.
        register_options: registers every option ``conf`` has, on a
            scratch ConfigOpts that checks the files on reload.
        run_pass: the pass (tests inject one).
        clock: monotonic seconds, shared by the master and its workers.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        settings: Settings,
        *,
        dry_run: bool,
        notifier: Notifier,
        status_path: str,
        metrics_path: str,
        register_options: Callable[[cfg.ConfigOpts], None],
        run_pass: PassRunner = run.run_pass,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.conf = conf
        self.settings = settings
        self.dry_run = dry_run
        self.notifier = notifier
        self.status_path = status_path
        self.metrics_path = metrics_path
        self._register_options = register_options
        self._run_pass = run_pass
        self._clock = clock
        # When the last pass started (clock seconds), in memory the workers
        # share with the master: a worker forked after SIGHUP keeps the
        # schedule of the one it replaces.
        self._last_start = multiprocessing.RawValue("d", _NEVER)
        # When a daemon that left its pass to another host of the storage
        # looks again (clock seconds); _NEVER: on its own schedule.
        self._check_at = multiprocessing.RawValue("d", _NEVER)
        # Set by the master when a reload replaces the worker: the worker it
        # stops is not the service stopping.
        self._replacing = multiprocessing.RawValue("b", 0)
        self._stopping = threading.Event()
        self._inventory: Inventory | None = None
        self._coordinator: coordination.StorageCoordinator | None = None
        self._publisher = Publisher("", "")

    # -- oslo.service ------------------------------------------------------

    def start(self) -> None:
        """Log the effective policy, tell systemd, start the timer."""
        super().start()
        self._replacing.value = 0
        self._stopping = threading.Event()
        self._inventory = None
        self._coordinator = None
        # Read in the worker: the last passes of the worker it replaces.
        self._publisher = Publisher(self.status_path, self.metrics_path)
        interval = pass_interval(self.settings.manager_interval)
        LOG.info("%s", self._policy_line(interval))
        if interval is None:
            LOG.warning(
                "[image_cache] manager_interval = -1: no image cache passes "
                "will run; the daemon idles until it is reconfigured"
            )
            self._write_status(DaemonState.IDLE, None)
            self.notifier.ready("Idle: [image_cache] manager_interval = -1")
        else:
            wait = max(0.0, self._next_due(interval) - self._clock())
            self._write_status(DaemonState.RUNNING, time.time() + wait)
            self.notifier.ready(f"Running, a pass every {interval:g} s")
        self.tg.add_dynamic_timer_args(self._tick, stop_on_exception=False)

    def stop(self, graceful: bool = True) -> None:
        """Let a pass in progress finish its file operation, then stop.

        oslo.service's own ``stop`` abandons the timer's callback, and the
        worker exits as soon as ``stop`` returns: this one waits for it.
        graceful_shutdown_timeout bounds the wait (oslo.service exits 1).
        """
        first = not self._stopping.is_set()
        replaced = bool(self._replacing.value)
        if first:
            self._stopping.set()
            LOG.info(
                "Stopping: a pass in progress stops after its current file operation"
            )
            if not replaced:
                self.notifier.stopping()
        self.tg.stop(graceful=True)
        if self._inventory is not None:
            self._inventory.close()
            self._inventory = None
        if self._coordinator is not None:
            self._coordinator.stop()
            self._coordinator = None
        if first and not replaced:
            self._write_status(DaemonState.STOPPED, None)

    def reset(self) -> None:
        """Not called by the threading backend (it forks a new worker)."""

    # -- SIGHUP, in the master ---------------------------------------------

    def reload(self) -> None:
        """Re-read the configuration files; replace the worker if they are good.

        Runs in the master (cachemgr.signals). systemd sees RELOADING=1 from
        here and READY=1 from the new worker, or from here again when the
        files are rejected: either way the unit stays active. Rejected files
        leave everything as it was, the running worker included.
        """
        self.notifier.reloading()
        try:
            settings, changes = reload.reread_config(self.conf, self._register_options)
        except ConfigError as exc:
            error: ConfigError | None = exc
        else:
            error = None
        if error is not None:
            # Logged outside the except block: oslo.log would add a traceback.
            if isinstance(error, ConfigFileError):
                what = "Configuration files could not be reloaded"
            else:
                what = "Configuration reloaded with a bad value"
            LOG.error("%s; the previous settings stay in force: %s", what, error)
            self.notifier.ready(f"{what}; the previous settings stay in force")
            return
        self.settings = settings
        LOG.info(
            "Configuration reloaded; changed: %s; the next pass uses them",
            reload.describe_changes(changes) or "no mutable option",
        )
        self._replacing.value = 1
        for worker in multiprocessing.active_children():
            os.kill(worker.pid, signal.SIGTERM)

    # -- the timer, in the worker ------------------------------------------

    def _tick(self) -> float:
        """One turn of the timer: ping, run a pass if one is due; return the
        seconds until the next turn."""
        try:
            self.notifier.watchdog()
            interval = pass_interval(self.settings.manager_interval)
            if interval is None:
                return seconds_to_wait(self._clock(), None, self.notifier.ping_period)
            due = self._clock() >= self._next_due(interval)
            if due and not self._stopping.is_set():
                self._run_one_pass(interval)
            next_due = self._next_due(interval)
            return seconds_to_wait(self._clock(), next_due, self.notifier.ping_period)
        except Exception:
            LOG.exception("The daemon's timer failed; it goes on")
            return self.notifier.ping_period or 60.0

    def _next_due(self, interval: float) -> float:
        if self._check_at.value != _NEVER and self.settings.share_passes:
            return self._check_at.value
        last = self._last_start.value
        return float("-inf") if last == _NEVER else last + interval

    def _checkpoint(self) -> bool:
        """Asked by the pass between steps: it is alive, and may go on unless
        the daemon is stopping. A pass stuck in one step stops the pings."""
        self.notifier.watchdog()
        return self._stopping.is_set()

    def _run_one_pass(self, interval: float) -> None:
        begin = self._clock()
        self._last_start.value = begin
        record = self._attempt(interval)
        if record.skip is not None:
            # Another host passed: look again when the skip says, on this
            # host's monotonic clock.
            self._check_at.value = begin + (record.skip.next_check_at - time.time())
            self._publish(record, record.skip.next_check_at)
            return
        self._check_at.value = _NEVER
        took = self._clock() - begin
        if record.outcome is PassOutcome.STOPPED:
            # Stopped for a reload: the next worker resumes the work now.
            self._last_start.value = _NEVER
        elif took > interval:
            LOG.warning(
                "Image cache pass took %.1f s, longer than [image_cache] "
                "manager_interval (%g s): the next pass starts now, and passes "
                "do not pile up; consider a longer interval",
                took,
                interval,
            )
        self._warn_near_watchdog(record)
        wait = max(0.0, self._next_due(interval) - self._clock())
        self._publish(record, time.time() + wait)

    def _attempt(self, interval: float) -> PassResult:
        """Run one pass, or skip it for another host's; whatever happens,
        say how it ended."""
        return take_turn(
            self.settings,
            self._ensure_inventory,
            self._remover_lock,
            dry_run=self.dry_run,
            may_skip=True,
            interval=interval,
            stop_requested=self._checkpoint,
            baseline=self._publisher.baseline(self.settings),
            run_pass=self._run_pass,
        )

    def _remover_lock(self) -> contextlib.AbstractContextManager[bool]:
        """The storage's remover lock, through the worker's one coordinator:
        built after the fork (a backend's connection and heartbeat thread
        do not survive one) and connected on first use, inside a pass."""
        if self._coordinator is None:
            s = self.settings
            self._coordinator = coordination.StorageCoordinator(
                s.coordination_url, s.host, s.lock_path
            )
        return self._coordinator.remover_lock()

    def _ensure_inventory(self) -> Inventory:
        """The driver, built in the worker on its first pass (after the fork)."""
        if self._inventory is None:
            self._inventory = load_inventory(self.conf)
        return self._inventory

    def _warn_near_watchdog(self, record: PassResult) -> None:
        """A stage is one step for the watchdog: warn before one is killed."""
        watchdog = self.notifier.watchdog_seconds
        if watchdog is None or not record.stage_seconds:
            return
        stage, seconds = max(record.stage_seconds.items(), key=lambda kv: kv[1])
        if seconds > watchdog / 2:
            LOG.warning(
                "The %s stage took %.1f s, more than half of the systemd "
                "watchdog's %g s: raise WatchdogSec= before a slow pass is "
                "taken for a hung one",
                stage,
                seconds,
                watchdog,
            )

    def _publish(self, record: PassResult, next_pass_at: float | None) -> None:
        """The status and metrics files and systemd's STATUS= line."""
        interval = pass_interval(self.settings.manager_interval)
        if interval is None:
            next_pass_at = None
        state = DaemonState.IDLE if interval is None else DaemonState.RUNNING
        self._publisher.publish(record, self.settings, state, next_pass_at)
        line = record.describe()
        if next_pass_at is not None:
            line += f"; next pass in {max(0.0, next_pass_at - time.time()):.0f} s"
        self.notifier.status(line)

    def _write_status(self, state: DaemonState, next_pass_at: float | None) -> None:
        """What the daemon does now and its last passes, for monitoring."""
        self._publisher.write_status(self.settings, state, next_pass_at)

    def _policy_line(self, interval: float | None) -> str:
        s = self.settings
        pairs = {
            "host": s.host,
            "instances_path": s.instances_path,
            "cache_dir": s.cache_dir,
            "driver": self.conf.inventory.driver,
            "remove_unused_base_images": s.remove_unused,
            "original_minimum_age_seconds": s.policy.original_minimum_age_seconds,
            "resized_minimum_age_seconds": s.policy.resized_minimum_age_seconds,
            "lock_wait_seconds": s.lock_wait_seconds,
            "manager_interval": s.manager_interval,
            "share_storage_passes": s.share_passes,
            "dry_run": self.dry_run,
            "status_file": self.status_path or "(none)",
            "metrics_file": self.metrics_path or "(none)",
            "watchdog_seconds": self.notifier.watchdog_seconds or "(none)",
        }
        if interval is None:
            pairs["next_pass"] = "never (idle)"
        else:
            due = self._next_due(interval) - self._clock()
            pairs["next_pass_in_s"] = f"{max(0.0, due):.0f}"
        text = " ".join(f"{k}={v}" for k, v in pairs.items())
        return f"cachemgr daemon started (pid {os.getpid()}): {text}"
