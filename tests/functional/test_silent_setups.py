"""Setups that would never clean, and say nothing: each now logs a WARNING.

A cache dir that does not exist (a mistyped ``subdirectory_name``), a
mistyped option or group (its default silently applies), and passes
disabled with ``manager_interval = -1``.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from tests.support.daemons import STARTED, SUMMARY, Daemon
from tests.support.hosts import DAY, Host, fingerprint

AGE = "remove_unused_original_minimum_age_seconds"


def warnings_of(output: str) -> list[str]:
    """The WARNING lines, but the one about processes this machine hides."""
    return [
        line
        for line in output.splitlines()
        if " WARNING " in line and "The open files of" not in line
    ]


def test_missing_cache_dir_warns_on_every_pass(tmp_path: Path) -> None:
    """A mistyped subdirectory_name: each pass names the path and the option."""
    host = Host(tmp_path)
    shutil.rmtree(host.base)
    host.write(
        {
            "image_cache": {"subdirectory_name": "_bsae", "manager_interval": 1},
            "daemon": {"status_file": ""},
        }
    )
    missing = host.instances_path / "_bsae"
    expected = (
        f"The cache dir {missing} does not exist: nothing to clean. Either "
        "nova-compute has cached no image yet, or [image_cache] "
        "subdirectory_name = _bsae is not nova.conf's"
    )

    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        first = daemon.wait_for(SUMMARY)
        daemon.wait_for(SUMMARY, after=first + 1)
        assert daemon.stop() == 0

    assert len(daemon.matching(expected)) >= 2, daemon.output
    assert all(" WARNING " in line for line in daemon.matching(expected))


def test_existing_cache_dir_does_not_warn(tmp_path: Path) -> None:
    """The usual host: no warning at all."""
    host = Host(tmp_path)
    host.cache_file(fingerprint("img"), age=DAY)
    host.write()

    run = host.run()

    assert run.returncode == 0, run.output
    assert warnings_of(run.stdout) == [], run.output


def test_mistyped_option_and_group_are_named_with_the_closest_name(
    tmp_path: Path,
) -> None:
    """File, group, option and the name meant; the default still applies."""
    host = Host(tmp_path)
    old = host.cache_file(fingerprint("img"), age=2 * DAY)
    host.write(
        {
            "DEFAULT": {"manager_interval": 60},
            "image_cache": {AGE[:-1]: 1},
            "imagecache": {"subdirectory_name": "_base"},
            "invetnory": {"driver": "static"},
        }
    )

    run = host.run()

    assert run.returncode == 0, run.output
    path = host.config_path
    messages = [line.split(" [-] ", 1)[1] for line in warnings_of(run.stdout)]
    assert messages == [
        f"Unknown option [DEFAULT] manager_interval in {path} is ignored, the "
        "default applies; it is an option of [image_cache]",
        f"Unknown option [image_cache] {AGE[:-1]} in {path} is ignored, the "
        f"default applies; did you mean {AGE}?",
        f"Unknown group [imagecache] in {path} is ignored, with its options; "
        "did you mean [image_cache]?",
        f"Unknown group [invetnory] in {path} is ignored, with its options; "
        "did you mean [inventory]?",
    ]
    # 2 days old, under the 86400 s default the typo did not replace: removed.
    assert old.name not in host.cache_names()


def test_options_of_the_libraries_are_known(tmp_path: Path) -> None:
    """oslo.messaging's, oslo.log's, oslo.service's and the command line's
    options (oslo.config reads those from files too) are not flagged."""
    host = Host(tmp_path)
    host.write(
        {
            "DEFAULT": {
                "debug": "false",
                "graceful_shutdown_timeout": 30,
                "dry_run": "false",
            },
            "oslo_messaging_rabbit": {"ssl": "false"},
        }
    )

    run = host.run()

    assert run.returncode == 0, run.output
    assert warnings_of(run.stdout) == [], run.output


def test_reload_warns_about_a_new_mistyped_option(tmp_path: Path) -> None:
    """SIGHUP: a typo added to the file is named before the reload line."""
    host = Host(tmp_path)
    options: dict[str, dict[str, object]] = {
        "image_cache": {"manager_interval": 3600},
        "daemon": {"status_file": ""},
    }
    host.write(options)
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        started = daemon.wait_for(STARTED)
        options["image_cache"]["remove_unused_resized_minimum_age_second"] = 60
        host.write(options)
        daemon.send(signal.SIGHUP)
        warned = daemon.wait_for("Unknown option [image_cache]", after=started)
        daemon.wait_for(STARTED, after=warned)
        assert daemon.stop() == 0

    assert " WARNING " in daemon.line(warned)
    assert (
        f"remove_unused_resized_minimum_age_second in {host.config_path} is "
        "ignored, the default applies; did you mean "
        "remove_unused_resized_minimum_age_seconds?" in daemon.line(warned)
    )


def test_passes_disabled_warns_at_start(tmp_path: Path) -> None:
    """manager_interval = -1: the daemon says it will never clean, and where."""
    host = Host(tmp_path)
    host.write({"image_cache": {"manager_interval": -1}, "daemon": {"status_file": ""}})
    with Daemon(host.config_path, cwd=tmp_path) as daemon:
        daemon.wait_for(STARTED)
        assert daemon.stop() == 0

    expected = (
        f"[image_cache] manager_interval = -1 in {host.config_path}: passes are "
        "disabled, the daemon idles and never cleans the cache"
    )
    assert [line for line in warnings_of(daemon.output) if expected in line]
