"""Tests for cachemgr.cache.naming: nova libvirt's cache file names."""

from __future__ import annotations

import re

import pytest

from cachemgr.cache import naming
from cachemgr.cache.naming import Kind

FP = "30fca66d6f4b0ccdb28b3fe22eec83a942d9f94d"


class TestFingerprint:
    @pytest.mark.parametrize(
        ("image_id", "expected"),
        [
            ("0c3e2b52-6a2d-4e0e-9f1b-6f4f7a1d2c01", FP),
            ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (
                "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c04",
                "8a9138e828dd93b4c8d991d6f7cfc52ec7ca066f",
            ),
            ("é", "bf15be717ac1b080b4f1c456692825891ff5073d"),
        ],
    )
    def test_sha1_of_utf8(self, image_id: str, expected: str) -> None:
        """The fingerprint is the sha1 hex digest of the UTF-8 image id."""
        assert naming.fingerprint(image_id) == expected

    def test_is_an_original_name(self) -> None:
        """Every fingerprint classifies as an original."""
        assert naming.classify(naming.fingerprint("any")) is Kind.ORIGINAL


class TestClassify:
    @pytest.mark.parametrize(
        ("name", "kind"),
        [
            (FP, Kind.ORIGINAL),
            (f"{FP}_10", Kind.RESIZED),
            (f"{FP}_0", Kind.RESIZED),
            (f"{FP}_sm", Kind.RESIZED),
            ("swap_512", Kind.SWAP),
            ("swap_0", Kind.SWAP),
            ("ephemeral_1_0706d66", Kind.EPHEMERAL),
            ("ephemeral_20_40d1d2c", Kind.EPHEMERAL),
        ],
    )
    def test_cache_names(self, name: str, kind: Kind) -> None:
        """Each of the four shapes is recognized."""
        assert naming.classify(name) is kind

    @pytest.mark.parametrize(
        "name",
        [
            FP[:39],
            FP + "0",
            FP.upper(),
            FP[:39] + "g",
            f"{FP}.part",
            f"{FP}.info",
            f"{FP}_",
            f"{FP}_SM",
            f"{FP}_sm1",
            f"{FP}_10.part",
            f"{FP}_-1",
            f"{FP}\n",
            f" {FP}",
            "swap_",
            "swap",
            "swap_x",
            "swap_512a",
            "swap_512.part",
            "swap_١٢",
            "SWAP_512",
            "ephemeral_1_0706d6",
            "ephemeral_1_0706d661",
            "ephemeral__0706d66",
            "ephemeral_1_0706D66",
            "ephemeral_1_0706d6g",
            "ephemeral_1",
            "",
            ".",
            "locks",
            "disk",
        ],
    )
    def test_near_misses(self, name: str) -> None:
        """Names that only look like cache names are not ours."""
        assert naming.classify(name) is None


class TestSwapName:
    def test_size_in_mb(self) -> None:
        """The swap file is named after its size."""
        assert naming.swap_name(512) == "swap_512"


class TestEphemeralName:
    def test_size_and_extension(self) -> None:
        """The ephemeral file is named after its size and extension."""
        assert naming.ephemeral_name(20, "0706d66") == "ephemeral_20_0706d66"


class TestEphemeralExtension:
    @pytest.mark.parametrize(
        ("fs", "extension"),
        [
            ("ext4", "40d1d2c"),
            ("ext3", "66f137c"),
            ("ext2", "979f413"),
            ("xfs", "310201b"),
            ("ntfs", "68e98b8"),
            ("vfat", "0706d66"),
        ],
    )
    def test_reference_values(self, fs: str, extension: str) -> None:
        """default_ephemeral_format gives the fixtures README's values."""
        assert naming.ephemeral_extension(None, {}, fs) == extension

    @pytest.mark.parametrize("os_type", [None, "linux", "windows", "other"])
    def test_vfat_without_options(self, os_type: str | None) -> None:
        """Without virt_mkfs or a default format every os_type gets vfat."""
        assert naming.ephemeral_extension(os_type, {}, None) == "0706d66"

    def test_os_type_command(self) -> None:
        """An os_type with its own mkfs command hashes that command."""
        commands = {"linux": "mkfs.ext4 -F -L %(fs_label)s %(target)s"}
        assert naming.ephemeral_extension("linux", commands, "xfs") == "e3af977"

    def test_default_command(self) -> None:
        """An os_type without a command uses the default one."""
        commands = {"default": "mkfs.xfs -f", "linux": "x"}
        assert naming.ephemeral_extension("windows", commands, "ext4") == "1d41032"


class TestParseVirtMkfs:
    def test_entries(self) -> None:
        """Entries map os_type to the command after the first '='."""
        entries = ["default=mkfs.ext4 -E opt=1", "windows=mkfs.ntfs --fast"]
        assert naming.parse_virt_mkfs(entries) == {
            "default": "mkfs.ext4 -E opt=1",
            "windows": "mkfs.ntfs --fast",
        }

    def test_empty(self) -> None:
        """No entries give no commands."""
        assert naming.parse_virt_mkfs([]) == {}

    def test_last_entry_wins(self) -> None:
        """A repeated os_type keeps the last command, as nova does."""
        assert naming.parse_virt_mkfs(["linux=a", "linux=b"]) == {"linux": "b"}

    def test_empty_os_type_skipped(self) -> None:
        """An entry without an os_type is ignored, as nova does."""
        assert naming.parse_virt_mkfs(["=mkfs.ext4", "linux="]) == {"linux": ""}

    @pytest.mark.parametrize("entry", ["mkfs.ext4", "", "linux"])
    def test_bad_entry(self, entry: str) -> None:
        """An entry without '=' is refused, quoting it."""
        with pytest.raises(
            ValueError,
            match=f"^{re.escape(repr(entry))} is not of the form os_type=mkfs command$",
        ):
            naming.parse_virt_mkfs(["linux=mkfs.ext4", entry])
