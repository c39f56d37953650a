"""The published options: list_opts, the entry point and the sample config."""

import pathlib
import subprocess
import sys
from importlib import metadata

from oslo_config import cfg

from cachemgr import conf
from cachemgr.conf import opts

ROOT = pathlib.Path(__file__).resolve().parents[3]
GENERATOR_CONF = ROOT / "etc" / "cachemgr" / "cachemgr-config-generator.conf"
SAMPLE = ROOT / "etc" / "cachemgr" / "cachemgr.conf.sample"

CONTRACT = {
    ("DEFAULT", "host"),
    ("DEFAULT", "instances_path"),
    ("DEFAULT", "instance_name_template"),
    ("DEFAULT", "default_ephemeral_format"),
    ("DEFAULT", "virt_mkfs"),
    ("image_cache", "manager_interval"),
    ("image_cache", "subdirectory_name"),
    ("image_cache", "remove_unused_base_images"),
    ("image_cache", "remove_unused_original_minimum_age_seconds"),
    ("image_cache", "remove_unused_resized_minimum_age_seconds"),
    ("inventory", "driver"),
    ("inventory", "static_path"),
}
MUTABLE = {
    "manager_interval",
    "remove_unused_base_images",
    "remove_unused_original_minimum_age_seconds",
    "remove_unused_resized_minimum_age_seconds",
}


def _listed() -> dict[tuple[str, str], cfg.Opt]:
    return {
        (group if isinstance(group, str) else group.name, opt.name): opt
        for group, group_opts in opts.list_opts()
        for opt in group_opts
    }


class TestListOpts:
    def test_lists_every_contract_option(self):
        """Every option of DESIGN 1.2 is published, under its group."""
        assert set(_listed()) >= CONTRACT

    def test_every_option_has_help(self):
        """An operator reading the sample gets a sentence for every option."""
        assert all(opt.help for opt in _listed().values())

    def test_ages_interval_and_switch_are_mutable(self):
        """The contract's mutable options take effect on SIGHUP."""
        listed = _listed()
        assert {name for (_, name), opt in listed.items() if opt.mutable} >= MUTABLE

    def test_returns_copies(self):
        """Changing what list_opts returned does not change the registered opts."""
        first = opts.list_opts()
        first[0][1][0].help = "changed"
        assert opts.list_opts()[0][1][0].help != "changed"

    def test_entry_point_names_list_opts(self):
        """oslo-config-generator finds the options through the entry point."""
        points = metadata.entry_points(group="oslo.config.opts")
        assert points["cachemgr"].load() is opts.list_opts

    def test_registered_defaults_follow_nova(self):
        """The defaults are nova's, so nova.conf values can be copied."""
        conf_ = cfg.ConfigOpts()
        conf.register_opts(conf_)
        conf_([])
        assert conf_.instances_path == "/var/lib/nova/instances"
        assert conf_.image_cache.manager_interval == 2400
        assert conf_.image_cache.remove_unused_original_minimum_age_seconds == 86400
        assert conf_.image_cache.remove_unused_resized_minimum_age_seconds == 3600
        assert conf_.inventory.driver == "nova"


class TestSampleConfig:
    def test_sample_matches_the_code(self, tmp_path):
        """The committed sample is what the generator makes from the code now,
        and the README's command to make it prints no warning."""
        out = tmp_path / "sample.conf"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cachemgr.conf.sample",
                "--config-file",
                str(GENERATOR_CONF),
                "--output-file",
                str(out),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert result.stderr == ""
        assert out.read_text() == SAMPLE.read_text(), (
            "etc/cachemgr/cachemgr.conf.sample is stale: run python -m "
            "cachemgr.conf.sample"
        )
