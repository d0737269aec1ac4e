"""Restore: rebuild sessions from a replica in a store that does not have them.

Strategy: the replica holds each session's record lines byte for byte (`chain.pieces`, every
object checked), so a restore writes them back as they were, seqs, timestamps, kinds, batch
marks and checksums included, rather than appending them anew: `Journal.append` would give
new times and could not keep seals. The session is built under a temp directory in the store
root, `.restore-<pid>-<hex>/` (a name no session can have: it starts with a dot), exactly as
the log keeps one (FORMAT.md, "Segments"): a segment per seal, named by its first seq, the
last one the active segment (an empty one after a final seal), `identity.json`; every file and
directory fsynced. Then one rename publishes it as `<root>/<dir name>` (the commit point: a
crash before leaves only the temp directory, removed by the next restore once its process is
gone; after, the whole session). The rename cannot replace a session: a session directory is
never empty, and renaming onto a non-empty directory fails. A restore never writes over a
session the store has: that is `RestoreConflictError`, checked for every session named before
anything is written; with `catch_up`, such a session is caught up in place instead when its
copy is a prefix of the replica's (`catchup.py`).

Point in time: `to_seq` keeps the records through that seq, `to_time` the longest prefix of
records whose ts are all <= `to_time` (ts is the time of the write, unless the writer gave
one); either way cut back to a whole batch, so a restored session never holds part of one.

Public names (stable): `restore`, `restore_session`, `RestoreTarget`, `RestoreReport`,
`SessionRestore`, `CatchUpForkError`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from ..errors import JournalError
from ..log import index as listing_index
from ..log import naming
from ..log.fs import FileSystem, remove_tree, write_atomic
from ..log.record import FORMAT_VERSION, SEAL, decode_header
from ..log.session import Options
from .batches import replica_batches
from .chain import Fence
from .objects import ObjectStore, RestoreConflictError
from .runs import list_session_dirs

TEMP_PREFIX = ".restore-"


class RestoreTarget(Protocol):
    """What a restore needs of the store it writes to (the `Journal` facade offers it)."""

    root: str
    fs: FileSystem
    options: Options

    def exists(self, session_id: str) -> bool: ...

    def session_path(self, session_id: str) -> str: ...


@dataclass(frozen=True)
class SessionRestore:
    """One session restored (or, in a dry run, that would be): its last seq, records, bytes."""

    session_id: str
    last_seq: int
    records: int
    bytes: int
    action: str = "restored"  # with catch_up: or "caught-up", "current", "ahead"


@dataclass
class RestoreReport:
    sessions: list[SessionRestore] = field(default_factory=list)
    dry_run: bool = False


def restore(
    target: RestoreTarget,
    store: ObjectStore,
    sessions: Iterable[str] | None = None,
    *,
    to_seq: int | None = None,
    to_time: float | None = None,
    dry_run: bool = False,
    fence: Fence | None = None,
    catch_up: bool = False,
) -> RestoreReport:
    """Restore `sessions` (every session of the replica if None) into `target`. With
    `catch_up`, a session the target has already is caught up in place instead
    (`catchup.catch_up_session`: the replica's missing records appended, byte for byte).

    Raises:
        RestoreConflictError: the target has one of the sessions already (without
            `catch_up`); nothing written.
        CatchUpForkError: (`catch_up`) the target's copy of a session forked from the
            replica's; it is left untouched, sessions handled before it stay.
        ReplicaCorruptionError, ReplicaConflictError: the replica does not check out for a
            session; sessions restored before it stay, nothing of it is written.
    """
    ids = list(sessions) if sessions is not None else _replica_sessions(store)
    for session_id in ids:
        naming.encode_id(session_id)  # an id that names no session: InvalidSessionIdError
        if not catch_up and target.exists(session_id):
            raise RestoreConflictError(target.session_path(session_id), "the session exists in this store")
    report = RestoreReport(dry_run=dry_run)
    _remove_dead_temps(target)
    for session_id in ids:
        done = None
        if catch_up and target.exists(session_id):
            done = _catch_up(target, store, session_id, to_seq, to_time, dry_run, fence)
        if done is None:
            done = restore_session(
                target, store, session_id, to_seq=to_seq, to_time=to_time, dry_run=dry_run, fence=fence
            )
        report.sessions.append(done)
    return report


class CatchUpForkError(RestoreConflictError):
    """A catch-up found the store's copy of a session forked from the replica's (it holds a
    record the replica does not, or a different one at the same seq): it was left untouched.
    Delete the copy (or restore into another store) to take the replica's history."""


def _catch_up(
    target: RestoreTarget,
    store: ObjectStore,
    session_id: str,
    to_seq: int | None,
    to_time: float | None,
    dry_run: bool,
    fence: Fence | None,
) -> SessionRestore | None:
    """Catch the target's copy up; None if it vanished meanwhile (restore it instead)."""
    from .catchup import FORKED, MISSING, catch_up_session

    done = catch_up_session(
        target, store, session_id, to_seq=to_seq, to_time=to_time, dry_run=dry_run, fence=fence
    )
    if done.status == MISSING:
        return None
    if done.status == FORKED:
        reason = (
            f"this store's copy (through seq {done.local_seq}) and the replica's (through seq"
            f" {done.replica_seq}) differ at seq {done.at_seq}: not caught up, left untouched"
        )
        raise CatchUpForkError(target.session_path(session_id), reason)
    return SessionRestore(session_id, done.last_seq, done.records, done.bytes, done.status)


def _replica_sessions(store: ObjectStore) -> list[str]:
    return [sid for name in list_session_dirs(store) if (sid := naming.decode_id(name)) is not None]


def restore_session(
    target: RestoreTarget,
    store: ObjectStore,
    session_id: str,
    *,
    to_seq: int | None = None,
    to_time: float | None = None,
    dry_run: bool = False,
    fence: Fence | None = None,
) -> SessionRestore:
    """Restore one session (see `restore`); a session the replica has no records of (or none
    before the point in time) is not created, and reported with `last_seq` 0."""
    dir_name = naming.encode_id(session_id)
    if not dry_run and target.exists(session_id):
        raise RestoreConflictError(target.session_path(session_id), "the session exists in this store")
    batches = replica_batches(store, dir_name, session_id, to_seq, to_time, fence)
    if dry_run:
        last = records = size = 0
        for batch, last_seq in batches:
            last, records, size = last_seq, records + batch.count(b"\n"), size + len(batch)
        return SessionRestore(session_id, last, records, size)
    return _write_session(target, session_id, dir_name, batches)


def _write_session(
    target: RestoreTarget, session_id: str, dir_name: str, batches: Iterator[tuple[bytes, int]]
) -> SessionRestore:
    fs, options = target.fs, target.options
    temp = os.path.join(target.root, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
    fs.mkdir(temp, options.dir_mode)
    try:
        writer = _SegmentWriter(fs, os.path.join(temp, naming.LOG_DIR), options)
        for batch, last_seq in batches:
            writer.write(batch, last_seq)
        if writer.records == 0:  # nothing to restore: no session
            writer.close()
            remove_tree(fs, temp)
            return SessionRestore(session_id, 0, 0, 0)
        writer.finish()
        identity = orjson.dumps({"format": FORMAT_VERSION, "session_id": session_id}) + b"\n"
        write_atomic(fs, os.path.join(temp, naming.IDENTITY_FILE), identity, options.file_mode)
        fs.sync_dir(temp)
        _publish(target, temp, os.path.join(target.root, dir_name))
    except BaseException:
        with contextlib.suppress(OSError, JournalError):
            remove_tree(fs, temp)
        raise
    listing_index.mark(fs, target.root, dir_name)
    return SessionRestore(session_id, writer.last_seq, writer.records, writer.bytes)


def _publish(target: RestoreTarget, temp: str, final: str) -> None:
    try:
        target.fs.rename(temp, final)
    except OSError as exc:  # ENOTEMPTY / EEXIST: a session appeared there meanwhile
        raise RestoreConflictError(final, f"the session appeared in this store meanwhile ({exc})") from exc
    target.fs.sync_dir(target.root)


class _SegmentWriter:
    """Writes lines into segments as the log keeps them: a new segment after each seal."""

    def __init__(self, fs: FileSystem, log_dir: str, options: Options) -> None:
        self.fs, self.log_dir, self.options = fs, log_dir, options
        fs.mkdir(log_dir, options.dir_mode)
        self.fd = -1
        self.next_first = 1
        self.records = self.bytes = self.last_seq = 0

    def _open(self, first: int) -> None:
        path = os.path.join(self.log_dir, naming.segment_name(first))
        self.fd = self.fs.open(path, create=True, mode=self.options.file_mode)

    def write(self, lines: bytes, last_seq: int) -> None:
        """Write whole batches of lines, starting a new segment after each seal."""
        start = 0
        for seal_end in _seal_ends(lines):
            self._append(lines[start:seal_end])
            self.close(sync=True)  # sealed: the next record starts the next segment
            self.next_first = _seq_of(lines, seal_end) + 1
            start = seal_end
        if start < len(lines):
            self._append(lines[start:])
        self.last_seq = last_seq

    def _append(self, lines: bytes) -> None:
        if self.fd < 0:
            self._open(self.next_first)
        self.fs.append(self.fd, lines)
        self.records += lines.count(b"\n")
        self.bytes += len(lines)

    def finish(self) -> None:
        """Make the last segment durable (an empty active one after a final seal), then the
        directory's names."""
        if self.fd < 0:
            self._open(self.next_first)
        self.close(sync=True)
        self.fs.sync_dir(self.log_dir)

    def close(self, sync: bool = False) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                if sync:
                    self.fs.sync(fd)
            finally:
                self.fs.close(fd)


_SEAL_KIND = b'"kind":"seal",'


def _seal_ends(lines: bytes) -> Iterator[int]:
    """The offsets just past each seal line (a seal's header, not a payload that says so)."""
    at = lines.find(_SEAL_KIND)
    while at != -1:
        begin = lines.rfind(b"\n", 0, at) + 1
        end = lines.index(b"\n", at) + 1
        if decode_header(lines[begin : end - 1]).kind == SEAL:
            yield end
        at = lines.find(_SEAL_KIND, end)


def _seq_of(lines: bytes, end: int) -> int:
    """The seq of the line that ends at `end`."""
    return decode_header(lines[lines.rfind(b"\n", 0, end - 1) + 1 : end - 1]).seq


def _remove_dead_temps(target: RestoreTarget) -> None:
    """Remove `.restore-<pid>-<hex>` directories whose process is gone (a crashed restore)."""
    for name in target.fs.listdir(target.root):
        if not name.startswith(TEMP_PREFIX):
            continue
        pid = name[len(TEMP_PREFIX) :].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError, JournalError):
                remove_tree(target.fs, os.path.join(target.root, name))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
