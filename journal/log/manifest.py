"""`compaction.json`, the commit point of a compaction, and finishing what it names.

Strategy: like Redis's multi-part AOF manifest, one small file replaced atomically decides
which files make up a session. A compaction writes every new file under a unique temp name
first; writing the manifest that lists those temps as `pending` (with the log segments it
folded as `folded`) commits the compaction. Whoever next holds the session lock (the
compactor itself, or any later open) *finishes* it: renames each pending temp to its final
name (a temp already gone means that rename happened), unlinks the folded segments, and
rewrites the manifest without the two lists. Every step is idempotent, so a crash at any
point leaves either the old manifest (the compaction never happened; its temps are orphans)
or the new one (the compaction happened; finishing it is replayed). Orphan temps are removed
only under the compaction lock, which a running compactor holds while it writes them.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import orjson
import xxhash

from ..errors import CorruptionError, LockTimeout, UnsupportedFormatError
from . import naming
from .archive_file import LINE_OVERHEAD, MAX_RECORD_BYTES, decompressed_chunks
from .fs import TEMP_MARK, FileSystem, read_file, unlink_quietly, write_atomic

MANIFEST_FILE = "compaction.json"
COMPACTION_LOCK = "compaction.lock"
ARCHIVE_DIR = "archive"
ARCHIVE_SUFFIX = ".zst"
MESSAGES_FILE = "messages.json"
SESSION_INFO_FILE = "session_id.json"
METADATA_FILE = "metadata.json"
SNAPSHOT_FILES = (MESSAGES_FILE, SESSION_INFO_FILE, METADATA_FILE)
# 2: messages.json may hold the "_journal" stamp string; 3: an archive may hold several
# segments (FORMAT.md, "compaction.json").
MANIFEST_FORMAT = 3
READABLE_FORMATS = frozenset({1, 2, MANIFEST_FORMAT})


@dataclass(frozen=True)
class Manifest:
    """What the last committed compaction left. The zero value: never compacted."""

    snapshot_seq: int = 0  # every record <= this is folded into the snapshot files
    created_at: float | None = None  # exact `SessionState` times at snapshot_seq
    updated_at: float | None = None
    archived: tuple[str, ...] = ()  # archive/<name>.zst, each named by its first segment, in order
    pruned_through: int = 0  # records <= this were in archives removed by retention
    pending: tuple[tuple[str, str], ...] = ()  # (temp, final) paths relative to the session
    folded: tuple[str, ...] = ()  # log segment names still to unlink
    # xxh3 of each view file as the compaction wrote it (format 3; empty: not recorded), so
    # an edited view is told from the compactor's own (FORMAT.md, "Edited views").
    views: tuple[tuple[str, str], ...] = ()

    def view_hash(self, name: str) -> str | None:
        return dict(self.views).get(name)


def view_hash(data: bytes) -> str:
    """The checksum compaction.json records of a view file's bytes."""
    return xxhash.xxh3_64_hexdigest(data)


def archive_name(segment: str) -> str:
    return f"{ARCHIVE_DIR}/{segment}{ARCHIVE_SUFFIX}"


def encode(manifest: Manifest) -> bytes:
    body: dict[str, object] = {
        "format": MANIFEST_FORMAT,
        "snapshot_seq": manifest.snapshot_seq,
        "created_at": manifest.created_at,
        "updated_at": manifest.updated_at,
        "archived": list(manifest.archived),
        "pruned_through": manifest.pruned_through,
    }
    if manifest.views:
        body["views"] = dict(manifest.views)
    if manifest.pending or manifest.folded:
        body["pending"] = [list(pair) for pair in manifest.pending]
        body["folded"] = list(manifest.folded)
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


def decode(raw: bytes, path: str) -> Manifest:
    """Parse and check a manifest; raise `CorruptionError` / `UnsupportedFormatError`."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CorruptionError(path, 0, "compaction manifest is not JSON") from None
    if not isinstance(body, dict) or body.get("format") not in READABLE_FORMATS:
        raise UnsupportedFormatError(path, body.get("format") if isinstance(body, dict) else None)
    try:
        views = body.get("views", {})
        manifest = Manifest(
            snapshot_seq=_count(body["snapshot_seq"]),
            created_at=_time_or_none(body.get("created_at")),
            updated_at=_time_or_none(body.get("updated_at")),
            archived=tuple(_text(name) for name in body.get("archived", [])),
            pruned_through=_count(body.get("pruned_through", 0)),
            pending=tuple((_text(temp), _text(final)) for temp, final in body.get("pending", [])),
            folded=tuple(_text(name) for name in body.get("folded", [])),
            views=tuple((_text(name), _text(digest)) for name, digest in views.items()),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CorruptionError(path, 0, "compaction manifest has a malformed field") from None
    if manifest.pruned_through > manifest.snapshot_seq:
        raise CorruptionError(path, 0, "compaction manifest prunes past its snapshot")
    _check_names(manifest, path)
    return manifest


def _time_or_none(value: object) -> float | None:
    """A state time: null, or a finite number (not a string, not a bool)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"not a time: {value!r}")
    return float(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r}")
    return value


def _check_names(manifest: Manifest, path: str) -> None:
    """Refuse names that could point outside the session directory."""
    segments = list(manifest.archived) + list(manifest.folded)
    finals = {*SNAPSHOT_FILES, *(archive_name(s) for s in segments)}
    bad = [s for s in segments if naming.segment_first_seq(s) is None]
    bad += [t for t, f in manifest.pending if f not in finals or not _is_temp_of(t, f)]
    if bad:
        raise CorruptionError(path, 0, f"compaction manifest names unexpected files: {bad[:3]}")


def _is_temp_of(temp: str, final: str) -> bool:
    suffix = temp[len(final) + len(TEMP_MARK) :]
    return temp.startswith(final + TEMP_MARK) and bool(suffix) and suffix.replace("-", "").isalnum()


def load(fs: FileSystem, session_path: str) -> Manifest:
    path = os.path.join(session_path, MANIFEST_FILE)
    raw = read_file(fs, path)
    return Manifest() if raw is None else decode(raw, path)


def folded_through(fs: FileSystem, path: str) -> int:
    """The snapshot's seq (0: never compacted, or an unreadable manifest `verify` reports)."""
    try:
        return load(fs, path).snapshot_seq
    except (CorruptionError, UnsupportedFormatError):
        return 0


def store(fs: FileSystem, session_path: str, manifest: Manifest, mode: int) -> None:
    write_atomic(fs, os.path.join(session_path, MANIFEST_FILE), encode(manifest), mode)


FoldedCheck = Callable[[FileSystem, str, Manifest], None]


def finish(
    fs: FileSystem, session_path: str, manifest: Manifest, mode: int, check: FoldedCheck | None = None
) -> Manifest:
    """Complete a committed compaction (caller holds the session lock); idempotent. With
    `check` (a manifest read from disk), it must accept the folded segments before any file
    is renamed or unlinked: it raises `CorruptionError` for a segment the manifest did not fold."""
    if check is not None and manifest.folded:
        check(fs, session_path, manifest)
    for temp, final in manifest.pending:
        src, dst = os.path.join(session_path, temp), os.path.join(session_path, final)
        if fs.stat(src) is not None:
            fs.rename(src, dst)
        elif fs.stat(dst) is None:
            raise CorruptionError(dst, 0, f"committed compaction lost both {temp} and {final}")
    fs.sync_dir(session_path)
    if any(final.startswith(ARCHIVE_DIR + "/") for _, final in manifest.pending):
        fs.sync_dir(os.path.join(session_path, ARCHIVE_DIR))
    log_dir = os.path.join(session_path, naming.LOG_DIR)
    for name in manifest.folded:
        unlink_quietly(fs, os.path.join(log_dir, name))
    fs.sync_dir(log_dir)
    done = replace(manifest, pending=(), folded=())
    store(fs, session_path, done, mode)
    return done


def orphans(fs: FileSystem, session_path: str, manifest: Manifest) -> list[str]:
    """Leftovers of interrupted work: temps no manifest names, archives no manifest lists."""
    keep = {temp for temp, _ in manifest.pending}
    keep |= {archive_name(s) for s in manifest.archived}
    found: list[str] = []
    for sub in ("", naming.LOG_DIR, ARCHIVE_DIR):
        for name in fs.listdir(os.path.join(session_path, sub)):
            rel = f"{sub}/{name}" if sub else name
            stale_archive = sub == ARCHIVE_DIR and name.endswith(ARCHIVE_SUFFIX)
            if (TEMP_MARK in name or stale_archive) and rel not in keep:
                found.append(rel)
    return found


def remove_orphans(fs: FileSystem, session_path: str, manifest: Manifest) -> list[str]:
    """Delete `orphans` (caller holds the session lock and the compaction lock). The manifest
    they are orphans of is made durable first: if its rename were still pending, a power loss
    could bring back the manifest before it, which lists an archive deleted here."""
    found = orphans(fs, session_path, manifest)
    if found:
        fs.sync_dir(session_path)
    for rel in found:
        unlink_quietly(fs, os.path.join(session_path, rel))
    return found


def recover(
    fs: FileSystem, session_path: str, mode: int, max_record_bytes: int = MAX_RECORD_BYTES
) -> Manifest:
    """On open, under the session lock: finish a committed compaction (its folded segments
    first checked by `check_folded`: this manifest was read from disk) and, unless a compactor
    is running right now, remove orphans. Returns the manifest in force."""
    manifest = load(fs, session_path)
    if manifest.pending or manifest.folded:
        manifest = finish(
            fs, session_path, manifest, mode, partial(check_folded, max_record_bytes=max_record_bytes)
        )
    if orphans(fs, session_path, manifest):
        fd = fs.open(os.path.join(session_path, COMPACTION_LOCK), create=True, mode=mode)
        try:
            with contextlib.suppress(LockTimeout):
                fs.lock(fd, 0.0)
                try:
                    remove_orphans(fs, session_path, manifest)
                finally:
                    fs.unlock(fd)
        finally:
            fs.close(fd)
    return manifest


def check_folded(
    fs: FileSystem, session_path: str, manifest: Manifest, max_record_bytes: int = MAX_RECORD_BYTES
) -> None:
    """Refuse a manifest that names as folded a log segment it did not fold (edited by hand,
    or damaged) before anything is unlinked: each folded segment still in `log/` must end at
    or before the snapshot (a later segment starts by snapshot_seq + 1), and its bytes must
    be, verbatim, in the archive that holds its records. Raise `CorruptionError`. (No later
    segment is fine: the segment a compaction rolled to may be empty and its name not yet
    durable when the power fails.)"""
    log_dir = os.path.join(session_path, naming.LOG_DIR)
    present = sorted(s for s in map(naming.segment_first_seq, fs.listdir(log_dir)) if s is not None)
    for name in manifest.folded:
        first = naming.segment_first_seq(name)
        path = os.path.join(log_dir, name)
        if first is None or fs.stat(path) is None:
            continue  # unlinked by an earlier finish
        later = [s for s in present if s > first]
        if later and later[0] > manifest.snapshot_seq + 1:
            reason = (
                f"compaction.json names as folded a segment with records after seq {manifest.snapshot_seq}"
            )
            raise CorruptionError(path, 0, reason)
        _check_archived(fs, session_path, manifest, first, path, max_record_bytes)


def _check_archived(
    fs: FileSystem, session_path: str, manifest: Manifest, first: int, path: str, max_record_bytes: int
) -> None:
    """The bytes of segment `path` (first seq `first`) are in the archive holding `first`."""
    firsts = [naming.segment_first_seq(name) or 0 for name in manifest.archived]
    spans = list(zip(manifest.archived, firsts, [*firsts[1:], manifest.snapshot_seq + 1], strict=True))
    holding = [(name, a, end) for name, a, end in spans if a <= first < end]
    if not holding:
        raise CorruptionError(path, 0, "compaction.json names as folded a segment no archive holds")
    name, start, end = holding[0]
    archive = os.path.join(session_path, archive_name(name))
    for temp, final in manifest.pending:  # not renamed yet: the pending temp is the archive
        if final == archive_name(name) and fs.stat(os.path.join(session_path, temp)) is not None:
            archive = os.path.join(session_path, temp)
    segment = read_file(fs, path) or b""
    try:
        limit = (end - start) * (max_record_bytes + LINE_OVERHEAD)
        content = b"".join(decompressed_chunks(fs, archive, limit))
    except FileNotFoundError:
        raise CorruptionError(archive, 0, f"the archive holding folded segment {path} is missing") from None
    at = _line_of(content, first)
    if not segment or at < 0 or content[at : at + len(segment)] != segment:
        raise CorruptionError(path, 0, f"compaction.json names as folded a segment {archive} does not hold")


def _line_of(content: bytes, seq: int) -> int:
    """Offset of the line of record `seq` in archive content, or -1."""
    marker = b',"seq":%d,' % seq
    at = content.find(marker)
    while at >= 0:
        start = content.rfind(b"\n", 0, at) + 1
        if content.startswith(b'{"xxh3":"', start) and at - start < 40:
            return start
        at = content.find(marker, at + 1)
    return -1
