"""journal: crash-safe, append-only JSONL journals for AI-agent conversations.

The on-disk format is specified in FORMAT.md; crash-safety promises in CRASH-SAFETY.md.
"""

from __future__ import annotations

from .compaction.protocol import CompactionPolicy, CompactionReport, CompactionResult
from .errors import (
    CorruptionError,
    DeleteError,
    DurabilityError,
    ExportError,
    ForeignStoreError,
    InvalidArchiveError,
    InvalidQueryError,
    InvalidRecordError,
    InvalidSessionIdError,
    JournalError,
    LockTimeout,
    ReadOnlyError,
    RecordTooLargeError,
    RecoveryWarning,
    SessionIdCollisionError,
    StoreRootError,
    UnknownSessionError,
    UnreadableSessionWarning,
    UnsafePathError,
    UnsupportedFormatError,
)
from .log.record import FORMAT_VERSION, Record
from .log.recovery import Report
from .log.scan import Problem
from .log.state import SessionState
from .native import Journal
from .store.session_data import SessionData, SessionMessage
from .store.session_store import DefaultSessionStore

__version__ = "0.1.0"

__all__ = [
    "UnknownSessionError",
    "InvalidQueryError",
    "InvalidArchiveError",
    "ExportError",
    "FORMAT_VERSION",
    "CompactionPolicy",
    "CompactionReport",
    "CompactionResult",
    "CorruptionError",
    "DefaultSessionStore",
    "DeleteError",
    "DurabilityError",
    "ForeignStoreError",
    "InvalidRecordError",
    "InvalidSessionIdError",
    "Journal",
    "JournalError",
    "LockTimeout",
    "Problem",
    "ReadOnlyError",
    "Record",
    "RecordTooLargeError",
    "RecoveryWarning",
    "Report",
    "SessionIdCollisionError",
    "SessionData",
    "SessionMessage",
    "SessionState",
    "StoreRootError",
    "UnreadableSessionWarning",
    "UnsafePathError",
    "UnsupportedFormatError",
    "__version__",
]
