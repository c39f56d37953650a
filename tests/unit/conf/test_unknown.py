"""unknown: which names in a config file nobody reads, and the name meant."""

from __future__ import annotations

from pathlib import Path

from cachemgr.conf import unknown

GENERATOR_CONF = (
    Path(__file__).parents[3] / "etc/cachemgr/cachemgr-config-generator.conf"
)


class TestKnownOptions:
    def test_every_namespace_of_the_sample_is_known(self) -> None:
        """What the sample config documents is never called unknown."""
        text = GENERATOR_CONF.read_text()
        namespaces = [
            line.split("=", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("namespace")
        ]
        assert set(namespaces) <= set(unknown.KNOWN_NAMESPACES)

    def test_holds_cachemgr_and_library_options(self) -> None:
        """Our groups and the libraries' options are all there."""
        known = unknown.known_options()
        assert "remove_unused_original_minimum_age_seconds" in known["image_cache"]
        assert "transport_url" in known["DEFAULT"]
        assert "ssl" in known["oslo_messaging_rabbit"]
        assert "debug" in known["DEFAULT"]


KNOWN = {"DEFAULT": {"host"}, "image_cache": {"manager_interval"}}


class TestUnknownNames:
    def test_known_names_say_nothing(self) -> None:
        """A file of known names gives no sentence; dashes count as underscores."""
        sections = {"DEFAULT": ["host"], "image_cache": ["manager-interval"]}
        assert unknown.unknown_names("f.conf", sections, KNOWN) == []

    def test_option_with_no_close_name(self) -> None:
        """Nothing close: the sentence points at the sample config."""
        problems = unknown.unknown_names("f.conf", {"DEFAULT": ["zzz"]}, KNOWN)
        assert problems == [
            "Unknown option [DEFAULT] zzz in f.conf is ignored, the default "
            "applies; no known option is close (see cachemgr.conf.sample)"
        ]

    def test_group_with_no_close_name(self) -> None:
        """An unrelated group (a nova.conf section copied over) has no hint."""
        problems = unknown.unknown_names("f.conf", {"glance": ["x"]}, KNOWN)
        assert problems == [
            "Unknown group [glance] in f.conf is ignored, with its options"
        ]
