"""Racing nova 34's real libvirt image backend with ``cachemgr --once`` (issue 16).

Worker processes (nova_spawner.py, nova venv) spawn and delete instances
continuously with nova's own ``Qcow2.cache()``; meanwhile the real
``cachemgr --once`` runs back to back on the same instances_path, its static
inventory current, lagging or nearly empty in turns, at minimum ages 0 and
1 s. A checker reads every live instance's disk all the time: its backing
file must exist. The control runs the same passes with apply's disk
re-check taken out (the algorithm before issue 16, patched in the child
process) and must be caught removing a base under a disk.

``CACHEMGR_RACE_SECONDS`` (default 20) is each phase's length; the control
stops at its first catch.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.real_nova.venv import NOVA_PYTHON, require_nova_venv

pytestmark = pytest.mark.real_nova

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RACE_SECONDS = float(os.environ.get("CACHEMGR_RACE_SECONDS", "20"))
WORKERS = 3
IMAGES = tuple(f"race-image-{i}" for i in range(5))
# apply without the re-check: the algorithm before issue 16.
WITHOUT_RECHECK = (
    "import sys\n"
    "from cachemgr.cache import scan\n"
    "scan.DiskRecheck.users = lambda self, deadline: {}\n"
    "from cachemgr.cmd.cachemgr import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

require_nova_venv()


def backing_name(disk: Path) -> str | None:
    """The backing file name of a qcow2 disk, read here independently of cachemgr."""
    try:
        with open(disk, "rb") as f:
            head = f.read(1024)
    except FileNotFoundError:
        return None
    if head[:4] != b"QFI\xfb" or len(head) < 20:
        return None
    offset, size = struct.unpack_from(">QI", head, 8)
    if offset == 0 or offset + size > len(head):
        return None
    return head[offset : offset + size].decode()


class Race:
    """The workers, the passes and the checker of one phase."""

    def __init__(self, root: Path, minimum_age: int, recheck: bool) -> None:
        self.instances = root / "instances"
        self.instances.mkdir(parents=True)
        self.inventory = root / "inventory.json"
        self.config = root / "cachemgr.conf"
        self.config.write_text(
            "[DEFAULT]\nhost = race-host\n"
            f"instances_path = {self.instances}\n"
            "[image_cache]\n"
            f"remove_unused_original_minimum_age_seconds = {minimum_age}\n"
            f"remove_unused_resized_minimum_age_seconds = {minimum_age}\n"
            "lock_wait_seconds = 5\n"
            f"[inventory]\ndriver = static\nstatic_path = {self.inventory}\n"
        )
        self.recheck = recheck
        self.live: dict[int, list[list[str]]] = {}
        self.violations: list[str] = []
        self.removed = 0
        self.passes = 0
        self.done: list[dict[str, int]] = []
        self.stop = threading.Event()

    def run(self, seconds: float, stop_at_first: bool = False) -> None:
        self.write_inventory([])
        self.spawner = [str(NOVA_PYTHON), str(HERE / "nova_spawner.py")]
        self.spawner.append(str(self.instances))
        workers = [
            subprocess.Popen(
                [*self.spawner, str(w), str(seconds), *IMAGES],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for w in range(WORKERS)
        ]
        threads = [
            threading.Thread(target=self.read_worker, args=(w, p), daemon=True)
            for w, p in enumerate(workers)
        ]
        threads += [
            threading.Thread(target=self.check, args=(stop_at_first,), daemon=True),
            threading.Thread(target=self.passes_back_to_back, daemon=True),
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + seconds + 30
        while time.monotonic() < deadline and not self.stop.is_set():
            if all(w.poll() is not None for w in workers):
                break
            time.sleep(0.1)
        self.stop.set()
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
            worker.wait(timeout=30)
        for thread in threads:
            thread.join(timeout=30)

    def read_worker(self, worker: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            record = json.loads(line)
            if "live" in record:
                self.live[worker] = record["live"]
            elif "done" in record:
                self.done.append(record["done"])

    def write_inventory(self, live: list[list[str]]) -> None:
        instances = [
            {"uuid": uuid, "id": 1 + i, "host": "race-host", "image_ref": image}
            for i, (uuid, image) in enumerate(live)
        ]
        tmp = self.inventory.with_suffix(".tmp")
        tmp.write_text(json.dumps({"instances": instances}))
        os.replace(tmp, self.inventory)

    def passes_back_to_back(self) -> None:
        """``cachemgr --once`` again and again; inventory current, lagging, short."""
        history: list[list[list[str]]] = []
        command = [str(Path(sys.executable).with_name("cachemgr"))]
        if not self.recheck:
            command = [sys.executable, "-c", WITHOUT_RECHECK]
        while not self.stop.is_set():
            current = [i for live in list(self.live.values()) for i in live]
            history.append(current)
            turn = self.passes % 3
            listed = {0: current, 1: history[max(0, len(history) - 3)], 2: current[:1]}
            self.write_inventory(listed[turn])
            done = subprocess.run(
                [*command, "--config-file", str(self.config), "--once"],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=False,
            )
            self.passes += 1
            self.removed += done.stdout.count("Removed ")

    def check(self, stop_at_first: bool) -> None:
        """Every live instance's disk has its backing file, all the time."""
        while not self.stop.is_set():
            for ready in self.instances.glob("*/ready"):
                disk = ready.parent / "disk"
                backing = backing_name(disk)
                if backing is None or os.path.exists(backing):
                    continue
                if ready.exists():  # still live after the look: not a deletion
                    self.violations.append(f"{disk} -> {backing} is gone")
                    if stop_at_first:
                        self.stop.set()
            time.sleep(0.01)


@pytest.mark.parametrize("minimum_age", [0, 1])
def test_no_base_removed_under_a_disk_nova_creates(
    tmp_path: Path, minimum_age: int
) -> None:
    """nova's own spawns against back-to-back passes: no disk loses its base."""
    race = Race(tmp_path, minimum_age, recheck=True)
    race.run(RACE_SECONDS)
    spawned = sum(d["spawned"] for d in race.done)
    print(
        f"minimum_age={minimum_age}s seconds={RACE_SECONDS} passes={race.passes} "
        f"removed={race.removed} spawned={spawned} "
        f"failed={sum(d['failed'] for d in race.done)} "
        f"overlay_left={sum(d['overlay_left'] for d in race.done)} "
        f"violations={len(race.violations)}"
    )
    assert race.violations == []
    assert len(race.done) == WORKERS and spawned > 20
    assert race.passes > 3 and race.removed > 0
    assert sum(d["overlay_left"] for d in race.done) == 0


def test_control_without_the_recheck_is_caught(tmp_path: Path) -> None:
    """The same race, apply's re-check taken out: the checker sees a lost base."""
    race = Race(tmp_path, 0, recheck=False)
    race.run(RACE_SECONDS * 2, stop_at_first=True)
    print(f"control: passes={race.passes} violations={race.violations[:3]}")
    assert race.violations, "the control removed no base in use: the race is not run"
