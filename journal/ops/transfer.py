"""Export of sessions to one file and import of such a file (FORMAT.md, "Export files").

Strategy: export walks the sessions in id order and writes each one as it is read, message by
message, into a temp file published only when complete (`archive_json.ExportFile`). Import
reads the file twice through one descriptor: a first pass checks every conversation exactly
as the write will (shape, types, times, session ids, each record as `append_batch` encodes
it), so a file that is not an export, or an export with one bad conversation anywhere, is
refused before anything is written; the second pass writes each session as one all-or-nothing
`append_batch`. Memory holds one session at a time, never the file.
"""

from __future__ import annotations

import collections
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

from ..errors import (
    ExportError,
    InvalidArchiveError,
    InvalidRecordError,
    InvalidSessionIdError,
    JournalError,
    ReadOnlyError,
    UnknownSessionError,
    UnreadableSessionWarning,
    UnsupportedFormatError,
)
from ..log import naming
from ..log.entry import encode_entry
from ..log.record import CLEAR, MESSAGE, META
from ..log.state import SessionState
from . import conversation as doc
from .archive_json import OPEN, BadJson, ExportFile, open_source, read_members, text_chunks
from .conversation import BadDocument, Conversation
from .protocol import Entry, Progress, Readable, Store

FORMATS = ("archive", "portable")
CONFLICTS = ("skip", "append", "replace")
_STREAMED = {"conversations": "{", "sessions": "["}  # the containers read one member at a time


@dataclass(frozen=True)
class ExportReport:
    """What `export_archive` wrote: the file, its sessions, their messages, its size in bytes
    (compressed, for .zst), and the sessions left out because they could not be read."""

    path: str
    sessions: int
    messages: int
    bytes: int
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransferReport:
    """What `import_archive` did, in sessions (imported new, skipped, replaced, appended to)
    and in messages written."""

    path: str
    imported: int = 0
    skipped: int = 0
    replaced: int = 0
    appended: int = 0
    messages: int = 0


# -- export -------------------------------------------------------------------------------------


def export_archive(
    store: Readable,
    path: str | os.PathLike[str],
    sessions: Iterable[str] | None = None,
    *,
    format: str = "archive",
    progress: Progress | None = None,
) -> ExportReport:
    """Write `sessions` (default: every session, in id order) to the new file `path`.

    `format` "archive" is the docs' archive, ``{"export_timestamp", "total_sessions",
    "conversations": {id: {"session_metadata", "messages", "message_count"}}}``; "portable" is
    PraisonAI's ``{"version": 1, "sessions": [...]}``. A path ending in ``.zst`` is
    zstd-compressed. The file appears complete or not at all (mode 0600). Memory: the largest
    session's messages once (besides the store's own cache of folded states, at most its
    `max_cached_messages`), never the whole store.

    A session that cannot be read is left out with an `UnreadableSessionWarning` and named in
    `ExportReport.skipped`; ``total_sessions`` counts the sessions listed, as in the docs.

    Raises:
        ExportError: `path` exists (never written over), is a link, is inside the store, its
            directory is missing, or a write failed; no file is left at `path`.
        UnknownSessionError: a session of `sessions` does not exist (nothing is written).
        ValueError: an unknown `format`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    target = os.fspath(path)
    root = os.path.abspath(store.root)
    if os.path.commonpath([root, os.path.abspath(target)]) == root:  # it would be taken for a session
        raise ExportError(target, f"inside the store {store.root}: write the export elsewhere")
    ids = _chosen(store, sessions)
    out = ExportFile(target, compress=target.endswith(".zst"))
    skipped: list[str] = []
    try:
        head = (
            _archive_head(len(ids))
            if format == "archive"
            else b'{"version":%d,"sessions":[' % (doc.PORTABLE_VERSION)
        )
        out.write(head)
        written = messages = 0
        for done, session_id in enumerate(ids, 1):
            state = _read(store, session_id, skipped)
            if state is not None:
                out.write(b"\n" if written == 0 else b",\n")
                messages += _write_session(out, session_id, state, format)
                written += 1
            if progress is not None:
                progress(done, len(ids))
        out.write(b"\n}}\n" if format == "archive" else b"\n]}\n")
        size = out.publish()
    except BaseException:
        out.discard()
        raise
    return ExportReport(target, written, messages, size, tuple(skipped))


def session_document(store: Readable, session_id: str) -> dict[str, Any]:
    """One conversation exactly as the archive holds it: ``session_metadata`` (id, created_at
    and updated_at as seconds since the epoch, metadata), ``messages`` (each its data plus
    ``timestamp``) and ``message_count``. Nothing in it depends on where the store lives.

    Raises:
        UnknownSessionError: no such session.
    """
    state = store.state(session_id)
    if state is None:
        raise UnknownSessionError(store.root, session_id)
    return doc.archive_document(session_id, state)


def _chosen(store: Readable, sessions: Iterable[str] | None) -> list[str]:
    if sessions is None:
        return sorted(store.sessions())
    if isinstance(sessions, str):
        raise TypeError("sessions must be an iterable of session ids, not one str")
    ids = list(dict.fromkeys(sessions))
    for session_id in ids:
        if not store.exists(session_id):
            raise UnknownSessionError(store.root, session_id)
    return ids


def _read(store: Readable, session_id: str, skipped: list[str]) -> SessionState | None:
    """The session's state; None if it is gone, or (with a warning) cannot be read."""
    try:
        return store.state(session_id)
    except JournalError as exc:
        warnings.warn(f"{session_id!r} left out of the export: {exc}", UnreadableSessionWarning, stacklevel=4)
        skipped.append(session_id)
        return None


def _archive_head(total: int) -> bytes:
    exported = doc.iso_exact(time.time())
    return b'{"%s":%d,"export_timestamp":%s,"total_sessions":%d,"conversations":{' % (
        doc.VERSION_KEY.encode(),
        doc.ARCHIVE_VERSION,
        orjson.dumps(exported),
        total,
    )


def _write_session(out: ExportFile, session_id: str, state: SessionState, format: str) -> int:
    """One session, a message at a time (one line each); return how many messages."""
    if format == "archive":
        out.write(orjson.dumps(session_id) + b':{"session_metadata":')
        out.write(orjson.dumps(doc.archive_head(session_id, state)) + b',"messages":[')
    else:
        out.write(b'{"session_id":' + orjson.dumps(session_id) + b',"messages":[')
    for index, record in enumerate(state.messages):
        out.write((b"\n" if index == 0 else b",\n") + orjson.dumps(doc.message_document(record)))
    if format == "archive":
        out.write(b'],"message_count":%d}' % len(state.messages))
    else:
        out.write(b"]," + orjson.dumps(doc.portable_fields(state))[1:])
    return len(state.messages)


# -- import -------------------------------------------------------------------------------------


def import_archive(
    store: Store,
    path: str | os.PathLike[str],
    *,
    on_conflict: str = "skip",
    progress: Progress | None = None,
) -> TransferReport:
    """Import the export at `path` (either format, ``.zst`` or not: told by its content).

    The whole file is checked first; only then is each session written, as one all-or-nothing
    batch keeping every time (created_at, updated_at, each message's timestamp) to the
    microsecond. A session the store does not have is imported. One it has is, by
    `on_conflict`: "skip" left as it is; "append" given the archive's messages it does not hold
    yet (same timestamp and same fields, counted with repeats), at its end, and the archive's
    metadata keys whose values differ; "replace" cleared and given the archive's messages and
    metadata, in one batch (its created_at stays: the log's first record is never rewritten).
    Importing a file twice therefore changes nothing the second time, in every mode. A message
    without a timestamp (the docs' recipe writes none) takes the one before it, else the
    session's created_at, else the file's export_timestamp, else the file's modification time.

    `progress(done, total)` is called after each session of the second pass.

    Raises:
        InvalidArchiveError: not an export (not JSON or zstd JSON, another shape, a value of
            the wrong type, a bad time, an id that cannot name a session, a record the store
            cannot hold), naming the path and the spot; nothing was written.
        UnsupportedFormatError: an export of a newer format version; nothing was written.
        UnsafePathError: `path` is a symbolic link.
        ReadOnlyError: the store is open read-only.
        ValueError: an unknown `on_conflict`.
    """
    if on_conflict not in CONFLICTS:
        raise ValueError(f"on_conflict must be one of {CONFLICTS}, not {on_conflict!r}")
    source = os.fspath(path)
    if store.read_only:
        raise ReadOnlyError(store.root, "cannot import into the store: it is open read-only")
    fd = open_source(source)
    try:
        reader = _Source(fd, source)
        count = 0
        for conversation in reader.conversations():  # the checking pass: nothing is written
            _check(conversation, store.options.max_record_bytes, source)
            count += 1
        fallback = reader.fallback()
        report = collections.Counter[str]()
        for done, conversation in enumerate(reader.conversations(), 1):
            outcome, messages = _import_one(store, conversation, on_conflict, fallback)
            report[outcome] += 1
            report["messages"] += messages
            if progress is not None:
                progress(done, count)
    finally:
        os.close(fd)
    return TransferReport(source, **report)


class _Source:
    """The conversations of one export file, read anew on each pass, and its head fields."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path = fd, path
        self.fields: dict[str, Any] = {}
        self.kind: str | None = None

    def conversations(self) -> Iterator[Conversation]:
        seen: set[str] = set()
        self.fields, self.kind = {}, None
        try:
            for member in read_members(text_chunks(self.fd, self.path), _STREAMED):
                if member.sub is None:
                    self._field(member.key, member.value)
                elif member.sub == OPEN:
                    self._open(member.key)
                else:
                    conversation = (
                        doc.from_archive(member.sub, member.value)
                        if member.key == "conversations"
                        else doc.from_portable(int(member.sub), member.value)
                    )
                    if conversation.session_id in seen:
                        raise BadDocument(f"session {conversation.session_id!r} appears twice")
                    seen.add(conversation.session_id)
                    yield conversation
            self._finish()
        except (BadJson, BadDocument) as exc:
            raise InvalidArchiveError(self.path, f"not an export: {exc.reason}") from None

    def _field(self, key: str, value: Any) -> None:
        self.fields[key] = value
        if key == doc.VERSION_KEY:
            self._version(value, doc.ARCHIVE_VERSION)
        elif key == "version" and self.kind == "portable":
            self._version(value, doc.PORTABLE_VERSION)
        elif key == "total_sessions" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadDocument(f"total_sessions is {value!r:.40}, not a count")

    def _open(self, key: str) -> None:
        if self.kind is not None:
            raise BadDocument('it has both "conversations" and "sessions"')
        self.kind = "archive" if key == "conversations" else "portable"
        if self.kind == "portable" and "version" in self.fields:
            self._version(self.fields["version"], doc.PORTABLE_VERSION)

    def _version(self, value: Any, supported: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BadDocument(f"format version {value!r:.40} is not a version number")
        if value > supported:
            raise UnsupportedFormatError(self.path, value)

    def _finish(self) -> None:
        if self.kind is None:
            raise BadDocument(
                'no "conversations" object (the archive format) nor "sessions" array (the portable format)'
            )
        if self.kind == "portable" and "version" not in self.fields:
            raise BadDocument('a "sessions" array without the portable format\'s "version"')

    def fallback(self) -> float:
        """The time of a session or message the file gives none for (see `import_archive`)."""
        try:
            stamp = doc.parse_time(self.fields.get("export_timestamp"), "export_timestamp")
        except BadDocument:
            stamp = None
        return stamp if stamp is not None else float(f"{os.fstat(self.fd).st_mtime:.6f}")


def _check(conversation: Conversation, limit: int, path: str) -> None:
    """Refuse, before any write, what `append_batch` would refuse for this session."""
    where = f"not an export: session {conversation.session_id!r}"
    try:
        naming.encode_id(conversation.session_id)
        for index, entry in enumerate(conversation.entries(0.0)):
            encode_entry(index, entry, limit)
    except (InvalidSessionIdError, InvalidRecordError, TypeError) as exc:
        raise InvalidArchiveError(path, f"{where}: {exc}") from None


def _import_one(
    store: Store, conversation: Conversation, on_conflict: str, fallback: float
) -> tuple[str, int]:
    """Write one session per `on_conflict`; (what was done, messages written)."""
    session_id, entries = conversation.session_id, conversation.entries(fallback)
    count = len(conversation.messages)
    if on_conflict == "skip" and store.exists(session_id):
        return "skipped", 0
    state = None if on_conflict == "skip" else store.state(session_id)
    if state is None:
        store.append_batch(session_id, entries)
        return "imported", count
    if on_conflict == "replace":
        removed: dict[str, Any] = {key: None for key in state.metadata if key not in conversation.metadata}
        entries[0] = (META, {**removed, **conversation.metadata}, entries[0][2])
        store.append_batch(session_id, [(CLEAR, {}, None), *entries])
        return "replaced", count
    batch = _missing(state, conversation, entries)
    if not batch:
        return "skipped", 0
    store.append_batch(session_id, batch)
    return "appended", sum(1 for kind, _, _ in batch if kind == MESSAGE)


def _missing(state: SessionState, conversation: Conversation, entries: list[Entry]) -> list[Entry]:
    """What "append" adds: the metadata keys whose values differ, then each message the
    session does not hold as many times as the archive does (same timestamp, same data)."""
    changed = {
        key: value
        for key, value in conversation.metadata.items()
        if key not in state.metadata or _canonical(state.metadata[key]) != _canonical(value)
    }
    held = collections.Counter(_identity(record.data, record.ts) for record in state.messages)
    batch: list[Entry] = [(META, changed, None)] if changed else []
    for kind, data, ts in entries:
        if kind != MESSAGE or ts is None:
            continue
        key = _identity(data, ts)
        if held[key] > 0:
            held[key] -= 1
        else:
            batch.append((kind, data, ts))
    return batch


def _canonical(value: Any) -> bytes:
    """JSON with sorted keys: equal for equal JSON (Python's == has True == 1 == 1.0)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _identity(data: Any, ts: float) -> tuple[float, bytes]:
    return ts, xxhash.xxh3_128_digest(_canonical(data))
