"""Overlapping a scan's system calls when the storage answers slowly.

On network storage (NFS, CephFS, GPFS) each lstat, listing and header
read is a round trip, about a millisecond on a LAN: a sequential scan of
100,000 cache files and 20,000 instances waits minutes while the cores
are idle. ``Overlap.map_chunks`` runs a function over consecutive slices
of many items in a bounded pool of threads (the os calls release the GIL,
so up to ``concurrency`` requests are in flight) and returns the slices'
results in the items' order: what is built from them does not depend on
which call answered first, and an error is met where a sequential scan
would have met it.

On a local, warm disk the same calls take a few microseconds of CPU and
threads only add the GIL's handoffs (the cache dir's 100,000 lstats took
20-30% longer in 2 to 16 threads than in one; resolving 6,000 backing
directories, pure Python around its lstats, four times longer). So the
first slices run in the calling thread, timed on the wall clock and on
the thread's CPU clock, and the rest goes to the pool only when each call
spent more than ``WAIT_SECONDS`` off the CPU: waiting on the storage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

__all__ = ["PROBE_SLICES", "WAIT_SECONDS", "Overlap"]

T = TypeVar("T")
R = TypeVar("R")

WAIT_SECONDS = 10e-6
"""A call that spends longer than this off the CPU waits on the storage.
Measured per call, wall clock: a local warm lstat takes 3 us, an instance
dir listing or a header read 10, nearly all of it CPU (the kernel's
included); through FUSE with no added delay 40 and 200 us, on a LAN NFS
0.2 to 1 ms, most of it waiting for the server."""
PROBE_SLICES = 2
"""Slices timed in the calling thread before any goes to the pool: the
faster says how the storage answers, so that one slowed by a noisy
neighbour does not start the threads. 0 hands every slice to the pool
(the tests' way to overlap every read of a small tree)."""
_PROBE_ITEMS = 8
# Slices handed to the pool: small enough that every thread has work until
# the end, large enough that a future costs little per item.
_MAX_SLICE = 64
_SLICES_PER_THREAD = 4


class Overlap:
    """A bounded pool of threads, started only once a call is seen to wait.

    ``concurrency`` 1 never starts a thread: every call is made in order in
    the calling thread, as a sequential scan makes them. Use it as a
    context manager; leaving it waits for the calls in flight.
    """

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency {concurrency} is below 1")
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Overlap:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map_chunks(
        self, function: Callable[[Sequence[T]], R], items: Sequence[T]
    ) -> list[R]:
        """``function`` of consecutive slices of ``items``, in their order.

        The slices cover ``items`` once, in order; how they are cut depends
        on the storage's speed, so ``function`` must answer for a slice what
        it would answer for each of its items in turn (record an item's
        error in its result rather than raise it, unless it ends the scan).
        """
        results: list[R] = []
        done = 0
        least_wait = float("inf")
        for _ in range(PROBE_SLICES):
            if done == len(items):
                return results
            part = items[done : done + _PROBE_ITEMS]
            wall, cpu = time.perf_counter(), time.thread_time()
            results.append(function(part))
            waited = (time.perf_counter() - wall) - (time.thread_time() - cpu)
            least_wait = min(least_wait, waited / len(part))
            done += len(part)
        rest = items[done:]
        if not rest:
            return results
        if self._concurrency == 1 or least_wait <= WAIT_SECONDS:
            results.append(function(rest))
            return results
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self._concurrency, thread_name_prefix="cachemgr-scan"
            )
        size = -(-len(rest) // (self._concurrency * _SLICES_PER_THREAD))
        size = max(1, min(_MAX_SLICE, size))
        slices = [rest[at : at + size] for at in range(0, len(rest), size)]
        results.extend(self._pool.map(function, slices))
        return results
