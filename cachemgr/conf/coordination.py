"""[coordination] options: the tooz backend of the remover lock (DESIGN 1.11)."""

from oslo_config import cfg

coordination_group = cfg.OptGroup(
    "coordination",
    title="Coordination options",
    help="How the hosts of one storage agree which of them removes files: "
    "the remover lock, taken through tooz.",
)

coordination_opts = [
    cfg.StrOpt(
        "backend_url",
        default="",
        secret=True,
        help="The tooz backend of the remover lock, as cinder's and octavia's "
        "[coordination] backend_url, e.g. "
        "etcd3+http://etcd.example.org:2379, "
        "redis://:password@redis.example.org:6379?lock_timeout=30&"
        "socket_timeout=5 or zookeeper://zk.example.org:2181. A host that "
        "dies loses a lock of these backends with its session. A backend "
        "that does not answer holds the pass as long as tooz's client tries "
        "again: for Redis about 11 times socket_timeout (tooz's default: 30 "
        "s), so set one. Empty (the default): "
        "file://<instances_path>/locks, the same lockf lock on "
        "locks/cachemgr-remover as earlier cachemgr releases take, opened "
        "without following a symlink; a file:// URL names another "
        "directory for it. Read at start only: a change needs a restart.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(coordination_group)
    conf.register_opts(coordination_opts, group=coordination_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {coordination_group: coordination_opts}
