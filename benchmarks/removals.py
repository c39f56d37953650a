"""What removing costs: a real (not dry-run) ``cachemgr --once`` on the
synthetic storage, with every instance directory older than the pass, so
that each removal's re-check of the disks under nova's lock finds nothing
to read again and the figure is the re-check's sweep itself.

Usage, from a checkout (qemu-img installed)::

    python benchmarks/removals.py [--files N] [--instances M]

It prints the removals, the apply stage's time, and the time per removal.
Before removals shared one re-check per batch of locks, each removal
swept all M instance directories (about 75 ms at M = 20,000).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from pass_timing import STAGE_LINE_RE, STAGE_RE, SUMMARY_RE  # noqa: E402
from synthetic_tree import Tree, generate  # noqa: E402

HOUR = 3600


def age_instance_dirs(tree: Tree, seconds: float) -> None:
    """Make every instance directory and its files ``seconds`` old."""
    when = time.time() - seconds
    skip = {os.path.basename(tree.cache_dir), "locks"}
    with os.scandir(tree.instances_path) as top:
        for entry in top:
            if entry.name in skip or not entry.is_dir(follow_symlinks=False):
                continue
            with os.scandir(entry.path) as files:
                for file in files:
                    os.utime(file.path, (when, when), follow_symlinks=False)
            os.utime(entry.path, (when, when))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=25_000)
    parser.add_argument("--instances", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cachemgr-removals-") as root:
        tree = generate(os.path.join(root, "tree"), args.files, args.instances)
        age_instance_dirs(tree, HOUR)
        log = os.path.join(root, "pass.log")
        started = time.perf_counter()
        command = [sys.executable, "-m", "cachemgr.cmd.cachemgr"]
        command += ["--config-file", tree.config, "--once", "--debug"]
        subprocess.run([*command, "--log-file", log], check=True)
        seconds = time.perf_counter() - started
        with open(log, encoding="utf-8") as f:
            text = f.read()
    summary = SUMMARY_RE.search(text)
    stages = STAGE_LINE_RE.search(text)
    if summary is None or stages is None:
        sys.exit("no summary or stage line in the pass's log")
    removed = int(re.search(r"\bremoved=(\d+)", summary.group(1)).group(1))
    apply_s = dict(STAGE_RE.findall(stages.group(1)))["apply"]
    print(f"files {tree.files} instances {tree.instances} disks {tree.disks}")
    print(f"removed {removed}")
    print(f"apply_s {float(apply_s):.3f}")
    per = float(apply_s) / removed * 1000 if removed else float("nan")
    print(f"apply_ms_per_removal {per:.2f}")
    print(f"pass_e2e_s {seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
