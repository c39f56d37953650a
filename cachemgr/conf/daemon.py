"""[daemon] options: what the long-running service leaves for monitoring."""

from oslo_config import cfg

daemon_group = cfg.OptGroup(
    "daemon",
    title="Daemon options",
    help="The long-running service (cachemgr without --once).",
)

daemon_opts = [
    cfg.StrOpt(
        "status_file",
        default="/var/lib/cachemgr/status.json",
        help="A JSON file the daemon rewrites atomically after every pass: "
        "the pass's outcome (completed, refused, failed, stopped), start and "
        "end times, counters and stage durations, and the last completed "
        "pass, for monitoring tools that do not read logs. Its directory "
        "must exist and be writable (the systemd unit's StateDirectory= "
        "makes /var/lib/cachemgr). Empty: no status file. --once never "
        "writes it.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(daemon_group)
    conf.register_opts(daemon_opts, group=daemon_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {daemon_group: daemon_opts}
