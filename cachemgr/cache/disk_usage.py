"""How full the file system holding the cache dir is (DESIGN 1.9), as df says.

``used = f_blocks - f_bfree`` and ``use = used / (used + f_bavail)``: the
blocks reserved for root count as neither used nor available, exactly as in
df's Use% column, so the figure an operator's alert reads is the one the
pass acts on.
"""

from __future__ import annotations

import os

from cachemgr.cache.snapshot import FilesystemUse

__all__ = ["FilesystemUse", "measure_filesystem_use", "used_ratio"]


def used_ratio(st: os.statvfs_result) -> float:
    """df's use of a statvfs result, from 0 to 1."""
    return _from_statvfs(st).ratio


def measure_filesystem_use(path: str) -> FilesystemUse | None:
    """The use of the file system holding ``path``; None if ``path`` is missing.

    Raises:
        OSError: statvfs failed for another reason.
    """
    try:
        st = os.statvfs(path)
    except FileNotFoundError:
        return None
    return _from_statvfs(st)


def _from_statvfs(st: os.statvfs_result) -> FilesystemUse:
    block = st.f_frsize or st.f_bsize
    return FilesystemUse(
        used_bytes=(st.f_blocks - st.f_bfree) * block,
        available_bytes=st.f_bavail * block,
    )
