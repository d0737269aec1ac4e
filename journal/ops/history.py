"""The messages a session has on disk, one pass over its files (`scanning` reads them).

Strategy: the records of the files are fed in seq order to `Fold`, which gives each message
record once, with the text it ends up with: a message of a streamed answer (partial, FORMAT.md
"Edit records") is held back while edits may still change it, exactly as `SessionState`
folds them (an edit changes the last message only, while it is partial), and given when a
message, a "clear", a pop or its final edit ends the stream; one that an edit drops is not
given. (In history mode a stream that a pop of a later message made the last one again is
given as it was then.) The current history is kept exactly: a pop there, which may take back
a message given already, sends the session to `Journal.state` (`NeedsLockedRead`).
`SessionReader` reads in batches under the session's compaction lock, and restarts the pass
when the session's compaction.json changed under it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Protocol, TypeVar, runtime_checkable

from ..errors import CorruptionError, LockTimeout, RecoveryWarning, UnsupportedFormatError
from ..log import archive
from ..log import manifest as mf
from ..log.archive_file import MAX_RECORD_BYTES
from ..log.edit import applies, apply_edit, is_partial
from ..log.fs import FileSystem, read_file
from ..log.manifest import Manifest
from ..log.pop import pop_applies
from ..log.record import CLEAR, EDIT, MESSAGE, POP, BadLine, Record, decode
from ..log.snapshot import BadSnapshot, decode_message
from .protocol import Readable, Store
from .scanning import (
    ATTEMPTS,
    CLEARED,
    VIEW_LINE,
    Prefilter,
    Republished,
    SessionFiles,
    Source,
    archive_chunks,
    chosen_lines,
    line_blocks,
    segment_chunks,
    session_files,
    view_chunks,
)

Decoder = Callable[[bytes, int], "Record | None"]
T = TypeVar("T")
LOCK_TIMEOUT = 30.0  # `Journal`'s default, for a store that does not say its own


class NeedsLockedRead(Exception):
    """Internal: messages.json was changed by hand (or is missing) while the archives can
    still rebuild the history, or a pop took back a message of the current history: read
    the session through the store, which folds it exactly."""


class _Done(Exception):
    """Internal: the rest of a source is not wanted."""


class Fold:
    """Gives each message record once, as last edited (see the module docstring).

    `history`: a "clear" gives the held messages (they were stored); otherwise (the current
    history) it drops them and gives `CLEARED`. In history mode the snapshot's messages up
    to `pruned_through` come first, already edited through the snapshot: archived edits of
    them are not applied twice.
    """

    def __init__(self, history: bool, manifest: Manifest) -> None:
        self.history = history
        self.tail: list[Record] = []  # the trailing run of partial messages, oldest first
        self.edited_through = manifest.pruned_through if history else 0
        self.snapshot_seq = manifest.snapshot_seq

    def holding(self) -> bool:
        return bool(self.tail)

    def feed(self, record: Record) -> list[Record]:
        """The messages `record` makes final (usually none or itself)."""
        kind = record.kind
        if kind == MESSAGE:
            if is_partial(record.data):
                self.tail.append(record)
                return []
            if not self.tail:
                return [record]
            out, self.tail = self.tail, []
            out.append(record)
            return out
        if kind == CLEAR:
            out = self.tail if self.history else [CLEARED]
            self.tail = []
            return out
        if kind == EDIT and self.tail:
            return self._edit(record)
        if kind == POP:
            return self._pop(record)
        return []

    def _pop(self, record: Record) -> list[Record]:
        """A pop (FORMAT.md, "Pop records") takes the last message off the history."""
        if not self.history:  # it may take back a message given already
            raise NeedsLockedRead()
        if self.tail and pop_applies(record.data, self.tail[-1]):
            out, self.tail = self.tail, []  # the popped one was stored: it is given, as is
            return out
        return []

    def _edit(self, record: Record) -> list[Record]:
        data, last = record.data, self.tail[-1]
        if not applies(data, last):
            return []
        if record.seq <= self.snapshot_seq and data["of"] <= self.edited_through:
            return []  # the snapshot's text of that message has this edit already
        edited = apply_edit(data, last, record.ts)
        if edited is None:  # dropped: the message below is the last one again
            self.tail.pop()
            return []
        self.tail[-1] = edited
        if is_partial(edited.data):
            return []
        out, self.tail = self.tail, []  # final: nothing below it can change any more
        return out

    def finish(self) -> list[Record]:
        out, self.tail = self.tail, []
        return out


class SessionReader:
    """The messages of one session (`history`: every one still on disk; else the current
    history, with `CLEARED` where it restarts), in seq order, in batches.

    Each batch is read holding the session's `compaction.lock` (when it exists and can be
    had within `lock_timeout`), so no compaction or retention publishes while it is read,
    and none is held while the caller handles a batch. A compaction that published between
    two batches (or while no lock could be had) restarts the pass: in history mode the
    messages given already are skipped, in current mode `CLEARED` tells the caller to start
    the session over. With `prefilter`, only the messages whose stored line holds its token
    are certain to be given (others may be).
    """

    def __init__(
        self,
        fs: FileSystem,
        path: str,
        *,
        history: bool,
        prefilter: Prefilter | None,
        max_record_bytes: int,
        lock_timeout: float,
    ) -> None:
        self.fs, self.path, self.history, self.prefilter = fs, path, history, prefilter
        self.max_record_bytes, self.lock_timeout = max_record_bytes, lock_timeout
        self.files: SessionFiles | None = None
        self.records: Iterator[Record] | None = None
        self.given = 0  # history: the seq of the last message handed to `keep`
        self.restarts = 0
        self.done = False

    def read_batch(self, keep: Callable[[Record], T | None], size: int) -> list[T] | None:
        """What `keep` makes of the next messages, until it kept `size` of them or the session
        ends; None once it has ended.

        Raises:
            CorruptionError, UnsupportedFormatError, UnsafePathError, OSError: the session
                cannot be read (after restarts for compactions publishing meanwhile).
            NeedsLockedRead: (current history only) read it through the store instead.
        """
        if self.done:
            return None
        with _compaction_held(self.fs, self.path, self.lock_timeout):
            try:
                return self._take(keep, size)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Stop reading (the files still open are closed)."""
        records, self.records = self.records, None
        if isinstance(records, Generator):
            records.close()

    def _take(self, keep: Callable[[Record], T | None], size: int) -> list[T]:
        out: list[T] = []
        if self.files is not None and self.records is not None and republished(self.fs, self.files):
            self._restart(out, keep)  # published while the caller had the last batch
        while len(out) < size:
            if self.records is None and not self._start():
                self.done = True
                break
            assert self.records is not None
            try:
                record = next(self.records)
            except StopIteration:
                self.done = True
                break
            except (FileNotFoundError, CorruptionError) as exc:
                self._check_restart(exc)
                self._restart(out, keep)
                continue
            if self.history:
                if record.seq <= self.given:
                    continue  # handed over by an earlier pass
                self.given = record.seq
            kept = keep(record)
            if kept is not None:
                out.append(kept)
        return out

    def _start(self) -> bool:
        """Begin a pass; False if the session is gone."""
        for _ in range(ATTEMPTS):
            try:
                files = session_files(self.fs, self.path)
            except Republished:
                continue
            if files is None:
                return False
            self.files = files
            self.records = _one_pass(self.fs, files, self.history, self.prefilter, self.max_record_bytes)
            return True
        raise CorruptionError(self.path, 0, "its files kept changing while they were listed")

    def _check_restart(self, exc: FileNotFoundError | CorruptionError) -> None:
        """Raise `exc` (a missing file as `CorruptionError`) unless the session's files
        changed since the pass began, and not too often."""
        self.restarts += 1
        assert self.files is not None
        if self.restarts < ATTEMPTS and republished(self.fs, self.files):
            return
        if isinstance(exc, FileNotFoundError):
            missing = exc.filename or self.path
            raise CorruptionError(missing, 0, "a file compaction.json names is missing") from None
        raise exc

    def _restart(self, out: list[T], keep: Callable[[Record], T | None]) -> None:
        self.close()
        if not self.history:
            kept = keep(CLEARED)  # the caller starts the session over
            if kept is not None:
                out.append(kept)


class MessageReader(Protocol):
    """What `session_reader` gives: `SessionReader`'s reading methods."""

    def read_batch(self, keep: Callable[[Record], T | None], size: int) -> list[T] | None: ...

    def close(self) -> None: ...


@runtime_checkable
class ReadsOwnMessages(Readable, Protocol):
    """A store that is not a directory of sessions and reads its messages itself, as
    `SessionReader` would give them (a replica read in place: `replication.remote`)."""

    def message_reader(
        self, session_id: str, *, history: bool, prefilter: Prefilter | None
    ) -> MessageReader: ...


def session_reader(
    store: Store | ReadsOwnMessages, session_id: str, *, history: bool, prefilter: Prefilter | None
) -> MessageReader:
    """A `SessionReader` of a session of `store`, with the store's limits (or the store's own
    reader, for a `ReadsOwnMessages`)."""
    if isinstance(store, ReadsOwnMessages):
        return store.message_reader(session_id, history=history, prefilter=prefilter)
    options = getattr(store, "options", None)  # `Journal.options`; not part of the protocol
    max_record_bytes = getattr(options, "max_record_bytes", MAX_RECORD_BYTES)
    lock_timeout = getattr(options, "lock_timeout", LOCK_TIMEOUT)
    return SessionReader(
        store.fs,
        store.session_path(session_id),
        history=history,
        prefilter=prefilter,
        max_record_bytes=max_record_bytes if isinstance(max_record_bytes, int) else MAX_RECORD_BYTES,
        lock_timeout=float(lock_timeout) if isinstance(lock_timeout, (int, float)) else LOCK_TIMEOUT,
    )


@contextlib.contextmanager
def _compaction_held(fs: FileSystem, path: str, timeout: float) -> Iterator[None]:
    """Hold the session's compaction lock, if it has one and it can be had within
    `timeout`; never create it (reading writes nothing). Without it, `SessionReader`
    restarts a pass that a compaction disturbed."""
    try:
        fd = fs.open(os.path.join(path, mf.COMPACTION_LOCK), create=False, mode=0)
    except OSError:  # never compacted (or gone): no lock to take
        fd = None
    locked = False
    try:
        if fd is not None:
            with contextlib.suppress(LockTimeout):  # a long compaction: read without it
                fs.lock(fd, timeout)
                locked = True
        yield
    finally:
        if fd is not None:
            if locked:
                fs.unlock(fd)
            fs.close(fd)


def republished(fs: FileSystem, files: SessionFiles) -> bool:
    """Has a compaction or a retention (or a delete) changed the session since `files`?"""
    if fs.stat(files.path) is None:
        return True
    try:
        return read_file(fs, os.path.join(files.path, mf.MANIFEST_FILE)) != files.raw_manifest
    except OSError:
        return True


def _one_pass(
    fs: FileSystem, files: SessionFiles, history: bool, prefilter: Prefilter | None, max_record_bytes: int
) -> Iterator[Record]:
    fold = Fold(history, files.manifest)
    manifest = files.manifest
    last = [0]  # the seq of the last record decoded: seqs must increase
    if history:
        if manifest.pruned_through:
            yield from _view(fs, files, fold, prefilter, manifest.pruned_through)
        for source in files.archives:
            blocks = line_blocks(archive_chunks(fs, source, max_record_bytes), source.path)
            yield from _feed(blocks, _log_decoder(source, last), fold, prefilter)
    elif manifest.snapshot_seq:
        yield from _view(fs, files, fold, None, None)
    for source in files.segments:
        blocks = line_blocks(segment_chunks(fs, source), source.path)
        yield from _feed(blocks, _log_decoder(source, last), fold, prefilter)
    yield from fold.finish()


def _feed(
    blocks: Iterable[tuple[int, bytes]], decode_line: Decoder, fold: Fold, prefilter: Prefilter | None
) -> Iterator[Record]:
    for offset, block in blocks:
        for start, end in chosen_lines(block, prefilter, fold.holding):
            record = decode_line(block[start:end], offset + start)
            if record is not None:
                yield from fold.feed(record)


def _log_decoder(source: Source, last: list[int]) -> Decoder:
    """Decodes a line of a segment or an archive, checking it and its place."""

    def decode_line(line: bytes, offset: int) -> Record:
        try:
            record = decode(line)
        except BadLine as exc:
            if exc.version is not None:
                raise UnsupportedFormatError(source.path, exc.version) from None
            raise CorruptionError(source.path, offset, exc.reason) from None
        end = source.end if source.end is not None else record.seq + 1
        if not (max(last[0] + 1, source.first) <= record.seq < end):
            raise CorruptionError(source.path, offset, f"record {record.seq} out of place")
        last[0] = record.seq
        return record

    return decode_line


def _view(
    fs: FileSystem, files: SessionFiles, fold: Fold, prefilter: Prefilter | None, through: int | None
) -> Iterator[Record]:
    """The snapshot's messages (those numbered up to `through`, if given) into `fold`."""
    manifest, source = files.manifest, files.view
    expected = manifest.view_hash(mf.MESSAGES_FILE)
    records: list[Record] = []
    try:
        chunks = view_chunks(fs, source, expected) if expected is not None else None
        if chunks is None:
            records = _strict_view(fs, files, edited=expected is not None)
    except (FileNotFoundError, CorruptionError):
        if republished(fs, files) or manifest.pruned_through:
            raise
        raise NeedsLockedRead() from None  # current history: the archives rebuild it
    if chunks is None:
        for record in records:
            if through is not None and record.seq > through:
                break
            yield from fold.feed(record)
        return

    def decode_line(line: bytes, offset: int) -> Record | None:
        if not line.startswith(VIEW_LINE):
            return None  # the array's brackets and the trailer
        try:
            record = decode_message(line.strip().rstrip(b","))
        except BadSnapshot as exc:
            raise CorruptionError(source.path, offset, str(exc)) from None
        if through is not None and record.seq > through:
            raise _Done()
        return record

    try:
        yield from _feed(line_blocks(chunks, source.path), decode_line, fold, prefilter)
    except _Done:
        pass
    finally:
        chunks.close()


def _strict_view(fs: FileSystem, files: SessionFiles, edited: bool) -> list[Record]:
    """messages.json read the strict way: written by an older version (no checksum kept),
    or changed by hand. A changed one is read as it is only when retention pruned the
    archives that could rebuild it (as `Journal.state` does); else `NeedsLockedRead`."""
    manifest, path = files.manifest, files.view.path
    if edited:
        if republished(fs, files):
            raise CorruptionError(path, 0, "replaced while it was read")
        if not manifest.pruned_through:
            raise NeedsLockedRead()
        reason = f"{path} was changed after compaction wrote it; read as it is"
        reason += " (retention pruned the archives that could rebuild it)"
        warnings.warn(RecoveryWarning(reason), stacklevel=5)
    try:
        records, trailer = archive.read_messages(fs, path)
    except BadSnapshot as exc:
        raise CorruptionError(path, 0, str(exc)) from None
    if trailer.get("journal_seq") != manifest.snapshot_seq:
        reason = f"covers seq {trailer.get('journal_seq')}, compaction.json says {manifest.snapshot_seq}"
        raise CorruptionError(path, 0, reason)
    return records
