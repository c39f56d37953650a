"""[daemon] options: what cachemgr leaves for monitoring, in either mode."""

from oslo_config import cfg

daemon_group = cfg.OptGroup(
    "daemon",
    title="Daemon options",
    help="What cachemgr leaves for monitoring after every pass, as a "
    "daemon and with --once.",
)

daemon_opts = [
    cfg.StrOpt(
        "status_file",
        default="/var/lib/cachemgr/status.json",
        help="A JSON file rewritten atomically after every pass, by the "
        "daemon and by --once: the pass's outcome (completed, refused, "
        "failed, stopped), start and end times, counters and stage "
        "durations, and the last completed pass, for monitoring tools that "
        "do not read logs and for cachemgr --status. Its directory is "
        "created (mode 0755) when its parent exists; otherwise cachemgr "
        "exits 2. Empty: no status file.",
    ),
    cfg.StrOpt(
        "metrics_file",
        default="",
        help="A Prometheus text file rewritten atomically after every pass, "
        "by the daemon and by --once, for node_exporter's textfile "
        "collector: put it in the collector's directory "
        "(--collector.textfile.directory), with a name ending in .prom, "
        "e.g. /var/lib/prometheus/node-exporter/cachemgr.prom. The "
        "directory must exist. Empty (the default): no metrics file.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(daemon_group)
    conf.register_opts(daemon_opts, group=daemon_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {daemon_group: daemon_opts}
