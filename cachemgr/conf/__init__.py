"""cachemgr's options, one module per group.

``register_opts`` registers them all on a ConfigOpts; ``opts.list_opts`` is
the oslo-config-generator entry point.
"""

from oslo_config import cfg

from cachemgr.conf import coordination, daemon, default, image_cache, inventory

__all__ = ["CONF", "OPTION_MODULES", "register_opts"]

CONF = cfg.CONF

# The one list of option modules, in the sample config's order.
OPTION_MODULES = (default, image_cache, inventory, daemon, coordination)


def register_opts(conf: cfg.ConfigOpts) -> None:
    for module in OPTION_MODULES:
        module.register_opts(conf)
