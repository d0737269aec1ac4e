"""Reading and verifying a session's archives (`archive/<first-segment>.zst`), and the read
side of a snapshot.

Strategy: an archive holds one or more closed segments verbatim (`archive_file`): every line
keeps its xxh3 checksum, so `verify` checks an archive with the same rules as a live segment
and never has to trust the snapshot, and the stock ``zstd -d`` gives back the segments' bytes.
Archive *i* holds exactly the records from its name's seq up to the next archive's first seq
(or the snapshot's seq) minus one; every read and verify checks that, so an archive can never
add or hide records. A `messages.json` of up to 64 MiB (`WHOLE_FILE_BYTES`) is read whole and
decoded in memory; a bigger one is streamed.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from typing import Any

import xxhash

from ..errors import CorruptionError, RecoveryWarning, UnsupportedFormatError
from . import manifest as manifest_mod
from . import naming
from .archive_file import (
    CHUNK_BYTES,
    LINE_OVERHEAD,
    MAX_RECORD_BYTES,
    ArchiveWriter,
    RunChecker,
    archive_lines,
    content_size,
    decompressed_chunks,
    file_chunks,
)
from .coldread import Lines, decode_chat
from .fs import FileSystem, read_file
from .gcpause import gc_paused
from .manifest import Manifest
from .record import Record
from .scan import Problem
from .snapshot import BadSnapshot, MessagesReader, decode_messages, decode_metadata
from .state import SessionState, fold

__all__ = ["CHUNK_BYTES", "ArchiveWriter", "content_size", "decompressed_chunks", "file_chunks"]

# A messages.json up to this size is read with one read and decoded in memory; a bigger one is
# streamed in chunks, so a 1 GB history is never held as bytes.
WHOLE_FILE_BYTES = 64 * 1024 * 1024


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
    raw: bytes | None, chat: list[dict[str, Any]], verified: bool
) -> tuple[Lines, dict[str, Any]] | None:
    """The lines and trailer of a `messages.json` held whole (`raw`, None if too big) by
    `decode_chat` (filling `chat`; `verified`: `raw` has the hash compaction recorded); None
    if it must be read the strict way, by `read_messages`: too big, or not every line as
    journal writes it."""
    if raw is not None:
        with contextlib.suppress(BadSnapshot), gc_paused():
            return decode_chat(raw, chat, verified=verified)
    return None


def _whole_or_none(fs: FileSystem, path: str) -> bytes | None:
    """`small_file` of up to `WHOLE_FILE_BYTES`; None if bigger or missing (reported later)."""
    try:
        return small_file(fs, path, WHOLE_FILE_BYTES)
    except FileNotFoundError:
        return None


def archive_path(session_path: str, segment: str) -> str:
    return os.path.join(session_path, manifest_mod.archive_name(segment))


def size_limit(first: int, end: int, max_record_bytes: int) -> int:
    """The most content an archive of records `first`..`end - 1` can hold."""
    return max(0, end - first) * (max_record_bytes + LINE_OVERHEAD)


def read_records(fs: FileSystem, path: str, first: int, end: int, max_record_bytes: int) -> list[Record]:
    """Every record of an archive that must hold exactly records `first`..`end - 1`, each
    checked; raise `CorruptionError` (a missing file too)."""
    records: list[Record] = []
    _check_records(fs, path, (first, end), max_record_bytes, records.append)
    return records


def check_records(fs: FileSystem, path: str, first: int, end: int, max_record_bytes: int) -> None:
    """`read_records` without keeping the records: what verify needs, in bounded memory."""
    _check_records(fs, path, (first, end), max_record_bytes, None)


def _check_records(
    fs: FileSystem,
    path: str,
    span: tuple[int, int],
    max_record_bytes: int,
    keep: Callable[[Record], None] | None,
) -> None:
    first, end = span
    checker = RunChecker(path, first, payloads=True)
    limit = size_limit(first, end, max_record_bytes)
    try:
        if keep is None:  # verify: nothing to keep, the usual lines checked many at once
            checker.check_chunks(decompressed_chunks(fs, path, limit))
        else:
            for line in archive_lines(fs, path, limit):
                record = checker.check(line)[1]
                if record is not None:  # a record with payloads=True
                    keep(record)
    except FileNotFoundError:
        raise CorruptionError(path, 0, "archive listed in compaction.json is missing") from None
    checker.end()
    if checker.next_seq != end:
        raise CorruptionError(
            path, checker.offset, f"archive ends at seq {checker.next_seq - 1}, expected {end - 1}"
        )


def extents(manifest: Manifest) -> list[tuple[str, int, int]]:
    """(segment name, first seq, end seq) of each archive: it holds first..end - 1."""
    names = list(manifest.archived)
    firsts = [_first_seq(name) for name in names] + [manifest.snapshot_seq + 1]
    return [(name, firsts[i], firsts[i + 1]) for i, name in enumerate(names)]


def read_archived(
    fs: FileSystem,
    session_path: str,
    manifest: Manifest,
    start: int,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> list[Record]:
    """The archived records with seq >= `start` (archives pruned by retention are gone)."""
    out: list[Record] = []
    for name, first, end in extents(manifest):
        if end <= start:
            continue
        records = read_records(fs, archive_path(session_path, name), first, end, max_record_bytes)
        out.extend(r for r in records if r.seq >= start)
    return out


def _first_seq(segment: str) -> int:
    first = naming.segment_first_seq(segment)
    if first is None:  # decode() refuses such manifests; this guards direct callers
        raise ValueError(f"{segment!r} is not a segment name")
    return first


def verify_session_archives(
    fs: FileSystem, session_path: str, max_record_bytes: int = MAX_RECORD_BYTES
) -> list[Problem]:
    """`verify_compaction` for a session directory; a bad manifest is itself a problem."""
    try:
        current = manifest_mod.load(fs, session_path)
    except (CorruptionError, UnsupportedFormatError) as exc:
        kind = "unsupported-format" if isinstance(exc, UnsupportedFormatError) else "corruption"
        return [Problem(os.path.join(session_path, manifest_mod.MANIFEST_FILE), 0, kind, str(exc))]
    return verify_compaction(fs, session_path, current, max_record_bytes)


def verify_compaction(
    fs: FileSystem, session_path: str, manifest: Manifest, max_record_bytes: int = MAX_RECORD_BYTES
) -> list[Problem]:
    """Check every archive (decompress, checksums, payloads, numbering, seals, extent) and
    the snapshot's seq."""
    problems: list[Problem] = []
    spans = extents(manifest)
    if spans and spans[0][1] != manifest.pruned_through + 1:
        path = archive_path(session_path, spans[0][0])
        reason = f"archive starts at {spans[0][1]}, expected {manifest.pruned_through + 1}"
        problems.append(Problem(path, 0, "corruption", reason))
    for name, first, end in spans:
        path = _located(fs, session_path, manifest, manifest_mod.archive_name(name))
        try:
            if first >= end:
                raise CorruptionError(
                    path, 0, f"archive starts at {first}, after the seq {end - 1} it must end at"
                )
            check_records(fs, path, first, end, max_record_bytes)
        except CorruptionError as exc:
            problems.append(Problem(path, exc.offset, "corruption", exc.reason))
    if manifest.snapshot_seq:
        path = _located(fs, session_path, manifest, manifest_mod.MESSAGES_FILE)
        problems += _verify_messages(fs, path, manifest.snapshot_seq)
        for name in manifest_mod.SNAPSHOT_FILES:
            view_path = _located(fs, session_path, manifest, name)
            edited = edited_view(fs, view_path, manifest.view_hash(name))
            if edited is not None:
                problems.append(Problem(view_path, 0, "corruption", edited))
    return problems


def edited_view(fs: FileSystem, path: str, expected: str | None) -> str | None:
    """Why the view file at `path` is not the one compaction wrote (its xxh3 is not the one
    compaction.json recorded), or None (also when none was recorded, or it is missing:
    reported elsewhere)."""
    if expected is None:
        return None
    hasher = xxhash.xxh3_64()
    try:
        for chunk in file_chunks(fs, path):
            hasher.update(chunk)
    except FileNotFoundError:
        return None
    return _edited(path, hasher.hexdigest(), expected)


def _edited(path: str, digest: str, expected: str | None) -> str | None:
    if expected is None or digest == expected:
        return None
    name = os.path.basename(path).split(".tmp-")[0]
    return f"{name} was changed after compaction wrote it (the log is the truth; compact rebuilds it)"


def _located(fs: FileSystem, session_path: str, manifest: Manifest, final: str) -> str:
    """Where a file of the snapshot is now: a committed compaction not yet finished (the next
    open finishes it) still has it under its pending temp name."""
    for temp, name in manifest.pending:
        if name == final and fs.stat(os.path.join(session_path, temp)) is not None:
            return os.path.join(session_path, temp)
    return os.path.join(session_path, final)


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


def load_snapshot(
    fs: FileSystem,
    session_path: str,
    manifest: Manifest,
    chat: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> SessionState:
    """The `SessionState` at `manifest.snapshot_seq`, from messages.json and metadata.json.
    With `chat`, for `get_chat_history`, the state holds the snapshot as `lines` and `chat`
    when messages.json is as journal writes it, and records otherwise.

    The snapshot is a view people and scripts may touch; if it no longer reads as journal
    wrote it, the state is rebuilt from the archives (the log's own bytes) with a warning,
    and the next compaction writes the view again.
    """
    try:
        return _read_snapshot(fs, session_path, manifest, chat, trust_edits=False)
    except CorruptionError as exc:
        if manifest.pruned_through:  # retention removed records only the snapshot still has
            state = _read_snapshot(fs, session_path, manifest, chat, trust_edits=True)
            warnings.warn(
                RecoveryWarning(f"{exc}; read as it is: pruned archives cannot rebuild it"), stacklevel=2
            )
            return state
        state = fold(read_archived(fs, session_path, manifest, 0, max_record_bytes))
        if state.last_seq != manifest.snapshot_seq:
            raise
        warnings.warn(
            RecoveryWarning(f"{exc}; the state was rebuilt from the archives instead"), stacklevel=2
        )
        return state


def _read_snapshot(
    fs: FileSystem, session_path: str, manifest: Manifest, chat: bool, trust_edits: bool
) -> SessionState:
    path = os.path.join(session_path, manifest_mod.MESSAGES_FILE)
    meta_path = os.path.join(session_path, manifest_mod.METADATA_FILE)
    # A cold `get_chat_history` reads messages.json once: hashed and decoded in memory.
    raw = _whole_or_none(fs, path) if chat else None
    for name, view_path in ((manifest_mod.MESSAGES_FILE, path), (manifest_mod.METADATA_FILE, meta_path)):
        expected = None if trust_edits else manifest.view_hash(name)
        if raw is not None and view_path == path:
            reason = _edited(path, xxhash.xxh3_64_hexdigest(raw), expected)
        else:
            reason = edited_view(fs, view_path, expected)
        if reason is not None:
            raise CorruptionError(view_path, 0, reason)
    messages: list[Record] = []
    lines: Lines | None = None
    view: list[dict[str, Any]] | None = [] if chat else None
    try:
        verified = not trust_edits and manifest.view_hash(manifest_mod.MESSAGES_FILE) is not None
        fast = read_lines(raw, view, verified) if view is not None else None
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
