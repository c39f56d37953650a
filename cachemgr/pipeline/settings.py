"""The options a pass needs, read and checked once (exit 2 on a bad one).

oslo.config checks a value from a file only when it is read, and its error
names neither the group nor the value; reading every option here turns any
bad one into a ConfigError that names both, before anything is done.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from oslo_config import cfg

from cachemgr.cache import coordination, locks, naming
from cachemgr.cache.plan import Policy
from cachemgr.cache.usage import EphemeralNaming
from cachemgr.conf import opts
from cachemgr.exceptions import ConfigError

__all__ = ["Settings", "check_options", "load_settings", "read_every_option"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one pass reads from the configuration."""

    host: str
    instances_path: str
    cache_dir: str
    lock_path: str
    policy: Policy
    remove_unused: bool
    lock_wait_seconds: float
    ephemeral: EphemeralNaming
    manager_interval: int
    pinned_images_file: str | None = None
    shrink_limit_percent: int = 0
    share_passes: bool = False
    coordination_url: str = ""
    scan_concurrency: int = 1

    @property
    def skip_dirs(self) -> frozenset[str]:
        """Directories under instances_path that are not instance dirs."""
        return frozenset({os.path.basename(self.cache_dir), locks.LOCKS_DIR_NAME})


def load_settings(conf: cfg.ConfigOpts) -> Settings:
    """Check every cachemgr option and return what a pass needs.

    Raises:
        ConfigError: an option has a bad value; the message names it.
    """
    check_options(conf)
    instances_path = conf.instances_path
    if not os.path.isabs(instances_path):
        raise ConfigError(
            f"[DEFAULT] instances_path = {instances_path}: must be an absolute path"
        )
    subdir = conf.image_cache.subdirectory_name
    if subdir in ("", ".", "..", locks.LOCKS_DIR_NAME) or "/" in subdir:
        raise ConfigError(
            f"[image_cache] subdirectory_name = {subdir!r}: must be one directory "
            f"name other than '.', '..' and '{locks.LOCKS_DIR_NAME}'"
        )
    try:
        mkfs = naming.parse_virt_mkfs(conf.virt_mkfs)
    except ValueError as exc:
        raise ConfigError(f"[DEFAULT] virt_mkfs: {exc}") from exc
    image_cache = conf.image_cache
    high = image_cache.disk_high_watermark_percent
    low = image_cache.disk_low_watermark_percent
    if high and low >= high:
        raise ConfigError(
            f"[image_cache] disk_low_watermark_percent = {low} must be below "
            f"[image_cache] disk_high_watermark_percent = {high} (or set the "
            "high watermark to 0 to turn removal under disk pressure off)"
        )
    coordination.check_backend_url(conf.coordination.backend_url)
    return Settings(
        host=conf.host,
        instances_path=instances_path,
        cache_dir=os.path.join(instances_path, subdir),
        lock_path=os.path.join(instances_path, locks.LOCKS_DIR_NAME),
        policy=Policy(
            original_minimum_age_seconds=(
                image_cache.remove_unused_original_minimum_age_seconds
            ),
            resized_minimum_age_seconds=(
                image_cache.remove_unused_resized_minimum_age_seconds
            ),
            high_watermark_percent=high,
            low_watermark_percent=low,
            pressure_minimum_age_seconds=image_cache.pressure_minimum_age_seconds,
        ),
        remove_unused=image_cache.remove_unused_base_images,
        lock_wait_seconds=image_cache.lock_wait_seconds,
        ephemeral=EphemeralNaming(
            mkfs_commands=mkfs,
            default_ephemeral_format=conf.default_ephemeral_format,
        ),
        manager_interval=image_cache.manager_interval,
        pinned_images_file=image_cache.pinned_images_file or None,
        shrink_limit_percent=image_cache.inventory_shrink_limit_percent,
        share_passes=image_cache.share_storage_passes,
        coordination_url=conf.coordination.backend_url,
        scan_concurrency=image_cache.scan_concurrency,
    )


def check_options(conf: cfg.ConfigOpts) -> None:
    """Read every cachemgr option so that a bad value fails now, by name."""
    for group, group_opts in opts.list_opts():
        group_name = group if isinstance(group, str) else group.name
        for opt in group_opts:
            _read_option(conf, group_name, opt.dest)


def read_every_option(conf: cfg.ConfigOpts) -> dict[tuple[str | None, str], object]:
    """Every registered option's value, oslo's and cachemgr's, keyed as
    oslo.config's mutate diff is (group None for DEFAULT); a bad one fails
    as a worker's start would when it logs them all (``log_options``)."""
    values: dict[tuple[str | None, str], object] = {}
    for name in conf:
        value = _read_option(conf, "DEFAULT", name)
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for opt in value:
                values[(name, opt)] = _read_option(conf, name, opt)
        else:
            values[(None, name)] = value
    return values


def _read_option(conf: cfg.ConfigOpts, group: str, name: str) -> object:
    section = conf if group == "DEFAULT" else conf[group]
    try:
        return section[name]
    except cfg.ConfigSourceValueError as exc:
        # The message is the only public place that names the file.
        found = re.search(r"detail='([^']*)'", str(exc))
        source = found.group(1) if found else "the configuration"
        raw = _raw_value(source, group, name) if found else "?"
        reason = str(exc).rpartition("is not valid: ")[2]
        raise ConfigError(f"[{group}] {name} = {raw} in {source}: {reason}") from exc


def _raw_value(path: str, group: str, name: str) -> str:
    """The value as written in ``path``, for the error message."""
    sections: Mapping[str, Mapping[str, list[str]]] = {}
    try:
        cfg.ConfigParser(path, sections).parse()
    except (OSError, cfg.ParseError):
        return "(unreadable)"
    values = sections.get(group, {}).get(name)
    return values[-1] if values else "(unset)"
