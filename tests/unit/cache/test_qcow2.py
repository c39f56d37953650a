"""Tests for cachemgr.cache.qcow2 on real files made by qemu-img."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from cachemgr.cache.qcow2 import Qcow2Error, read_backing_file
from cachemgr.cache.safefs import NotRegularFile
from tests.support.deadline import deadline

QEMU_IMG = "/usr/bin/qemu-img"
HEADER = struct.Struct(">4sIQII")

pytestmark = pytest.mark.skipif(
    not os.access(QEMU_IMG, os.X_OK), reason=f"{QEMU_IMG} is not installed"
)


def make_raw(tmp_path: Path, name: str, data: bytes = b"\0" * 4096) -> Path:
    """Write a file with the given bytes, making its parent directories."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_qcow2(
    tmp_path: Path,
    name: str,
    backing: str | None = None,
    fmt: str = "raw",
    unsafe: bool = False,
    options: tuple[str, ...] = (),
) -> Path:
    """Create tmp_path/name with qemu-img, backed by ``backing`` as given."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [QEMU_IMG, "create", "-q", "-f", "qcow2"]
    for option in options:
        cmd += ["-o", option]
    if backing is not None:
        cmd += ["-b", backing, "-F", fmt]
    if unsafe:
        cmd.append("-u")
    cmd += [str(path), "1M"]
    result = subprocess.run(
        cmd, cwd=path.parent, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return path


def read_header(path: Path) -> tuple[bytes, int, int, int, int]:
    """The fields read_backing_file looks at, as stored in path."""
    with path.open("rb") as f:
        return HEADER.unpack(f.read(HEADER.size))


def patch(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes of path at offset, as a corrupting writer would."""
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def open_fds() -> set[str]:
    """This process's open file descriptors."""
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A raw base image, as nova keeps in the cache directory."""
    return make_raw(tmp_path, "_base/abc", b"\0" * 1024 * 1024)


@pytest.fixture
def overlay(tmp_path: Path, base: Path) -> Path:
    """A v3 qcow2 disk backed by base through its absolute path."""
    return make_qcow2(tmp_path, "inst/disk", str(base))


@pytest.fixture
def overlay_v2(tmp_path: Path, base: Path) -> Path:
    """A v2 (compat=0.10) qcow2 disk backed by base through its absolute path."""
    return make_qcow2(tmp_path, "inst/disk", str(base), options=("compat=0.10",))


class TestQcow2Error:
    def test_is_value_error(self) -> None:
        """Callers catching ValueError for bad data also catch a bad header."""
        assert issubclass(Qcow2Error, ValueError)


class TestReadBackingFile:
    def test_absolute_backing(self, overlay: Path, base: Path) -> None:
        """A disk backed by an absolute path returns that path."""
        assert read_backing_file(str(overlay)) == os.fsencode(base)

    def test_v3_name_past_first_read(self, overlay: Path, base: Path) -> None:
        """qemu-img's v3 header stores the name past 512 bytes; it is still read."""
        _, version, offset, _, _ = read_header(overlay)
        assert (version, offset > 512) == (3, True)
        assert read_backing_file(str(overlay)) == os.fsencode(base)

    def test_v2(self, overlay_v2: Path, base: Path) -> None:
        """A v2 header keeps the name within the first read and is accepted."""
        _, version, offset, size, _ = read_header(overlay_v2)
        assert (version, offset + size <= 512) == (2, True)
        assert read_backing_file(str(overlay_v2)) == os.fsencode(base)

    def test_relative_backing(self, tmp_path: Path, base: Path) -> None:
        """A relative backing name is returned exactly as stored, unresolved."""
        disk = make_qcow2(tmp_path, "inst/disk", "../_base/abc")
        assert read_backing_file(str(disk)) == b"../_base/abc"

    def test_chain(self, tmp_path: Path, base: Path) -> None:
        """Each qcow2 of a chain names its own parent, not the chain's root."""
        middle = make_qcow2(tmp_path, "_base/middle", str(base))
        top = make_qcow2(tmp_path, "inst/disk", str(middle), fmt="qcow2")
        assert read_backing_file(str(top)) == os.fsencode(middle)
        assert read_backing_file(str(middle)) == os.fsencode(base)
        assert read_backing_file(str(base)) is None

    @pytest.mark.parametrize("options", [(), ("compat=0.10",)], ids=["v3", "v2"])
    def test_long_name(self, tmp_path: Path, options: tuple[str, ...]) -> None:
        """A 600-byte name that ends past the first read is read whole."""
        name = "/" + "n" * 599
        disk = make_qcow2(tmp_path, "disk", name, unsafe=True, options=options)
        _, _, offset, size, _ = read_header(disk)
        assert (size, offset + size > 512) == (600, True)
        assert read_backing_file(str(disk)) == name.encode()

    def test_non_ascii_name(self, tmp_path: Path) -> None:
        """A UTF-8 name is returned as its bytes, not decoded or escaped."""
        disk = make_qcow2(tmp_path, "disk", "../_base/é", unsafe=True)
        assert read_backing_file(str(disk)) == "../_base/é".encode()

    @pytest.mark.parametrize("options", [(), ("compat=0.10",)], ids=["v3", "v2"])
    def test_no_backing(self, tmp_path: Path, options: tuple[str, ...]) -> None:
        """A qcow2 disk without a backing file returns None."""
        disk = make_qcow2(tmp_path, "disk", options=options)
        assert read_backing_file(str(disk)) is None

    @pytest.mark.parametrize(
        "data",
        [b"", b"QF", b"\0" * 4096, os.urandom(4096), b"QFI\xfa" + b"\0" * 508],
        ids=["empty", "shorter-than-magic", "raw", "garbage", "near-magic"],
    )
    def test_not_qcow2(self, tmp_path: Path, data: bytes) -> None:
        """A file without the qcow2 magic is not qcow2 and returns None."""
        assert read_backing_file(str(make_raw(tmp_path, "disk", data))) is None

    def test_other_format(self, tmp_path: Path) -> None:
        """A disk in another qemu format (vmdk) returns None."""
        disk = tmp_path / "disk.vmdk"
        result = subprocess.run(
            [QEMU_IMG, "create", "-q", "-f", "vmdk", str(disk), "1M"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert read_backing_file(str(disk)) is None

    @pytest.mark.parametrize("length", [4, 8, 23])
    def test_truncated_header(self, overlay: Path, length: int) -> None:
        """The magic followed by fewer than 24 header bytes is malformed."""
        os.truncate(overlay, length)
        with pytest.raises(Qcow2Error, match=rf"truncated header \({length} bytes"):
            read_backing_file(str(overlay))

    @pytest.mark.parametrize("version", [0, 1, 4, 0xFFFFFFFF])
    def test_bad_version(self, overlay: Path, version: int) -> None:
        """Versions other than 2 and 3 are refused, naming the version."""
        patch(overlay, 4, struct.pack(">I", version))
        with pytest.raises(Qcow2Error, match=rf"version {version} is not 2 or 3"):
            read_backing_file(str(overlay))

    @pytest.mark.parametrize("cluster_bits", [0, 8, 22, 64])
    def test_bad_cluster_bits(self, overlay: Path, cluster_bits: int) -> None:
        """cluster_bits outside qemu's 9..21 is refused, naming the value."""
        patch(overlay, 20, struct.pack(">I", cluster_bits))
        with pytest.raises(Qcow2Error, match=rf"cluster_bits {cluster_bits} outside"):
            read_backing_file(str(overlay))

    def test_bad_cluster_bits_without_backing(self, tmp_path: Path) -> None:
        """A bad cluster_bits is refused even when there is no backing file."""
        disk = make_qcow2(tmp_path, "disk")
        patch(disk, 20, struct.pack(">I", 30))
        with pytest.raises(Qcow2Error, match=r"cluster_bits 30 outside 9\.\.21"):
            read_backing_file(str(disk))

    @pytest.mark.parametrize("offset", [1 << 40, 2**64 - 1])
    def test_huge_backing_offset(self, overlay: Path, offset: int) -> None:
        """A backing offset far past the first cluster is refused."""
        patch(overlay, 8, struct.pack(">Q", offset))
        with pytest.raises(Qcow2Error, match=rf"backing_file_offset {offset} \+"):
            read_backing_file(str(overlay))

    def test_name_crossing_first_cluster(self, overlay: Path) -> None:
        """A name that starts in the first cluster but ends past it is refused."""
        _, _, _, size, cluster_bits = read_header(overlay)
        offset = (1 << cluster_bits) - size + 1
        patch(overlay, 8, struct.pack(">Q", offset))
        with pytest.raises(Qcow2Error, match=r"beyond the first cluster \(65536"):
            read_backing_file(str(overlay))

    def test_name_ending_at_first_cluster(self, overlay: Path) -> None:
        """A name that ends exactly at the first cluster's end is accepted."""
        _, _, _, size, cluster_bits = read_header(overlay)
        offset = (1 << cluster_bits) - size
        patch(overlay, 8, struct.pack(">Q", offset))
        patch(overlay, offset, b"x" * size)
        assert read_backing_file(str(overlay)) == b"x" * size

    @pytest.mark.parametrize("size", [0, 1024, 0xFFFFFFFF])
    def test_bad_backing_size(self, overlay: Path, size: int) -> None:
        """A backing size of 0 or above qemu's 1023 is refused, naming it."""
        patch(overlay, 16, struct.pack(">I", size))
        with pytest.raises(Qcow2Error, match=rf"backing_file_size {size} outside"):
            read_backing_file(str(overlay))

    def test_max_backing_size(self, tmp_path: Path) -> None:
        """A 1023-byte name, qemu's longest, is accepted."""
        name = "/" + "n" * 1022
        disk = make_qcow2(tmp_path, "disk", name, unsafe=True)
        assert read_backing_file(str(disk)) == name.encode()

    @pytest.mark.parametrize("disk", ["overlay", "overlay_v2"])
    def test_name_truncated(self, request: pytest.FixtureRequest, disk: str) -> None:
        """A file ending inside the name is refused, for a v3 and a v2 header."""
        path: Path = request.getfixturevalue(disk)
        _, _, offset, size, _ = read_header(path)
        os.truncate(path, offset + size - 1)
        with pytest.raises(Qcow2Error, match=rf"truncated at {size - 1} of {size}"):
            read_backing_file(str(path))

    def test_name_not_utf8(self, overlay: Path, base: Path) -> None:
        """A name that is not valid UTF-8 is returned as its bytes, as qemu uses it."""
        _, _, offset, _, _ = read_header(overlay)
        patch(overlay, offset + 1, b"\xff")
        expected = b"/\xff" + os.fsencode(base)[2:]
        assert read_backing_file(str(overlay)) == expected

    def test_name_cut_at_nul(self, overlay_v2: Path, base: Path) -> None:
        """A name with a NUL byte ends there, as qemu reads it (a C string)."""
        _, _, offset, _, _ = read_header(overlay_v2)
        patch(overlay_v2, offset + 3, b"\0")
        assert read_backing_file(str(overlay_v2)) == os.fsencode(base)[:3]

    def test_name_starting_with_nul(self, overlay_v2: Path) -> None:
        """A name whose first byte is NUL is no backing file, as for qemu."""
        _, _, offset, _, _ = read_header(overlay_v2)
        patch(overlay_v2, offset, b"\0")
        assert read_backing_file(str(overlay_v2)) is None

    def test_symlink_not_followed(self, tmp_path: Path, overlay: Path) -> None:
        """A symlink to a qcow2 disk raises ELOOP instead of reading the target."""
        link = tmp_path / "inst/disk.link"
        link.symlink_to(overlay)
        with pytest.raises(NotRegularFile, match="a symbolic link"):
            read_backing_file(str(link))

    def test_dangling_symlink(self, tmp_path: Path) -> None:
        """A dangling symlink is refused as a link, not as a missing file."""
        link = tmp_path / "disk"
        link.symlink_to(tmp_path / "missing")
        with pytest.raises(NotRegularFile, match="a symbolic link"):
            read_backing_file(str(link))

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file raises FileNotFoundError, not None."""
        with pytest.raises(FileNotFoundError, match="No such file"):
            read_backing_file(str(tmp_path / "missing"))

    def test_directory(self, tmp_path: Path) -> None:
        """A directory is refused as not a regular file."""
        with pytest.raises(NotRegularFile, match="not a regular file but a directory"):
            read_backing_file(str(tmp_path))

    def test_fifo_does_not_block(self, tmp_path: Path) -> None:
        """A FIFO with no writer is refused at once instead of blocking."""
        fifo = tmp_path / "disk"
        os.mkfifo(fifo)
        with deadline(5), pytest.raises(NotRegularFile, match="but a FIFO"):
            read_backing_file(str(fifo))

    def test_device_is_not_read(self) -> None:
        """A device is refused as not a regular file (DESIGN 1.8)."""
        with pytest.raises(NotRegularFile, match="a character device"):
            read_backing_file("/dev/null")

    def test_dir_fd(self, tmp_path: Path, base: Path) -> None:
        """A relative name is opened under dir_fd, not the working directory."""
        make_qcow2(tmp_path, "inst/disk", "../_base/abc")
        dir_fd = os.open(tmp_path / "inst", os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert read_backing_file("disk", dir_fd=dir_fd) == b"../_base/abc"
            with pytest.raises(FileNotFoundError):
                read_backing_file("abc", dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def test_dir_fd_symlink_not_followed(self, tmp_path: Path, overlay: Path) -> None:
        """Under dir_fd a symlink is not followed either."""
        (tmp_path / "inst/link").symlink_to(overlay)
        dir_fd = os.open(tmp_path / "inst", os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(NotRegularFile, match="a symbolic link"):
                read_backing_file("link", dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def test_closes_fd(self, tmp_path: Path, overlay: Path) -> None:
        """No descriptor is left open after a result, a refusal or a non-qcow2."""
        raw = make_raw(tmp_path, "raw")
        before = open_fds()
        read_backing_file(str(overlay))
        read_backing_file(str(raw))
        with pytest.raises(NotRegularFile):
            read_backing_file(str(tmp_path))
        patch(overlay, 4, struct.pack(">I", 9))
        with pytest.raises(Qcow2Error, match="version 9"):
            read_backing_file(str(overlay))
        assert open_fds() == before
