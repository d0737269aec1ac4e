"""A read-only view of a store: every write refused, half-done compactions read as committed.

Strategy: a store the process cannot (or must not) write, such as a backup, another user's
store or a read-only mount, is read through this wrapper of the real `FileSystem`, so the
engine keeps one code path. Files are opened O_RDONLY. Every effect (append, truncate, mkdir,
rename, unlink, fsync) raises `ReadOnlyError`, so nothing is ever created or cut. A lock file
that is missing or cannot be opened, or a file the engine would create, is the *null handle*
(-1): it reads as empty and locks nothing (lock files hold no data; a reader only waits on
them so as not to see a half-written batch). A compaction whose manifest commit lists pending
renames is read as the manifest says, without finishing it: a final name whose temp is still
there is read from the temp, and the folded segments are hidden from the log directory.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from typing import Protocol

from ..errors import CorruptionError, ReadOnlyError, RecoveryWarning
from . import manifest as mf
from . import naming
from .fs import FileStat, FileSystem, OsFileSystem, open_for_reading
from .scan import Problem

NULL = -1  # the null handle: an empty file, no lock
_LOCK_NAMES = frozenset({naming.LOCK_FILE, mf.COMPACTION_LOCK})


@dataclass(frozen=True)
class _Pending:
    """A committed, unfinished compaction of one session, keyed by the manifest's bytes."""

    raw: bytes
    aliases: dict[str, str]  # final path -> temp path still to be renamed
    hidden: frozenset[str]  # folded segment paths still to be unlinked


class ReadOnlyFileSystem:
    """`inner`, read-only, for the store at `root` (see the module docstring)."""

    def __init__(self, inner: FileSystem, root: str) -> None:
        self.inner, self.root = inner, os.path.abspath(root)
        self._pending: dict[str, _Pending] = {}

    # -- refused -----------------------------------------------------------------------------

    def append(self, fd: int, data: bytes) -> None:
        raise ReadOnlyError(self.root, "cannot append: the store is open read-only")

    def truncate(self, fd: int, size: int) -> None:
        raise ReadOnlyError(self.root, "cannot cut a file: the store is open read-only")

    def sync(self, fd: int) -> None:
        raise ReadOnlyError(self.root, "nothing to sync: the store is open read-only")

    def mkdir(self, path: str, mode: int) -> bool:
        raise ReadOnlyError(path, "cannot create a directory: the store is open read-only")

    def rename(self, src: str, dst: str) -> None:
        raise ReadOnlyError(src, "cannot rename: the store is open read-only")

    def unlink(self, path: str) -> None:
        raise ReadOnlyError(path, "cannot remove: the store is open read-only")

    def rmdir(self, path: str) -> None:
        raise ReadOnlyError(path, "cannot remove: the store is open read-only")

    def sync_dir(self, path: str) -> None:
        raise ReadOnlyError(path, "nothing to sync: the store is open read-only")

    # -- reading -----------------------------------------------------------------------------

    def open(self, path: str, *, create: bool, mode: int) -> int:
        """Open `path` for reading; the null handle for a lock file that cannot be opened
        and for a missing file the engine would create."""
        real = self._resolve(path)
        try:
            return _open(self.inner, real)
        except FileNotFoundError:
            if create or os.path.basename(path) in _LOCK_NAMES:
                return NULL
            raise
        except PermissionError:
            if os.path.basename(path) in _LOCK_NAMES:
                return NULL
            raise

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return b"" if fd == NULL else self.inner.pread(fd, size, offset)

    def size(self, fd: int) -> int:
        return 0 if fd == NULL else self.inner.size(fd)

    def close(self, fd: int) -> None:
        if fd != NULL:
            self.inner.close(fd)

    def lock(self, fd: int, timeout: float) -> None:
        if fd != NULL:  # flock needs no write access: a reader still waits out a writer's batch
            self.inner.lock(fd, timeout)

    def unlock(self, fd: int) -> None:
        if fd != NULL:
            self.inner.unlock(fd)

    def stat(self, path: str) -> FileStat | None:
        pending = self._pending_of(path)
        if pending is not None and path in pending.hidden:
            return None
        return self.inner.stat(self._resolve(path))

    def same_file(self, fd: int, path: str) -> bool:
        return fd != NULL and self.inner.same_file(fd, self._resolve(path))

    def listdir(self, path: str) -> list[str]:
        names = self.inner.listdir(path)
        pending = self._pending_of(os.path.join(path, "x"))
        if pending is None:
            return names
        shown = [n for n in names if os.path.join(path, n) not in pending.hidden]
        shown += [os.path.basename(f) for f in pending.aliases if os.path.dirname(f) == path]
        return sorted(set(shown))

    # -- half-done compactions ---------------------------------------------------------------

    def _resolve(self, path: str) -> str:
        pending = self._pending_of(path)
        return path if pending is None else pending.aliases.get(path, path)

    def _pending_of(self, path: str) -> _Pending | None:
        """The unfinished compaction of the session `path` lies in, if it has one."""
        rel = os.path.relpath(os.path.abspath(path), self.root)
        parts = rel.split(os.sep)
        if len(parts) < 2 or parts[0] in (os.curdir, os.pardir) or parts[-1] == mf.MANIFEST_FILE:
            return None
        session = os.path.join(self.root, parts[0])
        raw = _read(self.inner, os.path.join(session, mf.MANIFEST_FILE))
        if raw is None or b'"pending"' not in raw:
            self._pending.pop(session, None)
            return None
        known = self._pending.get(session)
        if known is None or known.raw != raw:
            known = self._load(session, raw)
            self._pending[session] = known
        return known

    def _load(self, session: str, raw: bytes) -> _Pending:
        manifest = mf.decode(raw, os.path.join(session, mf.MANIFEST_FILE))
        aliases: dict[str, str] = {}
        for temp, final in manifest.pending:
            src, dst = os.path.join(session, temp), os.path.join(session, final)
            if self.inner.stat(src) is not None:
                aliases[dst] = src
            elif self.inner.stat(dst) is None:
                raise CorruptionError(dst, 0, f"committed compaction lost both {temp} and {final}")
        log_dir = os.path.join(session, naming.LOG_DIR)
        hidden = frozenset(os.path.join(log_dir, name) for name in manifest.folded)
        return _Pending(raw, aliases, hidden)


def finished(manifest: mf.Manifest) -> mf.Manifest:
    """The manifest as a reader through `ReadOnlyFileSystem` sees the files: finished."""
    return replace(manifest, pending=(), folded=())


def _open(fs: FileSystem, path: str) -> int:
    """Open for reading only: a read-only mount or file refuses the engine's O_RDWR. A link
    is refused here as the engine refuses it: nothing is read from outside the store."""
    if isinstance(fs, OsFileSystem):
        return open_for_reading(path)
    return fs.open(path, create=False, mode=0)  # a simulated disk: never written through here


def _read(fs: FileSystem, path: str) -> bytes | None:
    try:
        fd = _open(fs, path)
    except FileNotFoundError:
        return None
    try:
        return fs.pread(fd, fs.size(fd), 0)
    finally:
        fs.close(fd)


class _Tail(Protocol):
    seg_first: int
    torn_seen: tuple[int, int] | None


def report_tail(log: _Tail, problem: Problem, size: int) -> None:
    """Read-only: report a torn tail (once) and read up to it; cut and keep nothing."""
    if log.torn_seen != (log.seg_first, problem.offset):
        log.torn_seen = (log.seg_first, problem.offset)
        reason = f"{problem.path}: a torn tail of {size - problem.offset} bytes at offset"
        reason += f" {problem.offset} ({problem.reason}) is skipped, not cut (read-only)"
        warnings.warn(RecoveryWarning(reason), stacklevel=7)
