"""How full the file system of the cache dir is, as df says (DESIGN 1.9).

``used = f_blocks - f_bfree`` and ``use = used / (used + f_bavail)``: the
blocks reserved for root count as neither used nor available, exactly as in
df's Use% column, so the figure an operator's alert reads is the one the
pass acts on. Pure: ``cachemgr.cache.scan.measure_filesystem_use`` makes
the one statvfs of a pass; the metrics and the disk pressure of the plan
read the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["FilesystemUse", "StatvfsLike", "filesystem_use"]


class StatvfsLike(Protocol):
    """The fields of ``os.statvfs_result`` df's formula reads."""

    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bfree(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FilesystemUse:
    """Bytes used and bytes available to unprivileged users.

    The blocks reserved for root (f_bfree less f_bavail) are in neither, as
    in df's ``Use%``: for nova's user the file system is full when nothing
    is available. Removing a file of N allocated bytes moves N from used to
    available; their sum stays.
    """

    used_bytes: int
    available_bytes: int

    @property
    def ratio(self) -> float:
        """``used / (used + available)``, 0 to 1; 0 for an empty file system."""
        total = self.used_bytes + self.available_bytes
        return self.used_bytes / total if total > 0 else 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.ratio

    def at_or_above(self, percent: int) -> bool:
        """Whether the use is at or above ``percent``; exact, in integers."""
        total = self.used_bytes + self.available_bytes
        return 100 * self.used_bytes >= percent * total

    def at_or_below(self, percent: int, *, freed_bytes: int = 0) -> bool:
        """Whether the use, less ``freed_bytes``, is at or below ``percent``.

        Exact in integers: ``100 * (used - freed) <= percent * total``.
        """
        total = self.used_bytes + self.available_bytes
        return 100 * (self.used_bytes - freed_bytes) <= percent * total


def filesystem_use(st: StatvfsLike) -> FilesystemUse:
    """df's figures from a statvfs result: ``used = f_blocks - f_bfree``."""
    return FilesystemUse(
        used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize,
        available_bytes=st.f_bavail * st.f_frsize,
    )
