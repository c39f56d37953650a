"""Tests for run_pass's stop_requested, on real files under tmp_path: a
stopping daemon ends the pass at a safe point, between file operations."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.inventory.base import load_inventory
from cachemgr.pipeline.run import run_pass
from cachemgr.pipeline.settings import Settings, load_settings

NAMES = ("a" * 40, "b" * 40, "c" * 40)
OLD = 10 * 86400


def make_host(tmp_path: Path) -> tuple[Settings, cfg.ConfigOpts]:
    """Three old unused cache files, no instance, no disk."""
    instances = tmp_path / "instances"
    base = instances / "_base"
    base.mkdir(parents=True)
    then = time.time() - OLD
    for name in NAMES:
        (base / name).write_bytes(b"x" * 4096)
        os.utime(base / name, (then, then))
    (tmp_path / "inventory.json").write_text('{"instances": []}')
    (tmp_path / "cachemgr.conf").write_text(
        "[DEFAULT]\nhost = cmp1\n"
        f"instances_path = {instances}\n"
        "[image_cache]\nlock_wait_seconds = 0.2\n"
        f"[inventory]\ndriver = static\nstatic_path = {tmp_path / 'inventory.json'}\n"
    )
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", str(tmp_path / "cachemgr.conf")])
    return load_settings(conf), conf


class StopAfter:
    """Answers False ``calls`` times, then True, counting the questions."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked > self.calls


def left(tmp_path: Path) -> set[str]:
    return set(os.listdir(tmp_path / "instances" / "_base"))


class TestStopRequested:
    def test_never_asked_to_stop_the_pass_completes(self, tmp_path):
        """Asked after gathering and once per file operation."""
        settings, conf = make_host(tmp_path)
        stop = StopAfter(100)
        result = run_pass(
            settings, load_inventory(conf), dry_run=False, stop_requested=stop
        )
        assert result.summary.removed == 3
        assert stop.asked == 1 + len(NAMES)
        assert left(tmp_path) == set()

    def test_stop_after_gathering_changes_nothing(self, tmp_path):
        """Stopped before the plan: every file is left as it was."""
        settings, conf = make_host(tmp_path)
        before = {n: os.stat(tmp_path / "instances" / "_base" / n) for n in NAMES}
        report = run_pass(
            settings,
            load_inventory(conf),
            dry_run=False,
            stop_requested=StopAfter(0),
        )
        assert report.summary is None
        assert "nothing was changed" in str(report.stopped)
        after = {n: os.stat(tmp_path / "instances" / "_base" / n) for n in NAMES}
        assert after == before

    def test_stop_during_apply_finishes_the_file_in_hand(self, tmp_path, caplog):
        """Files before the stop are handled whole and logged; the rest are
        left for the next pass and counted nowhere."""
        settings, conf = make_host(tmp_path)
        with caplog.at_level(logging.INFO, logger="cachemgr.pipeline"):
            report = run_pass(
                settings,
                load_inventory(conf),
                dry_run=False,
                stop_requested=StopAfter(2),
            )
        assert left(tmp_path) == {NAMES[1], NAMES[2]}
        assert report.summary is not None
        assert report.summary.removed == 1
        assert report.summary.files == 1
        assert set(report.stage_seconds) == {"gather", "plan", "apply", "report"}
        assert "after 1 of 3 planned file operations" in str(report.stopped)
        assert f"Removed {NAMES[0]}" in caplog.text
        assert NAMES[1] not in caplog.text
        assert "Image cache pass complete" not in caplog.text
