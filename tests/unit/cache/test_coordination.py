"""The remover lock through tooz: the file driver, Redis, the URL checks.

Every exclusion is proved against a holder in another process: tooz's own
FileDriver, oslo.concurrency and the lock earlier cachemgr releases take
must exclude cachemgr's file driver and be excluded by it (a rolling
upgrade), and two hosts on one Redis must exclude each other.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachemgr.cache import locks
from cachemgr.cache.coordination import (
    CoordinationError,
    StorageCoordinator,
    check_backend_url,
    redact_url,
)
from cachemgr.exceptions import ConfigError
from tests.support.deadline import deadline
from tests.support.hosts import child_process
from tests.support.redis_server import PASSWORD, free_port

# Who else takes locks/cachemgr-remover: tooz's FileDriver (what a plain
# file:// URL would load), nova's oslo.concurrency, and cachemgr 0.1.
OTHER_FILE_LOCKERS = ("tooz-file", "oslo", "cachemgr-0.1")
LOCK_TIMEOUT = 2
# Far less than anything that waits: "never waits" is measured against it.
AT_ONCE = 1.0

_LOCKER = """
import contextlib, sys, time
hold, kind, lock_path, url = sys.argv[1] == "hold", *sys.argv[2:5]
held = contextlib.ExitStack()
if kind == "tooz-file":
    from tooz import coordination
    driver = coordination.get_coordinator("file://" + lock_path, b"other")
    driver.start()
    lock = driver.get_lock(b"cachemgr-remover")
    taken = lock.acquire(blocking=False)
elif kind == "oslo":
    from oslo_concurrency import lockutils
    lock = lockutils.external_lock(
        "remover", lock_file_prefix="cachemgr-", lock_path=lock_path
    )
    taken = lock.acquire(blocking=False)
elif kind == "cachemgr-0.1":
    from cachemgr.cache import locks
    # What cachemgr 0.1 took: its own lockf on locks/cachemgr-remover.
    taken = held.enter_context(
        locks.external_lock(lock_path, "remover", 0.0, prefix="cachemgr-")
    )
else:
    from cachemgr.cache.coordination import StorageCoordinator
    coordinator = held.enter_context(StorageCoordinator(url, "child", lock_path))
    taken = held.enter_context(coordinator.remover_lock())
print("locked" if taken else "refused", flush=True)
if hold:
    time.sleep(120)
held.close()
"""


def holder(
    kind: str, lock_path: Path, url: str = ""
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """Another process holding the remover lock ``kind``'s way, for the block."""
    return child_process(_LOCKER, "hold", kind, str(lock_path), url)


def attempt(kind: str, lock_path: Path, url: str = "") -> str:
    """What another process taking the lock ``kind``'s way gets: ``locked``
    or ``refused``."""
    result = subprocess.run(
        [sys.executable, "-c", _LOCKER, "try", kind, str(lock_path), url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def try_lock(coordinator: StorageCoordinator) -> bool:
    """Whether the remover lock is free now; fails the test if it waited."""
    started = time.monotonic()
    with coordinator.remover_lock() as taken:
        pass
    assert time.monotonic() - started < AT_ONCE
    return taken


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "instances" / "locks"


@pytest.fixture
def coordinator(lock_path: Path) -> Iterator[StorageCoordinator]:
    """The default coordinator of an instances_path without a locks dir."""
    lock_path.parent.mkdir()
    with StorageCoordinator("", "cmp1", str(lock_path)) as started:
        yield started


class TestFileDriver:
    @pytest.mark.parametrize("kind", OTHER_FILE_LOCKERS)
    def test_their_holder_excludes_ours(
        self, coordinator: StorageCoordinator, lock_path: Path, kind: str
    ) -> None:
        """Held elsewhere by tooz, nova or cachemgr 0.1: refused at once."""
        with holder(kind, lock_path):
            assert try_lock(coordinator) is False
        assert try_lock(coordinator) is True

    @pytest.mark.parametrize("kind", OTHER_FILE_LOCKERS)
    def test_ours_excludes_theirs(
        self, coordinator: StorageCoordinator, lock_path: Path, kind: str
    ) -> None:
        """While cachemgr holds it, tooz, nova and cachemgr 0.1 are refused."""
        with coordinator.remover_lock() as taken:
            assert taken is True
            assert attempt(kind, lock_path) == "refused"
        assert attempt(kind, lock_path) == "locked"

    def test_the_same_lock_file_and_nothing_else(
        self, coordinator: StorageCoordinator, lock_path: Path
    ) -> None:
        """Only locks/cachemgr-remover is made: no groups/ or tmp/ as tooz's
        FileDriver makes."""
        with coordinator.remover_lock():
            pass
        assert os.listdir(lock_path) == ["cachemgr-remover"]

    def test_a_file_url_names_the_same_lock(
        self, coordinator: StorageCoordinator, lock_path: Path
    ) -> None:
        """file://<instances_path>/locks is the default spelled out."""
        with holder("ours", lock_path, f"file://{lock_path}/"):
            assert try_lock(coordinator) is False

    def test_two_coordinators_of_one_process(
        self, coordinator: StorageCoordinator, lock_path: Path
    ) -> None:
        """A second coordinator in the process is refused too, and its try
        does not drop the first one's lockf (POSIX locks are per process)."""
        other = StorageCoordinator("", "cmp1", str(lock_path))
        with coordinator.remover_lock() as taken:
            assert taken is True
            assert try_lock(other) is False
            assert attempt("oslo", lock_path) == "refused"

    def test_a_killed_holder_leaves_it_free(
        self, coordinator: StorageCoordinator, lock_path: Path
    ) -> None:
        """The kernel drops the lockf of a process killed by SIGKILL."""
        with holder("ours", lock_path) as child:
            assert try_lock(coordinator) is False
            child.kill()
            child.wait()
            assert try_lock(coordinator) is True

    def test_entering_starts_it(self, lock_path: Path) -> None:
        """remover_lock on a coordinator not started starts it."""
        lock_path.parent.mkdir()
        coordinator = StorageCoordinator("", "cmp1", str(lock_path))
        try:
            assert try_lock(coordinator) is True
        finally:
            coordinator.stop()
            coordinator.stop()

    @pytest.mark.skipif(os.geteuid() != 0, reason="only root creates for others")
    def test_made_for_the_owner_of_instances_path(
        self, coordinator: StorageCoordinator, lock_path: Path
    ) -> None:
        """Run as root, the locks dir and the lock file it makes are given to
        instances_path's owner, so that nova-compute can open them."""
        os.chown(lock_path.parent, 4242, 4243)
        with coordinator.remover_lock():
            pass
        for path in (lock_path, lock_path / "cachemgr-remover"):
            assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4243), path

    def test_missing_instances_path(self, lock_path: Path) -> None:
        """An instances_path that is not there: an error naming the option,
        and nothing made."""
        coordinator = StorageCoordinator("", "cmp1", str(lock_path))
        with (
            pytest.raises(CoordinationError, match=r"^\[coordination\] backend_url"),
            coordinator.remover_lock(),
        ):
            pass
        assert not lock_path.parent.exists()


class TestUnsafeLockFiles:
    @pytest.mark.parametrize("plant", ["dangling link", "link", "fifo", "directory"])
    def test_planted_lock_file_is_refused_at_once(
        self, coordinator: StorageCoordinator, lock_path: Path, plant: str
    ) -> None:
        """A symlink (dangling or to a file), a FIFO or a directory as
        locks/cachemgr-remover: UnsafeLockFile, and nothing made or changed
        outside."""
        outside = lock_path.parent.parent / "outside"
        outside.mkdir()
        victim = outside / "victim"
        victim.write_text("secret")
        lock_path.mkdir()
        planted = lock_path / "cachemgr-remover"
        if plant == "dangling link":
            planted.symlink_to(outside / "made")
        elif plant == "link":
            planted.symlink_to(victim)
        elif plant == "fifo":
            os.mkfifo(planted)
        else:
            planted.mkdir()
        with (
            deadline(5),
            pytest.raises(locks.UnsafeLockFile, match="cachemgr-remover cannot"),
            coordinator.remover_lock(),
        ):
            pass
        assert sorted(os.listdir(outside)) == ["victim"]
        assert victim.read_text() == "secret"

    def test_symlinked_locks_dir_is_refused(
        self, coordinator: StorageCoordinator, lock_path: Path
    ) -> None:
        elsewhere = lock_path.parent.parent / "elsewhere"
        elsewhere.mkdir()
        lock_path.symlink_to(elsewhere)
        with (
            deadline(5),
            pytest.raises(locks.UnsafeLockFile, match="locks cannot be opened"),
            coordinator.remover_lock(),
        ):
            pass
        assert os.listdir(elsewhere) == []


# Redis's 16 databases, one per test in turn: a lock a killed holder left
# has long expired when its database comes round again.
_DATABASES = (n % 16 for n in itertools.count(1))


@pytest.fixture
def redis_url(redis_port: int) -> str:
    """The private redis-server, a database of this test's own (no lock key
    left by another test), locks that expire LOCK_TIMEOUT s after the last
    heartbeat."""
    return (
        f"redis://:{PASSWORD}@127.0.0.1:{redis_port}"
        f"?db={next(_DATABASES)}&lock_timeout={LOCK_TIMEOUT}"
    )


class TestRedis:
    def test_two_processes_exclude_each_other(
        self, redis_url: str, tmp_path: Path
    ) -> None:
        """Two hosts on one Redis: whoever holds the lock refuses the other."""
        with StorageCoordinator(redis_url, "cmp1", str(tmp_path)) as coordinator:
            with coordinator.remover_lock() as taken:
                assert taken is True
                assert attempt("ours", tmp_path, redis_url) == "refused"
            assert attempt("ours", tmp_path, redis_url) == "locked"
            with holder("ours", tmp_path, redis_url):
                assert try_lock(coordinator) is False

    def test_a_live_holder_keeps_it_past_the_timeout(
        self, redis_url: str, tmp_path: Path
    ) -> None:
        """The heartbeat renews the lock of a host that is alive."""
        with (
            StorageCoordinator(redis_url, "cmp1", str(tmp_path)) as coordinator,
            holder("ours", tmp_path, redis_url),
        ):
            end = time.monotonic() + 2 * LOCK_TIMEOUT
            while time.monotonic() < end:
                assert try_lock(coordinator) is False
                time.sleep(0.2)

    def test_a_killed_holder_loses_it_with_its_session(
        self, redis_url: str, tmp_path: Path
    ) -> None:
        """Killed by SIGKILL, a holder keeps the lock only until its timeout
        passes; then another host takes it, no stale file to clean."""
        with StorageCoordinator(redis_url, "cmp1", str(tmp_path)) as coordinator:
            with holder("ours", tmp_path, redis_url) as child:
                child.kill()
                child.wait()
                killed = time.monotonic()
                assert try_lock(coordinator) is False
            while not try_lock(coordinator):
                assert time.monotonic() - killed < LOCK_TIMEOUT + 2
                time.sleep(0.1)


class TestUnreachableBackend:
    def test_error_names_the_option_not_the_password(self, tmp_path: Path) -> None:
        """A closed port: CoordinationError once tooz's and redis-py's retries
        are spent (about a minute), naming the option, without the password."""
        url = f"redis://:s3cret@127.0.0.1:{free_port()}?lock_timeout=2"
        coordinator = StorageCoordinator(url, "cmp1", str(tmp_path))
        with pytest.raises(CoordinationError) as info:
            coordinator.start()
        message = str(info.value)
        assert message.startswith(
            "[coordination] backend_url = redis://:***@127.0.0.1:"
        )
        assert "cannot connect to it: " in message
        assert "s3cret" not in message
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__

    def test_an_option_tooz_reads_when_it_connects(self, tmp_path: Path) -> None:
        """A bad option that tooz reads only when it starts: CoordinationError
        naming the option, the password masked."""
        url = f"redis://:s3cret@127.0.0.1:{free_port()}?db=first"
        with pytest.raises(CoordinationError) as info:
            StorageCoordinator(url, "cmp1", str(tmp_path)).start()
        message = str(info.value)
        assert message.startswith("[coordination] backend_url = redis://:***@")
        assert "invalid literal" in message
        assert "s3cret" not in message

    def test_an_option_tooz_reads_when_built_is_a_config_error(
        self, tmp_path: Path
    ) -> None:
        """Found when the options are checked, before any pass (exit 2)."""
        url = f"redis://:s3cret@127.0.0.1:{free_port()}?lock_timeout=soon"
        with pytest.raises(ConfigError) as info:
            StorageCoordinator(url, "cmp1", str(tmp_path))
        message = str(info.value)
        assert message.startswith("[coordination] backend_url = redis://:***@")
        assert "invalid literal" in message
        assert "s3cret" not in message


class TestCheckBackendUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "",
            "file:///var/lib/nova/instances/locks",
            "redis://:pw@redis.example.org:6379?lock_timeout=30",
        ],
    )
    def test_usable(self, url: str) -> None:
        check_backend_url(url)

    def test_unknown_scheme(self) -> None:
        """An unknown scheme names the option, the URL and the known ones."""
        with pytest.raises(ConfigError) as info:
            check_backend_url("foo://:s3cret@x")
        message = str(info.value)
        assert message.startswith(
            "[coordination] backend_url = foo://:***@x: unknown scheme 'foo'; known: "
        )
        assert {"file", "redis", "zookeeper", "etcd3+http"} <= set(
            message.rpartition("known: ")[2].split(", ")
        )
        assert "s3cret" not in message

    @pytest.mark.parametrize("url", ["file://relative/locks", "file:locks"])
    def test_file_url_of_no_absolute_directory(self, url: str) -> None:
        with pytest.raises(ConfigError, match="names an absolute directory"):
            check_backend_url(url)


class TestRedactUrl:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("redis://:pw@h:1", "redis://:***@h:1"),
            ("redis://user:pw@h:1/0", "redis://user:***@h:1/0"),
            (
                "redis://h:1?sentinel=m&sentinel_password=pw&lock_timeout=2",
                "redis://h:1?sentinel=m&sentinel_password=***&lock_timeout=2",
            ),
            ("etcd3+http://h:2379?token=t", "etcd3+http://h:2379?token=***"),
            ("zookeeper://h:2181", "zookeeper://h:2181"),
        ],
    )
    def test_secrets_are_masked(self, url: str, shown: str) -> None:
        assert redact_url(url) == shown
