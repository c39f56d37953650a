"""nova's shared-storage registry, compute_nodes, read and written as nova does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cachemgr.exceptions import InventoryUnavailable
from cachemgr.inventory import registry

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

    @pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"x"'])
    def test_corrupt_registry_names_no_other_host(
        self, tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A registry that cannot be decoded is reported and names nobody else."""
        write_registry(tmp_path, content)
        assert registry.storage_users(str(tmp_path), "me", NOW) == ["me"]
        assert "compute_nodes" in caplog.text

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

    def test_replaces_a_corrupt_registry(self, tmp_path: Path) -> None:
        """A corrupt registry is replaced by a valid one naming this host."""
        write_registry(tmp_path, "{trunc")
        registry.register_storage_use(str(tmp_path), "me", NOW)
        assert json.loads((tmp_path / "compute_nodes").read_text()) == {"me": NOW}

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
