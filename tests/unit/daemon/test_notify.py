"""Tests for cachemgr.notify over real unix datagram sockets."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Iterator

import pytest

from cachemgr.daemon.notify import Notifier


@contextlib.contextmanager
def listening(address: str) -> Iterator[socket.socket]:
    """A datagram socket bound to ``address`` (a path or an abstract name)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.bind(address)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def socket_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="cm-test-")
    path = os.path.join(directory, "notify")
    yield path
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.rmdir(directory)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestFromEnviron:
    def test_takes_the_variables_out(self, socket_path):
        """Removing them keeps oslo.service from sending its own READY=1."""
        environ = {
            "NOTIFY_SOCKET": socket_path,
            "WATCHDOG_USEC": "30000000",
            "WATCHDOG_PID": str(os.getpid()),
            "PATH": "/bin",
        }
        notifier = Notifier.from_environ(environ)
        assert environ == {"PATH": "/bin"}
        assert notifier.address == socket_path
        assert notifier.watchdog_seconds == 30.0
        assert notifier.ping_period == 15.0

    def test_a_watchdog_meant_for_another_process_is_ignored(self, socket_path):
        """As sd_watchdog_enabled(): WATCHDOG_PID names who must ping."""
        environ = {
            "NOTIFY_SOCKET": socket_path,
            "WATCHDOG_USEC": "30000000",
            "WATCHDOG_PID": str(os.getpid() + 1),
        }
        assert Notifier.from_environ(environ).watchdog_seconds is None

    @pytest.mark.parametrize("usec", ["soon", "0", "-5"])
    def test_a_bad_watchdog_value_means_no_watchdog(self, socket_path, usec):
        """A value that is not a positive number disables the pings."""
        environ = {"NOTIFY_SOCKET": socket_path, "WATCHDOG_USEC": usec}
        assert Notifier.from_environ(environ).watchdog_seconds is None

    def test_without_a_socket_nothing_is_sent(self):
        """Outside systemd the notifier is silent, and has no watchdog."""
        notifier = Notifier.from_environ({"WATCHDOG_USEC": "1000000"})
        assert notifier.watchdog_seconds is None
        assert notifier.send("READY=1") is False


class TestMessages:
    def test_ready_status_and_stopping(self, socket_path):
        """Each call is one datagram in systemd's KEY=VALUE format."""
        with listening(socket_path) as sock:
            notifier = Notifier(socket_path)
            notifier.ready("Running,\n a pass every 60 s")
            notifier.status("Last pass completed")
            notifier.stopping()
            received = [sock.recv(4096).decode() for _ in range(3)]
        assert received == [
            "READY=1\nSTATUS=Running, a pass every 60 s",
            "STATUS=Last pass completed",
            "STOPPING=1",
        ]

    def test_abstract_socket_address(self):
        """``@name`` is a socket in the abstract namespace, as systemd uses."""
        name = f"cachemgr-test-{os.getpid()}"
        with listening("\0" + name) as sock:
            assert Notifier("@" + name).send("READY=1")
            assert sock.recv(4096) == b"READY=1"

    def test_watchdog_pings_are_paced(self, socket_path):
        """Progress reported often sends at most one ping per quarter of the
        watchdog timeout."""
        clock = FakeClock()
        with listening(socket_path) as sock:
            sock.setblocking(False)
            notifier = Notifier(socket_path, watchdog_seconds=1.0, clock=clock)
            sent_at = []
            for step in range(11):
                clock.now = 100.0 + step * 0.1
                notifier.watchdog()
                with contextlib.suppress(BlockingIOError):
                    assert sock.recv(4096) == b"WATCHDOG=1"
                    sent_at.append(round(clock.now, 1))
        assert sent_at == [100.0, 100.3, 100.6, 100.9]

    def test_no_watchdog_no_ping(self, socket_path):
        """Without WatchdogSec= the pings are not sent at all."""
        with listening(socket_path) as sock:
            sock.setblocking(False)
            Notifier(socket_path).watchdog()
            with pytest.raises(BlockingIOError):
                sock.recv(4096)

    def test_a_failure_is_logged_once_and_not_raised(self, socket_path, caplog):
        """A vanished socket must not stop the daemon or flood its log."""
        notifier = Notifier(socket_path)
        with caplog.at_level(logging.DEBUG, logger="cachemgr.notify"):
            assert notifier.send("STATUS=a") is False
            assert notifier.send("STATUS=b") is False
        levels = [r.levelno for r in caplog.records]
        assert levels == [logging.WARNING, logging.DEBUG]
        assert socket_path in caplog.records[0].getMessage()
