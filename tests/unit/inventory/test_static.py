"""Tests for cachemgr.inventory.static, from real JSON files."""

from __future__ import annotations

import json
import os
import pathlib
import re

import pytest
from oslo_config import cfg

from cachemgr.conf import register_opts
from cachemgr.exceptions import (
    ConfigError,
    InventoryUnavailable,
    InventoryUntrustworthy,
)
from cachemgr.inventory import nova_objects
from cachemgr.inventory.base import load_inventory
from cachemgr.inventory.model import BlockDevice, Instance
from cachemgr.inventory.static import StaticInventory
from tests.support.fixtures import nova_fixture

UUID_1 = "11111111-1111-4111-8111-111111111111"
UUID_2 = "22222222-2222-4222-8222-222222222222"
TEMPLATE = "instance-%08x"

# The example of DESIGN 1.6, with two instances.
DESIGN_EXAMPLE = {
    "instances": [
        {
            "uuid": UUID_1,
            "id": 42,
            "host": "cmp1",
            "image_ref": "img-1",
            "kernel_id": "",
            "ramdisk_id": "",
            "vm_state": "active",
            "task_state": None,
            "os_type": None,
            "block_device_mapping": [
                {
                    "source_type": "blank",
                    "destination_type": "local",
                    "guest_format": "swap",
                    "volume_size": 512,
                    "boot_index": -1,
                }
            ],
        },
        {
            "uuid": UUID_2,
            "name": "named-vm",
            "host": "cmp2",
            "image_ref": "img-2",
            "vm_state": "resized",
            "block_device_mapping": [],
        },
    ]
}


def write_json(path: pathlib.Path, document: object) -> pathlib.Path:
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def list_file(path: pathlib.Path) -> tuple[Instance, ...]:
    return StaticInventory(str(path), TEMPLATE).list_instances()


def make_conf(**inventory: object) -> cfg.ConfigOpts:
    """A real ConfigOpts with cachemgr's options, parsed from no files."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf([], default_config_files=[])
    for name, value in inventory.items():
        conf.set_override(name, value, group="inventory")
    return conf


class TestFromConf:
    def test_static_path(self, tmp_path: pathlib.Path) -> None:
        """The driver reads the file named by [inventory] static_path."""
        path = write_json(tmp_path / "instances.json", DESIGN_EXAMPLE)
        inventory = StaticInventory.from_conf(make_conf(static_path=str(path)))
        assert (inventory.path, inventory.name_template) == (str(path), TEMPLATE)
        assert len(inventory.list_instances()) == 2

    def test_name_template_option(self, tmp_path: pathlib.Path) -> None:
        """[DEFAULT] instance_name_template names instances without a name."""
        conf = make_conf(static_path=str(tmp_path / "x.json"))
        conf.set_override("instance_name_template", "vm-%d")
        assert StaticInventory.from_conf(conf).name_template == "vm-%d"

    @pytest.mark.parametrize("value", [None, ""])
    def test_static_path_required(self, value: str | None) -> None:
        """An unset or empty static_path is a configuration error."""
        expected = (
            "[inventory] static_path is required when [inventory] driver = static"
        )
        with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
            StaticInventory.from_conf(make_conf(static_path=value))

    def test_loaded_by_entry_point(self, tmp_path: pathlib.Path) -> None:
        """driver = static finds this class through the entry point."""
        path = write_json(tmp_path / "instances.json", DESIGN_EXAMPLE)
        conf = make_conf(driver="static", static_path=str(path))
        assert isinstance(load_inventory(conf), StaticInventory)


class TestListInstances:
    def test_design_example(self, tmp_path: pathlib.Path) -> None:
        """The documented format gives the instances with their block devices."""
        path = write_json(tmp_path / "instances.json", DESIGN_EXAMPLE)
        assert list_file(path) == (
            Instance(
                uuid=UUID_1,
                name="instance-0000002a",
                host="cmp1",
                id=42,
                image_ref="img-1",
                kernel_id="",
                ramdisk_id="",
                vm_state="active",
                block_devices=(
                    BlockDevice(
                        source_type="blank",
                        destination_type="local",
                        guest_format="swap",
                        volume_size=512,
                        boot_index=-1,
                    ),
                ),
            ),
            Instance(
                uuid=UUID_2,
                name="named-vm",
                host="cmp2",
                image_ref="img-2",
                vm_state="resized",
            ),
        )

    def test_full_nova_records(self, tmp_path: pathlib.Path) -> None:
        """A dump of full nova records reads as the conductor's reply decodes."""
        items = nova_fixture("instance_list.json")["nova_object.data"]["objects"]
        bdms = nova_fixture("bdm_list_by_uuid.json")["nova_object.data"]["objects"]
        records = []
        for item in items:
            record = dict(item["nova_object.data"])
            record["block_device_mapping"] = [
                bdm["nova_object.data"]
                for bdm in bdms
                if bdm["nova_object.data"]["instance_uuid"] == record["uuid"]
            ]
            records.append(record)
        path = write_json(tmp_path / "instances.json", {"instances": records})
        decoded = nova_objects.decode_instance_list(
            nova_fixture("instance_list.json"),
            name_template=TEMPLATE,
            block_devices=nova_objects.decode_block_device_mappings(
                nova_fixture("bdm_list_by_uuid.json")
            ),
        )
        assert list_file(path) == tuple(decoded)

    def test_empty_list(self, tmp_path: pathlib.Path) -> None:
        """An empty list is read as no instances (the pass judges it)."""
        assert list_file(write_json(tmp_path / "i.json", {"instances": []})) == ()

    @pytest.mark.parametrize("mapping", [None, "absent"])
    def test_without_block_devices(
        self, tmp_path: pathlib.Path, mapping: object
    ) -> None:
        """An absent or null block_device_mapping means no block devices."""
        record: dict[str, object] = {"uuid": UUID_1, "id": 1}
        if mapping != "absent":
            record["block_device_mapping"] = mapping
        path = write_json(tmp_path / "i.json", {"instances": [record]})
        assert list_file(path)[0].block_devices == ()

    def test_other_top_level_keys_ignored(self, tmp_path: pathlib.Path) -> None:
        """Keys next to ``instances`` are ignored."""
        document = {"generated_at": "now", "instances": [{"uuid": UUID_1, "id": 1}]}
        assert len(list_file(write_json(tmp_path / "i.json", document))) == 1

    def test_file_read_on_each_call(self, tmp_path: pathlib.Path) -> None:
        """A rewritten file is seen by the next call."""
        path = write_json(tmp_path / "i.json", {"instances": []})
        inventory = StaticInventory(str(path), TEMPLATE)
        assert inventory.list_instances() == ()
        write_json(path, DESIGN_EXAMPLE)
        assert len(inventory.list_instances()) == 2

    def test_missing_file(self, tmp_path: pathlib.Path) -> None:
        """A missing file makes the inventory unavailable, naming path and error."""
        path = tmp_path / "missing.json"
        with pytest.raises(
            InventoryUnavailable,
            match=re.escape(f"{path}: cannot read") + ".*No such file or directory$",
        ):
            list_file(path)

    def test_directory(self, tmp_path: pathlib.Path) -> None:
        """A directory makes the inventory unavailable."""
        with pytest.raises(
            InventoryUnavailable,
            match=re.escape(f"{tmp_path}: cannot read") + ".*Is a directory$",
        ):
            list_file(tmp_path)

    def test_path_through_a_file(self, tmp_path: pathlib.Path) -> None:
        """A path whose parent is a regular file makes it unavailable."""
        parent = tmp_path / "file"
        parent.write_text("", encoding="utf-8")
        path = parent / "instances.json"
        with pytest.raises(
            InventoryUnavailable,
            match=re.escape(f"{path}: cannot read") + ".*Not a directory$",
        ):
            list_file(path)

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
    def test_unreadable_file(self, tmp_path: pathlib.Path) -> None:
        """A file without read permission makes the inventory unavailable."""
        path = write_json(tmp_path / "i.json", DESIGN_EXAMPLE)
        path.chmod(0)
        with pytest.raises(
            InventoryUnavailable,
            match=re.escape(f"{path}: cannot read") + ".*Permission denied$",
        ):
            list_file(path)

    def test_invalid_json(self, tmp_path: pathlib.Path) -> None:
        """Invalid JSON is untrustworthy, with its line and column."""
        path = tmp_path / "i.json"
        path.write_text('{\n  "instances": [\n    {"uuid": }\n', encoding="utf-8")
        expected = f"{path}: not valid JSON: Expecting value at line 3 column 14"
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            list_file(path)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("[" * 100_000 + "]" * 100_000, "JSON nested too deep"),
            ('{"instances": [{"uuid": "u", "id": NaN}]}', "NaN is not a JSON number"),
            (
                '{"instances": [{"uuid": "u", "id": ' + "7" * 5000 + "}]}",
                "field 'id' must be an integer or null, got 777777777777… "
                "(5000 digits, out of range)",
            ),
        ],
        ids=["deep", "nan", "long-integer"],
    )
    def test_hostile_json_is_refused(
        self, tmp_path: pathlib.Path, text: str, expected: str
    ) -> None:
        """JSON that would crash a parser or a later step is refused by name."""
        path = tmp_path / "i.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)) as info:
            list_file(path)
        assert str(info.value).startswith(f"{path}: ")

    def test_more_instances_than_allowed(self, tmp_path: pathlib.Path) -> None:
        """A file listing more than max_instances is refused, naming the option."""
        entries = [{"uuid": f"u{i}", "id": i} for i in range(3)]
        path = write_json(tmp_path / "i.json", {"instances": entries})
        with pytest.raises(
            InventoryUntrustworthy, match=r"\[inventory\] max_instances = 2$"
        ):
            StaticInventory(
                str(path), "instance-%08x", max_instances=2
            ).list_instances()
        assert len(StaticInventory(str(path), "i-%x", max_instances=3).list_instances())

    def test_empty_file(self, tmp_path: pathlib.Path) -> None:
        """An empty file is not valid JSON."""
        path = tmp_path / "i.json"
        path.write_text("", encoding="utf-8")
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(f"{path}: not valid JSON: Expecting value at line 1"),
        ):
            list_file(path)

    def test_not_utf8(self, tmp_path: pathlib.Path) -> None:
        """Bytes that are not UTF-8 are untrustworthy."""
        path = tmp_path / "i.json"
        path.write_bytes(b'{"instances": ["\xff"]}')
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(f"{path}: not valid UTF-8 at byte 16"),
        ):
            list_file(path)

    def test_repeated_key(self, tmp_path: pathlib.Path) -> None:
        """A key given twice in one object is refused, not silently overridden."""
        path = tmp_path / "i.json"
        text = f'{{"instances": [{{"uuid": "{UUID_1}", "id": 1}}], "instances": []}}'
        path.write_text(text, encoding="utf-8")
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(f"{path}: key 'instances' appears twice in one object"),
        ):
            list_file(path)

    def test_top_level_not_an_object(self, tmp_path: pathlib.Path) -> None:
        """A top-level list is refused."""
        path = write_json(tmp_path / "i.json", [{"uuid": UUID_1}])
        expected = f'{path}: the top level must be an object {{"instances": [...]}}'
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            list_file(path)

    def test_instances_missing(self, tmp_path: pathlib.Path) -> None:
        """A file without ``instances`` is refused."""
        path = write_json(tmp_path / "i.json", {"instance": []})
        expected = f"{path}: field 'instances' is missing"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            list_file(path)

    @pytest.mark.parametrize("value", [None, {}, "x"])
    def test_instances_not_a_list(self, tmp_path: pathlib.Path, value: object) -> None:
        """``instances`` that is not a list is refused, quoting it."""
        path = write_json(tmp_path / "i.json", {"instances": value})
        expected = (
            f"{path}: field 'instances' must be a list of instance objects, "
            f"got {value!r}"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            list_file(path)

    def test_instance_not_an_object(self, tmp_path: pathlib.Path) -> None:
        """An instance that is not an object is refused, naming its index."""
        document = {"instances": [{"uuid": UUID_1, "id": 1}, "x"]}
        path = write_json(tmp_path / "i.json", document)
        expected = f"{path}: instances[1]: must be an object of nova fields, got 'x'"
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            list_file(path)

    def test_bad_instance_field(self, tmp_path: pathlib.Path) -> None:
        """A bad instance field names the index, the uuid and the field."""
        document = {
            "instances": [{"uuid": UUID_1, "id": 1}, {"uuid": UUID_2, "id": "2"}]
        }
        path = write_json(tmp_path / "i.json", document)
        expected = (
            f"{path}: instances[1] (uuid {UUID_2}): field 'id' must be an integer "
            "or null, got '2'"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            list_file(path)

    def test_missing_uuid(self, tmp_path: pathlib.Path) -> None:
        """An instance without a uuid is refused, naming its index."""
        path = write_json(tmp_path / "i.json", {"instances": [{"id": 1}]})
        expected = f"{path}: instances[0]: field 'uuid' is missing"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            list_file(path)

    def test_bad_uuid_reported_before_block_devices(
        self, tmp_path: pathlib.Path
    ) -> None:
        """The instance's own fields are checked before its block devices."""
        record = {"uuid": 7, "id": 1, "block_device_mapping": "x"}
        path = write_json(tmp_path / "i.json", {"instances": [record]})
        expected = f"{path}: instances[0]: field 'uuid' must be a non-empty string"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            list_file(path)

    def test_block_device_mapping_not_a_list(self, tmp_path: pathlib.Path) -> None:
        """A block_device_mapping that is not a list is refused."""
        record = {"uuid": UUID_1, "id": 1, "block_device_mapping": {"a": 1}}
        path = write_json(tmp_path / "i.json", {"instances": [record]})
        expected = (
            f"{path}: instances[0] (uuid {UUID_1}): field 'block_device_mapping' "
            "must be a list of objects, got {'a': 1}"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            list_file(path)

    def test_block_device_not_an_object(self, tmp_path: pathlib.Path) -> None:
        """A block device mapping that is not an object is refused."""
        record = {"uuid": UUID_1, "id": 1, "block_device_mapping": [{}, 3]}
        path = write_json(tmp_path / "i.json", {"instances": [record]})
        expected = (
            f"{path}: instances[0] (uuid {UUID_1}): block_device_mapping[1]: "
            "must be an object of nova fields, got 3"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            list_file(path)

    def test_bad_block_device_field(self, tmp_path: pathlib.Path) -> None:
        """A bad block device field names the instance, the mapping and the field."""
        mapping = {"source_type": "blank", "volume_size": "512"}
        record = {"uuid": UUID_1, "id": 1, "block_device_mapping": [mapping]}
        path = write_json(tmp_path / "i.json", {"instances": [record]})
        expected = (
            f"{path}: instances[0] (uuid {UUID_1}): block_device_mapping[0]: "
            "field 'volume_size' must be an integer or null, got '512'"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            list_file(path)

    def test_duplicate_uuid(self, tmp_path: pathlib.Path) -> None:
        """An instance listed twice is refused, naming both indexes."""
        document = {
            "instances": [
                {"uuid": UUID_1, "id": 1},
                {"uuid": UUID_2, "id": 2},
                {"uuid": UUID_1, "id": 3},
            ]
        }
        path = write_json(tmp_path / "i.json", document)
        expected = (
            f"{path}: instances[2] (uuid {UUID_1}): field 'uuid' is the same as "
            "in instances[0]"
        )
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            list_file(path)
