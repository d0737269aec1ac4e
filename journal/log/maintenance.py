"""Whole-session upkeep under the session lock: verify, repair, delete.

Strategy: verify and repair take the session's file lock themselves (no cached handle), so
they exclude every writer in any process; verify never creates a lock file (a session no
journal wrote has no writer to exclude). Delete marks the lock file, renames the directory to a
`.trash-<hex>` name in the root and fsyncs the root (the commit point), then removes the tree;
the next open finishes a delete cut short at any step (log/removal.py). Repair also finishes an
interrupted delete, and removes the temps a crash left in `quarantine/`.
"""

from __future__ import annotations

import os

from ..errors import CorruptionError, DeleteError, DurabilityError, UnsafePathError
from . import naming, removal
from .archive import verify_session_archives
from .fs import FileSystem
from .recovery import Report, find_problems, identity_problems, repair_segments
from .scan import Problem
from .session import Options, SessionLog, marked_deleted

TRASH_PREFIX = removal.TRASH_PREFIX
finish_deletes = removal.finish_deletes


class Gone(Exception):
    """Internal: the session was deleted while we waited for its lock."""


def lock_session(
    fs: FileSystem, path: str, options: Options, create: bool, finish_delete: bool = False
) -> int | None:
    """Hold the session lock of `path`; None if it has no lock file and `create` is False.
    With `finish_delete`, a delete found cut short is finished before `Gone` is raised.

    Raises:
        Gone: the session was deleted (or marked deleted) before the lock was ours.
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
        if marked_deleted(fs, fd):
            trash = removal.finish_interrupted_delete(fs, path, fd) if finish_delete else None
            fs.unlock(fd)
            fs.close(fd)
            removal.remove_trash(fs, trash)
            raise Gone()
    except Gone:
        raise
    except BaseException:
        fs.close(fd)
        raise
    return fd


def release(fs: FileSystem, lock_fd: int) -> None:
    fs.unlock(lock_fd)
    fs.close(lock_fd)


def verify_session(fs: FileSystem, path: str, session_id: str, options: Options) -> Report:
    """Check every file of the session at `path`; change nothing."""
    st = fs.stat(path)
    if st is None:
        return Report(ok=True)
    if st.is_link:
        return Report(ok=False, problems=[Problem(path, 0, "corruption", "a symbolic link, not a session")])
    try:
        lock_fd = lock_session(fs, path, options, create=False)
    except Gone:
        return Report(ok=True)
    except (OSError, UnsafePathError) as exc:  # e.g. the lock file is a directory or a link
        problem = Problem(os.path.join(path, naming.LOCK_FILE), 0, "corruption", str(exc))
        return Report(ok=False, problems=[problem])
    try:
        problems = identity_problems(fs, path, session_id)
        problems += find_problems(fs, path) + verify_session_archives(fs, path, options.max_record_bytes)
    except UnsafePathError as exc:  # a link where a file of the session belongs: reads fail
        problems = [Problem(exc.path, 0, "corruption", exc.reason)]
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
        lock_fd = lock_session(fs, path, options, create=True, finish_delete=True)
    except Gone:
        return Report(ok=True)
    except OSError as exc:
        raise CorruptionError(os.path.join(path, naming.LOCK_FILE), 0, str(exc)) from exc
    assert lock_fd is not None  # create=True always opens one
    try:
        removal.remove_quarantine_temps(fs, path)
        report = repair_segments(fs, path, options)
        if report.problems:
            fs.append(lock_fd, b".")  # bump the generation: other handles reopen
    except OSError as exc:
        raise DurabilityError(f"repair of {path} failed: {exc}") from exc
    finally:
        release(fs, lock_fd)
    return report


def delete_session(fs: FileSystem, root: str, log: SessionLog) -> None:
    """Remove the open session `log` (of the store at `root`) and every file of it, lock
    included. Once the rename aside is durable the delete is done: files that then cannot be
    removed only warn, and the next open of the store removes them.

    Raises:
        DeleteError: the session could not be marked or moved aside; it is untouched, or
            marked deleted, and then the next open of it finishes the delete.
    """
    with log.cond:
        log.lock()
        try:
            try:
                log.bump_generation(deleted=True)
            except OSError as exc:
                raise DeleteError(log.path, f"could not mark the session deleted: {exc}") from exc
            log.broken = True  # threads of this process waiting on the handle reopen
            trash = removal.move_to_trash(fs, log.path, root)
        finally:
            log.unlock()
            log.close_locked()
    removal.remove_trash(fs, trash)
