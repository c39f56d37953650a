"""[inventory] options: where the list of instances comes from."""

from oslo_config import cfg

DEFAULT_MAX_INSTANCES = 1_000_000

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
    cfg.IntOpt(
        "max_instances",
        default=DEFAULT_MAX_INSTANCES,
        min=1,
        help="The most instances an inventory may list: a longer listing (a "
        "conductor that keeps answering full pages, a runaway file) refuses "
        "the pass instead of growing without end.",
    ),
    cfg.IntOpt(
        "page_size",
        default=1000,
        min=1,
        max=10000,
        help="nova driver: instances asked of nova-conductor per call (limit "
        "and marker paging), so no reply grows past the broker's message "
        "size limit.",
    ),
    cfg.IntOpt(
        "bdm_batch_size",
        default=500,
        min=1,
        max=10000,
        help="nova driver: instances whose block device mappings are asked "
        "of nova-conductor per call.",
    ),
    cfg.IntOpt(
        "call_timeout_seconds",
        default=20,
        min=1,
        max=600,
        help="nova driver: how long one call may wait for nova-conductor's "
        "answer before the pass is refused.",
    ),
    cfg.IntOpt(
        "connect_timeout_seconds",
        default=5,
        min=1,
        max=120,
        help="nova driver: how long to try to reach the message bus before "
        "the pass is refused (oslo.messaging itself would wait forever).",
    ),
    cfg.StrOpt(
        "conductor_exchange",
        default="nova",
        help="nova driver: the exchange nova-conductor listens on (nova.conf "
        "[DEFAULT] control_exchange).",
    ),
    cfg.StrOpt(
        "conductor_topic",
        default="conductor",
        help="nova driver: nova-conductor's RPC topic.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(inventory_group)
    conf.register_opts(inventory_opts, group=inventory_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {inventory_group: inventory_opts}
