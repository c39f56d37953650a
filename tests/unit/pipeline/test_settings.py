"""Tests for cachemgr.pipeline.settings: the refusals that keep a pass away
from what is not the cache dir (exit 2, naming the option and the value)."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from cachemgr import conf as cachemgr_conf
from cachemgr.exceptions import ConfigError
from cachemgr.pipeline.settings import load_settings


def image_cache_settings(tmp_path: Path, option: str, value: str):
    """The settings of a file setting one [image_cache] option."""
    return settings_from(
        tmp_path,
        f"[DEFAULT]\ninstances_path = {tmp_path}\n[image_cache]\n{option} = {value}\n",
    )


def settings_from(tmp_path: Path, text: str):
    path = tmp_path / "cachemgr.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    cachemgr_conf.register_opts(conf)
    conf(["--config-file", str(path)])
    return load_settings(conf)


class TestSubdirectoryName:
    @pytest.mark.parametrize("value", [".", "..", "locks", "a/b", "../etc", "/tmp"])
    def test_not_one_cache_directory_name(self, tmp_path: Path, value: str) -> None:
        """The instances_path itself, its parent, the locks dir, a path: refused."""
        with pytest.raises(ConfigError) as info:
            image_cache_settings(tmp_path, "subdirectory_name", value)
        message = str(info.value)
        assert message.startswith(f"[image_cache] subdirectory_name = {value!r}: ")
        assert "must be one directory name" in message

    def test_empty(self, tmp_path: Path) -> None:
        """An empty name would make instances_path the cache dir."""
        with pytest.raises(ConfigError, match="subdirectory_name = ''"):
            settings_from(
                tmp_path,
                f"[DEFAULT]\ninstances_path = {tmp_path}\n"
                "[image_cache]\nsubdirectory_name =\n",
            )

    def test_a_name_makes_the_cache_dir(self, tmp_path: Path) -> None:
        """Any other single name is the cache dir under instances_path."""
        settings = settings_from(
            tmp_path,
            f"[DEFAULT]\ninstances_path = {tmp_path}\n"
            "[image_cache]\nsubdirectory_name = _cache\n",
        )
        assert settings.cache_dir == str(tmp_path / "_cache")
        assert settings.skip_dirs == {"_cache", "locks"}


class TestInstancesPath:
    def test_relative_path_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"^\[DEFAULT\] instances_path = rel"):
            settings_from(tmp_path, "[DEFAULT]\ninstances_path = rel/instances\n")


class TestCoordinationBackendUrl:
    def test_unset_is_the_file_driver(self, tmp_path: Path) -> None:
        """Unset: empty, which the coordinator reads as file://<locks dir>."""
        settings = settings_from(tmp_path, f"[DEFAULT]\ninstances_path = {tmp_path}\n")
        assert settings.coordination_url == ""

    def test_a_url_is_carried(self, tmp_path: Path) -> None:
        settings = settings_from(
            tmp_path,
            f"[DEFAULT]\ninstances_path = {tmp_path}\n"
            "[coordination]\nbackend_url = redis://:pw@127.0.0.1:6379\n",
        )
        assert settings.coordination_url == "redis://:pw@127.0.0.1:6379"

    def test_unknown_scheme_is_a_config_error(self, tmp_path: Path) -> None:
        """An unknown scheme exits 2 naming the option, the password masked."""
        with pytest.raises(ConfigError) as info:
            settings_from(
                tmp_path,
                f"[DEFAULT]\ninstances_path = {tmp_path}\n"
                "[coordination]\nbackend_url = foo://:pw@x\n",
            )
        message = str(info.value)
        assert message.startswith(
            "[coordination] backend_url = foo://:***@x: unknown scheme 'foo'"
        )
        assert ":pw@" not in message


class TestScanConcurrency:
    def test_default(self, tmp_path: Path) -> None:
        """32 reads in flight unless the operator says otherwise."""
        settings = settings_from(tmp_path, f"[DEFAULT]\ninstances_path = {tmp_path}\n")
        assert settings.scan_concurrency == 32

    @pytest.mark.parametrize("value", ["0", "257", "many"])
    def test_out_of_bounds_is_refused(self, tmp_path: Path, value: str) -> None:
        """Below 1, above 256 or not a number: refused, naming option and value."""
        with pytest.raises(ConfigError) as info:
            image_cache_settings(tmp_path, "scan_concurrency", value)
        assert str(info.value).startswith(f"[image_cache] scan_concurrency = {value} ")
