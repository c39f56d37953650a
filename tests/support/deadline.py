"""Fail a test, rather than hang it, when its body blocks too long."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["StillRunning", "deadline"]


class StillRunning(Exception):
    """Raised in a body that outlived its deadline; not an OSError, so code
    under test that handles OSError (TimeoutError is one) cannot swallow it."""


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise StillRunning in the body after ``seconds`` (SIGALRM, main thread)."""

    def expire(signum: int, frame: object) -> None:
        raise StillRunning(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
