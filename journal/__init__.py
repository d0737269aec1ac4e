"""journal: crash-safe, append-only JSONL journals for AI-agent conversations.

The on-disk format is specified in FORMAT.md; crash-safety promises in CRASH-SAFETY.md.
"""

from __future__ import annotations

from .compaction import CompactionPolicy, CompactionReport, CompactionResult
from .errors import (
    CorruptionError,
    DurabilityError,
    InvalidRecordError,
    InvalidSessionIdError,
    JournalError,
    LockTimeout,
    RecordTooLargeError,
    RecoveryWarning,
    SessionIdCollisionError,
    StoreRootError,
    UnsupportedFormatError,
)
from .native import Journal
from .record import FORMAT_VERSION, Record
from .recovery import Report
from .scan import Problem
from .session_data import SessionData, SessionMessage
from .session_store import DefaultSessionStore
from .state import SessionState

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "CompactionPolicy",
    "CompactionReport",
    "CompactionResult",
    "CorruptionError",
    "DefaultSessionStore",
    "DurabilityError",
    "InvalidRecordError",
    "InvalidSessionIdError",
    "Journal",
    "JournalError",
    "LockTimeout",
    "Problem",
    "Record",
    "RecordTooLargeError",
    "RecoveryWarning",
    "Report",
    "SessionIdCollisionError",
    "SessionData",
    "SessionMessage",
    "SessionState",
    "StoreRootError",
    "UnsupportedFormatError",
    "__version__",
]
