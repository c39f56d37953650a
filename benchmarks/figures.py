"""Measuring one tree and printing its figures, the targets and the scaling
table, in the lines benchmarks/README.md describes.

Imported by run.py, which puts the checkout on sys.path first.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

from nova_figure import NovaRun, measure_nova
from pass_timing import (
    STAGES,
    Launcher,
    PassRun,
    drop_caches,
    floor,
    process_start,
    run_pass,
)
from synthetic_tree import DEFAULT_FILES, DEFAULT_INSTANCES, Tree

# Issue 5's targets, for a 2-core machine at 100,000 files and 20,000 disks.
TARGET_RATIO = 2.0
TARGET_E2E_S = 15.0
TARGET_RSS_MB = 300.0
TARGET_NOVA_S = 10.0


@dataclass
class Result:
    tree: Tree
    cold: bool
    floor_runs: list[float]
    start_s: float
    info: PassRun
    debug: PassRun
    nova: NovaRun | None

    @property
    def floor_s(self) -> float:
        return min(self.floor_runs)

    @property
    def core_s(self) -> float:
        """gather + plan + apply, as the fastest --debug pass logged them."""
        return _core_s(self.debug)

    @property
    def ratio(self) -> float:
        return self.core_s / self.floor_s


def measure(
    tree: Tree,
    launcher: Launcher,
    *,
    cold: bool,
    repeat: int,
    nova_url: str | None,
) -> Result:
    """Every figure for one tree.

    Warm (the default): the floor runs once before anything is timed, so
    the page cache holds the whole tree for every figure. Cold: the caches
    are dropped before each floor run and each pass.

    The floor and the two passes take turns, ``repeat`` rounds, so
    that a noisy neighbour on a shared machine slows both alike; each
    figure is its fastest round, the one least disturbed.
    """

    def prepare() -> None:
        if cold:
            drop_caches()

    if not cold:
        floor(tree)
    floor_runs: list[float] = []
    info_runs: list[PassRun] = []
    debug_runs: list[PassRun] = []
    for _ in range(repeat):
        prepare()
        floor_runs.append(floor(tree))
        prepare()
        info_runs.append(run_pass(tree, launcher, debug=False))
        prepare()
        debug_runs.append(run_pass(tree, launcher, debug=True))
    start_s = min(process_start() for _ in range(3))
    info = min(info_runs, key=lambda run: run.seconds)
    debug = min(debug_runs, key=_core_s)
    nova = measure_nova(tree, launcher, nova_url) if nova_url else None
    return Result(tree, cold, floor_runs, start_s, info, debug, nova)


def _core_s(run: PassRun) -> float:
    """gather + plan + apply, as the pass logged them."""
    return sum(run.stages.get(stage, 0.0) for stage in ("gather", "plan", "apply"))


def report(result: Result, out: TextIO) -> None:
    tree, info, debug, nova = result.tree, result.info, result.debug, result.nova

    def line(key: str, value: str, note: str = "") -> None:
        print(f"{key:<24} {value:>12}  {note}".rstrip(), file=out)

    print(
        f"# files={tree.files} instances={tree.instances} disks={tree.disks} "
        f"listed={tree.listed} cpus={os.cpu_count()} "
        f"python={sys.version.split()[0]}",
        file=out,
    )
    if result.cold:
        print(
            "# page cache COLD: dropped (echo 3 > /proc/sys/vm/drop_caches) "
            "before each floor run and each pass",
            file=out,
        )
    else:
        print(
            "# page cache WARM: not dropped; the floor ran once before any "
            "figure was taken, so the whole tree is cached",
            file=out,
        )
    runs = ", ".join(f"{r:.3f}" for r in result.floor_runs)
    line("generate_s", f"{tree.generate_s:.2f}", "writing the synthetic storage")
    line("floor_s", f"{result.floor_s:.3f}", f"fastest of {runs}")
    line("process_start_s", f"{result.start_s:.3f}", "python + imports, no pass")
    line("pass_e2e_s", f"{info.seconds:.3f}", "cachemgr --once --dry-run, INFO")
    line("pass_max_rss_mb", f"{info.max_rss_mb:.1f}")
    line("pass_debug_e2e_s", f"{debug.seconds:.3f}", "the same with --debug")
    line("pass_debug_max_rss_mb", f"{debug.max_rss_mb:.1f}")
    for stage in STAGES:
        seconds = debug.stages.get(stage, float("nan"))
        line(f"stage_{stage}_s", f"{seconds:.3f}", "logged by the --debug pass")
    line("gather_plan_apply_s", f"{result.core_s:.3f}")
    line("ratio_to_floor", f"{result.ratio:.2f}", "(gather+plan+apply) / floor")
    keys = ("files", "in_use", "removed", "too_young", "kept_unknown", "disks")
    line("pass_summary", "", " ".join(f"{k}={info.summary.get(k)}" for k in keys))
    if nova is None:
        line("nova_inventory_s", "skipped", "no broker, or --no-nova")
        return
    line("nova_inventory_s", f"{nova.seconds:.3f}", f"{nova.instances} instances")
    line("nova_conductor_s", f"{nova.conductor_s:.3f}", "of it in the fake conductor")
    line(
        "nova_messages",
        str(nova.messages),
        f"page_size={nova.page_size} bdm_batch_size={nova.bdm_batch_size}",
    )
    line("nova_max_reply_bytes", str(nova.max_reply_bytes), "largest reply body")
    line("nova_max_request_bytes", str(nova.max_request_bytes))
    full = nova.full_pass
    line("nova_pass_e2e_s", f"{full.seconds:.3f}", "a --debug pass, nova driver")
    line(
        "nova_pass_gather_s",
        f"{full.stages.get('gather', float('nan')):.3f}",
        "its gather: the inventory read while the storage is scanned",
    )


def targets(result: Result, out: TextIO) -> None:
    """Each target met or missed, and by how much."""
    tree = result.tree
    if (tree.files, tree.instances) != (DEFAULT_FILES, DEFAULT_INSTANCES):
        print(
            f"# the targets are set for {DEFAULT_FILES} files and "
            f"{DEFAULT_INSTANCES} instances; this run had {tree.files} and "
            f"{tree.instances}",
            file=out,
        )
    checks = [
        ("ratio (gather+plan+apply)/floor", result.ratio, TARGET_RATIO),
        ("end to end s", result.info.seconds, TARGET_E2E_S),
        ("max RSS MB", result.info.max_rss_mb, TARGET_RSS_MB),
    ]
    if result.nova is not None:
        checks.append(("nova inventory s", result.nova.seconds, TARGET_NOVA_S))
    for label, value, target in checks:
        verdict = "met"
        if value > target:
            verdict = f"MISSED by {value - target:.2f} ({value / target:.2f}x)"
        print(f"target {label:<32} {value:9.3f} <= {target:<5g} {verdict}", file=out)


def scaling(results: list[Result], out: TextIO) -> None:
    print("# scaling: each size generated and measured alike", file=out)
    print(
        f"{'files':>7} {'inst':>6} {'disks':>6} {'floor_s':>8} {'core_s':>7} "
        f"{'ratio':>5} {'e2e_s':>6} {'rss_mb':>6} {'nova_s':>6} {'reply_kb':>8} "
        f"{'core_us/entry':>13}",
        file=out,
    )
    for r in results:
        entries = r.tree.files + r.tree.disks
        nova_s = f"{r.nova.seconds:6.2f}" if r.nova else f"{'-':>6}"
        reply = f"{r.nova.max_reply_bytes / 1024:8.0f}" if r.nova else f"{'-':>8}"
        print(
            f"{r.tree.files:>7} {r.tree.instances:>6} {r.tree.disks:>6} "
            f"{r.floor_s:8.3f} {r.core_s:7.3f} {r.ratio:5.2f} "
            f"{r.info.seconds:6.2f} {r.info.max_rss_mb:6.1f} {nova_s} {reply} "
            f"{r.core_s / entries * 1e6:13.2f}",
            file=out,
        )
    first, last = results[0], results[-1]
    size = (last.tree.files + last.tree.disks) / (first.tree.files + first.tree.disks)
    print(
        f"growth x{size:.2f} in entries: floor x{last.floor_s / first.floor_s:.2f}, "
        f"gather+plan+apply x{last.core_s / first.core_s:.2f}, "
        f"end to end x{last.info.seconds / first.info.seconds:.2f}",
        file=out,
    )
