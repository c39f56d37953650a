"""A private redis-server for the tests of tooz-backed coordination.

It listens on 127.0.0.1 only, on a free port, with a password, keeps its
files in a directory of its own and saves nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PASSWORD", "REDIS_SERVER", "free_port", "private_redis"]

REDIS_SERVER = shutil.which("redis-server")
PASSWORD = "t3st-pass"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[int]:
    """Run redis-server in ``directory`` for the block; yield its port."""
    assert REDIS_SERVER, "redis-server is not installed"
    port = free_port()
    log = directory / "redis.log"
    server = subprocess.Popen(
        [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--requirepass",
            PASSWORD,
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(log),
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server, log)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    """Return once the server answers PING; fail with its log otherwise."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.poll() is None, f"redis-server exited: {log.read_text()}"
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as connection,
        ):
            connection.sendall(f"AUTH {PASSWORD}\r\nPING\r\n".encode())
            answer = b""
            while chunk := connection.recv(64):
                answer += chunk
                if answer.endswith(b"+PONG\r\n"):
                    return
        time.sleep(0.05)
    raise AssertionError(f"redis-server did not answer on {port}: {log.read_text()}")
