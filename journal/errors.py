"""One exception base, a few precise subclasses, and the warning for automatic recovery.

Every error `journal` raises on purpose is a `JournalError`, except plain `TypeError` /
`ValueError` for arguments of the wrong type. Errors about bytes on disk carry the path and
the byte offset so a human can go and look.
"""

from __future__ import annotations


class JournalError(Exception):
    """Base class of every error raised by `journal`."""


class InvalidSessionIdError(JournalError, ValueError):
    """A session id that cannot name a session: empty, too long, or not encodable."""


class InvalidRecordError(JournalError, ValueError):
    """A payload that cannot be stored as JSON exactly; nothing was written.

    `path` names where in the payload the problem is, e.g. ``data['metadata']['when']``.
    """

    def __init__(self, reason: str, path: str = "data") -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason
        self.path = path


class RecordTooLargeError(InvalidRecordError):
    """The encoded payload is over the journal's `max_record_bytes`."""


class InvalidQueryError(JournalError, ValueError):
    """A search that cannot run: a regular expression that does not compile, a `since` /
    `until` that is not a time. Raised before anything is read; `reason` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreRootError(JournalError):
    """The store root cannot be used: it is a file, or it is not writable."""


class SessionIdCollisionError(JournalError):
    """Two session ids map to one directory (a case-insensitive file system).

    Opening the second id is refused so their records are never mixed.
    """


class LockTimeout(JournalError):
    """The session lock was not acquired within the journal's `lock_timeout`."""


class DurabilityError(JournalError):
    """Data could not be made durable (a failed write or fsync).

    The session's writer is poisoned: further appends through this `Journal` raise until
    `Journal.reopen(session_id)` or a new `Journal` recovers the session from disk.
    """


class CorruptionError(JournalError):
    """Damaged bytes followed by valid records: not a torn tail, so not repaired silently.

    `Journal.repair` salvages every valid record and keeps the damaged file aside.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path} at byte {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class UnsupportedFormatError(JournalError):
    """A file written in a format version this `journal` does not read."""

    def __init__(self, path: str, version: object) -> None:
        super().__init__(f"{path}: unsupported format version {version!r}")
        self.path = path
        self.version = version


class RecoveryWarning(UserWarning):
    """Something was repaired automatically (a torn tail cut back); nothing acknowledged lost."""


class ForeignStoreError(JournalError):
    """Files of another store (the docs' layout, PraisonAI's session files) that journal cannot
    take in: broken JSON or a shape it does not know. Nothing was changed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ReadOnlyError(JournalError):
    """A write (append, compact, repair, delete, ...) asked of a store opened read-only."""

    def __init__(self, path: str, reason: str = "the store is open read-only") -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UnreadableSessionWarning(RecoveryWarning):
    """A session that could not be read (permissions, damage) was left out of a listing or a
    pass over the store; the others were still listed or processed."""


class UnsafePathError(JournalError):
    """A symbolic link (or another kind of file) where journal keeps its own file or directory.

    Nothing was followed, written or removed. Not a `CorruptionError`: `repair` cannot salvage
    it and it is no damage to bytes; a link inside the store points outside journal's control,
    so journal refuses it until a person removes it.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class DeleteError(DurabilityError):
    """A delete could not be finished (EIO, ENOSPC, EACCES while marking, moving or removing).

    No writer is poisoned. The session is either untouched or marked deleted; a session marked
    deleted is finished off by the next open of it, and files already moved aside by the next
    open of the store, so no half-deleted session is ever used.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UnknownSessionError(JournalError):
    """A session named by the caller (to export, to show) does not exist in the store."""

    def __init__(self, path: str, session_id: str) -> None:
        super().__init__(f"{path}: no session {session_id!r}")
        self.path = path
        self.session_id = session_id
        self.reason = f"no session {session_id!r}"


class ExportError(JournalError):
    """`export_archive` wrote no file: the target exists (journal never writes over a file it
    did not create), is a link, is inside the store, its directory is missing, or a write or
    fsync failed. No file is left at the target (a crash may leave a
    `<target>.tmp-<pid>-<hex>` beside it)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class InvalidArchiveError(JournalError):
    """A file given to `import_archive` that is not an export journal can read: not JSON
    (or not zstd-compressed JSON), not the archive or the portable shape, a value of the wrong
    type, a broken compressed stream. Nothing was written to the store."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
