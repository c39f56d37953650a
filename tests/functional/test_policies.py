"""The real ``cachemgr --once`` and the policies of DESIGN 1.9: removal under
disk pressure on a real small file system, pinned images, and the guard
against an inventory that shrank between two passes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hosts import DAY, HOUR, Host, fingerprint, held_open

MIB = 1024 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Host]:
    """A host whose instances_path is a 32 MiB tmpfs the test mounts."""
    host = Host(tmp_path)
    host.base.rmdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(host.instances_path)],
        check=True,
    )
    try:
        host.base.mkdir()
        yield host
    finally:
        subprocess.run(["umount", "-l", str(host.instances_path)], check=False)


def df_use(path: Path) -> tuple[int, int]:
    """(used, used + available) bytes, as df computes them."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return used, used + st.f_bavail * st.f_frsize


def fill_to(host: Host, percent: float) -> None:
    """Write a filler file (not a cache name) until df says ``percent``."""
    used, total = df_use(host.instances_path)
    missing = int(total * percent / 100) - used
    (host.instances_path / "filler").write_bytes(b"\0" * max(0, missing))


class TestDiskPressure:
    def test_oldest_unused_files_go_down_to_the_low_watermark(
        self, small_fs: Host
    ) -> None:
        """At 95% use, young unused files go oldest first until 80%, and no
        file in use, open, pinned or younger than the pressure age."""
        host = small_fs
        young = [fingerprint(f"img-{n}") for n in range(12)]
        for n, name in enumerate(young):
            host.cache_file(name, age=2 * HOUR - n * 60, size=MIB)
        used = host.cache_file(fingerprint("img-used"), age=3 * HOUR, size=MIB)
        opened = host.cache_file(fingerprint("img-open"), age=3 * HOUR, size=MIB)
        pinned = host.cache_file(fingerprint("img-pinned"), age=3 * HOUR, size=MIB)
        fresh = host.cache_file(fingerprint("img-fresh"), age=60, size=MIB)
        vm = host.instance("img-used")
        host.disk(vm, used)
        pins = host.root / "pins.json"
        pins.write_text(json.dumps({"pins": [{"image_id": "img-pinned"}]}))
        host.write(
            {
                "image_cache": {
                    "disk_high_watermark_percent": 90,
                    "disk_low_watermark_percent": 80,
                    "pressure_minimum_age_seconds": 600,
                    "pinned_images_file": pins,
                }
            }
        )
        # The registry the pass rewrites, and its locks dir, are there first:
        # the pass then measures the file system as this test does.
        (host.instances_path / "compute_nodes").write_text(
            json.dumps({host.name: time.time()})
        )
        (host.instances_path / "locks").mkdir()
        fill_to(host, 95)
        before_used, total = df_use(host.instances_path)
        # What 1.9 says goes, worked out here from df's own figures.
        expected: list[str] = []
        freed = 0
        for name in young:  # oldest first: img-0 is the oldest
            if 100 * (before_used - freed) <= 80 * total:
                break
            expected.append(name)
            freed += (host.base / name).stat().st_blocks * 512
        assert 0 < len(expected) < len(young)

        with held_open(opened):
            run = host.run()

        assert run.returncode == 0, run.output
        kept = {used.name, opened.name, pinned.name, fresh.name}
        assert host.cache_names() == (set(young) - set(expected)) | kept
        summary = run.summary()
        assert (summary["removed"], summary["pressure_removed"]) == (
            len(expected),
            len(expected),
        )
        assert summary["kept_pinned"] == 1
        lines = [line for line in run.lines("INFO") if " Removed " in line]
        assert len(lines) == len(expected)
        assert all("disk pressure: file system " in line for line in lines)
        assert all("high watermark 90%" in line for line in lines)
        after_used, _ = df_use(host.instances_path)
        assert 100 * after_used <= 80 * total + 100 * 8192  # the registry's pages

    def test_below_the_high_watermark_nothing_young_goes(self, small_fs: Host) -> None:
        host = small_fs
        for n in range(4):
            host.cache_file(fingerprint(f"img-{n}"), age=HOUR, size=MIB)
        host.write({"image_cache": {"disk_high_watermark_percent": 90}})
        fill_to(host, 85)

        run = host.run()

        assert run.returncode == 0, run.output
        assert len(host.cache_names()) == 4
        assert run.summary()["pressure_removed"] == 0

    def test_low_watermark_not_below_the_high_one(self, tmp_path: Path) -> None:
        """A configuration error naming both options (exit 2)."""
        host = Host(tmp_path)
        host.write(
            {
                "image_cache": {
                    "disk_high_watermark_percent": 80,
                    "disk_low_watermark_percent": 80,
                }
            }
        )
        run = host.run()
        assert run.returncode == 2, run.output
        assert "[image_cache] disk_low_watermark_percent = 80" in run.stderr
        assert "[image_cache] disk_high_watermark_percent = 80" in run.stderr


class TestPins:
    def test_pinned_image_survives_while_its_siblings_go(self, tmp_path: Path) -> None:
        """An active pin keeps the original and its variants, unrefreshed; an
        expired pin and unpinned images are removed as usual."""
        host = Host(tmp_path)
        golden = host.cache_file(fingerprint("golden"), age=10 * DAY)
        golden_sm = host.cache_file(fingerprint("golden") + "_sm", age=10 * DAY)
        host.cache_file(fingerprint("expired"), age=10 * DAY)
        host.cache_file(fingerprint("other"), age=10 * DAY)
        pins = host.root / "pins.json"
        pins.write_text(
            json.dumps(
                {
                    "pins": [
                        {
                            "image_id": "golden",
                            "until": "2099-01-31T00:00:00Z",
                            "comment": "pre-cached for the launch",
                        },
                        {"image_id": "expired", "until": "2020-01-01T00:00:00+00:00"},
                    ]
                }
            )
        )
        host.write({"image_cache": {"pinned_images_file": pins}})
        mtimes = {p: p.stat().st_mtime_ns for p in (golden, golden_sm)}

        run = host.run("--debug")

        assert run.returncode == 0, run.output
        assert host.cache_names() == {golden.name, golden_sm.name}
        assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
        summary = run.summary()
        assert (summary["kept_pinned"], summary["removed"]) == (2, 2)
        assert re.search(
            rf"Kept {golden.name}: pinned: pinned until 2099-01-31T00:00:00Z "
            r"\(pre-cached for the launch\)",
            run.output,
        )

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            (None, "cannot read it: No such file or directory"),
            ("{", "not valid JSON"),
            ('{"pins": [{"image_id": ""}]}', "pins[0]: 'image_id' must be"),
            (
                '{"pins": [{"image_id": "x", "until": "2027-01-31T00:00:00"}]}',
                "pins[0]: 'until' '2027-01-31T00:00:00' names no time zone",
            ),
        ],
        ids=["missing", "not-json", "empty-id", "no-zone"],
    )
    def test_a_bad_pins_file_refuses_the_pass(
        self, tmp_path: Path, content: str | None, says: str
    ) -> None:
        host = Host(tmp_path)
        host.cache_file(fingerprint("old"), age=10 * DAY)
        pins = host.root / "pins.json"
        if content is not None:
            pins.write_text(content)
        host.write({"image_cache": {"pinned_images_file": pins}})

        run = host.run()

        assert run.returncode == 1, run.output
        (error,) = run.lines("ERROR")
        assert f"[image_cache] pinned_images_file {pins}" in error
        assert says in error
        assert host.cache_names() == {fingerprint("old")}


class TestShrinkGuard:
    def test_an_inventory_cut_in_half_removes_nothing(self, tmp_path: Path) -> None:
        """30 instances, then 14 (fewer than half): refused with both counts,
        the images of the 14 still refreshed; then --accept-inventory removes
        and records."""
        host = Host(tmp_path)
        for n in range(30):
            host.cache_file(fingerprint(f"img-{n}"), age=10 * DAY)
            host.instance(f"img-{n}")
        host.write()
        first = host.run()
        assert first.returncode == 0, first.output
        assert first.summary()["instances"] == 30

        del host.instances[14:]
        host.write()
        for n in range(30):
            host.set_age(host.base / fingerprint(f"img-{n}"), 10 * DAY)
        second = host.run()

        assert second.returncode == 1, second.output
        (error,) = second.lines("ERROR")
        assert "the inventory lists 14 instances, fewer than 50% of the 30" in error
        assert "--accept-inventory" in error
        assert len(host.cache_names()) == 30
        refreshed = host.base / fingerprint("img-0")
        assert refreshed.stat().st_mtime > host.now - 60
        status = json.loads(host.status_path.read_text())
        assert status["last_pass"]["outcome"] == "refused"
        assert status["last_completed_pass"]["counters"]["instances"] == 30

        third = host.run("--accept-inventory")

        assert third.returncode == 0, third.output
        assert len(host.cache_names()) == 14
        status = json.loads(host.status_path.read_text())
        assert status["last_completed_pass"]["counters"]["instances"] == 14

    @pytest.mark.parametrize(("after", "refused"), [(15, False), (14, True)])
    def test_exactly_at_the_limit(
        self, tmp_path: Path, after: int, refused: bool
    ) -> None:
        """50% of 30 is 15: 15 passes, 14 is refused."""
        host = Host(tmp_path)
        for n in range(30):
            host.instance(f"img-{n}")
        host.write()
        assert host.run().returncode == 0
        del host.instances[after:]
        host.write()
        assert host.run().returncode == (1 if refused else 0)

    def test_nine_fewer_is_never_a_shrink(self, tmp_path: Path) -> None:
        """12 instances, then 3: 75% fewer, but fewer than 10 instances lost."""
        host = Host(tmp_path)
        for n in range(12):
            host.instance(f"img-{n}")
        host.write()
        assert host.run().returncode == 0
        del host.instances[3:]
        host.write()
        run = host.run()
        assert run.returncode == 0, run.output
