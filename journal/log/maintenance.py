"""Whole-session upkeep under the session lock: verify, repair, delete.

Strategy: verify and repair take the session's file lock themselves (no cached handle), so
they exclude every writer in any process; verify never creates a lock file (a session no
journal wrote has no writer to exclude). Delete marks the lock file, renames the directory to a
`.trash-<hex>` name in the root (the commit point) and then removes the tree; an open of the
store finishes a removal a crash interrupted.
"""

from __future__ import annotations

import os
import secrets

from ..errors import CorruptionError, DurabilityError
from . import naming
from .archive import verify_session_archives
from .fs import FileSystem, remove_tree
from .recovery import Report, find_problems, identity_problems, repair_segments
from .scan import Problem
from .session import DELETED_MARK, Options, SessionLog

TRASH_PREFIX = ".trash-"


class Gone(Exception):
    """Internal: the session was deleted while we waited for its lock."""


def lock_session(fs: FileSystem, path: str, options: Options, create: bool) -> int | None:
    """Hold the session lock of `path`; None if it has no lock file and `create` is False.

    Raises:
        Gone: the session was deleted before the lock was ours.
    """
    lock_path = os.path.join(path, naming.LOCK_FILE)
    if not create and fs.stat(lock_path) is None:
        return None
    try:
        fd = fs.open(lock_path, create=create, mode=options.file_mode)
    except FileNotFoundError:  # renamed away by a delete
        raise Gone() from None
    try:
        fs.lock(fd, options.lock_timeout)
        size = fs.size(fd)
        if size and fs.pread(fd, 1, size - 1) == DELETED_MARK:
            fs.unlock(fd)
            raise Gone()
    except BaseException:
        fs.close(fd)
        raise
    return fd


def release(fs: FileSystem, lock_fd: int) -> None:
    fs.unlock(lock_fd)
    fs.close(lock_fd)


def verify_session(fs: FileSystem, path: str, session_id: str, options: Options) -> Report:
    """Check every file of the session at `path`; change nothing."""
    if fs.stat(path) is None:
        return Report(ok=True)
    try:
        lock_fd = lock_session(fs, path, options, create=False)
    except Gone:
        return Report(ok=True)
    except OSError as exc:  # e.g. the lock file is a directory: damage, not a crash
        problem = Problem(os.path.join(path, naming.LOCK_FILE), 0, "corruption", str(exc))
        return Report(ok=False, problems=[problem])
    try:
        problems = identity_problems(fs, path, session_id)
        problems += find_problems(fs, path) + verify_session_archives(fs, path)
    except OSError as exc:
        raise CorruptionError(path, 0, f"cannot read the session's files: {exc}") from exc
    finally:
        if lock_fd is not None:
            release(fs, lock_fd)
    return Report(ok=not problems, problems=problems)


def holds_session(fs: FileSystem, path: str) -> bool:
    if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None:
        return True
    return bool(fs.listdir(os.path.join(path, naming.LOG_DIR)))


def repair_session(fs: FileSystem, path: str, options: Options) -> Report:
    """Salvage the session at `path` (`recovery.repair_segments`); every handle reopens."""
    if not holds_session(fs, path):
        return Report(ok=True)
    try:
        lock_fd = lock_session(fs, path, options, create=True)
    except Gone:
        return Report(ok=True)
    except OSError as exc:
        raise CorruptionError(os.path.join(path, naming.LOCK_FILE), 0, str(exc)) from exc
    assert lock_fd is not None  # create=True always opens one
    try:
        report = repair_segments(fs, path, options)
        if report.problems:
            fs.append(lock_fd, b".")  # bump the generation: other handles reopen
    except OSError as exc:
        raise DurabilityError(f"repair of {path} failed: {exc}") from exc
    finally:
        release(fs, lock_fd)
    return report


def delete_session(fs: FileSystem, root: str, log: SessionLog) -> None:
    """Remove the open session `log` and every file of it, lock included."""
    trash = os.path.join(root, f"{TRASH_PREFIX}{secrets.token_hex(8)}")
    with log.cond:
        log.lock()
        try:
            log.bump_generation(deleted=True)
            log.broken = True  # threads of this process waiting on the handle reopen
            fs.rename(log.path, trash)
            fs.sync_dir(root)
        finally:
            log.unlock()
        log.close_locked()
    remove_tree(fs, trash)


def finish_deletes(fs: FileSystem, root: str) -> None:
    """Remove what deletes interrupted after their rename left in the root."""
    for name in fs.listdir(root):
        if name.startswith(TRASH_PREFIX):
            remove_tree(fs, os.path.join(root, name))
