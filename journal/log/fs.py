"""The one narrow interface through which `journal` touches the file system.

Strategy: every effect that matters for crash safety (open, append, fsync, rename, unlink,
mkdir, directory fsync, truncate, read, lock) is a method of `FileSystem`. Production uses
`OsFileSystem`; the crash-simulation tests pass a simulated disk with the same methods, so
there is no second code path for tests. Files are named by `str` paths and opened files by
integer handles. Helpers built only from these primitives (`write_atomic`, `read_file`)
live here too so every caller gets the same temp -> fsync -> rename -> fsync-dir sequence.

Links: nothing under the store root is followed. Every file is opened O_NOFOLLOW, `mkdir`
refuses a link where journal's own directory belongs, `stat` says which names are links, and
trees are removed by a walk relative to directory descriptors that unlinks a link itself and
never its target (`OsFileSystem.remove_tree`). The root itself may be a link: the user names it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import portalocker
from portalocker.exceptions import LockException

from ..errors import DeleteError, LockTimeout, UnsafePathError

TEMP_MARK = ".tmp-"


@dataclass(frozen=True)
class FileStat:
    is_dir: bool
    size: int
    mtime: float
    is_link: bool = False  # a symbolic link (`is_dir`, `size` describe its target, if any)


class FileSystem(Protocol):
    """What `journal` needs from a file system; see `OsFileSystem` for the semantics."""

    def open(self, path: str, *, create: bool, mode: int) -> int: ...
    def append(self, fd: int, data: bytes) -> None: ...
    def pread(self, fd: int, size: int, offset: int) -> bytes: ...
    def size(self, fd: int) -> int: ...
    def truncate(self, fd: int, size: int) -> None: ...
    def sync(self, fd: int) -> None: ...
    def close(self, fd: int) -> None: ...
    def lock(self, fd: int, timeout: float) -> None: ...
    def unlock(self, fd: int) -> None: ...
    def stat(self, path: str) -> FileStat | None: ...
    def same_file(self, fd: int, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str]: ...
    def mkdir(self, path: str, mode: int) -> bool: ...
    def rename(self, src: str, dst: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def sync_dir(self, path: str) -> None: ...


@runtime_checkable
class TreeRemover(Protocol):
    """A file system that removes a tree itself, safe against links swapped in meanwhile."""

    def remove_tree(self, path: str) -> None: ...


_LOCK_FLAGS = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING

# On POSIX portalocker's locker is fcntl.flock; its wrapper (flag enums, argument checks) costs
# about 3.5 us per lock+unlock against 1 us for the call itself, a third of an append's budget
# in "none" mode. So on POSIX the same flock primitive is called directly (locks stay compatible
# with portalocker users of the lock file); elsewhere portalocker's own locker is used.
if sys.platform != "win32":
    import fcntl

    _flock: Callable[[int, int], None] | None = fcntl.flock
    _LOCK_EX_NB: int = fcntl.LOCK_EX | fcntl.LOCK_NB
    _LOCK_UN: int = fcntl.LOCK_UN
else:  # pragma: no cover - exercised on Windows only
    _flock = None
    _LOCK_EX_NB = _LOCK_UN = 0


class OsFileSystem:
    """The real OS. Appends use O_APPEND; `sync` is fdatasync where the OS has it."""

    def __init__(self) -> None:
        self._locker = _make_locker()

    def open(self, path: str, *, create: bool, mode: int) -> int:
        """Open (or create) `path` for reading and appending; a link there is refused.

        Raises:
            UnsafePathError: `path` is a symbolic link.
        """
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_BINARY", 0) | _O_NOFOLLOW
        if create:
            flags |= os.O_CREAT
        try:
            return os.open(path, flags, mode)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS and os.path.islink(path):
                raise _link_refused(path) from exc
            raise

    def open_positional(self, path: str, *, create: bool, mode: int) -> int:
        """`open` without O_APPEND, for `pwrite` (a log segment written ahead of a zeroed,
        preallocated tail); a link there is refused. Never `append` to what this returns."""
        flags = os.O_RDWR | getattr(os, "O_BINARY", 0) | _O_NOFOLLOW | (os.O_CREAT if create else 0)
        try:
            return os.open(path, flags, mode)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS and os.path.islink(path):
                raise _link_refused(path) from exc
            raise

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        """Write all of `data` at `offset` of a descriptor from `open_positional`."""
        written = os.pwrite(fd, data, offset)
        if written == len(data):
            return
        view = memoryview(data)[written:]
        while view:  # a short write: finish it, or let the error surface
            offset += written
            written = os.pwrite(fd, view, offset)
            view = view[written:]

    def append(self, fd: int, data: bytes) -> None:
        written = os.write(fd, data)
        if written != len(data):  # a short write: finish it, or let the error surface
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(fd, view) :]

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        chunks = []
        while size > 0:
            chunk = os.pread(fd, size, offset)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def size(self, fd: int) -> int:
        # lseek to the end returns the size without building a stat result (0.25 us vs 0.9 us);
        # the file position is irrelevant: writes are O_APPEND and reads use pread.
        return os.lseek(fd, 0, os.SEEK_END)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def sync(self, fd: int) -> None:
        _fdatasync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def lock(self, fd: int, timeout: float) -> None:
        """Take the exclusive lock, polling with capped, jittered backoff so no waiter starves."""
        if _flock is not None:  # the uncontended case inline: it runs once per append
            try:
                _flock(fd, _LOCK_EX_NB)
                return
            except BlockingIOError:
                pass
        elif self._try_lock(fd):
            return
        deadline = time.monotonic() + timeout
        delay = 0.00005
        while True:
            time.sleep(delay * (0.5 + secrets.randbelow(1000) / 1000))
            if self._try_lock(fd):
                return
            if time.monotonic() >= deadline:
                raise LockTimeout(f"session lock not acquired within {timeout} s")
            delay = min(delay * 2, 0.002)

    def _try_lock(self, fd: int) -> bool:
        if _flock is not None:
            try:
                _flock(fd, _LOCK_EX_NB)
            except BlockingIOError:
                return False
            return True
        try:
            self._locker.lock(fd, _LOCK_FLAGS)
        except LockException:
            return False
        return True

    def unlock(self, fd: int) -> None:
        if _flock is not None:
            _flock(fd, _LOCK_UN)
        else:
            self._locker.unlock(fd)

    def stat(self, path: str) -> FileStat | None:
        try:
            st = os.lstat(path)
            is_link = stat.S_ISLNK(st.st_mode)
            if is_link:  # describe the target (a store root may be a link), flagged as a link
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    st = os.stat(path)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        return FileStat(is_dir=stat.S_ISDIR(st.st_mode), size=st.st_size, mtime=st.st_mtime, is_link=is_link)

    def same_file(self, fd: int, path: str) -> bool:
        """Is the open file `fd` the one `path` names now (not one renamed or deleted since)?"""
        try:
            at_path = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def mkdir(self, path: str, mode: int) -> bool:
        """Create a directory; False if it already exists.

        Raises:
            UnsafePathError: a link is where the directory belongs.
        """
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if os.path.islink(path):
                raise _link_refused(path) from None
            if not os.path.isdir(path):
                raise
            return False
        return True

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def sync_dir(self, path: str) -> None:
        if sys.platform == "win32":  # Windows cannot open a directory for fsync.
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_tree(self, path: str) -> None:
        """Remove the tree at `path` bottom-up, never following a link: each directory is
        opened O_NOFOLLOW relative to its parent's descriptor, so a link found anywhere, even
        one swapped in during the walk, is unlinked itself and its target left alone."""
        if not _DIR_FD_WALK:  # pragma: no cover - platforms without dir_fd (Windows)
            _remove_tree_by_path(self, path)
            return
        parent, name = os.path.split(os.path.abspath(path))
        # The parent (the store root) is opened following links: the user may name a link.
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _remove_entry_at(parent_fd, name)
        finally:
            os.close(parent_fd)


_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
# What opening a link with O_NOFOLLOW raises: ELOOP (Linux, macOS), EMLINK (FreeBSD).
_LINK_ERRNOS = (errno.ELOOP, errno.EMLINK)
_DIR_FD_WALK = (
    bool(_O_NOFOLLOW)
    and hasattr(os, "O_DIRECTORY")
    and {os.open, os.unlink, os.rmdir} <= os.supports_dir_fd
    and os.scandir in os.supports_fd
)


def open_for_reading(path: str) -> int:
    """Open `path` read-only (a read-only mount refuses O_RDWR); a link there is refused.

    Raises:
        UnsafePathError: `path` is a symbolic link.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | _O_NOFOLLOW
    try:
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS and os.path.islink(path):
            raise _link_refused(path) from exc
        raise


def _link_refused(path: str) -> UnsafePathError:
    return UnsafePathError(path, "a symbolic link where journal keeps its own file; not followed")


def _remove_entry_at(dir_fd: int, name: str) -> None:
    """Remove `name` in the directory `dir_fd`: a directory with all it holds, else the name."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return  # removed already: a removal being redone after a crash
    except OSError as exc:
        if exc.errno not in (*_LINK_ERRNOS, errno.ENOTDIR):
            raise
        _unlink_at(dir_fd, name)  # a link or a file: the name goes, a link's target stays
        return
    try:
        with os.scandir(fd) as entries:
            children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for child, is_dir in children:
            if is_dir:
                _remove_entry_at(fd, child)
            else:
                _unlink_at(fd, child)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=dir_fd)


def _unlink_at(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:  # a directory swapped in since the listing: remove it as one
        _remove_entry_at(dir_fd, name)


def _make_locker() -> portalocker.portalocker.BaseLocker:
    if sys.platform == "win32":
        return portalocker.portalocker.MsvcrtLocker()  # type: ignore[attr-defined,no-any-return,unused-ignore]
    return portalocker.portalocker.FlockLocker()  # type: ignore[attr-defined,no-any-return,unused-ignore]


def _fdatasync(fd: int) -> None:
    if sys.platform == "darwin":  # fsync on macOS does not reach the platter; F_FULLFSYNC does.
        import fcntl

        try:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
            return
        except OSError:
            pass
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def temp_name(path: str) -> str:
    """A unique sibling name for an atomic write; `TEMP_MARK` marks orphans to clean up."""
    return f"{path}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def write_atomic(fs: FileSystem, path: str, data: bytes, mode: int) -> None:
    """Publish `data` at `path`: unique temp -> fsync -> rename -> fsync the directory."""
    tmp = temp_name(path)
    fd = fs.open(tmp, create=True, mode=mode)
    try:
        fs.append(fd, data)
        fs.sync(fd)
    except BaseException:
        fs.close(fd)
        unlink_quietly(fs, tmp)
        raise
    fs.close(fd)
    fs.rename(tmp, path)
    fs.sync_dir(os.path.dirname(path) or ".")


def read_file(fs: FileSystem, path: str, limit: int | None = None) -> bytes | None:
    """The whole content of `path` (at most its first `limit` bytes), or None if it does not exist."""
    try:
        fd = fs.open(path, create=False, mode=0)
    except FileNotFoundError:
        return None
    try:
        size = fs.size(fd)
        return fs.pread(fd, size if limit is None else min(size, limit), 0)
    finally:
        fs.close(fd)


def remove_tree(fs: FileSystem, path: str) -> None:
    """Delete a directory tree bottom-up, unlinking every link found rather than following it;
    a tree partly removed already (a removal being redone) is fine.

    Raises:
        DeleteError: a file or directory could not be removed (path and reason).
    """
    try:
        if isinstance(fs, TreeRemover):
            fs.remove_tree(path)
        else:
            _remove_tree_by_path(fs, path)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise DeleteError(path, f"could not remove the tree{where}: {exc.strerror or exc}") from exc


def _remove_tree_by_path(fs: FileSystem, path: str) -> None:
    """`remove_tree` through the interface alone (the simulated disk; no dir_fd calls)."""
    st = fs.stat(path)
    if st is None:
        return
    if st.is_link or not st.is_dir:
        unlink_quietly(fs, path)
        return
    for name in fs.listdir(path):
        _remove_tree_by_path(fs, os.path.join(path, name))
    with contextlib.suppress(FileNotFoundError):
        fs.rmdir(path)


def unlink_quietly(fs: FileSystem, path: str) -> None:
    """Unlink `path`; one already gone is fine (a step being redone after a crash)."""
    try:
        fs.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def make_dirs(fs: FileSystem, path: str, mode: int) -> None:
    """Create `path` and any missing parents, each made durable in its parent."""
    parent = os.path.dirname(os.path.abspath(path))
    if fs.stat(parent) is None:
        make_dirs(fs, parent, mode)
    if fs.mkdir(path, mode):
        fs.sync_dir(parent)
