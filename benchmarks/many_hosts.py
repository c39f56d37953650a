"""Many hosts, one storage (DESIGN 1.11): N real daemons on one tree.

Usage, from a checkout (qemu-img and FUSE; the nova driver needs RabbitMQ)::

    python benchmarks/many_hosts.py [--hosts 1,10,50] [--interval S]
                                    [--intervals K] [--files N] [--instances M]
                                    [--broker URL | --no-nova]

For each N it starts N ``cachemgr`` daemons (hosts ``sim-1`` to ``sim-N``,
each its own config, status and log file) on one generated instances_path
seen through delayfs (benchmarks/delayfs.py) with no delay, which counts
every operation the daemons make on the storage. After the daemons have
completed the first pass (which removes what the generated tree holds
unused: not the steady state) and one more interval has passed, it
counts, over K intervals (default 10), the full
passes (summary lines in the logs), the skipped ones, the storage
operations and, with the nova driver (a fake nova-conductor in this
process on a private vhost of the local RabbitMQ, serving each host's
instances), the conductor calls; each figure is per interval, across all
the daemons. Then it kills the host that passed last (SIGKILL, its whole
process group) and measures how long after that host's last pass another
host passes: the storage's continuity. ``share_storage_passes = false`` at
the largest N shows what the fleet did before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    # The fake conductor and the broker's helpers live in the checkout's tests/.
    sys.path.insert(0, REPO)

from delayfs import mounted  # noqa: E402
from nova_figure import broker_reachable  # noqa: E402
from synthetic_tree import DEFAULT_BROKER, generate  # noqa: E402

SUMMARY = "Image cache pass complete: "
SKIPPED = "Image cache pass skipped: "
STARTED = "cachemgr daemon started"
IMAGE_ID = "00000000-0000-4000-8000-000000000001"
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)")


Counter = Callable[[], int]
# The simulation's defaults: a small tree, a short interval, ten of them.
FLEET = {"interval": 5.0, "intervals": 10, "files": 2000, "instances": 400}


@dataclass
class FleetFigures:
    """What N daemons did on one storage, per interval, across all of them."""

    hosts: int
    driver: str
    share: bool
    intervals: float
    passes: int
    skips: int
    storage_ops: int
    conductor_calls: int
    takeover_s: float | None

    def per_interval(self, count: int) -> float:
        return count / self.intervals


class Fleet:
    """N daemons of one storage, each with its own config, status and log."""

    def __init__(self, workdir: str, instances_path: str, hosts: int) -> None:
        self.workdir = workdir
        self.instances_path = instances_path
        self.names = [f"sim-{n}" for n in range(1, hosts + 1)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> str:
        return os.path.join(self.workdir, f"{name}.log")

    def write_configs(self, options: dict[str, dict[str, object]]) -> None:
        for name in self.names:
            sections = {
                "DEFAULT": {"host": name, "instances_path": self.instances_path},
                "daemon": {"status_file": os.path.join(self.workdir, f"{name}.json")},
            }
            for section, values in options.items():
                sections.setdefault(section, {}).update(values)
            with open(os.path.join(self.workdir, f"{name}.conf"), "w") as f:
                for section, values in sections.items():
                    f.write(f"[{section}]\n")
                    f.writelines(f"{k} = {v}\n" for k, v in values.items())

    def start(self) -> None:
        for name in self.names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.log(name))
            self.processes[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cachemgr.cmd.cachemgr",
                    "--config-file",
                    os.path.join(self.workdir, f"{name}.conf"),
                    "--log-file",
                    self.log(name),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.workdir,
            )

    def lines(self, name: str, text: str) -> list[str]:
        try:
            with open(self.log(name), encoding="utf-8", errors="replace") as f:
                return [line for line in f if text in line]
        except FileNotFoundError:
            return []

    def count(self, text: str, names: list[str] | None = None) -> int:
        return sum(len(self.lines(n, text)) for n in names or self.names)

    def wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.lines(n, STARTED) for n in self.names):
            for name, process in self.processes.items():
                if process.poll() is not None:
                    sys.exit(f"daemon {name} exited {process.returncode}")
            if time.monotonic() > deadline:
                sys.exit(f"the daemons did not all start within {timeout:g} s")
            time.sleep(0.2)

    def wait_for_pass(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.count(SUMMARY):
            if time.monotonic() > deadline:
                sys.exit(f"no daemon completed a pass within {timeout:g} s")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            # The master made itself a process group leader.
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for name, process in list(self.processes.items()):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(name)
        self.processes.clear()


def last_record(instances_path: str) -> dict[str, object]:
    path = os.path.join(instances_path, "cachemgr-storage.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)["last_completed"]


def log_time(line: str) -> float:
    """The local time of an oslo.log line, as epoch seconds."""
    found = _LOG_TIME.match(line)
    assert found, line
    stamp, fraction = found.group(1).split(".")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + float(
        f"0.{fraction}"
    )


def takeover(fleet: Fleet, interval: float) -> float | None:
    """Kill the host that passed last; seconds from its last pass's end to
    the end of the next pass of another host (None: none within 4 intervals)."""
    record = last_record(fleet.instances_path)
    dead = str(record["host"])
    fleet.kill(dead)
    survivors = [n for n in fleet.names if n != dead]
    if not survivors:
        return None
    before = {n: len(fleet.lines(n, SUMMARY)) for n in survivors}
    deadline = time.monotonic() + 4 * interval
    while time.monotonic() < deadline:
        for name in survivors:
            new = fleet.lines(name, SUMMARY)[before[name] :]
            if new:
                return log_time(new[0]) - float(record["ended_at_epoch"])
        time.sleep(0.1)
    return None


def simulate(
    instances_path: str,
    workdir: str,
    hosts: int,
    options: dict[str, dict[str, object]],
    *,
    interval: float,
    intervals: int,
    conductor_calls: Counter,
    storage_ops: Counter,
    driver: str,
    share: bool = True,
) -> FleetFigures:
    """Run N daemons, count what they did over ``intervals`` intervals."""
    fleet = Fleet(workdir, instances_path, hosts)
    image_cache = {
        "manager_interval": int(interval),
        "disk_high_watermark_percent": 0,
        "share_storage_passes": share,
    }
    fleet.write_configs({"image_cache": image_cache, **options})
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(instances_path, "cachemgr-storage.json"))
    fleet.start()
    try:
        fleet.wait_started(60 + hosts * 3)
        # The first pass removes what the generated tree holds unused (and
        # re-checks the disks under the locks): not the steady state.
        fleet.wait_for_pass(120)
        time.sleep(interval)
        passes, skips = fleet.count(SUMMARY), fleet.count(SKIPPED)
        ops, calls = storage_ops(), conductor_calls()
        time.sleep(interval * intervals)
        figures = FleetFigures(
            hosts=hosts,
            driver=driver,
            share=share,
            intervals=intervals,
            passes=fleet.count(SUMMARY) - passes,
            skips=fleet.count(SKIPPED) - skips,
            storage_ops=storage_ops() - ops,
            conductor_calls=conductor_calls() - calls,
            takeover_s=takeover(fleet, interval) if share and hosts > 1 else None,
        )
    finally:
        fleet.stop()
    return figures


def report(figures: list[FleetFigures], interval: float, out: TextIO) -> None:
    print(
        f"# many hosts, one storage: per interval ({interval:g} s), across all "
        "daemons; takeover_s: from the killed passer's last pass to the end "
        "of the next pass",
        file=out,
    )
    for f in figures:
        key = f"hosts_{f.hosts}_{f.driver}" + ("" if f.share else "_unshared")
        rows = {
            "passes_per_interval": f"{f.per_interval(f.passes):.2f}",
            "skips_per_interval": f"{f.per_interval(f.skips):.2f}",
            "storage_ops_per_interval": f"{f.per_interval(f.storage_ops):.0f}",
            "conductor_calls_per_interval": f"{f.per_interval(f.conductor_calls):.1f}",
        }
        if f.takeover_s is not None:
            rows["takeover_s"] = f"{f.takeover_s:.2f}"
        for name, value in rows.items():
            print(f"{key + '_' + name:<56} {value:>10}", file=out)


@contextlib.contextmanager
def nova_conductor(
    url: str, hosts: int, instances: int
) -> Iterator[tuple[str, str, Counter]]:
    """A fake nova-conductor on a private vhost, serving ``instances``
    instances spread over the simulated hosts; (transport_url, exchange,
    calls so far)."""
    from nova_figure import _init_messaging

    _init_messaging()
    # The fake conductor's own connection closing, not the daemons'.
    logging.getLogger("amqp").setLevel(logging.ERROR)
    from tests.support.nova_conductor import FakeConductor, make_instance, serve
    from tests.support.rabbit import private_vhost

    rows = [
        make_instance(n + 1, f"sim-{n % hosts + 1}", IMAGE_ID) for n in range(instances)
    ]
    conductor = FakeConductor(instances=rows, bdms=[])
    with private_vhost("cachemgr-bench") as vhost:
        vhost_url = urllib.parse.urlparse(url)._replace(path="/" + vhost).geturl()
        with serve(conductor, vhost_url) as serving:
            yield vhost_url, serving.exchange, lambda: len(conductor.requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,10,50")
    parser.add_argument("--interval", type=float, default=FLEET["interval"])
    parser.add_argument("--intervals", type=int, default=FLEET["intervals"])
    parser.add_argument("--files", type=int, default=FLEET["files"])
    parser.add_argument("--instances", type=int, default=FLEET["instances"])
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--no-nova", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.hosts.split(",")]
    figures = run_fleets(
        counts,
        interval=args.interval,
        intervals=args.intervals,
        files=args.files,
        instances=args.instances,
        broker=None if args.no_nova else args.broker,
    )
    report(figures, args.interval, sys.stdout)
    return 0


def run_fleets(
    counts: list[int],
    *,
    interval: float,
    intervals: int,
    files: int,
    instances: int,
    broker: str | None,
) -> list[FleetFigures]:
    """Every fleet size with the static inventory, then with the nova
    driver, and the largest unshared; a fresh tree each."""
    if broker is not None and not broker_reachable(broker):
        sys.exit(f"no broker at {broker}: start RabbitMQ or pass --no-nova")
    runs = [("static", n, True) for n in counts]
    if broker is not None:
        runs += [("nova", n, True) for n in counts]
    runs.append(("static", max(counts), False))
    if broker is not None:
        runs.append(("nova", max(counts), False))
    figures = []
    for driver, hosts, share in runs:
        workdir = tempfile.mkdtemp(prefix="cachemgr-fleet-")
        try:
            tree = generate(os.path.join(workdir, "tree"), files, instances)
            inventory = os.path.join(tree.root, "instances.json")
            with mounted(tree.instances_path, delay_ms=0) as mount:
                options = {"inventory": {"driver": "static", "static_path": inventory}}
                with contextlib.ExitStack() as stack:
                    calls: Counter = lambda: 0  # noqa: E731
                    if driver == "nova":
                        url, exchange, calls = stack.enter_context(
                            nova_conductor(broker, hosts, instances)
                        )
                        options = {
                            "DEFAULT": {"transport_url": url},
                            "inventory": {
                                "driver": "nova",
                                "conductor_exchange": exchange,
                            },
                        }
                    figures.append(
                        simulate(
                            mount.mountpoint,
                            workdir,
                            hosts,
                            options,
                            interval=interval,
                            intervals=intervals,
                            conductor_calls=calls,
                            storage_ops=lambda: sum(mount.stats().values()),
                            driver=driver,
                            share=share,
                        )
                    )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return figures


if __name__ == "__main__":
    sys.exit(main())
