"""Tests for cachemgr.inventory.fields."""

from __future__ import annotations

import re

import pytest

from cachemgr.exceptions import InventoryUntrustworthy
from cachemgr.inventory.fields import (
    block_device_from_fields,
    instance_from_fields,
    show,
    where_with_uuid,
)
from cachemgr.inventory.model import BlockDevice, Instance

UUID = "11111111-1111-4111-8111-111111111111"
WHERE = "/x.json: instances[3]"
TEMPLATE = "instance-%08x"


def make_fields(**overrides: object) -> dict[str, object]:
    """A complete set of instance fields, as nova would send them."""
    fields: dict[str, object] = {
        "uuid": UUID,
        "id": 1,
        "host": "compute-01",
        "image_ref": "0c3e2b52-6a2d-4e0e-9f1b-6f4f7a1d2c01",
        "kernel_id": None,
        "ramdisk_id": None,
        "vm_state": "active",
        "task_state": None,
        "os_type": "linux",
    }
    fields.update(overrides)
    return fields


def build(fields: dict[str, object], devices: tuple[BlockDevice, ...] = ()) -> Instance:
    return instance_from_fields(fields, devices, name_template=TEMPLATE, where=WHERE)


class TestInstanceFromFields:
    def test_complete_fields(self) -> None:
        """Every field cachemgr reads is copied into the record."""
        fields = make_fields(kernel_id="k", ramdisk_id="r", task_state="resize_prep")
        assert build(fields) == Instance(
            uuid=UUID,
            name="instance-00000001",
            host="compute-01",
            id=1,
            image_ref="0c3e2b52-6a2d-4e0e-9f1b-6f4f7a1d2c01",
            kernel_id="k",
            ramdisk_id="r",
            vm_state="active",
            task_state="resize_prep",
            os_type="linux",
        )

    def test_only_uuid_and_id(self) -> None:
        """Absent optional fields become None."""
        instance = build({"uuid": UUID, "id": 7})
        assert instance == Instance(uuid=UUID, name="instance-00000007", id=7)

    def test_unknown_fields_are_ignored(self) -> None:
        """A full nova record with fields cachemgr does not read is accepted."""
        fields = make_fields(display_name="vm", memory_mb=512, metadata={"a": 1})
        assert build(fields) == build(make_fields())

    def test_name_from_template_and_id(self) -> None:
        """Without a name, the template is filled with the id, as nova does."""
        assert build(make_fields(id=0x1A2B)).name == "instance-00001a2b"

    def test_null_name_is_computed(self) -> None:
        """A null name is computed like an absent one."""
        assert build(make_fields(name=None, id=2)).name == "instance-00000002"

    def test_template_naming_fields(self) -> None:
        """A template such as ``%(uuid)s`` is filled from the fields."""
        instance = instance_from_fields(
            make_fields(), (), name_template="vm-%(uuid)s", where=WHERE
        )
        assert instance.name == f"vm-{UUID}"

    def test_given_name_wins(self) -> None:
        """A name in the fields is used as is, even with an id."""
        assert build(make_fields(name="custom", id=5)).name == "custom"

    def test_name_without_id(self) -> None:
        """An id is not needed when the name is given."""
        fields = make_fields(name="custom")
        del fields["id"]
        instance = build(fields)
        assert (instance.name, instance.id) == ("custom", None)

    def test_null_id_with_name(self) -> None:
        """A null id is accepted when the name is given."""
        assert build(make_fields(name="custom", id=None)).id is None

    def test_empty_image_ref_is_kept(self) -> None:
        """Boot from volume's empty image_ref stays an empty string, not None."""
        assert build(make_fields(image_ref="")).image_ref == ""

    def test_block_devices_are_attached(self) -> None:
        """The given block devices become the record's tuple."""
        devices = [BlockDevice(source_type="blank", volume_size=1)]
        instance = instance_from_fields(
            make_fields(), devices, name_template=TEMPLATE, where=WHERE
        )
        assert instance.block_devices == tuple(devices)

    def test_message_example(self) -> None:
        """A bad id is reported with where, uuid, field, expectation and value."""
        expected = (
            f"{WHERE} (uuid {UUID}): field 'id' must be an integer or null, got 'abc'"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            build(make_fields(id="abc"))

    def test_uuid_missing(self) -> None:
        """An instance without a uuid is refused."""
        fields = make_fields()
        del fields["uuid"]
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(f"{WHERE}: field 'uuid' is missing"),
        ):
            build(fields)

    @pytest.mark.parametrize("uuid", [None, "", 5, ["x"]])
    def test_uuid_not_a_non_empty_string(self, uuid: object) -> None:
        """A uuid that is not a non-empty string is refused, quoting it."""
        expected = f"{WHERE}: field 'uuid' must be a non-empty string, got {uuid!r}"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            build(make_fields(uuid=uuid))

    @pytest.mark.parametrize("value", [True, False, 1.0, "1", [1]])
    def test_id_not_an_integer(self, value: object) -> None:
        """A bool, float or string id is refused."""
        expected = f"field 'id' must be an integer or null, got {value!r}"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            build(make_fields(id=value))

    @pytest.mark.parametrize("key", ["uuid", "name", "image_ref", "host"])
    def test_lone_surrogate_is_refused(self, key: str) -> None:
        """Text JSON can carry but UTF-8 cannot (``"\\ud800"``) is refused by field."""
        expected = f"field {key!r} must be valid text, got 'a\\ud800'"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            build(make_fields(**{key: "a\ud800"}))

    def test_non_ascii_text_is_accepted(self) -> None:
        """Valid non-ASCII text is not mistaken for invalid text."""
        assert build(make_fields(host="höst-é")).host == "höst-é"

    @pytest.mark.parametrize("value", [5, "", ["a"]])
    def test_bad_name(self, value: object) -> None:
        """A name that is not a non-empty string is refused."""
        expected = f"field 'name' must be a non-empty string, got {value!r}"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            build(make_fields(name=value))

    def test_neither_name_nor_id(self) -> None:
        """Without a name the id is required, to compute the name."""
        fields = make_fields()
        del fields["id"]
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(
                f"{WHERE} (uuid {UUID}): field 'name' is missing and so is field 'id'"
            ),
        ):
            build(fields)

    @pytest.mark.parametrize(
        "key",
        [
            "host",
            "image_ref",
            "kernel_id",
            "ramdisk_id",
            "vm_state",
            "task_state",
            "os_type",
        ],
    )
    def test_string_field_of_wrong_type(self, key: str) -> None:
        """Each nullable string field refuses a number."""
        expected = f"(uuid {UUID}): field {key!r} must be a string or null, got 42"
        with pytest.raises(InventoryUntrustworthy, match=re.escape(expected)):
            build(make_fields(**{key: 42}))

    @pytest.mark.parametrize("key", ["volume_size", "boot_index"])
    @pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 10**20])
    def test_integer_out_of_nova_range(self, key: str, value: int) -> None:
        """An integer no 32-bit SQL column of nova could hold is refused."""
        expected = (
            f"{WHERE}: field {key!r} must be an integer from -2147483648 to "
            f"2147483647, got {value}"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            block_device_from_fields({key: value}, where=WHERE)

    @pytest.mark.parametrize("value", [2**31 - 1, -(2**31)])
    def test_integer_at_nova_range(self, value: int) -> None:
        """The 32-bit bounds themselves are accepted."""
        assert block_device_from_fields({"volume_size": value}, where=WHERE)

    def test_not_a_mapping(self) -> None:
        """Something that is not an object of fields is refused."""
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(f"{WHERE}: must be an object of nova fields, got ['x']"),
        ):
            instance_from_fields(["x"], (), name_template=TEMPLATE, where=WHERE)  # type: ignore[arg-type]

    def test_long_value_is_cut(self) -> None:
        """A long bad value is quoted only in part."""
        with pytest.raises(InventoryUntrustworthy, match=r"got 'xxxx.*…$") as info:
            build(make_fields(id="x" * 500))
        assert len(str(info.value)) < 200


class TestBlockDeviceFromFields:
    def test_complete_fields(self) -> None:
        """Every field cachemgr reads is copied into the record."""
        fields = {
            "source_type": "blank",
            "destination_type": "local",
            "guest_format": "swap",
            "volume_size": 512,
            "boot_index": -1,
            "no_device": False,
        }
        assert block_device_from_fields(fields, where=WHERE) == BlockDevice(
            source_type="blank",
            destination_type="local",
            guest_format="swap",
            volume_size=512,
            boot_index=-1,
            no_device=False,
        )

    def test_empty(self) -> None:
        """Absent fields become None and no_device False."""
        assert block_device_from_fields({}, where=WHERE) == BlockDevice()

    @pytest.mark.parametrize(("value", "expected"), [(None, False), (True, True)])
    def test_no_device(self, value: object, expected: bool) -> None:
        """A null no_device means False."""
        device = block_device_from_fields({"no_device": value}, where=WHERE)
        assert device.no_device is expected

    def test_unknown_fields_are_ignored(self) -> None:
        """A full nova BDM with fields cachemgr does not read is accepted."""
        fields = {"device_name": "/dev/vda", "connection_info": None, "id": 3}
        assert block_device_from_fields(fields, where=WHERE) == BlockDevice()

    @pytest.mark.parametrize("key", ["source_type", "destination_type", "guest_format"])
    def test_string_field_of_wrong_type(self, key: str) -> None:
        """Each nullable string field refuses a number."""
        expected = f"{WHERE}: field {key!r} must be a string or null, got 1"
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            block_device_from_fields({key: 1}, where=WHERE)

    @pytest.mark.parametrize("key", ["volume_size", "boot_index"])
    @pytest.mark.parametrize("value", [True, "512", 1.5])
    def test_integer_field_of_wrong_type(self, key: str, value: object) -> None:
        """Each nullable integer field refuses a bool, a string and a float."""
        expected = f"{WHERE}: field {key!r} must be an integer or null, got {value!r}"
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            block_device_from_fields({key: value}, where=WHERE)

    @pytest.mark.parametrize("value", [0, 1, "true"])
    def test_no_device_not_a_bool(self, value: object) -> None:
        """no_device refuses integers and strings."""
        expected = (
            f"{WHERE}: field 'no_device' must be true, false or null, got {value!r}"
        )
        with pytest.raises(InventoryUntrustworthy, match=f"^{re.escape(expected)}$"):
            block_device_from_fields({"no_device": value}, where=WHERE)

    def test_not_a_mapping(self) -> None:
        """Something that is not an object of fields is refused."""
        with pytest.raises(
            InventoryUntrustworthy,
            match=re.escape(f"{WHERE}: must be an object of nova fields, got None"),
        ):
            block_device_from_fields(None, where=WHERE)  # type: ignore[arg-type]


class TestShow:
    def test_short_value(self) -> None:
        """A short value is its repr."""
        assert show("abc") == "'abc'"

    def test_long_value(self) -> None:
        """A long value is cut to 60 characters ending in an ellipsis."""
        text = show("x" * 100)
        assert (len(text), text[:2], text[-1]) == (60, "'x", "…")


class TestWhereWithUuid:
    def test_appends_uuid(self) -> None:
        """The uuid follows the location in parentheses."""
        assert where_with_uuid(WHERE, UUID) == f"{WHERE} (uuid {UUID})"

    def test_long_uuid_is_cut(self) -> None:
        """A uuid too long for a log line is cut."""
        assert where_with_uuid("w", "u" * 100) == f"w (uuid {'u' * 59}…)"
