"""SIGINT and SIGHUP in the daemon's master process, taken from cotyledon.

cotyledon's master (oslo.service's threading backend) reads every signal
from a wakeup fd and acts on its number: SIGINT is ``os._exit(1)`` at once,
and SIGHUP runs its reload hooks, whose oslo.config errors end up as
tracebacks, then re-forks the worker even when the files were bad. Neither
can be remapped through a Python handler: the C-level handler writes the
number to the wakeup fd whatever handler is set.

A signal that is blocked in every thread never reaches that handler. So the
master blocks SIGINT and SIGHUP before cotyledon starts any thread (all of
them, and the forked worker, inherit the mask) and one thread of ours takes
them with sigwait():

- SIGINT becomes a SIGTERM to the master: cotyledon's own graceful stop.
  The worker never sees Ctrl-C's SIGINT (sent to the whole process group):
  it stops when the master tells it, cleanly, not at once.
- SIGHUP runs ``on_reload``, which re-reads the files and replaces the
  worker only when they are good.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

__all__ = ["route_master_signals"]

# The logger's name predates the module's move: operators' filters use it.
LOG = logging.getLogger("cachemgr.signals")

_TAKEN = {signal.SIGINT, signal.SIGHUP}


def route_master_signals(on_reload: Callable[[], None]) -> None:
    """Take SIGINT and SIGHUP away from cotyledon, in the master.

    Call it in the main thread before the launcher starts: a thread started
    earlier would still let the signals through to cotyledon.

    Args:
        on_reload: called on SIGHUP, in the signal thread.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _TAKEN)
    threading.Thread(
        target=_wait_for_signals,
        args=(on_reload,),
        name="cachemgr-signals",
        daemon=True,
    ).start()


def _wait_for_signals(on_reload: Callable[[], None]) -> None:
    while True:
        signo = signal.sigwait(_TAKEN)
        try:
            if signo == signal.SIGINT:
                LOG.info("Caught SIGINT: stopping as for SIGTERM")
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                on_reload()
        except Exception:
            LOG.exception("Handling signal %d failed; the daemon goes on", signo)
