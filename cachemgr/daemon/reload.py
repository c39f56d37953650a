"""Re-reading the configuration files on SIGHUP, all or nothing.

oslo.config's ``mutate_config_files`` puts the new files in force before
anything checks them: a bad value is then what every later read (and the
next reload's "was") sees, and an unparsable or deleted file raises out of
it. So the files are first read into a scratch ConfigOpts with the same
options, exactly as a restart would read them; only files that would start
the daemon are then mutated into the live configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from oslo_config import cfg

from cachemgr.exceptions import ConfigFileError
from cachemgr.pipeline.settings import Settings, load_settings, read_every_option

__all__ = ["describe_changes", "reread_config"]

Changes = Mapping[tuple[str | None, str], tuple[object, object]]


def reread_config(
    conf: cfg.ConfigOpts, register: Callable[[cfg.ConfigOpts], None]
) -> tuple[Settings, Changes]:
    """Check the files ``conf`` was started with, then put them in force.

    Args:
        conf: the live configuration (left untouched when a check fails).
        register: registers on a ConfigOpts every option ``conf`` has.

    Returns:
        The new settings, and the mutable options that changed with their
        values in force before and after.

    Raises:
        ConfigFileError: a file is missing or cannot be parsed (the
            message names it and the parse error).
        ConfigError: a value is bad (the message names the option, the
            file and the value).
    """
    args = [f"--config-file={path}" for path in conf.config_file or ()]
    if conf.config_dir:
        args.append(f"--config-dir={conf.config_dir}")
    scratch = cfg.ConfigOpts()
    register(scratch)
    try:
        scratch(
            args,
            project=conf.project,
            default_config_files=[],
            default_config_dirs=[],
        )
    except cfg.Error as exc:
        raise ConfigFileError(str(exc)) from None
    load_settings(scratch)
    read_every_option(scratch)
    before = read_every_option(conf)
    try:
        changed = conf.mutate_config_files()
    except cfg.Error as exc:  # the files changed again since the check
        raise ConfigFileError(str(exc)) from None
    after = read_every_option(conf)
    # oslo.config's own diff says None for a value the file did not set:
    # report the values in force, defaults included.
    changes = {key: (before.get(key), after.get(key)) for key in changed}
    return load_settings(conf), changes


def describe_changes(changes: Changes) -> str:
    """``[group] name = new (was old)`` for each changed mutable option."""
    return "; ".join(
        f"[{group or 'DEFAULT'}] {name} = {new} (was {old})"
        for (group, name), (old, new) in sorted(
            changes.items(), key=lambda item: (item[0][0] or "", item[0][1])
        )
    )
