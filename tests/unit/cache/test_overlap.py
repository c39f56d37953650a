"""Tests for cachemgr.cache.overlap: slices in order, threads only when slow."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from cachemgr.cache import overlap
from cachemgr.cache.overlap import Overlap


def record_threads(seen: set[str]):
    """A slice function that answers each item doubled, noting its thread."""

    def double(items: Sequence[int]) -> list[int]:
        seen.add(threading.current_thread().name)
        return [2 * item for item in items]

    return double


class TestMapChunks:
    @pytest.mark.parametrize("count", [0, 1, 8, 17, 1000])
    @pytest.mark.parametrize("slow", [False, True])
    def test_slices_cover_the_items_in_order(
        self, monkeypatch: pytest.MonkeyPatch, count: int, slow: bool
    ) -> None:
        """Whether the calls wait or not, each item is answered once, in order."""
        if slow:
            monkeypatch.setattr(overlap, "WAIT_SECONDS", -1.0)
        with Overlap(16) as pool:
            parts = pool.map_chunks(record_threads(set()), list(range(count)))
        assert [x for part in parts for x in part] == [2 * i for i in range(count)]

    def test_slow_calls_run_in_the_pool(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Calls seen to wait are spread over the pool's threads."""
        monkeypatch.setattr(overlap, "WAIT_SECONDS", -1.0)
        seen: set[str] = set()
        with Overlap(4) as pool:
            pool.map_chunks(record_threads(seen), list(range(1000)))
        assert any(name.startswith("cachemgr-scan") for name in seen), seen

    def test_fast_calls_stay_in_the_calling_thread(self) -> None:
        """Calls that answer at once start no thread: threads would only cost."""
        seen: set[str] = set()
        with Overlap(16) as pool:
            pool.map_chunks(record_threads(seen), list(range(1000)))
        assert seen == {threading.current_thread().name}

    def test_concurrency_one_never_starts_a_thread(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """scan_concurrency = 1 is a sequential scan, however slow the storage."""
        monkeypatch.setattr(overlap, "WAIT_SECONDS", -1.0)
        seen: set[str] = set()
        with Overlap(1) as pool:
            pool.map_chunks(record_threads(seen), list(range(1000)))
        assert seen == {threading.current_thread().name}

    def test_an_error_reaches_the_caller(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An exception a slice raises in a thread is raised to the caller."""
        monkeypatch.setattr(overlap, "WAIT_SECONDS", -1.0)

        def fail_on_500(items: Sequence[int]) -> list[int]:
            if 500 in items:
                raise OSError(5, "Input/output error")
            return list(items)

        with Overlap(4) as pool, pytest.raises(OSError, match="Input/output"):
            pool.map_chunks(fail_on_500, list(range(1000)))

    def test_concurrency_below_one_is_refused(self) -> None:
        """0 threads cannot scan anything."""
        with pytest.raises(ValueError, match="concurrency 0"):
            Overlap(0)


def test_without_a_probe_every_slice_goes_to_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PROBE_SLICES = 0: even a few fast calls run in the pool's threads."""
    monkeypatch.setattr(overlap, "PROBE_SLICES", 0)
    seen: set[str] = set()
    with Overlap(4) as pool:
        parts = pool.map_chunks(record_threads(seen), [1, 2, 3])
    assert [x for part in parts for x in part] == [2, 4, 6]
    assert all(name.startswith("cachemgr-scan") for name in seen), seen
