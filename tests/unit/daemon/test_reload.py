"""Tests for cachemgr.daemon.reload with options that only a restart changes:
``[coordination] backend_url`` is read when the coordinator is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.daemon.reload import reread_config
from cachemgr.exceptions import ConfigError

BEFORE = "redis://:old-pw@127.0.0.1:6379"


def write(path: Path, tmp_path: Path, backend_url: str, interval: int) -> None:
    path.write_text(
        f"[DEFAULT]\ninstances_path = {tmp_path}\n"
        f"[image_cache]\nmanager_interval = {interval}\n"
        f"[coordination]\nbackend_url = {backend_url}\n"
    )


@pytest.fixture
def conf_file(tmp_path: Path) -> tuple[cfg.ConfigOpts, Path]:
    path = tmp_path / "cachemgr.conf"
    write(path, tmp_path, BEFORE, 600)
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", str(path)])
    return conf, path


class TestImmutableBackendUrl:
    def test_a_new_url_waits_for_a_restart(
        self, conf_file: tuple[cfg.ConfigOpts, Path], tmp_path: Path
    ) -> None:
        """The mutable options change; backend_url keeps the value in force
        and is not reported as changed (oslo.config logs it is ignored)."""
        conf, path = conf_file
        write(path, tmp_path, "redis://:new-pw@127.0.0.2:6379", 900)
        settings, changes = reread_config(conf, cachemgr_conf.register_opts)
        assert settings.manager_interval == 900
        assert settings.coordination_url == BEFORE
        assert set(changes) == {("image_cache", "manager_interval")}

    def test_a_bad_new_url_refuses_the_reload(
        self, conf_file: tuple[cfg.ConfigOpts, Path], tmp_path: Path
    ) -> None:
        """A URL a restart would refuse is refused now, naming the option,
        and nothing changes."""
        conf, path = conf_file
        write(path, tmp_path, "foo://x", 900)
        with pytest.raises(ConfigError, match=r"^\[coordination\] backend_url = foo"):
            reread_config(conf, cachemgr_conf.register_opts)
        assert conf.image_cache.manager_interval == 600
