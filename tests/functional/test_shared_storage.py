"""Many daemons, one storage (DESIGN 1.11), as operators run them: real
``cachemgr`` daemons of distinct hosts on one instances_path, their passes
counted from their logs."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

from tests.support.daemons import SUMMARY, Daemon, wait_until
from tests.support.hosts import Host
from tests.support.redis_server import PASSWORD

INTERVAL = 2
SKIPPED = "Image cache pass skipped: "
UNUSED = "e" * 40


def fleet(tmp_path: Path, count: int, **image_cache: object) -> list[Host]:
    """``count`` hosts cmp1..cmpN sharing cmp1's instances_path and inventory,
    each with its own config and status file."""
    first = Host(tmp_path / "cmp1", "cmp1")
    first.cache_file(UNUSED, age=3 * 86400)
    hosts = [first]
    for number in range(2, count + 1):
        other = Host(tmp_path / f"cmp{number}", f"cmp{number}")
        other.instances_path, other.base = first.instances_path, first.base
        other.inventory_path = first.inventory_path
        hosts.append(other)
    for host in hosts:
        host.write(
            {"image_cache": {"manager_interval": INTERVAL, **image_cache}},
            inventory=host is first,
        )
    return hosts


def start(stack: ExitStack, hosts: list[Host]) -> dict[str, Daemon]:
    return {
        host.name: stack.enter_context(Daemon(host.config_path, cwd=host.root))
        for host in hosts
    }


def passes(daemons: dict[str, Daemon]) -> dict[str, int]:
    return {name: len(d.matching(SUMMARY)) for name, d in daemons.items()}


def record(host: Host) -> dict[str, object]:
    path = host.instances_path / "cachemgr-storage.json"
    return json.loads(path.read_text())["last_completed"]


def test_one_host_passes_per_interval_and_the_others_skip(tmp_path: Path):
    hosts = fleet(tmp_path, 4)
    with ExitStack() as stack:
        daemons = start(stack, hosts)
        wait_until(lambda: sum(passes(daemons).values()) >= 5, "five passes", 30)
        began = time.monotonic()
        before = sum(passes(daemons).values())
        wait_until(lambda: sum(passes(daemons).values()) >= before + 4, "four more", 30)
        elapsed = time.monotonic() - began
        counted = passes(daemons)
        skips = {name: len(d.matching(SKIPPED)) for name, d in daemons.items()}
    passer = record(hosts[0])["host"]
    # Every pass after the first few is the same host's: the others skip.
    assert [name for name, n in counted.items() if n > 1] == [passer]
    assert all(skips[name] >= 2 for name in counted if name != passer)
    # About one pass per interval, whatever the number of hosts.
    assert 4 / elapsed <= 1.5 / INTERVAL
    assert UNUSED not in hosts[0].cache_names()
    assert hosts[0].registered_hosts() == {h.name for h in hosts}
    skipper = next(h for h in hosts if h.name != passer)
    status = json.loads(skipper.status_path.read_text())
    assert status["last_pass"]["outcome"] == "skipped"
    assert status["last_pass"]["skipped"]["passed_by"] == passer


def test_a_host_that_dies_is_replaced_within_an_interval(tmp_path: Path):
    hosts = fleet(tmp_path, 3)
    with ExitStack() as stack:
        daemons = start(stack, hosts)
        wait_until(lambda: any(n >= 3 for n in passes(daemons).values()), "passes", 30)
        passer = record(hosts[0])["host"]
        os.killpg(daemons[passer].pid, signal.SIGKILL)
        daemons[passer].wait()
        last_pass_end = float(record(hosts[0])["ended_at_epoch"])
        survivors = {n: d for n, d in daemons.items() if n != passer}
        counted = passes(survivors)
        wait_until(
            lambda: passes(survivors) != counted, "a survivor's pass", 4 * INTERVAL
        )
        took_over = time.time()
    replacement = record(hosts[0])
    assert replacement["host"] != passer
    # One interval after the dead host's last pass, and the margin (1 s at
    # this interval), plus the time the pass itself takes.
    assert took_over - last_pass_end <= INTERVAL + 1 + 1.5


def test_with_sharing_off_every_host_passes_on_its_own_timer(tmp_path: Path):
    hosts = fleet(tmp_path, 3, share_storage_passes=False)
    with ExitStack() as stack:
        daemons = start(stack, hosts)
        wait_until(
            lambda: all(n >= 2 for n in passes(daemons).values()),
            "two passes of each host",
            30,
        )
        assert not any(d.matching(SKIPPED) for d in daemons.values())


def test_the_remover_lock_through_a_redis_backend(tmp_path: Path, redis_port: int):
    """A cloud's Redis coordinates the hosts: the lock is never a file of
    the storage, and one host passes per interval all the same."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_port}?db=15&lock_timeout=5"
    hosts = fleet(tmp_path, 3)
    for host in hosts:
        host.write(
            {
                "image_cache": {"manager_interval": INTERVAL},
                "coordination": {"backend_url": url},
            },
            inventory=host is hosts[0],
        )
    with ExitStack() as stack:
        daemons = start(stack, hosts)
        wait_until(lambda: sum(passes(daemons).values()) >= 4, "four passes", 30)
        counted = passes(daemons)
    passer = record(hosts[0])["host"]
    assert [name for name, n in counted.items() if n > 1] == [passer]
    assert not (hosts[0].instances_path / "locks" / "cachemgr-remover").exists()
    assert UNUSED not in hosts[0].cache_names()
