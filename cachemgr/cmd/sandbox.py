"""``cachemgr-sandbox``: build a sandbox host and run cachemgr on it.

The README's first quick-start command: no Nova, no broker, just a
generated instances_path, a static inventory and real qcow2 disks; it runs
a dry run, then a real pass, and shows what was left.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile

from cachemgr.sandbox import SandboxError, build_sandbox

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cachemgr-sandbox",
        description="Build a sandbox compute host and run cachemgr passes on it.",
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
    base = os.path.join(root, "instances", "_base")
    commands = [
        [
            sys.executable,
            "-m",
            "cachemgr.cmd.cachemgr",
            "--config-file",
            config,
            "--once",
            "--dry-run",
            "--debug",
        ],
        [
            sys.executable,
            "-m",
            "cachemgr.cmd.cachemgr",
            "--config-file",
            config,
            "--once",
        ],
    ]
    print(f"Sandbox built in {root} (config: {config})")
    if args.no_run:
        for command in commands:
            print("  " + shlex.join(command))
        return 0
    for title, command in zip(("Dry run", "Real pass"), commands, strict=True):
        print(f"\n== {title}: {shlex.join(command)}", flush=True)
        status = subprocess.run(command, check=False).returncode
        if status != 0:
            print(f"cachemgr exited {status}", file=sys.stderr)
            return status
    print(f"\n== Left in {base}:")
    for name in sorted(os.listdir(base)):
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
