"""Archives of folded segments (`archive/<segment>.zst`) and the read side of a snapshot.

Strategy: an archive is one zstd frame (content size and checksum in the frame header and
trailer) whose content is the segment's bytes, verbatim: every line keeps its xxh3 checksum,
so `verify` checks an archive with the same `scan` as a live segment and never has to trust
the snapshot, and the stock ``zstd -d`` gives back the original file. Archives are written
and read in chunks through the `FileSystem`, so memory stays bounded by the chunk size. A
`messages.json` of up to 64 MiB (`WHOLE_FILE_BYTES`) is read whole and decoded in memory; a
bigger one is streamed.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import zstandard

from ..errors import CorruptionError, RecoveryWarning, UnsupportedFormatError
from . import manifest as manifest_mod
from . import naming
from .fs import FileSystem, read_file
from .gcpause import gc_paused
from .manifest import Manifest
from .record import SEAL, BadLine, Record, decode
from .scan import Problem, scan
from .snapshot import BadSnapshot, Lines, MessagesReader, decode_lines, decode_messages, decode_metadata
from .state import SessionState, fold

CHUNK_BYTES = 4 * 1024 * 1024
# A messages.json up to this size is read with one read and decoded in memory; a bigger one is
# streamed in chunks, so a 1 GB history is never held as bytes.
WHOLE_FILE_BYTES = 64 * 1024 * 1024


def file_chunks(fs: FileSystem, path: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of `path` in chunks; the size is taken at open, so later appends are not read."""
    fd = fs.open(path, create=False, mode=0)
    try:
        size, offset = fs.size(fd), 0
        while offset < size:
            chunk = fs.pread(fd, min(chunk_bytes, size - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            yield chunk
    finally:
        fs.close(fd)


def small_file(fs: FileSystem, path: str, limit: int) -> bytes | None:
    """The whole content of `path` if it holds at most `limit` bytes, else None."""
    fd = fs.open(path, create=False, mode=0)
    try:
        size = fs.size(fd)
        return fs.pread(fd, size, 0) if size <= limit else None
    finally:
        fs.close(fd)


def read_messages(fs: FileSystem, path: str) -> tuple[list[Record], dict[str, Any]]:
    """The records and trailer of a `messages.json`; raise `BadSnapshot`, `FileNotFoundError`.

    Up to `WHOLE_FILE_BYTES` the file is decoded whole (`decode_messages`); a bigger file, or
    one that is not in the layout `journal` writes, goes through the streaming
    `MessagesReader`. Both give the same records for every file both read; a hand-edited file
    that is still valid JSON but not one message per line may read whole and not streamed.
    """
    raw = small_file(fs, path, WHOLE_FILE_BYTES)
    if raw is not None:
        with contextlib.suppress(BadSnapshot), gc_paused():
            return decode_messages(raw)
        del raw  # the streaming reader reads again, in chunks
    reader = MessagesReader(file_chunks(fs, path))
    return list(reader.records()), reader.trailer


def read_lines(
    fs: FileSystem, path: str, chat: list[dict[str, Any]] | None
) -> tuple[Lines, dict[str, Any]] | None:
    """The lines and trailer of a `messages.json` of up to `WHOLE_FILE_BYTES` by
    `decode_lines` (filling `chat`, if given); None if it must be read the strict way, by
    `read_messages`: too big, or not every line as journal writes it. Raise
    `FileNotFoundError`."""
    raw = small_file(fs, path, WHOLE_FILE_BYTES)
    if raw is not None:
        with contextlib.suppress(BadSnapshot), gc_paused():
            return decode_lines(raw, chat=chat)
    return None


class ArchiveWriter:
    """Compresses a stream of segment bytes into a new file; `finish` makes it durable."""

    def __init__(self, fs: FileSystem, path: str, level: int, mode: int, size: int = -1) -> None:
        self.fs, self.path = fs, path
        self.compressor = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj(size=size)
        self.fd = fs.open(path, create=True, mode=mode)
        self.written = 0

    def write(self, chunk: bytes) -> None:
        out = self.compressor.compress(chunk)
        if out:
            self.fs.append(self.fd, out)
            self.written += len(out)

    def finish(self) -> int:
        """Flush, fsync and close; return the archive's size in bytes."""
        out = self.compressor.flush()
        self.fs.append(self.fd, out)
        self.written += len(out)
        self.fs.sync(self.fd)
        self.close()
        return self.written

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            self.fs.close(fd)


def decompressed_chunks(fs: FileSystem, path: str) -> Iterator[bytes]:
    """The original segment bytes of an archive, in chunks; raise `CorruptionError`."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    offset = 0
    try:
        for chunk in file_chunks(fs, path):
            out = decompressor.decompress(chunk)
            offset += len(chunk)
            if out:
                yield out
    except zstandard.ZstdError as exc:
        raise CorruptionError(path, offset, f"archive does not decompress: {exc}") from None
    if not decompressor.eof:
        raise CorruptionError(path, offset, "archive ends before its zstd frame does")


def archive_path(session_path: str, segment: str) -> str:
    return os.path.join(session_path, manifest_mod.archive_name(segment))


def read_records(fs: FileSystem, path: str, first_seq: int) -> list[Record]:
    """Every record of an archive, checked line by line and numbered on from `first_seq`."""
    data = b"".join(decompressed_chunks(fs, path))
    records: list[Record] = []
    pos = 0
    while pos < len(data):
        newline = data.find(b"\n", pos)
        if newline == -1:
            raise CorruptionError(path, pos, "incomplete record inside an archive")
        try:
            record = decode(data[pos:newline])
        except BadLine as exc:
            raise CorruptionError(path, pos, exc.reason) from None
        expected = first_seq + len(records)
        if record.seq != expected:
            raise CorruptionError(path, pos, f"sequence number {record.seq}, expected {expected}")
        records.append(record)
        pos = newline + 1
    return records


def read_archived(fs: FileSystem, session_path: str, manifest: Manifest, start: int) -> list[Record]:
    """The archived records with seq >= `start` (archives pruned by retention are gone)."""
    out: list[Record] = []
    names = list(manifest.archived)
    for index, name in enumerate(names):
        first = _first_seq(name)
        end = _first_seq(names[index + 1]) if index + 1 < len(names) else manifest.snapshot_seq + 1
        if end <= start:
            continue
        records = read_records(fs, archive_path(session_path, name), first)
        out.extend(r for r in records if r.seq >= start)
    return out


def _first_seq(segment: str) -> int:
    first = naming.segment_first_seq(segment)
    if first is None:  # decode() refuses such manifests; this guards direct callers
        raise ValueError(f"{segment!r} is not a segment name")
    return first


def verify_session_archives(fs: FileSystem, session_path: str) -> list[Problem]:
    """`verify_compaction` for a session directory; a bad manifest is itself a problem."""
    try:
        current = manifest_mod.load(fs, session_path)
    except (CorruptionError, UnsupportedFormatError) as exc:
        kind = "unsupported-format" if isinstance(exc, UnsupportedFormatError) else "corruption"
        return [Problem(os.path.join(session_path, manifest_mod.MANIFEST_FILE), 0, kind, str(exc))]
    return verify_compaction(fs, session_path, current)


def verify_compaction(fs: FileSystem, session_path: str, manifest: Manifest) -> list[Problem]:
    """Check every archive (decompress, checksums, numbering, seals) and the snapshot's seq."""
    problems: list[Problem] = []
    expected = manifest.pruned_through + 1
    for name in manifest.archived:
        expected = expected if expected > 0 else _first_seq(name)  # after damage: resync
        path = _located(fs, session_path, manifest, manifest_mod.archive_name(name))
        found, expected = _verify_one(fs, path, _first_seq(name), expected)
        problems += found
    if manifest.archived and expected > 0 and expected != manifest.snapshot_seq + 1:
        path = archive_path(session_path, manifest.archived[-1])
        reason = f"archives end at seq {expected - 1}, the snapshot at {manifest.snapshot_seq}"
        problems.append(Problem(path, 0, "corruption", reason))
    if manifest.snapshot_seq:
        path = _located(fs, session_path, manifest, manifest_mod.MESSAGES_FILE)
        problems += _verify_messages(fs, path, manifest.snapshot_seq)
    return problems


def _located(fs: FileSystem, session_path: str, manifest: Manifest, final: str) -> str:
    """Where a file of the snapshot is now: a committed compaction not yet finished (the next
    open finishes it) still has it under its pending temp name."""
    for temp, name in manifest.pending:
        if name == final and fs.stat(os.path.join(session_path, temp)) is not None:
            return os.path.join(session_path, temp)
    return os.path.join(session_path, final)


def _verify_one(fs: FileSystem, path: str, first: int, expected: int) -> tuple[list[Problem], int]:
    """Problems of one archive, and the seq the next one must start at (-1: unknown)."""
    if first != expected:
        return [Problem(path, 0, "corruption", f"archive starts at {first}, expected {expected}")], -1
    try:
        data = b"".join(decompressed_chunks(fs, path))
    except FileNotFoundError:
        return [Problem(path, 0, "corruption", "archive listed in the manifest is missing")], -1
    except CorruptionError as exc:
        return [Problem(path, exc.offset, "corruption", exc.reason)], -1
    result = scan(data, 0, first, path)
    if result.problem is not None:
        reason = f"{result.problem.reason} (offset into the decompressed segment)"
        return [Problem(path, result.problem.offset, "corruption", reason)], -1
    if not result.sealed:
        reason = f"archived segment does not end in a {SEAL} record"
        return [Problem(path, result.end, "corruption", reason)], result.next_seq
    return [], result.next_seq


def _verify_messages(fs: FileSystem, path: str, snapshot_seq: int) -> list[Problem]:
    try:
        reader = MessagesReader(file_chunks(fs, path))
        count = sum(1 for _ in reader.lines())
    except FileNotFoundError:
        return [Problem(path, 0, "corruption", "snapshot messages.json is missing")]
    except BadSnapshot as exc:
        return [Problem(path, 0, "corruption", str(exc))]
    if reader.trailer.get("journal_seq") != snapshot_seq:
        reason = f"snapshot covers seq {reader.trailer.get('journal_seq')}, the manifest says {snapshot_seq}"
        return [Problem(path, 0, "corruption", reason)]
    if reader.trailer.get("total_messages") != count:
        reason = f"total_messages says {reader.trailer.get('total_messages')}, the file holds {count} lines"
        return [Problem(path, 0, "corruption", reason)]
    return []


def load_snapshot(fs: FileSystem, session_path: str, manifest: Manifest, chat: bool = False) -> SessionState:
    """The `SessionState` at `manifest.snapshot_seq`, from messages.json and metadata.json.
    With `chat`, for `get_chat_history`, the state holds the snapshot as `lines` and `chat`
    when messages.json is as journal writes it, and records otherwise.

    The snapshot is a view people and scripts may touch; if it no longer reads as journal
    wrote it, the state is rebuilt from the archives (the log's own bytes) with a warning,
    and the next compaction writes the view again.
    """
    try:
        return _read_snapshot(fs, session_path, manifest, chat)
    except CorruptionError as exc:
        if manifest.pruned_through:  # retention removed records only the snapshot still has
            raise
        state = fold(read_archived(fs, session_path, manifest, 0))
        if state.last_seq != manifest.snapshot_seq:
            raise
        warnings.warn(
            RecoveryWarning(f"{exc}; the state was rebuilt from the archives instead"), stacklevel=2
        )
        return state


def _read_snapshot(fs: FileSystem, session_path: str, manifest: Manifest, chat: bool) -> SessionState:
    path = os.path.join(session_path, manifest_mod.MESSAGES_FILE)
    meta_path = os.path.join(session_path, manifest_mod.METADATA_FILE)
    messages: list[Record] = []
    lines: Lines | None = None
    view: list[dict[str, Any]] | None = [] if chat else None
    try:
        fast = read_lines(fs, path, view) if chat else None
        if fast is not None:
            lines, trailer = fast
        else:
            view = None
            messages, trailer = read_messages(fs, path)
        raw = read_file(fs, meta_path)
        metadata = decode_metadata(raw) if raw is not None else None
    except FileNotFoundError:
        raise CorruptionError(path, 0, "snapshot named by compaction.json is missing") from None
    except BadSnapshot as exc:
        raise CorruptionError(path, 0, str(exc)) from None
    if metadata is None:
        raise CorruptionError(meta_path, 0, "snapshot named by compaction.json is missing")
    if trailer["journal_seq"] != manifest.snapshot_seq:
        reason = f"covers seq {trailer['journal_seq']}, compaction.json says {manifest.snapshot_seq}"
        raise CorruptionError(path, 0, reason)
    return SessionState(
        messages=messages,
        metadata=metadata,
        created_at=manifest.created_at,
        updated_at=manifest.updated_at,
        last_seq=manifest.snapshot_seq,
        lines=lines,
        chat=view,
    )
