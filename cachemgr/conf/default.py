"""[DEFAULT] options: where the instances live and how nova names things.

Names and defaults are nova's, so an operator can copy them from nova.conf.
"""

import socket

from oslo_config import cfg

default_opts = [
    cfg.HostnameOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<current_hostname>",
        help="This compute host's name as nova knows it (nova.conf [DEFAULT] "
        "host). Instances on this host count as local, the others as remote.",
    ),
    cfg.StrOpt(
        "instances_path",
        default="/var/lib/nova/instances",
        help="Where instance directories and the image cache live (nova.conf "
        "[DEFAULT] instances_path).",
    ),
    cfg.StrOpt(
        "instance_name_template",
        default="instance-%08x",
        help="nova's legacy instance directory name, filled with the instance "
        "id (nova.conf [DEFAULT] instance_name_template).",
    ),
    cfg.StrOpt(
        "default_ephemeral_format",
        help="nova's default file system for ephemeral disks; it feeds the "
        "ephemeral cache file name (nova.conf [DEFAULT] "
        "default_ephemeral_format).",
    ),
    cfg.MultiStrOpt(
        "virt_mkfs",
        default=[],
        help="nova's mkfs commands, 'os_type=command' (os_type 'default' for "
        "all others); they feed the ephemeral cache file name (nova.conf "
        "[DEFAULT] virt_mkfs).",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(default_opts)


def list_opts() -> dict[str | None, list[cfg.Opt]]:
    return {None: default_opts}
