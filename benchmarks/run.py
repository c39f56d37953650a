"""cachemgr at shared-storage scale: generate a synthetic storage, time a pass.

Usage, from a checkout (qemu-img installed; the nova figure needs RabbitMQ)::

    python benchmarks/run.py [--files N] [--instances M] [--quick] [--scaling]
                             [--cold] [--keep DIR | --tree DIR] [--repeat K]
                             [--broker URL | --no-nova]
    python benchmarks/run.py --latency --many-hosts   # issue 15's figures

It builds, in a temporary directory, an instances_path with N cache files
of every kind (originals, ``_<size>``/``_sm`` variants, swap, ephemeral,
names that are not cache names; plus a symlink and a subdirectory) of
varied ages, M instance directories each with a real qcow2 overlay (copies
of one ``qemu-img``-made template with the backing file name patched; one
copy is checked with ``qemu-img info``) whose backing file is in the cache,
and a static inventory naming most of those instances. Then it prints one
line per figure: the file system floor, a ``cachemgr --once --dry-run``
pass end to end with its own stage durations and its peak memory, the nova
driver's inventory of M instances through a fake nova-conductor on the
local RabbitMQ and a whole pass with that driver, and the targets met or
missed. benchmarks/README.md says
what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import TextIO

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    # The fake conductor, the nova fixtures and the inventory entries' shape
    # live in the checkout's tests/.
    sys.path.insert(0, REPO)

from delayfs import DelayfsUnavailable  # noqa: E402
from figures import Result, measure, report, scaling, targets  # noqa: E402
from latency import (  # noqa: E402
    latency_target,
    latency_trees,
    measure_latencies,
    report_latencies,
)
from many_hosts import FLEET, run_fleets  # noqa: E402
from many_hosts import report as many_hosts_report  # noqa: E402
from nova_figure import broker_reachable  # noqa: E402
from pass_timing import Launcher  # noqa: E402
from synthetic_tree import (  # noqa: E402
    DEFAULT_BROKER,
    DEFAULT_FILES,
    DEFAULT_INSTANCES,
    QUICK_FILES,
    QUICK_INSTANCES,
    Tree,
    generate,
    load_tree,
)


@contextlib.contextmanager
def workdir(keep: str | None) -> Iterator[str]:
    if keep is not None:
        os.makedirs(keep, exist_ok=True)
        if os.listdir(keep):
            sys.exit(f"--keep {keep}: not empty; name a new or empty directory")
        yield os.path.abspath(keep)
        return
    root = tempfile.mkdtemp(prefix="cachemgr-bench-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help="N")
    parser.add_argument("--instances", type=int, default=DEFAULT_INSTANCES, help="M")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"N={QUICK_FILES} M={QUICK_INSTANCES}: under a minute",
    )
    parser.add_argument(
        "--scaling", action="store_true", help="also at N/4,M/4 and N/2,M/2"
    )
    parser.add_argument(
        "--cold", action="store_true", help="drop the page cache (root) first"
    )
    parser.add_argument("--keep", metavar="DIR", help="generate in DIR, keep it")
    parser.add_argument("--tree", metavar="DIR", help="measure a tree kept before")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of floor and passes; the fastest of each counts",
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="through delayfs at 0, 0.2 and 1 ms, and 5 ms on a tree 20 times "
        "smaller (root, /dev/fuse)",
    )
    parser.add_argument(
        "--many-hosts",
        action="store_true",
        help="N = 1, 10 and 50 daemons on one delayfs-counted tree (see "
        "many_hosts.py; with --latency, after its figures)",
    )
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="for the nova figure")
    parser.add_argument("--no-nova", action="store_true", help="skip the nova figure")
    args = parser.parse_args(argv)
    files, instances = args.files, args.instances
    if args.quick:
        files, instances = QUICK_FILES, QUICK_INSTANCES
    if files < 20 or instances < 1 or args.repeat < 1:
        parser.error("--files must be >= 20, --instances and --repeat >= 1")
    if args.tree and (args.keep or args.scaling):
        parser.error("--tree measures one kept tree: no --keep, no --scaling")
    if (args.latency or args.many_hosts) and (args.tree or args.scaling or args.cold):
        parser.error(
            "--latency and --many-hosts generate their trees: no --tree, "
            "--scaling, --cold"
        )
    # Only errors from the libraries (the amqp client warns on close).
    logging.basicConfig(level=logging.ERROR)
    out = sys.stdout
    code = 0
    if args.latency:
        code = _run_latency(args.keep, files, instances, out)
    if args.many_hosts and code == 0:
        broker = None if args.no_nova else args.broker
        fleet_figures = run_fleets([1, 10, 50], **FLEET, broker=broker)
        many_hosts_report(fleet_figures, FLEET["interval"], out)
    if args.latency or args.many_hosts:
        return code
    nova_url = None
    if not args.no_nova:
        if broker_reachable(args.broker):
            nova_url = args.broker
        else:
            print(f"# no broker at {args.broker}: the nova figure is skipped")

    launcher = Launcher()  # first, while this process is small
    try:
        results = _run(args, launcher, files, instances, nova_url, out)
    finally:
        launcher.close()
    targets(results[-1], out)
    if args.scaling:
        scaling(results, out)
    return 0


def _run_latency(keep: str | None, files: int, instances: int, out: TextIO) -> int:
    """The --latency mode: each tree generated, then measured at its delays.

    Exits 3 when delayfs cannot be built or mounted here, saying why.
    """
    launcher = Launcher()
    runs = []
    try:
        with workdir(keep) as root:
            for n, m, delays in latency_trees(files, instances):
                tree = generate(os.path.join(root, f"n{n}-m{m}"), n, m)
                tree_runs = measure_latencies(tree, delays, launcher)
                report_latencies(tree_runs, out)
                out.flush()
                runs += tree_runs
    except DelayfsUnavailable as exc:
        print(f"delayfs unavailable: {exc}", file=sys.stderr)
        return 3
    finally:
        launcher.close()
    latency_target(runs, out)
    return 0


def _run(
    args: argparse.Namespace,
    launcher: Launcher,
    files: int,
    instances: int,
    nova_url: str | None,
    out: TextIO,
) -> list[Result]:
    """Measure the kept tree, or generate and measure each size."""

    def measured(tree: Tree) -> Result:
        result = measure(
            tree, launcher, cold=args.cold, repeat=args.repeat, nova_url=nova_url
        )
        report(result, out)
        out.flush()
        return result

    if args.tree:
        return [measured(load_tree(args.tree))]
    sizes = [(files, instances)]
    if args.scaling:
        sizes = [(files // 4, instances // 4), (files // 2, instances // 2), *sizes]
    with workdir(args.keep) as root:
        return [
            measured(generate(os.path.join(root, f"n{n}-m{m}"), n, max(1, m)))
            for n, m in sizes
        ]


if __name__ == "__main__":
    sys.exit(main())
