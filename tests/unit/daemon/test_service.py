"""Tests for cachemgr.service in-process: oslo.service's real timer around
an injected pass, a fake monotonic clock, and oslo.config's real SIGHUP
path (mutate_config_files) without the fork."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.daemon.notify import Notifier
from cachemgr.daemon.service import CacheService, pass_interval, seconds_to_wait
from cachemgr.pipeline.report import Summary
from cachemgr.pipeline.result import PassReport
from cachemgr.pipeline.settings import load_settings

WAIT = 10.0


def make_conf(tmp_path: Path, **image_cache: object) -> cfg.ConfigOpts:
    """A parsed ConfigOpts reading ``tmp_path/cachemgr.conf``."""
    path = tmp_path / "cachemgr.conf"
    write_conf(path, tmp_path, **image_cache)
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", str(path)])
    return conf


def write_conf(path: Path, tmp_path: Path, **image_cache: object) -> None:
    lines = [
        "[DEFAULT]",
        "host = cmp1",
        f"instances_path = {tmp_path}",
        "[image_cache]",
        *(f"{k} = {v}" for k, v in image_cache.items()),
        "[inventory]",
        "driver = static",
        f"static_path = {tmp_path / 'inventory.json'}",
    ]
    path.write_text("\n".join(lines) + "\n")


class FakeClock:
    """Monotonic seconds that only the fake pass moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedPasses:
    """The pass the service runs: one scripted step per call."""

    def __init__(self, clock: FakeClock, steps) -> None:
        self.clock = clock
        self.steps = list(steps)
        self.calls = 0
        self.done = threading.Event()
        self.stop_answers: list[bool] = []

    def __call__(self, settings, inventory, *, dry_run, stop_requested, **_):
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if self.calls >= len(self.steps):
            self.done.set()
        return step(self, stop_requested)


def takes(seconds: float):
    def step(passes: ScriptedPasses, stop_requested) -> PassReport:
        passes.clock.now += seconds
        return PassReport(Summary(files=1, in_use=1), {"gather": seconds})

    return step


def raises(passes: ScriptedPasses, stop_requested) -> PassReport:
    passes.clock.now += 1.0
    raise RuntimeError("boom in a pass")


def make_service(tmp_path, passes, clock, **image_cache) -> CacheService:
    conf = make_conf(tmp_path, **image_cache)
    return CacheService(
        conf,
        load_settings(conf),
        dry_run=False,
        notifier=Notifier(None),
        status_path=str(tmp_path / "status.json"),
        metrics_path="",
        register_options=cachemgr_conf.register_opts,
        run_pass=passes,
        clock=clock,
    )


class TestPassInterval:
    @pytest.mark.parametrize(
        ("manager_interval", "expected"),
        [(2400, 2400.0), (1, 1.0), (0, 60.0), (-1, None)],
    )
    def test_nova_semantics(self, manager_interval, expected):
        """0 means every 60 seconds and -1 means no passes, as in nova."""
        assert pass_interval(manager_interval) == expected


class TestSecondsToWait:
    @pytest.mark.parametrize(
        ("now", "next_due", "ping_period", "expected"),
        [
            (100.0, 160.0, None, 60.0),
            (100.0, 160.0, 15.0, 15.0),
            (100.0, 90.0, None, 0.0),
            (100.0, None, None, 3600.0),
            (100.0, None, 5.0, 5.0),
        ],
    )
    def test_until_the_next_pass_or_ping(self, now, next_due, ping_period, expected):
        """Sleep until the next pass, waking up in time for the watchdog."""
        assert seconds_to_wait(now, next_due, ping_period) == expected


class TestTimer:
    def test_a_pass_that_raises_is_logged_and_the_timer_goes_on(self, tmp_path, caplog):
        """The traceback is logged, the status says failed, the next pass runs."""
        clock = FakeClock()
        passes = ScriptedPasses(clock, [raises, takes(1.0)])
        service = make_service(tmp_path, passes, clock, manager_interval=1)
        with caplog.at_level(logging.INFO):
            service.start()
            try:
                assert passes.done.wait(WAIT)
            finally:
                service.stop()
        failed = [r for r in caplog.records if "pass failed" in r.getMessage()]
        assert len(failed) == 1
        assert failed[0].exc_info is not None
        assert "boom in a pass" in caplog.text
        assert passes.calls >= 2
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["last_completed_pass"]["outcome"] == "completed"

    def test_a_pass_longer_than_the_interval_is_reported(self, tmp_path, caplog):
        """One WARNING, and the next pass starts at once instead of piling up."""
        clock = FakeClock()
        passes = ScriptedPasses(clock, [takes(5.0), takes(0.5)])
        service = make_service(tmp_path, passes, clock, manager_interval=1)
        with caplog.at_level(logging.WARNING):
            service.start()
            try:
                assert passes.done.wait(WAIT)
            finally:
                service.stop()
        overruns = [r for r in caplog.records if "longer than" in r.getMessage()]
        assert len(overruns) == 1
        assert "5.0 s" in overruns[0].getMessage()

    def test_stop_waits_for_the_pass_to_reach_a_safe_point(self, tmp_path):
        """stop() returns only after the pass saw the request and stopped."""
        clock = FakeClock()
        inside, release = threading.Event(), threading.Event()

        def slow(passes: ScriptedPasses, stop_requested) -> PassReport:
            inside.set()
            release.wait(WAIT)
            passes.stop_answers.append(stop_requested())
            return PassReport(None, {}, "stopped after gathering; nothing was changed")

        passes = ScriptedPasses(clock, [slow])
        service = make_service(tmp_path, passes, clock, manager_interval=1)
        service.start()
        assert inside.wait(WAIT)
        stopper = threading.Thread(target=service.stop)
        stopper.start()
        stopper.join(0.3)
        alive_while_the_pass_runs = stopper.is_alive()
        release.set()
        stopper.join(WAIT)
        assert alive_while_the_pass_runs
        assert not stopper.is_alive()
        assert passes.stop_answers == [True]
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["last_pass"]["outcome"] == "stopped"

    def test_idle_runs_no_pass(self, tmp_path):
        """manager_interval = -1: the timer runs, the pass never does."""
        clock = FakeClock()
        passes = ScriptedPasses(clock, [takes(0.1)])
        ticked = threading.Event()
        service = make_service(tmp_path, passes, clock, manager_interval=-1)
        tick = service._tick

        def counted_tick() -> float:
            wait = tick()
            ticked.set()
            return wait

        service._tick = counted_tick  # type: ignore[method-assign]
        service.start()
        try:
            assert ticked.wait(WAIT)
        finally:
            service.stop()
        assert passes.calls == 0


class TestReload:
    def test_a_good_value_is_kept_and_logged(self, tmp_path, caplog):
        """SIGHUP's reload takes the new age and names the change."""
        service = make_service(
            tmp_path,
            None,
            FakeClock(),
            remove_unused_original_minimum_age_seconds=86400,
        )
        write_conf(
            tmp_path / "cachemgr.conf",
            tmp_path,
            remove_unused_original_minimum_age_seconds=3600,
        )
        with caplog.at_level(logging.INFO, logger="cachemgr.service"):
            service.reload()
        assert service.settings.policy.original_minimum_age_seconds == 3600
        assert (
            "[image_cache] remove_unused_original_minimum_age_seconds = 3600 "
            "(was 86400)" in caplog.text
        )

    def test_a_bad_value_keeps_the_previous_settings(self, tmp_path, caplog):
        """A typo in the file must not take down a running daemon, nor be
        what the next reload compares with."""
        service = make_service(tmp_path, None, FakeClock(), manager_interval=600)
        before = service.settings
        write_conf(tmp_path / "cachemgr.conf", tmp_path, manager_interval="often")
        with caplog.at_level(logging.INFO, logger="cachemgr.service"):
            service.reload()
        assert service.settings is before
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "[image_cache] manager_interval = often" in errors[0].getMessage()
        assert service.conf.image_cache.manager_interval == 600
