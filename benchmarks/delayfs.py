"""Latency-bound storage on a local machine: delayfs, built and mounted.

``mounted(source_dir, delay_ms)`` compiles ``benchmarks/delayfs/delayfs.c``
(once per version of its source, into a cache dir), mounts ``source_dir``
through it at a new mount point where every file system request waits
``delay_ms`` before it is answered, and unmounts it (``fusermount3 -u``)
when the block ends, an error included. ``Mount.stats()`` counts the
requests by type since the mount or the last ``reset()``: the storage
operations a pass (or many hosts' passes) cost.

Why C and libfuse3, not a Python FUSE server (pyfuse3, fusepy): the
benchmark measures how well cachemgr hides the storage's latency, so the
server must add the delay and nothing else. A Python server spends tens
of microseconds of its own per request, under its GIL, and serves only so
many requests at once: the floor it gave would measure the server. The C
server answers each request from its own thread (up to 512 waiting at
once), so N requests in flight wait one delay, not N.

Building needs a C compiler, pkg-config and libfuse3's headers; mounting
needs /dev/fuse and fusermount3. On Debian: ``apt-get install fuse3
libfuse3-dev pkg-config gcc``. ``DelayfsUnavailable`` says what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["APT_PACKAGES", "DelayfsUnavailable", "Mount", "build", "mounted"]

SOURCE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "delayfs", "delayfs.c"
)
APT_PACKAGES = "fuse3 libfuse3-dev pkg-config gcc"
_WAIT_SECONDS = 10.0


class DelayfsUnavailable(RuntimeError):
    """delayfs cannot be built or mounted here; the message says why."""


@dataclass
class Mount:
    """A mounted delayfs: where, how slow, and its request counts."""

    mountpoint: str
    delay_ms: float
    process: subprocess.Popen[bytes]
    stats_file: str

    def stats(self) -> dict[str, int]:
        """Requests by type (``getattr``, ``readdir``, ``open``...) so far."""
        return self._signalled(signal.SIGUSR1)

    def reset(self) -> None:
        """Count from zero again."""
        self._signalled(signal.SIGUSR2)

    def _signalled(self, signum: int) -> dict[str, int]:
        """Ask the server to write its counts, and read them once written."""
        before = _read_stats(self.stats_file).get("generation", 0)
        self.process.send_signal(signum)
        deadline = time.monotonic() + _WAIT_SECONDS
        while time.monotonic() < deadline:
            counts = _read_stats(self.stats_file)
            if counts.get("generation", 0) > before:
                del counts["generation"]
                return counts
            time.sleep(0.01)
        raise DelayfsUnavailable(f"delayfs at {self.mountpoint} wrote no counts")


def build(cache_dir: str | None = None) -> str:
    """The delayfs binary for the current source, compiled if need be.

    Raises:
        DelayfsUnavailable: a tool or libfuse3's headers are missing.
    """
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache_dir = cache_dir or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cachemgr"
    )
    binary = os.path.join(cache_dir, f"delayfs-{digest}")
    if os.access(binary, os.X_OK):
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    missing = [tool for tool in ("pkg-config",) if shutil.which(tool) is None]
    if compiler is None:
        missing.append("cc")
    if missing:
        raise DelayfsUnavailable(
            f"cannot build delayfs: {', '.join(missing)} not found; "
            f"apt-get install {APT_PACKAGES}"
        )
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True, text=True
    )
    if flags.returncode != 0:
        raise DelayfsUnavailable(
            f"cannot build delayfs: libfuse3's headers not found "
            f"({flags.stderr.strip()}); apt-get install {APT_PACKAGES}"
        )
    os.makedirs(cache_dir, exist_ok=True)
    partial = f"{binary}.{os.getpid()}.tmp"
    command = [compiler, "-O2", "-Wall", "-o", partial, SOURCE, *flags.stdout.split()]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise DelayfsUnavailable(f"cannot build delayfs:\n{done.stderr}")
    os.replace(partial, binary)
    return binary


@contextlib.contextmanager
def mounted(
    source_dir: str, delay_ms: float, mountpoint: str | None = None
) -> Iterator[Mount]:
    """``source_dir`` through delayfs, each request ``delay_ms`` late.

    At a new mount point, or at ``mountpoint``, which may be ``source_dir``
    itself: the server opens the source before it mounts, so the paths
    written in the tree (qcow2 backing names are absolute) then lead
    through the delay too.

    Raises:
        DelayfsUnavailable: it cannot be built or mounted here.
    """
    binary = build()
    fusermount = shutil.which("fusermount3")
    if fusermount is None or not os.path.exists("/dev/fuse"):
        raise DelayfsUnavailable(
            "cannot mount delayfs: /dev/fuse or fusermount3 missing; "
            f"apt-get install {APT_PACKAGES} (in a container: --device /dev/fuse)"
        )
    workdir = tempfile.mkdtemp(prefix="delayfs-")
    if mountpoint is None:
        mountpoint = os.path.join(workdir, "mnt")
        os.mkdir(mountpoint)
    stats_file = os.path.join(workdir, "stats")
    stderr_file = os.path.join(workdir, "stderr")
    with open(stderr_file, "wb") as stderr:
        process = subprocess.Popen(
            [
                binary,
                os.path.abspath(source_dir),
                mountpoint,
                f"--delay-us={round(delay_ms * 1000)}",
                f"--stats={stats_file}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        _wait_mounted(mountpoint, process, stderr_file)
        yield Mount(mountpoint, delay_ms, process, stats_file)
    finally:
        _unmount(fusermount, mountpoint, process)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_mounted(
    mountpoint: str, process: subprocess.Popen[bytes], stderr_file: str
) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    while not os.path.ismount(mountpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            with open(stderr_file, errors="replace") as f:
                said = f.read().strip()
            raise DelayfsUnavailable(f"delayfs did not mount {mountpoint}: {said}")
        time.sleep(0.01)


def _unmount(
    fusermount: str, mountpoint: str, process: subprocess.Popen[bytes]
) -> None:
    """Unmount and wait for the server; lazily, then by force, if it lingers."""
    if os.path.ismount(mountpoint):
        subprocess.run([fusermount, "-u", mountpoint], capture_output=True)
    try:
        process.wait(_WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        subprocess.run([fusermount, "-u", "-z", mountpoint], capture_output=True)
        process.kill()
        process.wait()


def _read_stats(path: str) -> dict[str, int]:
    try:
        with open(path) as f:
            pairs = [line.split() for line in f]
    except FileNotFoundError:
        return {}
    return {name: int(count) for name, count in pairs}
