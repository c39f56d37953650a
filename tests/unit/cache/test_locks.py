"""nova's external locks, taken on descriptors cachemgr opened itself.

The exclusion is proved against real oslo.concurrency holders in other
processes, both ways: what nova-compute runs must see cachemgr's lock and
cachemgr must see nova's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cachemgr.cache import locks
from tests.support.deadline import deadline
from tests.support.hosts import held_lock

NAME = "0123456789abcdef0123456789abcdef01234567"

_TRY_OSLO_LOCK = """
import sys
from oslo_concurrency import lockutils
lock = lockutils.external_lock(sys.argv[1], lock_file_prefix="nova-",
                               lock_path=sys.argv[2])
print("got" if lock.acquire(blocking=False) else "refused", flush=True)
"""


def oslo_lock_attempt(name: str, lock_path: Path) -> str:
    """What oslo.concurrency in another process gets: ``got`` or ``refused``."""
    result = subprocess.run(
        [sys.executable, "-c", _TRY_OSLO_LOCK, name, str(lock_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


class TestExclusionWithOsloConcurrency:
    def test_nova_holder_excludes_cachemgr(self, tmp_path: Path) -> None:
        """While oslo.concurrency holds nova-<name> elsewhere, the lock is refused."""
        lock_path = tmp_path / "locks"
        with (
            held_lock(NAME, lock_path),
            locks.LockDir(str(lock_path)) as lock_dir,
            lock_dir.lock(NAME, 0.2) as taken,
        ):
            assert taken is False
        with locks.external_lock(str(lock_path), NAME, 0.2) as taken:
            assert taken is True

    def test_cachemgr_holder_excludes_nova(self, tmp_path: Path) -> None:
        """While cachemgr holds nova-<name>, oslo.concurrency elsewhere is refused."""
        lock_path = tmp_path / "locks"
        with locks.external_lock(str(lock_path), NAME, 0.2) as taken:
            assert taken is True
            assert oslo_lock_attempt(NAME, lock_path) == "refused"
        assert oslo_lock_attempt(NAME, lock_path) == "got"

    def test_waits_for_a_release_within_the_wait(self, tmp_path: Path) -> None:
        """A lock released during the wait is taken, not given up on."""
        lock_path = tmp_path / "locks"
        with (
            held_lock(NAME, lock_path) as holder,
            locks.LockDir(str(lock_path)) as lock_dir,
        ):
            subprocess.Popen(["sh", "-c", f"sleep 0.3; kill {holder.pid}"])
            with lock_dir.lock(NAME, 10) as taken:
                assert taken is True


class TestUnsafeLockFiles:
    def test_symlink_is_refused_and_its_target_untouched(self, tmp_path: Path) -> None:
        lock_path = tmp_path / "locks"
        lock_path.mkdir()
        victim = tmp_path / "victim"
        victim.write_text("secret")
        victim.chmod(0o600)
        (lock_path / f"nova-{NAME}").symlink_to(victim)
        with (
            pytest.raises(locks.UnsafeLockFile, match="it is a symbolic link"),
            locks.external_lock(str(lock_path), NAME, 0.2),
        ):
            pass
        assert (victim.read_text(), victim.stat().st_mode & 0o777) == ("secret", 0o600)

    def test_fifo_is_refused_at_once(self, tmp_path: Path) -> None:
        lock_path = tmp_path / "locks"
        lock_path.mkdir()
        os.mkfifo(lock_path / f"nova-{NAME}")
        with (
            deadline(5),
            pytest.raises(locks.UnsafeLockFile, match="FIFO"),
            locks.external_lock(str(lock_path), NAME, 0.2),
        ):
            pass

    def test_symlinked_locks_dir_is_refused(self, tmp_path: Path) -> None:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (tmp_path / "locks").symlink_to(elsewhere)
        with pytest.raises(locks.UnsafeLockFile, match="locks cannot be opened"):
            locks.LockDir(str(tmp_path / "locks"))
        assert os.listdir(elsewhere) == []


class TestOwnership:
    @pytest.mark.skipif(os.geteuid() != 0, reason="only root creates for others")
    def test_made_by_root_for_the_owner_of_instances_path(self, tmp_path: Path) -> None:
        """The locks dir and a lock file root makes belong to instances_path's owner."""
        os.chown(tmp_path, 4242, 4243)
        with locks.external_lock(str(tmp_path / "locks"), NAME, 0.2):
            pass
        for path in (tmp_path / "locks", tmp_path / "locks" / f"nova-{NAME}"):
            st = path.stat()
            assert (st.st_uid, st.st_gid) == (4242, 4243), path

    def test_missing_instances_path_is_not_made(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            locks.LockDir(str(tmp_path / "missing" / "locks"))
        assert not (tmp_path / "missing").exists()
