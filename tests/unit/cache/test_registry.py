"""nova's shared-storage registry, compute_nodes, read and written as nova does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cachemgr.cache import registry
from cachemgr.exceptions import InventoryUnavailable, InventoryUntrustworthy
from tests.support.deadline import deadline

NOW = 1_800_000_000.0


def write_registry(instances: Path, content: object) -> Path:
    path = instances / "compute_nodes"
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text)
    return path


class TestStorageUsers:
    def test_this_host_first_then_recent_hosts(self, tmp_path: Path) -> None:
        """Hosts seen in the last 24 hours share the storage; this one always."""
        write_registry(
            tmp_path,
            {"b": NOW - 10, "a": NOW - 86399, "old": NOW - 86400, "me": NOW - 99999},
        )
        assert registry.storage_users(str(tmp_path), "me", NOW) == ["me", "a", "b"]

    def test_missing_registry_is_this_host_alone(self, tmp_path: Path) -> None:
        """No compute_nodes file: only this host uses the storage."""
        assert registry.storage_users(str(tmp_path), "me", NOW) == ["me"]

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            ("{not json", "is not valid JSON"),
            ("[1, 2]", "must be a JSON object"),
            ('"x"', "must be a JSON object"),
            ("[" * 100_000 + "]" * 100_000, "nested too deep"),
            ('{"a": ' + "9" * 5000 + "}", "is not valid JSON"),
            ('{"a": 1e400}', "host 'a' must have a finite number of seconds"),
            ('{"a": ' + "9" * 400 + "}", "host 'a' must have a finite number"),
            ('{"a": "1800000000"}', "host 'a' must have a finite number"),
            ('{"a": true}', "host 'a' must have a finite number"),
            ('{"\\ud800": 1}', "host '\\ud800' is not valid text"),
            (b"\xff\xfe", "is not valid JSON"),
        ],
        ids=[
            "not-json",
            "list",
            "string",
            "deep",
            "long-int",
            "inf",
            "huge-int",
            "text",
            "bool",
            "surrogate",
            "not-utf8",
        ],
    )
    def test_corrupt_registry_is_refused(
        self, tmp_path: Path, content: str | bytes, says: str
    ) -> None:
        """A registry that is not nova's JSON refuses, naming the file and entry."""
        path = tmp_path / "compute_nodes"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(InventoryUntrustworthy) as info:
            registry.storage_users(str(tmp_path), "me", NOW)
        assert str(path) in str(info.value)
        assert says in str(info.value)

    def test_oversized_registry_is_refused(self, tmp_path: Path) -> None:
        """A registry far larger than nova writes is refused unread."""
        path = tmp_path / "compute_nodes"
        with path.open("wb") as f:
            f.truncate(64 * 1024 * 1024)
        with pytest.raises(InventoryUntrustworthy, match="larger than"):
            registry.storage_users(str(tmp_path), "me", NOW)

    @pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
    def test_registry_not_a_file_is_not_followed(
        self, tmp_path: Path, kind: str
    ) -> None:
        """A symlink, FIFO or directory registry is refused at once, never opened."""
        victim = tmp_path / "victim"
        victim.write_text(json.dumps({"victim-host": NOW}))
        path = tmp_path / "compute_nodes"
        if kind == "symlink":
            path.symlink_to(victim)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
        with deadline(10), pytest.raises(InventoryUnavailable, match="not a regular"):
            registry.storage_users(str(tmp_path), "me", NOW)

    def test_unsafe_lock_file_reads_unlocked(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A planted registry lock is not used: a WARNING, the hosts still read."""
        write_registry(tmp_path, {"b": NOW})
        (tmp_path / "locks").mkdir()
        victim = tmp_path / "victim"
        victim.write_text("secret")
        (tmp_path / "locks" / "nova-storage-registry-lock").symlink_to(victim)
        assert registry.storage_users(str(tmp_path), "me", NOW) == ["me", "b"]
        assert "nova-storage-registry-lock cannot be opened safely" in caplog.text
        assert victim.read_text() == "secret"

    def test_unlocked_read_creates_no_lock_file(self, tmp_path: Path) -> None:
        """A dry run's read creates nothing under instances_path."""
        write_registry(tmp_path, {"b": NOW})
        users = registry.storage_users(str(tmp_path), "me", NOW, locked=False)
        assert users == ["me", "b"]
        assert sorted(os.listdir(tmp_path)) == ["compute_nodes"]

    def test_lock_held_elsewhere_is_unavailable(self, tmp_path: Path) -> None:
        """nova's registry lock held by another process refuses, not hangs."""
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "from oslo_concurrency import lockutils\n"
                "with lockutils.lock('storage-registry-lock', external=True,\n"
                "        lock_path=sys.argv[1], lock_file_prefix='nova-'):\n"
                "    print('locked', flush=True); time.sleep(60)\n",
                str(tmp_path / "locks"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "locked"
            with pytest.raises(
                InventoryUnavailable, match="nova-storage-registry-lock"
            ):
                registry.storage_users(str(tmp_path), "me", NOW, lock_wait_seconds=0.2)
        finally:
            child.kill()
            child.wait()


class TestRegisterStorageUse:
    def test_adds_this_host_and_keeps_the_others(self, tmp_path: Path) -> None:
        """Registering rewrites the whole registry with this host's time."""
        write_registry(tmp_path, {"other": NOW - 5})
        registry.register_storage_use(str(tmp_path), "me", NOW)
        content = json.loads((tmp_path / "compute_nodes").read_text())
        assert content == {"other": NOW - 5, "me": NOW}

    def test_keeps_a_corrupt_registry(self, tmp_path: Path) -> None:
        """A corrupt registry refuses and is left for the operator, not replaced."""
        path = write_registry(tmp_path, "{trunc")
        with pytest.raises(InventoryUntrustworthy, match="compute_nodes"):
            registry.register_storage_use(str(tmp_path), "me", NOW)
        assert path.read_text() == "{trunc"

    def test_leftover_temporary_file_is_removed(self, tmp_path: Path) -> None:
        """A temporary file left by a killed run is removed by the next write."""
        (tmp_path / ".compute_nodes.tmp").write_text('{"half')
        registry.register_storage_use(str(tmp_path), "me", NOW)
        assert sorted(os.listdir(tmp_path)) == ["compute_nodes", "locks"]

    def test_symlinked_registry_is_not_written_through(self, tmp_path: Path) -> None:
        """Registering never writes, chowns or chmods through a planted link."""
        victim = tmp_path / "victim"
        victim.write_text("{}")
        victim.chmod(0o600)
        (tmp_path / "compute_nodes").symlink_to(victim)
        with pytest.raises(InventoryUnavailable, match="symbolic link"):
            registry.register_storage_use(str(tmp_path), "me", NOW)
        assert (victim.read_text(), victim.stat().st_mode & 0o777) == ("{}", 0o600)

    def test_write_is_atomic(self, tmp_path: Path) -> None:
        """The registry is replaced by rename: a new inode, no temp file left."""
        path = write_registry(tmp_path, {"other": NOW})
        before = path.stat().st_ino
        registry.register_storage_use(str(tmp_path), "me", NOW)
        assert path.stat().st_ino != before
        assert not [n for n in os.listdir(tmp_path) if n.startswith(".compute_nodes")]

    def test_keeps_mode_and_owner_of_the_old_file(self, tmp_path: Path) -> None:
        """nova-compute, running as its own user, can still rewrite it."""
        path = write_registry(tmp_path, {"other": NOW})
        path.chmod(0o664)
        if os.geteuid() == 0:
            os.chown(path, 12345, 12346)
        registry.register_storage_use(str(tmp_path), "me", NOW)
        st = path.stat()
        assert st.st_mode & 0o777 == 0o664
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (12345, 12346)

    def test_new_registry_belongs_to_the_instances_path_owner(
        self, tmp_path: Path
    ) -> None:
        """A first registry is 0644 and, under root, owned like instances_path."""
        if os.geteuid() == 0:
            os.chown(tmp_path, 12345, 12346)
        registry.register_storage_use(str(tmp_path), "me", NOW)
        st = (tmp_path / "compute_nodes").stat()
        assert st.st_mode & 0o777 == 0o644
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (12345, 12346)

    def test_missing_instances_path_is_unavailable(self, tmp_path: Path) -> None:
        """A missing instances_path is refused, and is not created."""
        missing = tmp_path / "not-there"
        with pytest.raises(InventoryUnavailable, match="not-there"):
            registry.register_storage_use(str(missing), "me", NOW)
        assert not missing.exists()

    def test_unwritable_registry_is_unavailable(self, tmp_path: Path) -> None:
        """A registry that cannot be replaced refuses the pass, naming the file."""
        (tmp_path / "compute_nodes").mkdir()
        with pytest.raises(InventoryUnavailable, match="compute_nodes"):
            registry.register_storage_use(str(tmp_path), "me", NOW)
