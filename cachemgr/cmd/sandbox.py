"""``cachemgr-sandbox``: build a sandbox host and run cachemgr on it.

The README's first quick-start command: no Nova, no broker, just a
generated instances_path, a static inventory and real qcow2 disks. It runs
a dry run, then the real daemon for a few passes: its timer, a reload with
SIGHUP that changes an age, and a clean stop with SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

from cachemgr.pipeline.report import SUMMARY_PREFIX as SUMMARY
from cachemgr.sandbox import DEMO_INTERVAL, SandboxError, build_sandbox

__all__ = ["main"]

DEADLINE_SECONDS = 30.0
# The reload lowers the original files' minimum age so that the sandbox's
# 10-minute-old unused image goes on the next pass.
RELOAD_OPTION = ("image_cache", "remove_unused_original_minimum_age_seconds", "300")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cachemgr-sandbox",
        description="Build a sandbox compute host and run cachemgr on it: a dry "
        "run, then the daemon for a few passes, a reload and a stop.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        help="where to build it (new or empty; default: a new temporary dir)",
    )
    parser.add_argument(
        "--no-run", action="store_true", help="only build it and print the commands"
    )
    args = parser.parse_args(argv)
    root = args.directory or tempfile.mkdtemp(prefix="cachemgr-sandbox-")
    try:
        config = build_sandbox(root)
    except (SandboxError, OSError, subprocess.CalledProcessError) as exc:
        print(f"cachemgr-sandbox: {exc}", file=sys.stderr)
        return 2
    cachemgr = [sys.executable, "-m", "cachemgr.cmd.cachemgr", "--config-file", config]
    dry_run = [*cachemgr, "--once", "--dry-run", "--debug"]
    print(f"Sandbox built in {root} (config: {config})")
    if args.no_run:
        print("  " + shlex.join(dry_run))
        print("  " + shlex.join(cachemgr) + "   # the daemon")
        print("  kill -HUP <pid>    # reload the config file")
        print("  kill -TERM <pid>   # stop cleanly (Ctrl-C exits at once, status 1)")
        return 0
    print(f"\n== Dry run: {shlex.join(dry_run)}", flush=True)
    status = subprocess.run(dry_run, check=False).returncode
    if status != 0:
        print(f"cachemgr exited {status}", file=sys.stderr)
        return status
    status = _demo_daemon(cachemgr, config)
    base = os.path.join(root, "instances", "_base")
    print(f"\n== Left in {base}:")
    for name in sorted(os.listdir(base)):
        print(f"  {name}")
    return status


def _demo_daemon(command: list[str], config: str) -> int:
    """Run the daemon, show two timed passes, a reload and a clean stop."""
    print(f"\n== The daemon, a pass every {DEMO_INTERVAL} s: {shlex.join(command)}")
    with _Watched(command) as daemon:
        try:
            first = daemon.wait_for(SUMMARY)
            print(f"\n== {DEMO_INTERVAL} s later, the timer's next pass:", flush=True)
            second = daemon.wait_for(SUMMARY, after=first + 1)
            section, name, value = RELOAD_OPTION
            _set_option(config, section, name, value)
            print(
                f"\n== Reload: [{section}] {name} = {value} in {config}, then "
                f"kill -HUP {daemon.pid}",
                flush=True,
            )
            daemon.send(signal.SIGHUP)
            reloaded = daemon.wait_for("Configuration reloaded", after=second)
            daemon.wait_for(SUMMARY, after=reloaded)
            print(f"\n== Stop: kill -TERM {daemon.pid}", flush=True)
            daemon.send(signal.SIGTERM)
            status = daemon.wait()
        except TimeoutError as exc:
            print(f"cachemgr-sandbox: {exc}", file=sys.stderr)
            return 1
    print(f"cachemgr exited with status {status}")
    _show_status(os.path.join(os.path.dirname(config), "status.json"))
    return status


def _set_option(config: str, section: str, name: str, value: str) -> None:
    """Add ``name = value`` at the top of ``[section]`` (the last one wins)."""
    with open(config, encoding="utf-8") as stream:
        text = stream.read()
    header = f"[{section}]\n"
    text = text.replace(header, f"{header}{name} = {value}\n", 1)
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(text)


def _show_status(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as stream:
            last = json.load(stream)["last_pass"]
    except (OSError, ValueError, KeyError):
        return
    print(
        f"\n== Status file {path}: last pass {last['outcome']} at "
        f"{last['ended_at']}, removed={last['counters']['removed']}, stage "
        f"seconds {last['stage_seconds']}"
    )


class _Watched:
    """A child process whose output is echoed line by line and can be
    waited on for a line that contains some text."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.pid = self.process.pid
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._echo, daemon=True)
        self._reader.start()

    def _echo(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            print(line, end="", flush=True)
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, *, after: int = 0) -> int:
        """The index of the first line from ``after`` on that holds ``text``."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        with self._changed:
            while True:
                for index in range(after, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise TimeoutError(f"cachemgr did not log {text!r}")
                self._changed.wait(min(left, 0.5))

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self) -> int:
        status = self.process.wait(DEADLINE_SECONDS)
        self._reader.join(DEADLINE_SECONDS)
        return status

    def __enter__(self) -> _Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
