"""[image_cache] options: when a pass runs and what it may remove."""

from oslo_config import cfg

image_cache_group = cfg.OptGroup(
    "image_cache",
    title="Image cache options",
    help="When a pass runs and which unused base files it removes.",
)

image_cache_opts = [
    cfg.IntOpt(
        "manager_interval",
        default=2400,
        min=-1,
        mutable=True,
        help="Seconds between two passes of the daemon. 0 means every 60 "
        "seconds; -1 means the daemon runs no passes.",
    ),
    cfg.StrOpt(
        "subdirectory_name",
        default="_base",
        help="The image cache directory, relative to instances_path.",
    ),
    cfg.BoolOpt(
        "remove_unused_base_images",
        default=True,
        mutable=True,
        help="Remove unused base files. When false, a pass still refreshes "
        "the files in use and logs what it would remove.",
    ),
    cfg.IntOpt(
        "remove_unused_original_minimum_age_seconds",
        default=86400,
        min=0,
        mutable=True,
        help="Unused original images, swap and ephemeral files younger than "
        "this (by mtime) are kept.",
    ),
    cfg.IntOpt(
        "remove_unused_resized_minimum_age_seconds",
        default=3600,
        min=0,
        mutable=True,
        help="Unused resized images (<fingerprint>_<size>, <fingerprint>_sm) "
        "younger than this (by mtime) are kept.",
    ),
    cfg.FloatOpt(
        "lock_wait_seconds",
        default=1.0,
        min=0.0,
        max=60.0,
        mutable=True,
        help="How long to wait for nova's lock on a base file before removing "
        "it. A lock held longer means nova-compute is downloading or copying "
        "the file: it is kept this pass.",
    ),
    cfg.IntOpt(
        "disk_high_watermark_percent",
        default=90,
        min=0,
        max=100,
        mutable=True,
        help="0 means off. When a pass starts with the file system holding "
        "the cache dir at or above this use (df's Use%), unused files younger "
        "than their minimum age are removed too, oldest first.",
    ),
    cfg.IntOpt(
        "disk_low_watermark_percent",
        default=80,
        min=0,
        max=100,
        mutable=True,
        help="Removal under disk pressure stops once the use would be at or "
        "below this; it must be below disk_high_watermark_percent.",
    ),
    cfg.IntOpt(
        "pressure_minimum_age_seconds",
        default=600,
        min=0,
        mutable=True,
        help="Under disk pressure, a file younger than this (by mtime) is "
        "never removed: it may be a download nova has just finished.",
    ),
    cfg.StrOpt(
        "pinned_images_file",
        mutable=True,
        help='A JSON file of pinned images, read at every pass: {"pins": '
        '[{"image_id": "<glance id>", "until": "2027-01-31T00:00:00Z" or '
        'null, "comment": "..."}]}. An active pin keeps the image\'s base '
        "file and all its resized variants, under disk pressure too.",
    ),
    cfg.IntOpt(
        "inventory_shrink_limit_percent",
        default=50,
        min=0,
        max=100,
        mutable=True,
        help="0 means off. When an inventory lists fewer than (100 - this) "
        "percent of the instances of the last completed pass (and at least "
        "10 fewer), the pass removes nothing and is refused; "
        "`cachemgr --once --accept-inventory` accepts it once. Needs "
        "[daemon] status_file.",
    ),
    cfg.BoolOpt(
        "share_storage_passes",
        default=True,
        mutable=True,
        help="On a shared instances_path, one pass per interval for all its "
        "hosts: a daemon skips its pass when another host completed one "
        "less than manager_interval seconds ago (recorded in "
        "instances_path/cachemgr-storage.json) or is passing now (it holds "
        "the remover lock), and registers itself for the passing host to "
        "list its instances. false: every host passes on its own timer. "
        "cachemgr --once always passes.",
    ),
    cfg.IntOpt(
        "scan_concurrency",
        default=32,
        min=1,
        max=256,
        mutable=True,
        help="How many of a pass's storage reads (lstats of the cache dir, "
        "listings of the instance dirs, qcow2 header reads) may wait at "
        "once. On network storage (NFS, CephFS, GPFS) each read is a round "
        "trip: more in flight hide more of its latency, but load the "
        "storage server more at the start of every pass. 1 reads one at a "
        "time. Reads that answer at once (a local disk) are made one at a "
        "time whatever this says; the decisions are the same either way.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(image_cache_group)
    conf.register_opts(image_cache_opts, group=image_cache_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {image_cache_group: image_cache_opts}
