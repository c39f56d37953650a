"""A real ``cachemgr`` daemon process for the functional tests, and systemd's
side of the notify protocol, played by a real unix datagram socket.

Tests wait for what the daemon says (a log line, a datagram) with a
deadline; they never sleep to let time pass.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "Daemon",
    "NotifyMessage",
    "NotifySocket",
    "counters",
    "notify_socket",
    "wait_until",
]

DEADLINE_SECONDS = 20.0
SUMMARY = "Image cache pass complete: "
STARTED = "cachemgr daemon started"


def counters(line: str) -> dict[str, str]:
    """The key=value pairs after the first ': ' of a log line."""
    text = line.split(": ", 1)[1] if ": " in line else line
    return dict(re.findall(r"(\w+)=(\S+)", text))


def wait_until(
    check: Callable[[], object], what: str, timeout: float = DEADLINE_SECONDS
) -> object:
    """Poll ``check`` until it returns something true; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Daemon:
    """``cachemgr --config-file F [args]`` without ``--once``, its output
    read line by line as it comes."""

    def __init__(
        self,
        config: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        environ = dict(os.environ)
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            environ.pop(name, None)
        environ.update(env or {})
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cachemgr.cmd.cachemgr",
                "--config-file",
                str(config),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environ,
            cwd=cwd,
        )
        self.pid = self.process.pid
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(
        self, text: str, *, after: int = 0, timeout: float = DEADLINE_SECONDS
    ) -> int:
        """The index of the first line from ``after`` on that contains ``text``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                left = deadline - time.monotonic()
                if left <= 0 or (
                    self.process.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(
                        f"no line with {text!r} after line {after} within "
                        f"{timeout}s; output:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(min(left, 0.5))

    def line(self, index: int) -> str:
        with self._changed:
            return self.lines[index]

    def matching(self, text: str) -> list[str]:
        with self._changed:
            return [line for line in self.lines if text in line]

    def workers(self) -> list[int]:
        """The pids of the master's worker processes."""
        try:
            return [p.pid for p in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = DEADLINE_SECONDS) -> int:
        """Wait for the master to exit; its exit status."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, timeout: float = DEADLINE_SECONDS) -> int:
        """SIGTERM, as systemd sends it; the exit status."""
        self.send(signal.SIGTERM)
        return self.wait(timeout)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            # The master made itself a process group leader (setsid).
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def fd_targets(pid: int) -> set[str]:
    """The paths the process ``pid`` holds open."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


@dataclass(frozen=True)
class NotifyMessage:
    """One sd_notify datagram: its fields, its sender, when it came."""

    fields: dict[str, str]
    pid: int
    received: float


class NotifySocket:
    """What systemd listens on: a unix datagram socket that also learns each
    sender's pid from the kernel (SCM_CREDENTIALS)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.messages: list[NotifyMessage] = []

    def receive(self, timeout: float) -> NotifyMessage | None:
        """The next datagram, or None if none comes within ``timeout``."""
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return None
        creds = struct.calcsize("iII")
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds))
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:creds])[0]
        fields = dict(
            line.split("=", 1) for line in data.decode().splitlines() if "=" in line
        )
        message = NotifyMessage(fields, pid, time.monotonic())
        self.messages.append(message)
        return message

    def wait_for(
        self,
        check: Callable[[NotifyMessage], bool],
        what: str,
        timeout: float = DEADLINE_SECONDS,
    ) -> NotifyMessage:
        """The next datagram for which ``check`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no notify datagram {what} within {timeout}s; got "
                    f"{[m.fields for m in self.messages]}"
                )
            message = self.receive(left)
            if message is not None and check(message):
                return message


@contextlib.contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    """A NotifySocket in a short temporary directory (sun_path is 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="cm-notify-")
    listener = NotifySocket(os.path.join(directory, "notify"))
    try:
        yield listener
    finally:
        listener.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(listener.path)
        os.rmdir(directory)
