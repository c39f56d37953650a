"""Opening what the owner of instances_path controls (DESIGN 1.8).

Everything under instances_path is written by nova's user, and cachemgr
often runs with more rights (root, or CAP_DAC_READ_SEARCH). Every file it
opens there goes through this module, which never follows a symlink it was
not asked to, never blocks on a FIFO, never opens a device, and changes an
owner or mode only through the descriptor it opened: a planted link cannot
make root read, chown or hang on a file of its choosing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

__all__ = [
    "NotRegularFile",
    "describe_type",
    "give_like",
    "open_directory",
    "open_regular",
    "open_through_link",
    "replace_file",
    "replace_in_directory",
]

_NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

_TYPE_WORDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISCHR, "a character device"),
)


class NotRegularFile(OSError):
    """An entry that is not a regular file where only one may be used.

    An OSError, so that callers that already report a file that cannot be
    opened report this one the same way; ``strerror`` says what it is.
    """

    def __init__(self, what: str, filename: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file but {what}", filename)
        self.what = what


def describe_type(mode: int) -> str:
    """The words for a file type: ``a FIFO``, ``a symbolic link``..."""
    for test, words in _TYPE_WORDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else "an unknown file type"


def open_regular(
    name: str,
    flags: int = os.O_RDONLY,
    *,
    dir_fd: int | None = None,
    mode: int = 0o644,
) -> tuple[int, os.stat_result]:
    """Open a regular file without following a symlink or blocking.

    O_NONBLOCK makes a FIFO open at once instead of waiting for a writer;
    the fstat then refuses it, as it refuses a device or a socket. ``flags``
    may add O_CREAT (with ``mode``) or O_RDWR.

    Returns:
        The descriptor and its fstat; the caller closes the descriptor.

    Raises:
        NotRegularFile: ``name`` is a symlink, FIFO, device, socket or
            directory.
        OSError: it cannot be opened.
    """
    try:
        fd = os.open(name, flags | _NOFOLLOW, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile("a symbolic link", name) from None
        if exc.errno == errno.ENXIO:
            # What opening a socket, or a FIFO for writing, answers.
            raise NotRegularFile("a socket or a FIFO", name) from None
        if exc.errno == errno.EISDIR:
            raise NotRegularFile("a directory", name) from None
        raise
    return fd, _regular_or_close(fd, name)


def open_through_link(path: str) -> tuple[int, os.stat_result]:
    """Open what a symlink points to, only once it is known to be a regular file.

    The target is first opened with O_PATH, which opens nothing (no device
    driver, no FIFO), and fstat'ed; only a regular file is then reopened for
    reading through /proc/self/fd, which reaches that same inode whatever the
    link points to by then.

    Raises:
        NotRegularFile: the link leads to anything but a regular file.
        OSError: the link is dangling or cannot be followed.
    """
    handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        target = os.fstat(handle)
        if not stat.S_ISREG(target.st_mode):
            raise NotRegularFile(describe_type(target.st_mode), path)
        # The magic link of /proc must be followed: no O_NOFOLLOW here.
        fd = os.open(
            f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        )
    finally:
        os.close(handle)
    return fd, _regular_or_close(fd, path)


def _regular_or_close(fd: int, name: str) -> os.stat_result:
    """fstat ``fd``; close it and raise unless it is a regular file."""
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFile(describe_type(st.st_mode), name)
    return st


def open_directory(
    name: str, *, dir_fd: int | None = None, follow: bool = False
) -> tuple[int, os.stat_result]:
    """Open a directory for ``dir_fd=`` use; a symlink is followed only if asked.

    Raises:
        NotADirectoryError: ``name`` is not a directory (nor, with
            ``follow``, a link to one).
        NotRegularFile: ``name`` is a symlink and ``follow`` is False.
        OSError: it cannot be opened.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except NotADirectoryError:
        # O_NOFOLLOW|O_DIRECTORY on a symlink answers ENOTDIR: tell which.
        if not follow:
            mode = os.lstat(name, dir_fd=dir_fd).st_mode
            if stat.S_ISLNK(mode):
                raise NotRegularFile(describe_type(mode), name) from None
        raise
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def give_like(fd: int, model: os.stat_result) -> None:
    """Give the open file ``fd`` the owner of ``model`` when root made it.

    Run as root, cachemgr would otherwise leave root-owned lock files and
    registries that nova-compute, running as its own user, cannot open for
    writing. Only the descriptor is changed, never a path.
    """
    if os.geteuid() != 0:
        return
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (model.st_uid, model.st_gid):
        os.fchown(fd, model.st_uid, model.st_gid)


def replace_file(
    dir_fd: int, name: str, data: bytes, *, mode: int, model: os.stat_result
) -> None:
    """Replace ``name`` in ``dir_fd`` whole: temporary file, fsync, rename.

    The temporary file has one fixed name, ``.<name>.tmp``, made with
    O_EXCL and O_NOFOLLOW: a leftover of a killed run (or anything planted
    under that name) is unlinked and the file made anew, so no run leaves
    more than one behind and the next write removes it. Callers serialise
    writers of the same file (nova's registry lock, one daemon per status
    file). ENOSPC, EDQUOT and EROFS reach the caller as OSError.
    """
    tmp = f".{name}.tmp"
    fd = _create_exclusive(dir_fd, tmp)
    with _unlinked_on_error(dir_fd, tmp):
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            give_like(fd, model)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def replace_in_directory(directory: str, name: str, data: bytes) -> None:
    """Replace ``directory/name`` whole (replace_file), mode 0644 and owned
    like the directory, which is opened here (a symlink to it followed).

    Raises:
        OSError: the directory cannot be opened, or the file written.
    """
    dir_fd, dir_stat = open_directory(directory, follow=True)
    try:
        replace_file(dir_fd, name, data, mode=0o644, model=dir_stat)
    finally:
        os.close(dir_fd)


def _create_exclusive(dir_fd: int, name: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        # Unlinking removes the entry itself, whatever it is (a link is not
        # followed); a directory planted there fails here with EISDIR.
        os.unlink(name, dir_fd=dir_fd)
        return os.open(name, flags, 0o600, dir_fd=dir_fd)


@contextlib.contextmanager
def _unlinked_on_error(dir_fd: int, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise
