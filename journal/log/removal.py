"""Removing what journal made, and nothing else: deleted sessions and orphan temp files.

Strategy: a delete is a resumable step, like compaction. Under the session lock it appends
`DELETED_MARK` to the lock file (every handle, in any process, sees the generation change and
reopens), renames the session directory to `.trash-<16 hex>` in the store root and fsyncs the
root: that fsync is the commit point. Only then, without the lock, is the trash tree removed.
Each step can be cut short by a kill, a power loss or an I/O error, and the next open finishes:
- the mark is there and the lock file is still the one at the session's path: whoever takes
  that lock next knows no live delete holds it (a delete holds the lock from the mark through
  the rename) and rolls the delete forward (`finish_interrupted_delete`);
- a `.trash-*` directory in the root: the next open of the store removes it (`finish_deletes`).
Trees are removed without following links (`fs.remove_tree`). Orphan temps in `quarantine/`
(a crash during `write_atomic` there) carry `fs.temp_name`'s exact shape; only names of that
shape are removed, and only under the session lock, which every writer of quarantine holds.
"""

from __future__ import annotations

import os
import re
import secrets
import warnings

from ..errors import DeleteError, RecoveryWarning
from . import naming
from .fs import TEMP_MARK, FileSystem, remove_tree, unlink_quietly

TRASH_PREFIX = ".trash-"
_TRASH_NAME = re.compile(re.escape(TRASH_PREFIX) + r"[0-9a-f]{16}")
_TEMP_NAME = re.compile(".+" + re.escape(TEMP_MARK) + "[0-9]+-[0-9a-f]{8}")  # fs.temp_name


def move_to_trash(fs: FileSystem, session_path: str, root: str | None = None) -> str:
    """Rename the session directory to a trash name in the root and make that durable (the
    commit point of a delete; the caller holds the session lock). Returns the trash path.

    Raises:
        DeleteError: the rename or the root's fsync failed (the mark stays: the next open
            of the session finishes the delete).
    """
    root = os.path.dirname(session_path) if root is None else root
    trash = os.path.join(root, f"{TRASH_PREFIX}{secrets.token_hex(8)}")
    try:
        fs.rename(session_path, trash)
        fs.sync_dir(root)
    except OSError as exc:
        raise DeleteError(session_path, f"could not move the session aside: {exc}") from exc
    return trash


def finish_interrupted_delete(fs: FileSystem, session_path: str, lock_fd: int) -> str | None:
    """The caller holds `lock_fd`, a lock file ending in `DELETED_MARK`. If it is still the
    lock file at `session_path`, the delete that marked it was cut short before its rename:
    finish the commit now. Returns the trash path to remove once the lock is released, or
    None if the delete had already moved the directory away."""
    if not fs.same_file(lock_fd, os.path.join(session_path, naming.LOCK_FILE)):
        return None
    return move_to_trash(fs, session_path)


def remove_trash(fs: FileSystem, trash: str | None) -> None:
    """Remove a committed delete's tree; a failure only warns: the session is gone already,
    and the next open of the store tries again."""
    if trash is None:
        return
    try:
        remove_tree(fs, trash)
    except DeleteError as exc:
        warnings.warn(
            RecoveryWarning(f"deleted session's files left in {trash} for the next open: {exc.reason}"),
            stacklevel=3,
        )


def finish_deletes(fs: FileSystem, root: str) -> None:
    """Remove what deletes left in the root after their commit. A `.trash-*` link is unlinked,
    its target untouched; a plain file of that name is not journal's and is left alone."""
    for name in fs.listdir(root):
        if _TRASH_NAME.fullmatch(name) is None:
            continue
        path = os.path.join(root, name)
        st = fs.stat(path)
        if st is not None and (st.is_link or st.is_dir):
            remove_trash(fs, path)


def remove_quarantine_temps(fs: FileSystem, session_path: str) -> list[str]:
    """Unlink the temp files a crash left in `quarantine/` (the caller holds the session
    lock); every other name there is kept. Returns the names removed."""
    directory = os.path.join(session_path, naming.QUARANTINE_DIR)
    st = fs.stat(directory)
    if st is None or st.is_link or not st.is_dir:  # a link's target is not ours to clean
        return []
    removed = []
    for name in fs.listdir(directory):
        if _TEMP_NAME.fullmatch(name) is None:
            continue
        path = os.path.join(directory, name)
        st = fs.stat(path)
        if st is not None and not st.is_link and not st.is_dir:
            unlink_quietly(fs, path)
            removed.append(name)
    return removed
