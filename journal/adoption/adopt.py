"""Taking sessions other stores wrote into the journal, atomically and at most once.

Strategy (FORMAT.md, "Adopted sessions"). Everything that can fail on bad input (reading,
decoding, encoding the records) happens before the first write, so a file journal cannot
understand changes nothing. Then, under the session lock: the whole log is written as one
segment (temp, fsync, rename), and `identity.json` is written last (format 2, naming the foreign
files): that is the commit point. A crash before it leaves no journal session, only a segment
of ours that the next attempt writes again, byte for byte; a crash after it leaves the complete
session, and the open of it renames the foreign files aside, verbatim (log/adopted.py).
A session that is already in the journal is never adopted again.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import orjson

from ..errors import ForeignStoreError, UnreadableSessionWarning
from ..log import naming
from ..log.adopted import ADOPTED_IDENTITY_FORMAT, finish_moves
from ..log.fs import FileSystem, read_file, write_atomic
from ..log.maintenance import lock_session, release
from ..log.record import encode, encode_payload
from ..log.session import Options
from .foreign import DOCS_FILES, Foreign, parse_docs_layout, parse_praisonai, praisonai_safe_id


@dataclass
class ImportReport:
    """What an import of a directory of PraisonAI session files did (or, dry, would do)."""

    sessions: list[str] = field(default_factory=list)
    messages: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> whose session is here already
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why it is not understood


def adopt_session(fs: FileSystem, root: str, session_id: str, options: Options) -> Foreign | None:
    """Adopt `session_id` if another store left it in `root`; None if there is nothing to
    adopt (it is a journal session already, or no store has it).

    Raises:
        ForeignStoreError: its files cannot be understood; nothing was changed.
    """
    path = os.path.join(root, naming.encode_id(session_id))
    if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None:
        return None
    if docs_files(fs, path):
        try:
            return _adopt_docs_layout(fs, path, session_id, options)
        except ForeignStoreError:
            if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None:
                return None  # adopted by another thread or process while we read its files
            raise
    flat = praisonai_safe_id(session_id) + ".json"
    foreign = read_praisonai_file(fs, root, flat)
    if foreign is None or foreign.session_id != session_id:
        return None
    return adopt_praisonai_file(fs, root, flat, options)


def docs_files(fs: FileSystem, path: str) -> list[str]:
    """The docs' layout files in the session directory `path` (none if it is not one)."""
    return [name for name in DOCS_FILES if _is_file(fs, os.path.join(path, name))]


def is_praisonai_name(name: str) -> bool:
    """May a file of this name be a PraisonAI session file (`<safe_id>.json`)?"""
    return name.endswith(".json") and not name.startswith(".") and len(name) > len(".json")


def praisonai_files(fs: FileSystem, directory: str) -> list[str]:
    """The names in `directory` that may be PraisonAI session files (`<safe_id>.json`)."""
    names = [n for n in fs.listdir(directory) if is_praisonai_name(n)]
    return sorted(n for n in names if _is_file(fs, os.path.join(directory, n)))


def read_praisonai_file(fs: FileSystem, directory: str, name: str) -> Foreign | None:
    """The session in PraisonAI's file `directory/name`, or None if there is no such file."""
    path = os.path.join(directory, name)
    if not _is_file(fs, path):
        return None
    raw = _read(fs, path)
    try:
        return parse_praisonai(path, raw, _mtime(fs, path))
    except ForeignStoreError:
        raise
    except (ValueError, TypeError) as exc:
        raise ForeignStoreError(path, str(exc)) from None


def adopt_praisonai_file(fs: FileSystem, root: str, name: str, options: Options) -> Foreign | None:
    """Adopt the PraisonAI file `root/name`: the session goes to its journal directory and the
    file into that directory's `adopted/`. None if that session is in the journal already."""
    foreign = read_praisonai_file(fs, root, name)
    if foreign is None:
        return None
    path = os.path.join(root, naming.encode_id(foreign.session_id))
    if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None:
        return None
    if docs_files(fs, path):
        reason = f"session {foreign.session_id!r} is also a directory in the docs' layout; adopt that first"
        raise ForeignStoreError(os.path.join(root, name), reason)
    segment = _segment(foreign, options)
    if fs.mkdir(path, options.dir_mode):
        fs.sync_dir(root)
    return _commit_locked(fs, path, foreign, segment, ["../" + name], options)


def import_praisonai(
    fs: FileSystem, root: str, source: str, options: Options, dry_run: bool = False
) -> ImportReport:
    """Copy every PraisonAI session file of the directory `source` into the store at `root`;
    the files in `source` are only read. A session already in the store is skipped, so a
    second import adds nothing."""
    report = ImportReport()
    for name in praisonai_files(fs, source):
        try:
            foreign = read_praisonai_file(fs, source, name)
            assert foreign is not None
            segment = _segment(foreign, options)
        except ForeignStoreError as exc:
            report.refused[name] = exc.reason
            continue
        path = os.path.join(root, naming.encode_id(foreign.session_id))
        if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None or docs_files(fs, path):
            report.skipped[name] = f"session {foreign.session_id!r} is in the store already"
            continue
        if not dry_run:
            if fs.mkdir(path, options.dir_mode):
                fs.sync_dir(root)
            _commit_locked(fs, path, foreign, segment, [], options)
        report.sessions.append(foreign.session_id)
        report.messages += foreign.messages
    return report


def _adopt_docs_layout(fs: FileSystem, path: str, session_id: str, options: Options) -> Foreign | None:
    names = docs_files(fs, path)
    files = {name: _read(fs, os.path.join(path, name)) for name in names}
    fallback = _mtime(fs, os.path.join(path, names[0]))
    try:
        foreign = parse_docs_layout(session_id, files, fallback)
    except ForeignStoreError as exc:
        raise ForeignStoreError(os.path.join(path, exc.path), exc.reason) from None
    return _commit_locked(fs, path, foreign, _segment(foreign, options), names, options)


def _commit_locked(
    fs: FileSystem, path: str, foreign: Foreign, segment: bytes, sources: list[str], options: Options
) -> Foreign | None:
    lock_fd = lock_session(fs, path, options, create=True)
    assert lock_fd is not None  # create=True always opens one
    try:
        if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None:
            return None  # another process adopted it while we waited for the lock
        log_dir = os.path.join(path, naming.LOG_DIR)
        if fs.mkdir(log_dir, options.dir_mode):
            fs.sync_dir(path)
        write_atomic(fs, os.path.join(log_dir, naming.segment_name(1)), segment, options.file_mode)
        identity = {
            "format": ADOPTED_IDENTITY_FORMAT,
            "session_id": foreign.session_id,
            "adopted_from": sources,
        }
        write_atomic(
            fs, os.path.join(path, naming.IDENTITY_FILE), orjson.dumps(identity) + b"\n", options.file_mode
        )
        finish_moves(fs, path, sources)
    finally:
        release(fs, lock_fd)
    return foreign


def _segment(foreign: Foreign, options: Options) -> bytes:
    """The adopted session's whole log; raises before anything is written if a value cannot be
    stored exactly."""
    lines = []
    for seq, (ts, kind, data) in enumerate(foreign.records, start=1):
        try:
            payload = encode_payload(data, options.max_record_bytes)
        except ValueError as exc:
            raise ForeignStoreError(foreign.sources[0] if foreign.sources else "?", str(exc)) from None
        lines.append(encode(seq, ts, kind, payload))
    return b"".join(lines)


def _is_file(fs: FileSystem, path: str) -> bool:
    st = fs.stat(path)
    return st is not None and not st.is_dir


def _read(fs: FileSystem, path: str) -> bytes:
    raw = read_file(fs, path)
    if raw is None:
        raise ForeignStoreError(path, "vanished while it was being read")
    return raw


def _mtime(fs: FileSystem, path: str) -> float:
    st = fs.stat(path)
    return st.mtime if st is not None else time.time()


def scan_root(fs: FileSystem, root: str) -> tuple[list[str], list[str]]:
    """The journal sessions in the store root `root`, and the names of the sessions other
    stores left there. An entry that cannot be read is left out with an
    `UnreadableSessionWarning`: one bad session must not hide the others."""
    found: list[str] = []
    foreign: list[str] = []
    for name in fs.listdir(root):
        session_id = naming.decode_id(name)
        path = os.path.join(root, name)
        try:
            if session_id is not None and fs.stat(os.path.join(path, naming.IDENTITY_FILE)):
                found.append(session_id)
            elif is_praisonai_name(name) or (session_id is not None and docs_files(fs, path)):
                foreign.append(name)
        except OSError as exc:
            message = f"{path}: session left out, it cannot be read: {exc}"
            warnings.warn(message, UnreadableSessionWarning, stacklevel=4)
    return found, foreign
