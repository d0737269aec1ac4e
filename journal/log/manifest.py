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
import os
from dataclasses import dataclass, replace

import orjson

from ..errors import CorruptionError, LockTimeout, UnsupportedFormatError
from . import naming
from .fs import TEMP_MARK, FileSystem, read_file, unlink_quietly, write_atomic

MANIFEST_FILE = "compaction.json"
COMPACTION_LOCK = "compaction.lock"
ARCHIVE_DIR = "archive"
ARCHIVE_SUFFIX = ".zst"
MESSAGES_FILE = "messages.json"
SESSION_INFO_FILE = "session_id.json"
METADATA_FILE = "metadata.json"
SNAPSHOT_FILES = (MESSAGES_FILE, SESSION_INFO_FILE, METADATA_FILE)
MANIFEST_FORMAT = 2  # 2: messages.json may hold the "_journal" stamp string (FORMAT.md)
READABLE_FORMATS = frozenset({1, MANIFEST_FORMAT})


@dataclass(frozen=True)
class Manifest:
    """What the last committed compaction left. The zero value: never compacted."""

    snapshot_seq: int = 0  # every record <= this is folded into the snapshot files
    created_at: float | None = None  # exact `SessionState` times at snapshot_seq
    updated_at: float | None = None
    archived: tuple[str, ...] = ()  # segment names kept as archive/<name>.zst, in order
    pruned_through: int = 0  # records <= this were in archives removed by retention
    pending: tuple[tuple[str, str], ...] = ()  # (temp, final) paths relative to the session
    folded: tuple[str, ...] = ()  # log segment names still to unlink


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
        manifest = Manifest(
            snapshot_seq=int(body["snapshot_seq"]),
            created_at=_float_or_none(body.get("created_at")),
            updated_at=_float_or_none(body.get("updated_at")),
            archived=tuple(str(name) for name in body.get("archived", [])),
            pruned_through=int(body.get("pruned_through", 0)),
            pending=tuple((str(temp), str(final)) for temp, final in body.get("pending", [])),
            folded=tuple(str(name) for name in body.get("folded", [])),
        )
    except (KeyError, TypeError, ValueError):
        raise CorruptionError(path, 0, "compaction manifest has a malformed field") from None
    _check_names(manifest, path)
    return manifest


def _float_or_none(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


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


def finish(fs: FileSystem, session_path: str, manifest: Manifest, mode: int) -> Manifest:
    """Complete a committed compaction (caller holds the session lock); idempotent."""
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
    """Delete `orphans` (caller holds the session lock and the compaction lock)."""
    found = orphans(fs, session_path, manifest)
    for rel in found:
        unlink_quietly(fs, os.path.join(session_path, rel))
    return found


def recover(fs: FileSystem, session_path: str, mode: int) -> Manifest:
    """On open, under the session lock: finish a committed compaction and, unless a compactor
    is running right now, remove orphans. Returns the manifest in force."""
    manifest = load(fs, session_path)
    if manifest.pending or manifest.folded:
        manifest = finish(fs, session_path, manifest, mode)
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
