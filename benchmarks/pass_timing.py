"""Timing on a tree: the file-system floor and the real ``cachemgr --once``
pass, started by a small launcher so its peak memory is its own.

Imported by run.py, which puts the checkout on sys.path first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from synthetic_tree import Tree

from cachemgr.pipeline.report import SUMMARY_PREFIX

STAGES = ("gather", "plan", "apply", "report")
STAGE_LINE_RE = re.compile(r"Stage durations: (.*)$", re.MULTILINE)
STAGE_RE = re.compile(r"(\w+)_s=([0-9.]+)")
SUMMARY_RE = re.compile(re.escape(SUMMARY_PREFIX) + "(.*)$", re.MULTILINE)


def drop_caches() -> None:
    """Empty the page, dentry and inode caches (root only)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as exc:
        sys.exit(f"--cold: cannot drop the page cache ({exc}); run as root")


def floor(tree: Tree) -> float:
    """What any correct pass must at least do, as the plainest loop.

    lstat every entry of the cache dir; list every directory under
    instances_path; open every ``disk*`` file, read its first 512 bytes.
    """
    started = time.perf_counter()
    with os.scandir(tree.cache_dir) as entries:
        for entry in entries:
            entry.stat(follow_symlinks=False)
    with os.scandir(tree.instances_path) as top:
        directories = [e.path for e in top if e.is_dir(follow_symlinks=False)]
    for directory in directories:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("disk") and entry.name != "disk.info":
                    fd = os.open(entry.path, os.O_RDONLY)
                    try:
                        os.read(fd, 512)
                    finally:
                        os.close(fd)
    return time.perf_counter() - started


@dataclass
class PassRun:
    """One ``cachemgr --once --dry-run`` process."""

    seconds: float
    max_rss_mb: float
    stages: dict[str, float]
    summary: dict[str, str]


CACHEMGR = [sys.executable, "-m", "cachemgr.cmd.cachemgr"]

# Runs one command at a time for the benchmark and answers its time and
# peak memory. Linux counts in a child's ru_maxrss the memory of the
# process it was exec'd from, so a pass started by this (large) benchmark
# process would report the benchmark's size; started by this small one, it
# reports its own.
_LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    request = json.loads(line)
    with open(request["stderr"], "wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            request["argv"], stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    answer = {"seconds": seconds, "maxrss_kb": usage.ru_maxrss,
              "returncode": os.waitstatus_to_exitcode(status)}
    print(json.dumps(answer), flush=True)
"""


class Launcher:
    """A small process that starts the passes; see _LAUNCHER."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], stderr: str) -> tuple[float, float, int]:
        """(seconds, max RSS in MB, exit status) of ``argv``."""
        assert self._process.stdin and self._process.stdout
        request = {"argv": argv, "stderr": stderr}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._process.stdout.readline())
        return answer["seconds"], answer["maxrss_kb"] / 1024, answer["returncode"]

    def close(self) -> None:
        assert self._process.stdin
        self._process.stdin.close()
        self._process.wait()


def run_pass(
    tree: Tree,
    launcher: Launcher,
    *,
    debug: bool,
    extra_config: str | None = None,
    name: str = "pass",
) -> PassRun:
    """The real command, timed from its start to its exit, and its peak RSS.

    ``extra_config`` is read after the tree's config file, overriding it.
    """
    log_file = os.path.join(tree.root, f"{name}-debug.log" if debug else f"{name}.log")
    stderr_file = log_file + ".stderr"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(log_file)
    command = [*CACHEMGR, "--config-file", tree.config, "--once", "--dry-run"]
    if extra_config is not None:
        command += ["--config-file", extra_config]
    command += ["--log-file", log_file] + (["--debug"] if debug else [])
    seconds, max_rss_mb, returncode = launcher.run(command, stderr_file)
    with open(log_file, encoding="utf-8") as f:
        log = f.read()
    if returncode != 0:
        with open(stderr_file, encoding="utf-8", errors="replace") as f:
            stderr = f.read()
        sys.exit(f"cachemgr exited {returncode}:\n{stderr}\n{log[-3000:]}")
    summary = SUMMARY_RE.search(log)
    if summary is None:
        sys.exit(f"no summary line in {log_file}")
    stage_line = STAGE_LINE_RE.search(log)
    stages = {}
    if stage_line is not None:
        stages = {k: float(v) for k, v in STAGE_RE.findall(stage_line.group(1))}
    return PassRun(
        seconds=seconds,
        max_rss_mb=max_rss_mb,
        stages=stages,
        summary=dict(kv.split("=", 1) for kv in summary.group(1).split()),
    )


def process_start() -> float:
    """Starting Python and importing the command: a floor under end to end."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cachemgr.cmd.cachemgr"], check=True)
    return time.perf_counter() - started
