"""Seed nova's cell database with the scenario's instances, using nova's
own objects (Instance.create, BlockDeviceMapping.create, Instance.destroy).

Run with the nova virtualenv's Python, after ``nova-manage db sync``::

    $VENV/bin/python tests/real_nova/seed_nova_db.py --config-file nova.conf

It refuses a database that already has instances: setup_conductor.sh makes
a new one each time. It prints the seeded rows (id, uuid, host, fate) as
JSON.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenario  # stdlib only, shared with the test
from nova import config, context, objects
from nova.db.main import api as db

PROJECT = "3f0e6c2a9b8d4e7f8a1b2c3d4e5f6a7b"
USER = "8c7b6a5f4e3d4c2b9a1f0e9d8c7b6a5f"


def main(argv: list[str]) -> int:
    config.parse_args(["seed_nova_db", *argv], init_rpc=False)
    objects.register_all()
    ctx = context.get_admin_context()
    if db.instance_get_all(ctx):
        print(
            "the cell database already has instances; make a new one", file=sys.stderr
        )
        return 1
    base = datetime.datetime.fromisoformat(scenario.CREATED_AT_BASE).replace(
        tzinfo=datetime.UTC
    )
    seeded = []
    for spec in scenario.INSTANCES:
        instance = objects.Instance(
            ctx,
            uuid=spec.uuid,
            host=spec.host,
            node=spec.host,
            compute_id=1,
            launched_on=spec.host,
            image_ref=spec.image_ref,
            kernel_id=spec.kernel_id,
            ramdisk_id=spec.ramdisk_id,
            vm_state=spec.vm_state,
            task_state=spec.task_state,
            power_state=1,
            os_type=spec.os_type,
            project_id=PROJECT,
            user_id=USER,
            display_name=f"vm-{spec.uuid[:8]}",
            display_description=spec.note,
            memory_mb=512,
            vcpus=1,
            root_gb=1,
            ephemeral_gb=0,
            architecture="x86_64",
            availability_zone="nova",
            root_device_name="/dev/vda",
            created_at=base + datetime.timedelta(hours=spec.created_hours),
        )
        instance.create()
        for fields in spec.bdms:
            objects.BlockDeviceMapping(
                ctx, instance_uuid=instance.uuid, **fields
            ).create()
        if spec.vm_state == "soft-delete":
            # What Instance.soft_delete leaves: deleted 0, deleted_at set.
            instance.deleted_at = base
            instance.save()
        row = {"id": instance.id, "uuid": spec.uuid, "host": spec.host}
        if spec.fate == "destroyed":
            instance.destroy()
        seeded.append({**row, "fate": spec.fate})
    print(json.dumps(seeded, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
