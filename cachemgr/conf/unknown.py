"""Unknown groups and options in the configuration files, named at WARNING.

oslo.config ignores what nobody registered, so a mistyped name
(``remove_unused_original_minimum_age_second``) silently leaves the default
in force. The files are read again with oslo.config's own parser and every
name compared with what the sample config documents: the options of the
generator's namespaces, from the same ``oslo.config.opts`` entry points
oslo-config-generator and oslo-config-validator load.
"""

from __future__ import annotations

import difflib
import glob
import logging
import os
from collections.abc import Iterable, Mapping
from importlib import metadata

from oslo_config import cfg

__all__ = ["KNOWN_NAMESPACES", "known_options", "unknown_names", "warn_unknown"]

LOG = logging.getLogger(__name__)

# etc/cachemgr/cachemgr-config-generator.conf's namespaces, and oslo.config's
# own options (config_source...).
KNOWN_NAMESPACES = (
    "cachemgr",
    "oslo.log",
    "oslo.messaging",
    "oslo.service.service",
    "oslo.config",
)
_DEFAULT = "DEFAULT"


def known_options(namespaces: Iterable[str] = KNOWN_NAMESPACES) -> dict[str, set[str]]:
    """``{group: option names}``, deprecated names included (oslo reads them)."""
    wanted = set(namespaces)
    known: dict[str, set[str]] = {}
    for entry in metadata.entry_points(group="oslo.config.opts"):
        if entry.name not in wanted:
            continue
        for group, opts in entry.load()():
            name = group.name if isinstance(group, cfg.OptGroup) else group
            for opt in opts:
                known.setdefault(name or _DEFAULT, set()).add(opt.dest)
                for old in opt.deprecated_opts:
                    old_group = old.group or name or _DEFAULT
                    known.setdefault(old_group, set()).add(
                        (old.name or opt.dest).replace("-", "_")
                    )
    return known


def unknown_names(
    path: str, sections: Mapping[str, Iterable[str]], known: Mapping[str, set[str]]
) -> list[str]:
    """One sentence per unknown group or option of the file ``path``."""
    problems = []
    for group, names in sections.items():
        if group not in known:
            hint = _closest(group, known)
            problems.append(
                f"Unknown group [{group}] in {path} is ignored, with its options"
                + (f"; did you mean [{hint}]?" if hint else "")
            )
            continue
        for option in names:
            if option.replace("-", "_") in known[group]:
                continue
            hint = _closest(option, known[group])
            elsewhere = sorted(g for g, opts in known.items() if option in opts)
            if hint:
                advice = f"; did you mean {hint}?"
            elif elsewhere:
                advice = f"; it is an option of [{elsewhere[0]}]"
            else:
                advice = "; no known option is close (see cachemgr.conf.sample)"
            problems.append(
                f"Unknown option [{group}] {option} in {path} is ignored, the "
                f"default applies{advice}"
            )
    return problems


def warn_unknown(conf: cfg.ConfigOpts, fresh: object = None) -> None:
    """Log a WARNING for each unknown name in the files ``conf`` read.

    Called at start and as a mutate hook after every reload (``fresh``, the
    options the reload changed, is not needed: the files are read again).
    """
    known = known_options()
    # And what is registered here: the command line's options (--once,
    # --dry-run) are read from the files too. Iterating a ConfigOpts also
    # yields its group names; no option is named after a group.
    known[_DEFAULT] |= set(conf)
    for path in _config_files(conf):
        sections: dict[str, dict[str, list[str]]] = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError):
            continue  # oslo.config itself has reported it
        for problem in unknown_names(path, sections, known):
            LOG.warning("%s", problem)


def _config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files oslo.config reads, in its order: each file, then each dir."""
    files = list(conf.config_file or [])
    for directory in conf.config_dir or []:
        files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    return files


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return matches[0] if matches else None
