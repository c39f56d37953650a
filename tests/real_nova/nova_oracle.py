"""What nova-compute's own image cache manager would decide, asked of the
real nova-conductor.

Run with the nova virtualenv's Python::

    $VENV/bin/python tests/real_nova/nova_oracle.py --config-file oracle.conf \
        compute-01 compute-02

``oracle.conf`` has ``[DEFAULT] host`` (this host), ``transport_url`` and
``control_exchange``. As nova/cmd/compute.py, nova's objects go through the
conductor (``NovaObject.indirection_api = ConductorAPI()``); as
``ComputeManager._run_image_cache_manager_pass``, it lists the storage
hosts' instances with ``InstanceList.get_by_filters`` (one call, no
paging) and hands them to nova's ``ImageCacheManager._list_running_instances``.
It prints the result as JSON, with the image ids' base file names.
"""

from __future__ import annotations

import hashlib
import json
import sys

import nova.privsep.fs  # noqa: F401  (imagecache uses it; the driver imports it)
from nova import config, context, objects
from nova.conductor import rpcapi as conductor_rpcapi
from nova.objects import base as objects_base
from nova.virt import imagecache


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    options, hosts = argv[:split], argv[split + 1 :]
    config.parse_args(["nova_oracle", *options], configure_db=False)
    objects.register_all()
    objects_base.NovaObject.indirection_api = conductor_rpcapi.ConductorAPI()
    ctx = context.get_admin_context()
    filters = {"deleted": False, "soft_deleted": True, "host": hosts}
    instances = objects.InstanceList.get_by_filters(
        ctx, filters, expected_attrs=[], use_slave=True
    )
    found = imagecache.ImageCacheManager()._list_running_instances(ctx, instances)
    used = {
        ref: {
            "local": local,
            "remote": remote,
            "instances": sorted(names),
            "base_file": hashlib.sha1(ref.encode("utf-8")).hexdigest(),
        }
        for ref, (local, remote, names) in found["used_images"].items()
    }
    result = {
        "order": [[i.id, i.uuid] for i in instances],
        "instance_names": sorted(found["instance_names"]),
        "used_images": used,
        "used_swap_images": sorted(found["used_swap_images"]),
        "used_ephemeral_images": sorted(found["used_ephemeral_images"]),
    }
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
