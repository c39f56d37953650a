"""[inventory] options: where the list of instances comes from."""

from oslo_config import cfg

inventory_group = cfg.OptGroup(
    "inventory",
    title="Inventory options",
    help="Where cachemgr learns which instances use this storage.",
)

inventory_opts = [
    cfg.StrOpt(
        "driver",
        default="nova",
        choices=[
            ("nova", "ask nova-conductor over the message bus"),
            ("static", "read the JSON file named by static_path"),
        ],
        help="The inventory driver.",
    ),
    cfg.StrOpt(
        "static_path",
        help="The JSON file of instances read by the static driver; required "
        "when driver = static.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(inventory_group)
    conf.register_opts(inventory_opts, group=inventory_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {inventory_group: inventory_opts}
