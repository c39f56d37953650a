"""The real ``cachemgr --once``, run as root, against a hostile owner of
instances_path (DESIGN 1.8).

Each host is built, then its instances_path is given to an unprivileged user
who plants the attack with ``setpriv``, as nova's user or a compromised qemu
could. The assertions are what an operator would see: the victim file
outside the tree untouched (owner, mode, content), the command ending within
a bound, the used base file kept, the unused old one removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hosts import (
    DAY,
    QEMU_IMG,
    Host,
    Run,
    fingerprint,
    make_qcow2,
)

pytestmark = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img is not installed")

# The hostile owner of instances_path: no passwd entry needed for setpriv.
OWNER = 4242
FP_USED = fingerprint("img-used")
FP_OLD = fingerprint("img-old")
SECRET = b"root's own file\n"
# No attack may make a pass wait on it: the whole run ends within this.
BOUND_SECONDS = 30


_SETPRIV = ("setpriv", f"--reuid={OWNER}", f"--regid={OWNER}", "--clear-groups", "--")


def as_owner(*command: str) -> None:
    """Run ``command`` as the unprivileged owner of instances_path."""
    subprocess.run(
        [*_SETPRIV, *command],
        check=True,
        capture_output=True,
    )


class HostileHost(Host):
    """A host whose instances_path belongs to OWNER, with root's victims beside it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.victim = root / "victim"
        self.victim.write_bytes(SECRET)
        self.victim.chmod(0o600)
        self.victim_before = self.victim.stat()

    def hand_over(self) -> None:
        """Give the whole instances_path to OWNER, as nova's tree is nova's."""
        for dirpath, dirnames, filenames in os.walk(self.instances_path):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
                os.chown(name, OWNER, OWNER, follow_symlinks=False)
            for name in filenames:
                os.chown(
                    os.path.join(dirpath, name), OWNER, OWNER, follow_symlinks=False
                )

    def plant(self, script: str) -> None:
        """Run a shell ``script`` as OWNER in instances_path."""
        as_owner("sh", "-c", f"cd '{self.instances_path}' && {script}")

    def run(self, *args: str, timeout: float = BOUND_SECONDS) -> Run:
        return super().run(*args, timeout=timeout)

    def assert_victim_untouched(self, victim: Path | None = None) -> None:
        victim = victim or self.victim
        st = victim.lstat()
        assert stat.S_ISREG(st.st_mode)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o600)
        assert victim.read_bytes() == SECRET
        assert st.st_mtime_ns == victim.stat().st_mtime_ns


@pytest.fixture
def host() -> Iterator[HostileHost]:
    """A hostile host in a directory OWNER can reach (pytest's tmp is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="cachemgr-hostile-"))
    root.chmod(0o755)
    try:
        yield HostileHost(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def standard_cache(host: HostileHost) -> None:
    """An image in use by an instance and an old unused one."""
    host.cache_file(FP_USED, age=10 * DAY)
    host.cache_file(FP_OLD, age=10 * DAY)
    vm = host.instance("img-used")
    host.disk(vm, host.base / FP_USED)
    host.write()


@contextlib.contextmanager
def blocked_writer(fifo: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process blocked opening ``fifo`` for writing until someone reads it.

    If anything opens the FIFO for reading, the writer's open returns and the
    process exits: ``poll()`` then tells that the FIFO was opened.
    """
    child = subprocess.Popen(["sh", "-c", f"exec 3>'{fifo}'"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


class TestPlantedLockLinks:
    @pytest.mark.parametrize(
        "lock", ["nova-storage-registry-lock", "cachemgr-remover", f"nova-{FP_OLD}"]
    )
    def test_lock_symlink_is_not_followed(self, host: HostileHost, lock: str) -> None:
        """A lock file planted as a link to root's file: never opened nor chowned."""
        standard_cache(host)
        (host.instances_path / "locks").mkdir()
        host.hand_over()
        host.plant(f"ln -s '{host.victim}' 'locks/{lock}'")

        run = host.run()

        assert run.returncode == 0, run.output
        host.assert_victim_untouched()
        assert f"locks/{lock} cannot be opened safely: it is a symbolic link" in (
            run.output
        )
        summary = run.summary()
        if lock == "nova-storage-registry-lock":
            # The pass goes on with the hosts it could read.
            assert host.cache_names() == {FP_USED}
            assert any("registry is read without it" in w for w in run.lines("WARNING"))
        elif lock == "cachemgr-remover":
            assert host.cache_names() == {FP_USED, FP_OLD}
            assert any(
                "Nothing is removed this pass" in w for w in run.lines("WARNING")
            )
        else:
            assert host.cache_names() == {FP_USED, FP_OLD}
            assert summary["kept_locked"] == 1
            assert f"Kept {FP_OLD}: locked: " in run.output

    def test_locks_dir_symlink_is_not_followed(self, host: HostileHost) -> None:
        """A locks dir planted as a link to root's dir: nothing made there."""
        standard_cache(host)
        rootdir = host.root / "root-dir"
        rootdir.mkdir()
        host.hand_over()
        host.plant(f"ln -s '{rootdir}' locks")

        run = host.run()

        assert run.returncode == 0, run.output
        assert os.listdir(rootdir) == []
        assert host.cache_names() == {FP_USED, FP_OLD}
        assert "locks cannot be opened safely: it is a symbolic link" in run.output

    def test_registry_symlink_is_not_followed(self, host: HostileHost) -> None:
        """compute_nodes planted as a link: not read, written, chowned; refused."""
        standard_cache(host)
        host.victim.write_bytes(SECRET)
        host.hand_over()
        host.plant(f"ln -s '{host.victim}' compute_nodes")

        run = host.run()

        assert run.returncode == 1, run.output
        host.assert_victim_untouched()
        assert any("compute_nodes" in line for line in run.lines("ERROR"))
        assert host.cache_names() == {FP_USED, FP_OLD}
        assert "Traceback" not in run.output


class TestNoHang:
    @pytest.mark.parametrize(
        ("fifo", "returncode"),
        [
            ("compute_nodes", 1),
            ("locks/nova-storage-registry-lock", 0),
            ("locks/cachemgr-remover", 0),
            (f"locks/nova-{FP_OLD}", 0),
        ],
    )
    def test_fifo_does_not_block(
        self, host: HostileHost, fifo: str, returncode: int
    ) -> None:
        """A FIFO in place of the registry or a lock: no hang, and not used."""
        standard_cache(host)
        (host.instances_path / "locks").mkdir()
        host.hand_over()
        host.plant(f"mkfifo '{fifo}'")

        run = host.run()

        assert run.returncode == returncode, run.output
        assert stat.S_ISFIFO((host.instances_path / fifo).lstat().st_mode)
        assert "FIFO" in run.output
        assert "Traceback" not in run.output
        assert FP_USED in host.cache_names()

    @pytest.mark.parametrize("link", [False, True], ids=["fifo", "link-to-fifo"])
    def test_fifo_disk_is_never_opened(self, host: HostileHost, link: bool) -> None:
        """A disk that is, or links to, a FIFO is not opened; it is a problem disk."""
        standard_cache(host)
        host.hand_over()
        vm = host.instances_path / "vm-fifo"
        fifo = host.instances_path / "fifo"
        host.plant("mkdir vm-fifo && mkfifo fifo && ln -s ../fifo vm-fifo/disk.swap")
        if not link:
            host.plant("rm vm-fifo/disk.swap && mkfifo vm-fifo/disk.swap")
            fifo = vm / "disk.swap"

        with blocked_writer(fifo) as writer:
            run = host.run()
            assert writer.poll() is None, "the FIFO was opened"

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_USED}
        assert any(
            "FIFO" in line and "disk.swap" in line for line in run.lines("WARNING")
        )
        assert run.summary()["unreadable_disks"] == 1

    @pytest.mark.parametrize(
        "plant",
        [
            "mkfifo vm/disk",
            "ln -s /nonexistent vm/disk",
            "ln -s /dev/null vm/disk.local",
        ],
        ids=["fifo", "dangling-link", "link-to-device"],
    )
    def test_odd_disk_counts_for_the_empty_inventory_guard(
        self, host: HostileHost, plant: str
    ) -> None:
        """An empty inventory beside a disk of any type but a directory refuses."""
        host.cache_file(FP_OLD, age=10 * DAY)
        host.write()
        host.hand_over()
        host.plant(f"mkdir vm && {plant}")

        run = host.run()

        assert run.returncode == 1, run.output
        assert FP_OLD in host.cache_names()
        assert any("[DEFAULT] host" in line for line in run.lines("ERROR"))


class TestBackingNames:
    def test_name_cut_at_nul(self, host: HostileHost) -> None:
        """`<cache file>\\0junk` in the header names the cache file, as for qemu."""
        host.cache_file(FP_OLD, age=10 * DAY)
        host.cache_file(FP_USED, age=10 * DAY)
        vm = host.instance("img-used")
        disk = make_qcow2(host.instances_path / vm / "disk", None)
        _patch_backing(disk, os.fsencode(host.base / FP_OLD) + b"\0junk")
        host.write()
        host.hand_over()

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_USED, FP_OLD}
        assert run.summary()["in_use"] == 2
        assert _qemu_backing(disk) == str(host.base / FP_OLD)

    def test_name_not_utf8(self, host: HostileHost) -> None:
        """A backing path through a directory named in non-UTF-8 bytes still keeps."""
        standard_cache(host)
        odd = os.fsencode(host.instances_path) + b"/\xff"
        os.symlink(b"_base", odd)
        vm = host.instance("img-none")
        disk = make_qcow2(host.instances_path / vm / "disk", None)
        _patch_backing(disk, odd + b"/" + FP_OLD.encode())
        host.write()
        host.hand_over()

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_USED, FP_OLD}

    def test_dotdot_resolved_after_symlinks(self, host: HostileHost) -> None:
        """`../_base/A` from a symlinked dir is what the kernel opens, not A."""
        standard_cache(host)
        other = fingerprint("img-other")
        host.cache_file(other, age=10 * DAY)
        real = host.instances_path / "x" / "y"
        real.mkdir(parents=True)
        (host.instances_path / "x" / "_base").mkdir()
        # qemu opening vm/../_base/<FP_OLD> reaches x/_base/<FP_OLD>, a link to B.
        (host.instances_path / "x" / "_base" / FP_OLD).symlink_to(host.base / other)
        (host.instances_path / "vm").symlink_to(real)
        disk = make_qcow2(real / "disk", None)
        _patch_backing(disk, f"../_base/{FP_OLD}".encode())
        host.write()
        host.hand_over()

        run = host.run()

        assert run.returncode == 0, run.output
        assert other in host.cache_names()
        assert _qemu_backing_target(disk, host.instances_path / "vm") == (
            host.base / other
        )

    def test_backing_named_under_another_instances_path(
        self, host: HostileHost
    ) -> None:
        """A header naming /var/lib/nova/instances/_base/<fp> keeps <fp> here."""
        standard_cache(host)
        vm = host.instance("img-none")
        disk = make_qcow2(host.instances_path / vm / "disk", None)
        _patch_backing(disk, f"/var/lib/nova/instances/_base/{FP_OLD}".encode())
        host.write()
        host.hand_over()

        run = host.run()

        assert run.returncode == 0, run.output
        assert host.cache_names() == {FP_USED, FP_OLD}


class TestCacheDirOwner:
    def test_cache_dir_linked_to_roots_dir_is_refused(self, host: HostileHost) -> None:
        """_base replaced by a link to root's dir: refused, nothing there touched."""
        standard_cache(host)
        rootdir = host.root / "root-images"
        rootdir.mkdir()
        (rootdir / FP_OLD).write_bytes(SECRET)
        (rootdir / FP_USED).write_bytes(SECRET)
        for name in (FP_OLD, FP_USED):
            host.set_age(rootdir / name, 10 * DAY)
        before = {n: (rootdir / n).stat().st_mtime_ns for n in os.listdir(rootdir)}
        host.hand_over()
        host.plant(f"mv _base _old_base && ln -s '{rootdir}' _base")

        run = host.run()

        assert run.returncode == 1, run.output
        after = {n: (rootdir / n).stat().st_mtime_ns for n in os.listdir(rootdir)}
        assert after == before
        (error,) = [line for line in run.lines("ERROR") if str(rootdir) in line]
        assert f"belongs to uid 0 (root), not to uid {OWNER}" in error
        assert "Traceback" not in run.output


class TestFullDisk:
    def test_full_file_system_is_still_cleaned(self, host: HostileHost) -> None:
        """ENOSPC writing compute_nodes: a WARNING, and the old file is removed."""
        mount = host.instances_path
        shutil.rmtree(mount)
        mount.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)],
            check=True,
        )
        try:
            host.base.mkdir()
            standard_cache(host)
            host.hand_over()
            host.plant("cat /dev/zero > filler 2>/dev/null || true")

            run = host.run()

            assert run.returncode == 0, run.output
            assert host.cache_names() == {FP_USED}
            (warning,) = [w for w in run.lines("WARNING") if "compute_nodes" in w]
            assert "No space left on device" in warning
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)


class TestInventoryInput:
    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ('{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deep"),
            ('{"instances": [{"uuid": "u1", "id": ' + "9" * 5000 + "}]}", "integer"),
            (
                '{"instances": [{"uuid": "u1", "id": 1, "image_ref": "\\ud800"}]}',
                "field 'image_ref'",
            ),
            ('{"instances": [{"uuid": "u1", "id": 1e400}]}', "field 'id'"),
            (
                '{"instances": [{"uuid": "u1", "id": 1, "block_device_mapping": ['
                '{"source_type": "blank", "destination_type": "local", '
                '"guest_format": "swap", "volume_size": 99999999999999999999}]}]}',
                "field 'volume_size'",
            ),
        ],
        ids=["deep", "long-number", "surrogate", "inf", "huge-size"],
    )
    def test_bad_static_inventory_is_refused(
        self, host: HostileHost, text: str, says: str
    ) -> None:
        """Hostile JSON: a refusal naming the file and what is wrong, no traceback."""
        host.cache_file(FP_OLD, age=10 * DAY)
        host.write(inventory=False)
        host.inventory_path.write_text(text, encoding="utf-8")

        run = host.run()

        assert run.returncode == 1, run.output
        assert "Traceback" not in run.output
        (error,) = run.lines("ERROR")
        assert str(host.inventory_path) in error
        assert says in error
        assert host.cache_names() == {FP_OLD}

    def test_more_instances_than_max_instances_is_refused(
        self, host: HostileHost
    ) -> None:
        """A listing longer than [inventory] max_instances refuses the pass."""
        host.cache_file(FP_OLD, age=10 * DAY)
        for _ in range(3):
            host.instance("img-used")
        host.write({"inventory": {"max_instances": 2}})

        run = host.run()

        assert run.returncode == 1, run.output
        (error,) = run.lines("ERROR")
        assert "[inventory] max_instances = 2" in error
        assert host.cache_names() == {FP_OLD}


class TestTemporaryFiles:
    def test_leftover_registry_temporary_file_is_removed(
        self, host: HostileHost
    ) -> None:
        """A `.compute_nodes.tmp` left by a killed run goes with the next write."""
        standard_cache(host)
        host.hand_over()
        host.plant("echo '{\"half' > .compute_nodes.tmp")

        run = host.run()

        assert run.returncode == 0, run.output
        assert not [
            n for n in os.listdir(host.instances_path) if n.startswith(".compute_nodes")
        ]
        assert json.loads(
            (host.instances_path / "compute_nodes").read_text()
        ).keys() == {host.name}
        st = (host.instances_path / "compute_nodes").stat()
        assert (st.st_uid, st.st_mode & 0o777) == (OWNER, 0o644)


def _patch_backing(disk: Path, name: bytes) -> None:
    """Write ``name`` as the qcow2 header's backing file field, as raw bytes."""
    with disk.open("r+b") as f:
        f.seek(8)
        f.write((1024).to_bytes(8, "big") + len(name).to_bytes(4, "big"))
        f.seek(1024)
        f.write(name)


def _qemu_backing(disk: Path) -> str:
    """The backing file qemu-img itself reads from ``disk``."""
    out = subprocess.run(
        [QEMU_IMG, "info", "--output=json", "-U", str(disk)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["backing-filename"]


def _qemu_backing_target(disk: Path, seen_from: Path) -> Path:
    """What the kernel opens for ``disk``'s relative backing name from ``seen_from``."""
    return Path(os.path.realpath(os.path.join(seen_from, _qemu_backing(disk))))
