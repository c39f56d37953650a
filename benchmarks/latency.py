"""The pass on latency-bound storage: the tree through delayfs, at each delay.

For each delay, on one mount in one run: the sequential floor (the same
loop as the local one, pass_timing.floor), then the real ``cachemgr --once
--dry-run`` pass (its gather+plan+apply), their ratio, the storage
requests each made, and whether the plan is the sequential one. The plan
is checked in this process: the real pass code (pipeline.run.run_pass)
with the clock fixed, once with ``scan_concurrency = 1`` on the tree
mounted with no delay, once with the default on each delayed mount; every
line it logs but the durations must be the same, in the same order.

Imported by run.py, which puts the checkout on sys.path first.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from delayfs import Mount, mounted
from oslo_config import cfg
from pass_timing import Launcher, floor, run_pass
from synthetic_tree import DEFAULT_FILES, DEFAULT_INSTANCES, Tree

from cachemgr import conf as cachemgr_conf
from cachemgr.inventory.base import load_inventory
from cachemgr.pipeline import run
from cachemgr.pipeline.settings import load_settings

LATENCIES_MS = (0.0, 0.2, 1.0, 5.0)
# Issue 15's target at 100,000 files, 20,000 instances and 1 ms.
TARGET_LATENCY_MS = 1.0
TARGET_SHARE = 1 / 8
# Lines of the pass that say how long it took: not part of the plan.
_TIMED = ("duration_s=", "Stage durations")


@dataclass
class LatencyRun:
    """One delay on one tree: the floor, the pass, and what each cost."""

    tree: Tree
    delay_ms: float
    floor_s: float
    floor_ops: int
    pass_s: float
    pass_ops: dict[str, int]
    plan_identical: bool

    @property
    def ratio(self) -> float:
        return self.pass_s / self.floor_s


def measure_latencies(
    tree: Tree, latencies: tuple[float, ...], launcher: Launcher
) -> list[LatencyRun]:
    """Each delay's figures for ``tree``, its plan checked against the
    sequential pass on the same tree mounted with no delay."""
    now = time.time()
    with mounted(tree.instances_path, 0.0, tree.instances_path):
        reference = plan_lines(tree, now, concurrency=1)
    runs = []
    for delay_ms in latencies:
        with mounted(tree.instances_path, delay_ms, tree.instances_path) as mount:
            runs.append(_measure(tree, mount, launcher, reference, now))
    return runs


def _measure(
    tree: Tree, mount: Mount, launcher: Launcher, reference: list[str], now: float
) -> LatencyRun:
    # The floor first: it also fills the kernel's dentry cache, as a
    # daemon's earlier passes do (see benchmarks/README.md).
    floor_s = floor(tree)
    floor_ops = sum(mount.stats().values())
    mount.reset()
    done = run_pass(tree, launcher, debug=True, name=f"latency-{mount.delay_ms}")
    pass_ops = mount.stats()
    pass_s = sum(done.stages.get(stage, 0.0) for stage in ("gather", "plan", "apply"))
    identical = plan_lines(tree, now, concurrency=None) == reference
    return LatencyRun(
        tree, mount.delay_ms, floor_s, floor_ops, pass_s, pass_ops, identical
    )


def plan_lines(tree: Tree, now: float, *, concurrency: int | None) -> list[str]:
    """Every line a dry-run pass logs at ``now``, but its durations.

    ``concurrency`` None is the configured (default) scan_concurrency.
    """
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", tree.config], project="cachemgr", default_config_files=[])
    settings = load_settings(conf)
    if concurrency is not None:
        settings = dataclasses.replace(settings, scan_concurrency=concurrency)
    inventory = load_inventory(conf)
    with _captured("cachemgr") as lines:
        run.run_pass(settings, inventory, dry_run=True, clock=lambda: now)
    inventory.close()
    return [line for line in lines if not any(word in line for word in _TIMED)]


@contextmanager
def _captured(name: str) -> Iterator[list[str]]:
    """The messages logged under ``name`` meanwhile, and only here."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname} {record.getMessage()}")

    logger = logging.getLogger(name)
    handler = Collect()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def report_latencies(runs: list[LatencyRun], out: TextIO) -> None:
    """A block of figures per delay, then the target met or missed."""

    def line(key: str, value: str, note: str = "") -> None:
        print(f"{key:<28} {value:>12}  {note}".rstrip(), file=out)

    for r in runs:
        tree, at = r.tree, f"latency_{r.delay_ms:g}ms"
        print(
            f"# delayfs {r.delay_ms:g} ms per request: files={tree.files} "
            f"instances={tree.instances} disks={tree.disks}",
            file=out,
        )
        line(f"{at}_floor_s", f"{r.floor_s:.3f}", "sequential floor, same mount")
        line(f"{at}_pass_s", f"{r.pass_s:.3f}", "gather+plan+apply of the pass")
        line(f"{at}_ratio", f"{r.ratio:.3f}", "pass / floor")
        line(f"{at}_floor_ops", str(r.floor_ops), "requests the floor made")
        ops = sum(r.pass_ops.values())
        busiest = sorted(r.pass_ops.items(), key=lambda kv: -kv[1])[:4]
        detail = " ".join(f"{k}={v}" for k, v in busiest if v)
        line(f"{at}_pass_ops", str(ops), detail)
        line(f"{at}_plan_identical", "yes" if r.plan_identical else "no")


def latency_target(runs: list[LatencyRun], out: TextIO) -> None:
    """Issue 15's target: at 1 ms, the pass within 1/8 of the floor."""
    for r in runs:
        if r.delay_ms != TARGET_LATENCY_MS:
            continue
        verdict = "met" if r.ratio <= TARGET_SHARE else "MISSED"
        if (r.tree.files, r.tree.instances) != (DEFAULT_FILES, DEFAULT_INSTANCES):
            verdict += (
                f" (set for {DEFAULT_FILES} files, {DEFAULT_INSTANCES} instances)"
            )
        print(
            f"target latency {r.delay_ms:g}ms pass/floor {r.ratio:9.3f} <= "
            f"{TARGET_SHARE:.3f} {verdict}",
            file=out,
        )


def latency_trees(
    files: int, instances: int
) -> list[tuple[int, int, tuple[float, ...]]]:
    """(files, instances, delays): the slowest delay on a tree 20 times
    smaller, whose sequential floor would otherwise take most of an hour."""
    small = (max(20, files // 20), max(1, instances // 20))
    return [(files, instances, LATENCIES_MS[:-1]), (*small, LATENCIES_MS[-1:])]
