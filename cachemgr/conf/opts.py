"""The oslo.config.opts entry point: every cachemgr option, by group."""

import copy

from oslo_config import cfg

from cachemgr.conf import OPTION_MODULES

__all__ = ["list_opts"]


def list_opts() -> list[tuple[cfg.OptGroup | str, list[cfg.Opt]]]:
    """Return copies of cachemgr's options, grouped, for the generator."""
    result: list[tuple[cfg.OptGroup | str, list[cfg.Opt]]] = []
    for module in OPTION_MODULES:
        for group, opts in module.list_opts().items():
            result.append((group or "DEFAULT", copy.deepcopy(opts)))
    return result
