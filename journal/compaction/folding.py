"""Step 2 of a compaction: build the new snapshot files and archives under temp names.

Strategy: one streaming pass. The previous snapshot's message lines are copied verbatim (never
parsed); then each closed segment is read in chunks that feed its zstd archive and, split into
lines, a fold that mirrors `SessionState.apply` but sends each message straight to the new
`messages.json` (truncated back to its head at a "clear"; the last message is held back so an
"edit" record can still change it; a "pop" or an edit that drops it takes the line before it
back). The usual run of lines is checked and folded at once (`linecheck.check_run`, then
`splice.splice_run` for its messages: C-level passes over the run instead of interpreter work
per line); anything else goes a line at a time, and both write the same bytes. Memory stays
bounded by the chunk and flush sizes however long the history is. (A
previous snapshot that is not one message per line, or does not read, is re-encoded from the
history it reads as or the archives rebuild: that rare path holds the history in memory.)
Every file is fsynced before step 3 may commit it; nothing of the live session is touched, so
a failure here only leaves orphan temps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from ..errors import CorruptionError, RecoveryWarning
from ..log import manifest as mf
from ..log import snapshot
from ..log.archive import ArchiveWriter, file_chunks, load_snapshot
from ..log.fs import FileSystem, read_file, temp_name, unlink_quietly
from ..log.linecheck import Run, check_run
from ..log.manifest import Manifest
from ..log.record import CLEAR, EDIT, LOST, MESSAGE, META, POP, SEAL, BadLine, Header, Record, decode_header
from ..log.session import SessionLog, quarantine
from ..log.splice import STAMP_KEYS, splice_parsed, splice_run
from ..log.state import merge_metadata
from . import merging
from .merging import ArchivePlan
from .messages_file import MessagesFile

log = logging.getLogger("journal.compaction")

_RUN_LINES = 1024  # lines folded at once: their lists stay in the processor's caches
_UNTIMED = (SEAL.encode(), LOST.encode())  # kinds `_Fold.apply` skips: they set no time


@dataclass
class Built:
    """What step 2 wrote (temps to publish) and found (times, sizes)."""

    pending: list[tuple[str, str]] = field(default_factory=list)  # (temp, final), relative
    archives: list[str] = field(default_factory=list)  # names of the archives written, in order
    views: list[tuple[str, str]] = field(default_factory=list)  # (view file, xxh3 of its bytes)
    created_at: float | None = None
    updated_at: float | None = None
    folded_bytes: int = 0
    archive_bytes: int = 0
    snapshot_bytes: int = 0
    messages: int = 0
    committed: bool = False  # the manifest naming the temps may be on disk: never discard them


class _Fold:
    """`SessionState.apply` for a stream: messages go to the file, not to memory."""

    def __init__(self, out: MessagesFile, base: Manifest, metadata: dict[str, Any]) -> None:
        self.out, self.metadata = out, metadata
        self.created_at, self.updated_at = base.created_at, base.updated_at

    def apply_lines(
        self, lines: list[bytes], path: str, offset: int, seq: int
    ) -> tuple[int, int, Header | None]:
        """Check and fold whole lines (without their newlines) from `offset`, numbered on
        from `seq`; return the seq and offset after them and the last one's header.

        The usual run of lines is checked at once (`linecheck.check_run`) and its messages
        spliced at once (`splice.splice_run`); anything else goes a line at a time."""
        run = None
        if self.created_at is not None:  # the first record of a history sets created_at
            run = check_run(lines, seq, batch_left=None, stamps=True, keys=STAMP_KEYS)
        if run is None:
            return self._apply_slowly(lines, path, offset, seq)
        kinds, usual = run.kinds, run.keys_free  # usual: a message spliced with the others
        if kinds.count(None) == len(kinds) and False not in usual:
            self._splice(lines, run, 0, len(lines), seq)
        else:
            self._apply_mixed(lines, run, seq)
        timed = next((i for i in range(len(kinds) - 1, -1, -1) if kinds[i] not in _UNTIMED), None)
        if timed is not None:  # the last record `apply` would time
            self.updated_at = float(run.stamps[timed])
        offset += sum(map(len, lines)) + len(lines)
        return seq + len(lines), offset, decode_header(lines[-1])

    def _apply_mixed(self, lines: list[bytes], run: Run, seq: int) -> None:
        """Fold a checked run that holds other records than usual messages: each stretch of
        usual messages at once, every other record by itself."""
        start = 0
        others = [i for i, kind in enumerate(run.kinds) if kind is not None or not run.keys_free[i]]
        for index in [*others, len(lines)]:
            if start < index:
                self._splice(lines, run, start, index, seq)
            if index < len(lines):
                self._apply_one(lines[index], seq + index)
            start = index + 1

    def _splice(self, lines: list[bytes], run: Run, start: int, end: int, seq: int) -> None:
        """Fold the message records `lines[start:end]` of a checked run."""
        spliced = splice_run(lines, run, start, end)
        if spliced is not None:
            self.out.add_spliced(spliced)
            return
        for index in range(start, end):
            self._apply_one(lines[index], seq + index)

    def _apply_one(self, line: bytes, seq: int) -> None:
        """Fold one line of a checked run, as `_apply_slowly` does."""
        header = decode_header(line)
        payload = line[header.data_start : -1]
        spliced = None
        if header.kind == MESSAGE:
            spliced = splice_parsed(payload, orjson.loads(payload), seq, header.ts, header.more)
        if spliced is None:
            self.apply(header, payload)
        else:
            self.out.add(spliced)

    def _apply_slowly(
        self, lines: list[bytes], path: str, offset: int, seq: int
    ) -> tuple[int, int, Header | None]:
        """`apply_lines` a line at a time: a message whose payload can be spliced (`apply`'s
        usual case) is folded right here, every other record by `apply`."""
        out, loads, header = self.out, orjson.loads, None
        for line in lines:
            try:
                header = decode_header(line)
            except BadLine:
                header = _check(line, path, offset, seq)  # raises, naming what is wrong
            if header.seq != seq:
                _check(line, path, offset, seq)
            payload = line[header.data_start : -1]
            try:
                spliced = None
                if header.kind == MESSAGE and self.created_at is not None:
                    # Parsed to check it parses as a read will; its bytes are what is written.
                    spliced = splice_parsed(payload, loads(payload), seq, header.ts, header.more)
                if spliced is None:
                    self.apply(header, payload)
                else:
                    self.updated_at = header.ts
                    out.add(spliced)
            except orjson.JSONDecodeError as exc:  # a read would fail on it: never archive it
                raise CorruptionError(path, offset, f"payload is not JSON ({exc})") from None
            seq, offset = seq + 1, offset + len(line) + 1
        return seq, offset, header

    def apply(self, header: Header, payload: bytes) -> None:
        """Fold one checked record; its payload is parsed only when it must be."""
        if header.kind in (SEAL, LOST):
            return
        if self.created_at is None:
            self.created_at = header.ts
        self.updated_at = header.ts
        if header.kind == MESSAGE:
            line = snapshot.splice_message(payload, header.seq, header.ts, header.more)
            if line is not None:
                orjson.loads(payload)  # spliced unparsed: check it parses as a read will
            else:
                record = Record(header.seq, header.ts, MESSAGE, orjson.loads(payload), header.more)
                line = snapshot.encode_message(record)
            self.out.add(line)
        elif header.kind == CLEAR:
            self.out.restart()
        elif header.kind == META:
            merge_metadata(self.metadata, orjson.loads(payload))
        elif header.kind == EDIT:
            self.out.edit(header, orjson.loads(payload))
        elif header.kind == POP:
            self.out.pop(orjson.loads(payload))


def _temp(built: Built, path: str, final: str) -> str:
    """A new temp for `final` (relative), remembered so a failure can discard it."""
    temp = os.path.relpath(temp_name(os.path.join(path, final)), path)
    built.pending.append((temp, final))
    return os.path.join(path, temp)


def build(
    handle: SessionLog,
    base: Manifest,
    segments: list[int],
    last_seq: int,
    archiving: tuple[int, int],
    built: Built,
) -> None:
    """Step 2, without the session lock: write every new file under a temp name, durably.
    `archiving` is (zstd level, merge bytes): see `merging`."""
    fs, path, mode = handle.fs, handle.path, handle.options.file_mode
    level, merge_bytes = archiving
    if fs.mkdir(os.path.join(path, mf.ARCHIVE_DIR), handle.options.dir_mode):
        fs.sync_dir(path)
    out = MessagesFile(fs, _temp(built, path, mf.MESSAGES_FILE), mode)
    try:
        try:
            fold = _Fold(out, base, _previous_metadata(fs, path, base))
            if base.snapshot_seq:
                _copy_previous_messages(fs, path, base, out)
        except CorruptionError as exc:
            # The previous snapshot was edited, deleted or damaged: keep the edited files
            # aside, then write what the archives rebuild (load_snapshot warns; with
            # retention's pruned archives it can only re-encode what the view reads as).
            set_aside_views(handle, base, exc)
            out.restart()
            previous = load_snapshot(fs, path, base, max_record_bytes=handle.options.max_record_bytes)
            fold = _Fold(out, base, previous.metadata)
            for record in previous.messages:
                out.add(snapshot.encode_message(record))
        seq = base.snapshot_seq + 1
        sizes = [(first, _closed_size(handle, first)) for first in segments]
        for archive in merging.plan(fs, path, base, sizes, merge_bytes):
            seq = _fold_archive(handle, archive, seq, level, fold, built)
        if seq != last_seq + 1:
            raise CorruptionError(path, 0, f"closed segments end at seq {seq - 1}, expected {last_seq}")
        built.messages = out.count
        built.snapshot_bytes, digest = out.finish(snapshot.tail(out.count, fold.updated_at, last_seq))
    finally:
        out.close()
    if digest is None:
        digest = _hash_file(fs, os.path.join(path, built.pending[0][0]))
    built.views.append((mf.MESSAGES_FILE, digest))
    built.created_at, built.updated_at = fold.created_at, fold.updated_at
    metadata = snapshot.encode_metadata(fold.metadata)
    _write_temp(fs, _temp(built, path, mf.METADATA_FILE), metadata, mode)
    summary = (last_seq, built.messages)
    info = snapshot.encode_session_info(
        handle.session_id, fold.metadata, fold.created_at, fold.updated_at, summary
    )
    _write_temp(fs, _temp(built, path, mf.SESSION_INFO_FILE), info, mode)
    built.views += [(mf.METADATA_FILE, mf.view_hash(metadata)), (mf.SESSION_INFO_FILE, mf.view_hash(info))]
    fs.sync_dir(path)
    fs.sync_dir(os.path.join(path, mf.ARCHIVE_DIR))


def _previous_metadata(fs: FileSystem, path: str, base: Manifest) -> dict[str, Any]:
    if not base.snapshot_seq:
        return {}
    meta_path = os.path.join(path, mf.METADATA_FILE)
    raw = read_file(fs, meta_path)
    if raw is None:
        raise CorruptionError(meta_path, 0, "snapshot metadata is missing")
    expected = base.view_hash(mf.METADATA_FILE)
    if expected is not None and mf.view_hash(raw) != expected:
        raise CorruptionError(meta_path, 0, "metadata.json was changed after compaction wrote it")
    try:
        return snapshot.decode_metadata(raw)
    except snapshot.BadSnapshot as exc:
        raise CorruptionError(meta_path, 0, str(exc)) from None


def _copy_previous_messages(fs: FileSystem, path: str, base: Manifest, out: MessagesFile) -> None:
    """The previous snapshot's message lines, copied verbatim but for stamp objects, which
    are encoded again (`snapshot.copyable_line`). A line whose stamp does not read, or a file
    whose lines are not one message each (a message re-indented by hand still reads as JSON),
    raises `CorruptionError`, so the caller re-encodes what the snapshot reads as instead of
    carrying damage or fragments forward."""
    messages_path = os.path.join(path, mf.MESSAGES_FILE)
    hasher = xxhash.xxh3_64()
    reader = snapshot.MessagesReader(_hashed(file_chunks(fs, messages_path), hasher))
    copied = 0
    try:
        for line in reader.lines():
            if not (line.startswith(b"{") and line.endswith(b"}")):
                raise snapshot.BadSnapshot("a message spans several lines")
            out.add(snapshot.copyable_line(line))
            copied += 1
    except snapshot.BadSnapshot as exc:
        raise CorruptionError(messages_path, 0, str(exc)) from None
    except FileNotFoundError:
        raise CorruptionError(messages_path, 0, "snapshot messages.json is missing") from None
    expected = base.view_hash(mf.MESSAGES_FILE)
    if expected is not None and hasher.hexdigest() != expected:
        raise CorruptionError(messages_path, 0, "messages.json was changed after compaction wrote it")
    if reader.trailer.get("journal_seq") != base.snapshot_seq:
        raise CorruptionError(messages_path, 0, "previous snapshot does not match compaction.json")
    if reader.trailer.get("total_messages") != copied:
        raise CorruptionError(messages_path, 0, "previous snapshot's lines are not one message each")


def _closed_size(handle: SessionLog, first: int) -> int:
    st = handle.fs.stat(handle.segment_path(first))
    if st is None:
        raise CorruptionError(handle.segment_path(first), 0, "closed segment disappeared during compaction")
    return st.size


def _fold_archive(
    handle: SessionLog, archive: ArchivePlan, seq: int, level: int, fold: _Fold, built: Built
) -> int:
    """Write one archive (the previous newest one's records first, if it extends it) and
    fold the records of its segments; return the next seq expected."""
    writer, archive = _archive_writer(handle, archive, level, built)
    try:
        for first, _ in archive.segments:
            seq = _fold_segment(handle, first, seq, fold, built, writer)
        built.archive_bytes += writer.finish()
    finally:
        writer.close()
    built.archives.append(archive.name)
    return seq


def _archive_writer(
    handle: SessionLog, archive: ArchivePlan, level: int, built: Built
) -> tuple[ArchiveWriter, ArchivePlan]:
    """A writer for `archive`, its carried content already in; if that content does not
    check out, a writer for a new archive of the same segments instead (the old one is left
    for `verify` to report)."""
    fs, path, mode = handle.fs, handle.path, handle.options.file_mode
    temp = _temp(built, path, mf.archive_name(archive.name))
    writer = ArchiveWriter(fs, temp, level, mode, archive.size)
    if not archive.carried:
        return writer, archive
    try:
        merging.carry(fs, path, archive, writer)
        return writer, archive
    except (CorruptionError, FileNotFoundError) as exc:
        log.warning("%s: newest archive not extended (%s); starting a new one", path, exc)
        writer.close()
        built.pending.pop()
        unlink_quietly(fs, temp)
    fresh = ArchivePlan(archive.segments[0][0], 0, archive.segments)
    temp = _temp(built, path, mf.archive_name(fresh.name))
    return ArchiveWriter(fs, temp, level, mode, fresh.size), fresh


def _fold_segment(
    handle: SessionLog, first: int, seq: int, fold: _Fold, built: Built, writer: ArchiveWriter
) -> int:
    """Archive one closed segment and fold its records; return the next seq expected."""
    fs, path = handle.fs, handle.segment_path(first)
    if first != seq:
        raise CorruptionError(path, 0, f"segment starts at {first}, expected {seq}")
    last: Header | None = None
    offset = 0
    # A chunk's lines at a time, split by one C call (no generator step per line, no copy of
    # the chunk); the piece after its last newline begins the next chunk's first line.
    rest = b""
    for chunk in merging.teed(file_chunks(fs, path), writer):
        lines = chunk.split(b"\n")
        lines[0] = rest + lines[0]
        rest = lines.pop()
        for at in range(0, len(lines), _RUN_LINES):
            seq, offset, header = fold.apply_lines(lines[at : at + _RUN_LINES], path, offset, seq)
            last = header or last
    if rest:  # bytes after the last newline
        raise CorruptionError(path, offset, "incomplete record inside a closed segment")
    if last is None or last.kind != SEAL:
        raise CorruptionError(path, offset, "a closed segment does not end in a seal record")
    built.folded_bytes += offset
    return seq


def _check(line: bytes, path: str, offset: int, seq: int) -> Header:
    """The header of a checksummed record numbered `seq` (`line` without its newline);
    raise `CorruptionError`."""
    try:
        header = decode_header(line)
    except BadLine as exc:
        raise CorruptionError(path, offset, exc.reason) from None
    if header.seq != seq:
        raise CorruptionError(path, offset, f"sequence number {header.seq}, expected {seq}")
    return header


def _hashed(chunks: Iterator[bytes], hasher: Any) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def _hash_file(fs: FileSystem, path: str) -> str:
    hasher = xxhash.xxh3_64()
    for chunk in file_chunks(fs, path):
        hasher.update(chunk)
    return str(hasher.hexdigest())


def set_aside_views(handle: SessionLog, base: Manifest, cause: CorruptionError) -> None:
    """Copy each view file that is not as the last compaction wrote it into quarantine/
    (the next compaction replaces it), with a `RecoveryWarning`."""
    for name in (mf.MESSAGES_FILE, mf.METADATA_FILE, mf.SESSION_INFO_FILE):
        view = os.path.join(handle.path, name)
        raw = read_file(handle.fs, view)
        if raw is None:
            continue
        expected = base.view_hash(name)
        if not (expected != mf.view_hash(raw) if expected is not None else view == cause.path):
            continue
        kept = quarantine(handle.fs, handle.path, f"{name}.edited", raw, handle.options)
        warnings.warn(
            RecoveryWarning(f"{view}: {cause.reason}; kept aside as {kept}, rebuilt from the log"),
            stacklevel=2,
        )


def _write_temp(fs: FileSystem, path: str, data: bytes, mode: int) -> None:
    fd = fs.open(path, create=True, mode=mode)
    try:
        fs.append(fd, data)
        fs.sync(fd)
    finally:
        fs.close(fd)


def discard(fs: FileSystem, path: str, built: Built) -> None:
    """Remove this run's temps after a failure before the commit; a dead process leaves
    them to the next compactor, which removes them as orphans."""
    for temp, _ in built.pending:
        with contextlib.suppress(OSError):
            unlink_quietly(fs, os.path.join(path, temp))
