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
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(image_cache_group)
    conf.register_opts(image_cache_opts, group=image_cache_group)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {image_cache_group: image_cache_opts}
