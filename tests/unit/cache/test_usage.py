"""Tests for cachemgr.cache.usage: nova's _list_running_instances, reproduced."""

from __future__ import annotations

import pytest

from cachemgr.cache import naming
from cachemgr.cache.usage import EphemeralNaming, Usage, used_names
from cachemgr.inventory.model import BlockDevice, Instance
from cachemgr.inventory.nova_objects import (
    decode_block_device_mappings,
    decode_instance_list,
)
from tests.support.fixtures import nova_fixture

HOST = "compute-01"
UUID = "11111111-1111-4111-8111-111111111111"
NAME = "instance-00000001"
VFAT = "0706d66"


def make_instance(**overrides: object) -> Instance:
    """An active instance on HOST with no image and no block devices."""
    values: dict[str, object] = {"uuid": UUID, "name": NAME, "host": HOST, "id": 1}
    values.update(overrides)
    return Instance(**values)  # type: ignore[arg-type]


def swap(size: int, **overrides: object) -> BlockDevice:
    values: dict[str, object] = {
        "source_type": "blank",
        "destination_type": "local",
        "guest_format": "swap",
        "volume_size": size,
        "boot_index": -1,
    }
    values.update(overrides)
    return BlockDevice(**values)  # type: ignore[arg-type]


def ephemeral(
    size: int, guest_format: str | None = None, **overrides: object
) -> BlockDevice:
    return swap(size, guest_format=guest_format, **overrides)


def usage_of(
    *instances: Instance, naming_options: EphemeralNaming | None = None
) -> Usage:
    return used_names(instances, naming_options or EphemeralNaming())


class TestUsedNames:
    def test_nova_fixture_reproduced(self) -> None:
        """The decoded fixture replies give exactly nova's own result."""
        expected = nova_fixture("imagecache_expected.json")
        instances = decode_instance_list(
            nova_fixture("instance_list.json"),
            name_template=expected["CONF.instance_name_template"],
            block_devices=decode_block_device_mappings(
                nova_fixture("bdm_list_by_uuid.json")
            ),
        )
        usage = used_names(
            instances,
            EphemeralNaming(
                mkfs_commands=naming.parse_virt_mkfs(expected["CONF.virt_mkfs"]),
                default_ephemeral_format=expected["CONF.default_ephemeral_format"],
            ),
        )
        assert usage.image_users == {
            use["libvirt_base_file"]: tuple(use["instance_names"])
            for use in expected["used_images"].values()
        }
        assert usage.other_names == set(
            expected["used_swap_images"] + expected["used_ephemeral_images"]
        )

    def test_nothing(self) -> None:
        """No instances use nothing."""
        assert usage_of() == Usage({}, frozenset())

    def test_image_kernel_and_ramdisk(self) -> None:
        """image_ref, kernel_id and ramdisk_id each make an image used."""
        instance = make_instance(image_ref="img", kernel_id="aki", ramdisk_id="ari")
        assert usage_of(instance).image_users == {
            naming.fingerprint(ref): (NAME,) for ref in ("img", "aki", "ari")
        }

    def test_empty_image_ref_counts(self) -> None:
        """Boot from volume's empty image_ref is used, as sha1('')."""
        usage = usage_of(make_instance(image_ref=""))
        assert usage.image_users == {
            "da39a3ee5e6b4b0d3255bfef95601890afd80709": (NAME,)
        }

    def test_null_image_fields_do_not_count(self) -> None:
        """Null image_ref, kernel_id and ramdisk_id use no image."""
        assert usage_of(make_instance()).image_users == {}

    def test_every_host_counts(self) -> None:
        """Instances of this host, of others and of none all use the image."""
        usage = usage_of(
            make_instance(uuid="a", name="a", image_ref="img"),
            make_instance(uuid="b", name="b", image_ref="img", host="compute-02"),
            make_instance(uuid="c", name="c", image_ref="img", host=None),
        )
        assert usage.image_users == {naming.fingerprint("img"): ("a", "b", "c")}

    def test_same_image_twice_in_one_instance(self) -> None:
        """An id in two image fields counts twice, as in nova."""
        usage = usage_of(make_instance(image_ref="img", kernel_id="img"))
        assert usage.image_users == {naming.fingerprint("img"): (NAME, NAME)}

    def test_first_swap_wins(self) -> None:
        """Only the first swap mapping names a swap file."""
        instance = make_instance(block_devices=(swap(512), swap(1024)))
        assert usage_of(instance).other_names == {"swap_512"}

    def test_no_device_skipped(self) -> None:
        """Mappings with no_device are skipped for swap and ephemeral."""
        devices = (
            swap(512, no_device=True),
            swap(1024),
            ephemeral(5, no_device=True),
            ephemeral(7),
        )
        usage = usage_of(make_instance(block_devices=devices))
        assert usage.other_names == {"swap_1024", f"ephemeral_7_{VFAT}"}

    @pytest.mark.parametrize(
        "device",
        [
            swap(512, source_type="image"),
            swap(512, source_type="volume"),
            swap(512, destination_type="volume"),
            swap(512, source_type=None),
        ],
    )
    def test_not_blank_local(self, device: BlockDevice) -> None:
        """Only blank local mappings make swap or ephemeral files."""
        usage = usage_of(make_instance(block_devices=(device,)))
        assert usage.other_names == frozenset()

    def test_swap_without_size(self) -> None:
        """A swap mapping without a size names swap_0."""
        instance = make_instance(block_devices=(swap(512, volume_size=None),))
        assert usage_of(instance).other_names == {"swap_0"}

    def test_first_ephemeral_wins(self) -> None:
        """Only the first ephemeral mapping names an ephemeral file."""
        instance = make_instance(block_devices=(swap(512), ephemeral(1), ephemeral(2)))
        assert usage_of(instance).other_names == {"swap_512", f"ephemeral_1_{VFAT}"}

    def test_guest_format_does_not_matter(self) -> None:
        """An ntfs guest format still gets the vfat extension by default."""
        instance = make_instance(
            os_type="windows", block_devices=(ephemeral(20, "ntfs"),)
        )
        assert usage_of(instance).other_names == {f"ephemeral_20_{VFAT}"}

    @pytest.mark.parametrize(
        ("os_type", "virt_mkfs", "default_format", "extension"),
        [
            (None, [], None, "0706d66"),
            ("linux", [], None, "0706d66"),
            ("windows", [], None, "0706d66"),
            ("linux", [], "ext4", "40d1d2c"),
            ("windows", [], "ext3", "66f137c"),
            (None, [], "ext2", "979f413"),
            (None, [], "xfs", "310201b"),
            (None, [], "ntfs", "68e98b8"),
            (
                "windows",
                ["windows=mkfs.ntfs --force --fast --label %(fs_label)s %(target)s"],
                "ext4",
                "dd18e1b",
            ),
            (
                "linux",
                ["windows=mkfs.ntfs --force --fast --label %(fs_label)s %(target)s"],
                None,
                "0706d66",
            ),
            (
                "linux",
                ["windows=mkfs.ntfs --force --fast --label %(fs_label)s %(target)s"],
                "ext4",
                "40d1d2c",
            ),
            ("windows", ["default=mkfs.xfs -f"], "ext4", "1d41032"),
            (
                "linux",
                [
                    "default=mkfs.xfs -f",
                    "linux=mkfs.ext4 -F -L %(fs_label)s %(target)s",
                ],
                None,
                "e3af977",
            ),
            ("linux", ["linux="], "xfs", "310201b"),
        ],
    )
    def test_ephemeral_extension(
        self,
        os_type: str | None,
        virt_mkfs: list[str],
        default_format: str | None,
        extension: str,
    ) -> None:
        """virt_mkfs and default_ephemeral_format decide the extension as in nova."""
        options = EphemeralNaming(
            mkfs_commands=naming.parse_virt_mkfs(virt_mkfs),
            default_ephemeral_format=default_format,
        )
        instance = make_instance(os_type=os_type, block_devices=(ephemeral(3),))
        usage = usage_of(instance, naming_options=options)
        assert usage.other_names == {f"ephemeral_3_{extension}"}
