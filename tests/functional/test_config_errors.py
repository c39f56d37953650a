"""The real ``cachemgr --once`` with a bad configuration: exit 2, the option
and the bad value named on stderr, nothing done."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.hosts import DAY, Host, fingerprint, run_cachemgr

FP_OLD = fingerprint("img-old")

# (section, option, value, what stderr must name); value None unsets it.
BAD_OPTIONS = [
    pytest.param(
        "image_cache",
        "remove_unused_original_minimum_age_seconds",
        "-5",
        ("[image_cache] remove_unused_original_minimum_age_seconds = -5",),
        id="negative-age",
    ),
    pytest.param(
        "image_cache",
        "manager_interval",
        "often",
        ("[image_cache] manager_interval = often",),
        id="non-integer-interval",
    ),
    pytest.param(
        "inventory", "driver", "ldap", ("[inventory] driver = ldap",), id="driver"
    ),
    pytest.param(
        "inventory",
        "static_path",
        None,
        ("[inventory] static_path",),
        id="static-without-path",
    ),
    pytest.param(
        "DEFAULT",
        "virt_mkfs",
        "mkfs.ext4 -F",
        ("[DEFAULT] virt_mkfs", "mkfs.ext4 -F"),
        id="virt-mkfs-without-os-type",
    ),
    pytest.param(
        "DEFAULT",
        "instances_path",
        "relative/instances",
        ("[DEFAULT] instances_path = relative/instances",),
        id="relative-instances-path",
    ),
    pytest.param(
        "coordination",
        "backend_url",
        "foo://:s3cret@x",
        ("[coordination] backend_url = foo://:***@x: unknown scheme 'foo'",),
        id="coordination-scheme",
    ),
]


@pytest.mark.parametrize(("section", "option", "value", "named"), BAD_OPTIONS)
def test_bad_option_exits_2_naming_it(
    tmp_path: Path,
    section: str,
    option: str,
    value: str | None,
    named: tuple[str, ...],
) -> None:
    """A bad value exits 2, naming option and value on stderr; nothing changes."""
    host = Host(tmp_path)
    host.cache_file(FP_OLD, age=10 * DAY)
    host.instance("img-used")
    host.write({section: {option: value}})
    before = host.mtimes()

    run = host.run()

    assert run.returncode == 2, run.output
    for text in named:
        assert text in run.stderr, run.stderr
    assert host.mtimes() == before


def test_missing_config_file_exits_2_naming_it(tmp_path: Path) -> None:
    """A --config-file that does not exist exits 2 and names the file on stderr."""
    missing = tmp_path / "nowhere" / "cachemgr.conf"

    run = run_cachemgr("--config-file", str(missing), "--once")

    assert run.returncode == 2, run.output
    assert str(missing) in run.stderr


@pytest.mark.parametrize(
    ("options", "named"),
    [
        pytest.param(
            {"DEFAULT": {"transport_url": "no scheme"}},
            "[DEFAULT] transport_url: No scheme specified",
            id="transport-url-unparsable",
        ),
        pytest.param(
            {"DEFAULT": {"transport_url": "amqp1://host/"}},
            "no oslo.messaging driver for 'amqp1'://",
            id="transport-url-unknown-driver",
        ),
        pytest.param(
            {"inventory": {"page_size": "0"}},
            "[inventory] page_size = 0",
            id="page-size-zero",
        ),
    ],
)
def test_bad_nova_driver_option_exits_2(
    tmp_path: Path, options: dict[str, dict[str, str]], named: str
) -> None:
    """The nova driver's options are checked before any pass, naming the option."""
    host = Host(tmp_path)
    host.cache_file(FP_OLD, age=10 * DAY)
    overrides = {"inventory": {"driver": "nova", "static_path": None}}
    for section, values in options.items():
        overrides.setdefault(section, {}).update(values)
    host.write(overrides, inventory=False)
    before = host.mtimes()

    run = host.run()

    assert run.returncode == 2, run.output
    assert named in run.stderr, run.stderr
    assert host.mtimes() == before
