"""The systemd notify protocol (sd_notify), spoken by the daemon's worker.

oslo.service's launcher sends ``READY=1`` from the master process as soon as
it starts, before the worker has done anything, then unsets NOTIFY_SOCKET;
it has no watchdog at all. So cachemgr takes NOTIFY_SOCKET and the watchdog
variables out of the environment before the launch (the launcher then stays
silent) and the worker speaks for itself: ``READY=1`` once its timer runs,
``WATCHDOG=1`` from the timer and from the pass's progress, ``STATUS=`` with
the last pass. The worker is not the unit's main process, so the unit needs
``NotifyAccess=all``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

__all__ = ["Notifier"]

# The logger's name predates the module's move: operators' filters use it.
LOG = logging.getLogger("cachemgr.notify")

# The variables systemd sets for a Type=notify service with WatchdogSec=.
_SOCKET_VAR = "NOTIFY_SOCKET"
_WATCHDOG_USEC_VAR = "WATCHDOG_USEC"
_WATCHDOG_PID_VAR = "WATCHDOG_PID"


class Notifier:
    """Sends notify datagrams to systemd; does nothing when not under systemd.

    Args:
        address: NOTIFY_SOCKET (a path, or ``@name`` for an abstract
            socket), or None.
        watchdog_seconds: WatchdogSec= of the unit, or None without one.
        clock: monotonic seconds, for the watchdog's pacing.
    """

    def __init__(
        self,
        address: str | None,
        watchdog_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address or None
        self.watchdog_seconds = watchdog_seconds if self.address else None
        self._clock = clock
        self._last_ping: float | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> Notifier:
        """Take the notify variables out of ``environ``; build the notifier.

        Called in the master before the launch: removing them keeps
        oslo.service from sending its early ``READY=1`` and keeps child
        programs from answering in the service's name. ``WATCHDOG_PID``
        names the process the watchdog is meant for; another one's is
        ignored, as sd_watchdog_enabled() does.
        """
        address = environ.pop(_SOCKET_VAR, None)
        usec = environ.pop(_WATCHDOG_USEC_VAR, None)
        pid = environ.pop(_WATCHDOG_PID_VAR, None)
        watchdog_seconds = None
        if usec and (not pid or pid == str(os.getpid())):
            try:
                watchdog_seconds = int(usec) / 1e6
            except ValueError:
                LOG.warning("Ignoring %s=%r: not a number", _WATCHDOG_USEC_VAR, usec)
            if watchdog_seconds is not None and watchdog_seconds <= 0:
                watchdog_seconds = None
        return cls(address, watchdog_seconds)

    @property
    def ping_period(self) -> float | None:
        """How often the watchdog wants a ping: half its timeout, as sd_notify
        advises, so one late ping is not yet a failure."""
        return self.watchdog_seconds / 2 if self.watchdog_seconds else None

    def ready(self, status: str) -> None:
        """The service is up: its timer runs."""
        self.send(f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, status: str) -> None:
        """What ``systemctl status`` shows, e.g. the last pass's summary."""
        self.send(f"STATUS={_one_line(status)}")

    def reloading(self) -> None:
        """A reload starts; READY=1 ends it. systemd 253+ wants the
        monotonic time with it, to tell this reload from an older one."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(
            f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=Reloading the configuration"
        )

    def stopping(self) -> None:
        """The service stops for good: not sent when a reload replaces the
        worker, or systemd would take the reload for a stop."""
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        """Tell the watchdog this process still makes progress.

        Called from the timer and from every step of a pass, so a pass
        stuck in one step stops the pings and systemd restarts the service.
        Paced to at most one datagram per quarter of the watchdog timeout.
        """
        if self.watchdog_seconds is None:
            return
        now = self._clock()
        last = self._last_ping
        if last is not None and now - last < self.watchdog_seconds / 4:
            return
        self._last_ping = now
        self.send("WATCHDOG=1")

    def send(self, message: str) -> bool:
        """Send one datagram; a failure is logged once and never raised."""
        if self.address is None:
            return False
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), target)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            LOG.log(level, "Cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True


def _one_line(text: str) -> str:
    return " ".join(text.split())
