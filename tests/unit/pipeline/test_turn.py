"""Whose turn it is on a shared storage (DESIGN 1.11): real trees, real
passes, the real remover lock held by other processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.cache import locks
from cachemgr.cache.coordination import StorageCoordinator
from cachemgr.cache.storage_record import (
    RECORD_FILE_NAME,
    LastPass,
    read_last_pass,
    write_last_pass,
)
from cachemgr.inventory.base import load_inventory
from cachemgr.pipeline import run
from cachemgr.pipeline.attempt import PassRunner
from cachemgr.pipeline.report import Mode
from cachemgr.pipeline.result import PassOutcome, PassResult
from cachemgr.pipeline.settings import Settings, load_settings
from cachemgr.pipeline.turn import (
    FUTURE_TOLERANCE_SECONDS,
    next_check_after,
    recent_pass_of_another,
    take_turn,
)
from tests.support.hosts import Host, held_lock

INTERVAL = 600.0
UNUSED = "f" * 40
DAY = 86400


@pytest.fixture
def host(tmp_path: Path) -> Host:
    """cmp1's storage: one unused original old enough to go."""
    host = Host(tmp_path)
    host.cache_file(UNUSED, age=2 * DAY)
    host.write()
    return host


def settings_of(host: Host, **image_cache: object) -> tuple[Settings, cfg.ConfigOpts]:
    host.write({"image_cache": image_cache})
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", str(host.config_path)])
    return load_settings(conf), conf


def turn(
    host: Host,
    *,
    may_skip: bool = True,
    dry_run: bool = False,
    run_pass: PassRunner = run.run_pass,
    **image_cache: object,
) -> PassResult:
    settings, conf = settings_of(host, **image_cache)
    return take_turn(
        settings,
        lambda: load_inventory(conf),
        StorageCoordinator("", settings.host, settings.lock_path).remover_lock,
        dry_run=dry_run,
        may_skip=may_skip,
        interval=INTERVAL,
        run_pass=run_pass,
    )


def passed_by(host: Host, name: str, ago: float) -> None:
    write_last_pass(str(host.instances_path), LastPass(name, time.time() - ago, 10, 1))


def storage_mtimes(host: Host) -> dict[Path, int]:
    """Every entry under instances_path, itself included, and its mtime."""
    root = host.instances_path
    return {p: p.lstat().st_mtime_ns for p in [root, *root.rglob("*")]}


def holding_remover_lock(host: Host):
    return held_lock(
        "remover", host.instances_path / "locks", prefix=locks.REMOVER_LOCK_PREFIX
    )


class TestWhenToSkip:
    def test_another_host_s_recent_pass_is_skipped(self, host, caplog):
        passed_by(host, "cmp2", ago=30)
        with caplog.at_level(logging.INFO):
            result = turn(host)
        assert result.outcome is PassOutcome.SKIPPED
        assert result.skip is not None and result.skip.passed_by == "cmp2"
        assert UNUSED in host.cache_names()
        skipped = [
            r.getMessage() for r in caplog.records if "skipped" in r.getMessage()
        ]
        assert len(skipped) == 1
        assert skipped[0].startswith(
            "Image cache pass skipped: host cmp2 completed one at"
        )
        assert "next check at" in skipped[0]
        assert "Image cache pass complete" not in caplog.text

    def test_the_skipping_host_registers_for_its_instances(self, host):
        """The passing host lists the instances of every registered host."""
        passed_by(host, "cmp2", ago=30)
        turn(host)
        assert host.registered_hosts() == {"cmp1"}

    def test_an_old_pass_is_not_enough(self, host):
        passed_by(host, "cmp2", ago=INTERVAL + 1)
        result = turn(host)
        assert result.outcome is PassOutcome.COMPLETED
        assert UNUSED not in host.cache_names()

    def test_this_host_s_own_pass_does_not_make_it_skip(self, host):
        passed_by(host, "cmp1", ago=30)
        assert turn(host).outcome is PassOutcome.COMPLETED

    def test_a_record_far_in_the_future_is_ignored(self, host):
        """A host whose clock runs ahead cannot silence the others."""
        passed_by(host, "cmp2", ago=-(FUTURE_TOLERANCE_SECONDS + 60))
        assert turn(host).outcome is PassOutcome.COMPLETED

    def test_a_record_a_little_in_the_future_is_believed(self, host):
        passed_by(host, "cmp2", ago=-120)
        assert turn(host).outcome is PassOutcome.SKIPPED

    def test_a_host_passing_now_makes_the_others_skip(self, host):
        with holding_remover_lock(host):
            result = turn(host)
        assert result.outcome is PassOutcome.SKIPPED
        assert result.skip is not None and result.skip.lock_held
        assert UNUSED in host.cache_names()

    def test_per_host_timers_when_sharing_is_off(self, host):
        passed_by(host, "cmp2", ago=30)
        result = turn(host, share_storage_passes=False)
        assert result.outcome is PassOutcome.COMPLETED
        assert UNUSED not in host.cache_names()


class TestOnce:
    """``--once`` always runs a pass (DESIGN 1.11)."""

    def test_it_passes_after_another_host_s_recent_pass(self, host):
        passed_by(host, "cmp2", ago=30)
        result = turn(host, may_skip=False)
        assert result.outcome is PassOutcome.COMPLETED
        assert UNUSED not in host.cache_names()

    def test_with_the_lock_held_it_refreshes_and_removes_nothing(self, host):
        passed_by(host, "cmp2", ago=30)
        with holding_remover_lock(host):
            result = turn(host, may_skip=False)
        assert result.outcome is PassOutcome.COMPLETED
        assert result.summary is not None
        assert result.summary.mode is Mode.NOT_REMOVER
        assert UNUSED in host.cache_names()
        record = read_last_pass(str(host.instances_path))
        assert record is not None and record.host == "cmp2"


class TestRecord:
    def test_a_completed_pass_is_recorded_for_the_others(self, host):
        result = turn(host)
        record = read_last_pass(str(host.instances_path))
        assert record == LastPass(
            "cmp1", pytest.approx(result.ended_at, abs=0.01), 1, 1
        )

    def test_a_dry_run_records_nothing(self, host):
        turn(host, dry_run=True)
        assert not (host.instances_path / RECORD_FILE_NAME).exists()

    def test_a_dry_run_that_skips_writes_nothing(self, host):
        passed_by(host, "cmp2", ago=30)
        before = storage_mtimes(host)
        assert turn(host, dry_run=True).outcome is PassOutcome.SKIPPED
        assert storage_mtimes(host) == before
        assert not (host.instances_path / "compute_nodes").exists()

    def test_a_pass_that_may_not_remove_leaves_the_turn_to_removers(self, host):
        """A host with removal disabled does not do the others' job."""
        turn(host, remove_unused_base_images=False)
        assert not (host.instances_path / RECORD_FILE_NAME).exists()

    def test_the_lock_is_held_from_gather_to_the_end_of_apply(self, host):
        """No other host starts a pass while this one gathers."""
        seen = []

        def spying_pass(*args, **kwargs):
            seen.append(other_process_locks(host))
            report = run.run_pass(*args, **kwargs)
            seen.append(other_process_locks(host))
            return report

        turn(host, run_pass=spying_pass)
        assert seen == ["refused", "refused"]
        assert other_process_locks(host) == "got"


_TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("got")
except OSError:
    print("refused")
"""


def other_process_locks(host: Host) -> str:
    path = host.instances_path / "locks" / "cachemgr-remover"
    done = subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


class TestSchedule:
    """Pure rules: when a pass counts as recent, when to look again."""

    NOW = 1_800_000_000.0

    def test_recent_means_less_than_one_interval(self):
        just = LastPass("cmp2", self.NOW - INTERVAL + 1, 1, 0)
        late = LastPass("cmp2", self.NOW - INTERVAL, 1, 0)
        assert recent_pass_of_another(just, "cmp1", self.NOW, INTERVAL) == just
        assert recent_pass_of_another(late, "cmp1", self.NOW, INTERVAL) is None
        assert recent_pass_of_another(None, "cmp1", self.NOW, INTERVAL) is None

    def test_the_next_check_comes_just_after_the_pass_has_aged(self):
        """If its host died, this one passes one interval after its pass."""
        last = LastPass("cmp2", self.NOW - 100, 1, 0)
        at = next_check_after(last, self.NOW, INTERVAL)
        assert (
            last.ended_at_epoch + INTERVAL < at <= last.ended_at_epoch + INTERVAL + 60
        )

    def test_a_lock_held_without_a_record_is_looked_at_again_soon(self):
        at = next_check_after(None, self.NOW, INTERVAL)
        assert self.NOW < at <= self.NOW + 60


def test_the_status_words_of_a_skip(host):
    passed_by(host, "cmp2", ago=30)
    result = turn(host)
    assert "Last pass skipped" in result.describe()
    assert "host cmp2 completed one at" in result.describe()
