"""One session's open files: the locked writer, group commit, and the incremental reader.

Strategy: every operation takes the session's file lock and first *catches up*: if the lock
file grew (its size is a generation number bumped by delete and repair) the handle is stale
and is reopened; if the active segment grew, the new bytes (another process's appends, or a
dead writer's torn tail) are scanned, a torn tail is cut and quarantined, corruption raises,
and a seal record moves the handle to the next segment. Only then is anything written. The
lock is released before fsync so other processes can append while this one waits on the disk;
in `batch` mode threads of one process share each write and fsync (flat-combining group
commit, in durability.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import warnings
from dataclasses import dataclass

import orjson

from ..errors import (
    CorruptionError,
    DurabilityError,
    ForeignStoreError,
    JournalError,
    RecoveryWarning,
    SessionIdCollisionError,
    UnsafePathError,
    UnsupportedFormatError,
)
from . import linecheck, naming, reader, readonly, removal
from . import manifest as manifest_mod
from .adopted import ADOPTED_IDENTITY_FORMAT, adopted_from, finish_moves
from .durability import Durability, Slot
from .fs import FileSystem, read_file, write_atomic
from .prealloc import Tail, trim_at_rest
from .record import FORMAT_VERSION, SEAL, Item, Record, encode, encode_batch
from .scan import Problem
from .state import SessionState

DURABILITY_MODES = ("always", "batch", "none")
IDENTITY_FORMATS = (1, ADOPTED_IDENTITY_FORMAT)  # 2: adopted from another store (log/adopted.py)
_OPEN_ATTEMPTS = 100  # each failed attempt means another process deleted the session meanwhile


@dataclass(frozen=True)
class Options:
    durability: str = "batch"
    segment_bytes: int = 64 * 1024 * 1024
    max_record_bytes: int = 16 * 1024 * 1024
    lock_timeout: float = 30.0
    file_mode: int = 0o600
    dir_mode: int = 0o700
    read_only: bool = False  # through a `readonly.ReadOnlyFileSystem`: create and cut nothing
    preallocate: int = 0  # zeros kept ahead of a synced segment's end (prealloc.py); 0: off


def quarantine(fs: FileSystem, session_path: str, name: str, data: bytes, options: Options) -> str:
    """Keep bytes taken out of the log in `<session>/quarantine/`; never deleted by journal."""
    directory = os.path.join(session_path, naming.QUARANTINE_DIR)
    fs.mkdir(directory, options.dir_mode)
    # Synced even when it was there already: the fsync after an earlier mkdir may have failed,
    # and the bytes about to be cut out of the log must not depend on that name.
    fs.sync_dir(session_path)
    path = os.path.join(directory, f"{time.time_ns()}.{name}")
    write_atomic(fs, path, data, options.file_mode)
    return path


class Stale(Exception):
    """Internal: the session was deleted or rewritten by someone else; reopen the handle."""


class Closed(Exception):
    """Internal: the handle was closed (evicted) while a caller waited for it; reopen."""


class SessionLog(Durability):
    """The files of one session directory, opened once and cached by `Journal`."""

    def __init__(self, fs: FileSystem, path: str, session_id: str, options: Options) -> None:
        self.fs, self.path, self.session_id, self.options = fs, path, session_id, options
        self.max_record_bytes = options.max_record_bytes
        self.cond = threading.Condition(threading.Lock())
        self.lock_fd = -1
        self.seg_fd = -1
        self.seg_first, self.seg_size, self.tail = 0, 0, Tail(fs, options.preallocate)  # tail: the zeros
        self.next_seq = 1
        self.generation = 0
        self.closed = False
        self.poisoned: DurabilityError | None = None
        self.written = self.synced = 0
        self.syncing = False
        self.queue_lock = threading.Lock()
        self.queue: list[Slot] = []
        self.leading = False
        self.broken = False  # a catch-up failed half way: reopen before using this handle
        self.in_lock = False  # a thread of this process holds the file lock
        self.lock_waiters = 0
        self.state = SessionState()
        self.held = 0  # messages `state` holds (records and snapshot lines)
        self.counted = 0  # what the `Journal` last counted of `held` (under its lock)
        self.index_marked = False  # the facade told the listing index of this handle's appends
        self.reader: tuple[int, int, int] = (1, 0, 1)  # segment first seq, offset, next seq
        self.read_hint: tuple[int, int, int] = (0, 0, 0)  # next seq, segment, offset of the last read
        self.manifest = manifest_mod.Manifest()  # the last compaction: where the live log starts
        self.torn_seen: tuple[int, int] | None = None  # read-only: the torn tail already reported
        self.dirs_durable = False  # the names the log depends on were fsynced by this handle

    # -- paths -------------------------------------------------------------------------------

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def sync_file(self, fd: int) -> None:
        self.fs.sync(fd)

    def segment_path(self, first_seq: int) -> str:
        return self.file(naming.LOG_DIR, naming.segment_name(first_seq))

    def segments(self) -> list[int]:
        names = self.fs.listdir(self.file(naming.LOG_DIR))
        return sorted(s for s in map(naming.segment_first_seq, names) if s is not None)

    # -- opening -----------------------------------------------------------------------------

    def open(self, create: bool) -> bool:
        """Open (and with `create`, make) the session; False if it does not exist."""
        for _ in range(_OPEN_ATTEMPTS):
            opened = self._try_open(create)
            if opened is not None:
                return opened
        raise JournalError(f"{self.path} kept being deleted while it was being opened")

    def _try_open(self, create: bool) -> bool | None:
        """One attempt at `open`; None if a delete got in the way (try again)."""
        st = self.fs.stat(self.path)
        if st is None:
            if not create:
                return False
            if self.fs.mkdir(self.path, self.options.dir_mode):
                self.fs.sync_dir(os.path.dirname(self.path))
        elif st.is_link or not st.is_dir:  # a link is never followed out of the store
            raise UnsafePathError(self.path, "a link or a file where a session directory belongs")
        elif not create and not self._holds_a_session():
            return False  # a reader must not leave a lock file in a directory it only looked at
        try:
            self.lock_fd = self.fs.open(self.file(naming.LOCK_FILE), create=True, mode=self.options.file_mode)
        except FileNotFoundError:  # the directory was renamed away by a delete meanwhile
            return None
        try:
            self.fs.lock(self.lock_fd, self.options.lock_timeout)
        except BaseException:
            self.fs.close(self.lock_fd)
            raise
        try:
            if self._deleted():  # a delete got here first: done, or cut short (removal.py)
                cut = self.fs.same_file(self.lock_fd, self.file(naming.LOCK_FILE))
                read_only = self.options.read_only
                trash = removal.move_to_trash(self.fs, self.path) if cut and not read_only else None
                self.fs.unlock(self.lock_fd)
                self._close_fds()
                removal.remove_trash(self.fs, trash)
                return False if cut and read_only else None  # read-only: deleted, left as it is
            if not self._check_identity(create):
                self._close_fds()
                return False
            self._open_active()
            self.generation = self.fs.size(self.lock_fd)
        except BaseException:
            self.fs.unlock(self.lock_fd)
            self._close_fds()
            raise
        self.fs.unlock(self.lock_fd)
        return True

    def _holds_a_session(self) -> bool:
        return self.fs.stat(self.file(naming.IDENTITY_FILE)) is not None or bool(self.segments())

    def _check_identity(self, create: bool) -> bool:
        path = self.file(naming.IDENTITY_FILE)
        raw = read_file(self.fs, path)
        if raw is None:
            self._refuse_foreign_files()
            if not create and not self.segments():
                return False
            if self.options.read_only:  # a session whose identity file is not written yet
                return True
            body = {"format": FORMAT_VERSION, "session_id": self.session_id}
            write_atomic(self.fs, path, orjson.dumps(body) + b"\n", self.options.file_mode)
            return True
        try:
            identity = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CorruptionError(path, 0, "identity file is not JSON") from None
        if not isinstance(identity, dict) or identity.get("format") not in IDENTITY_FORMATS:
            version = identity.get("format") if isinstance(identity, dict) else None
            raise UnsupportedFormatError(path, version)
        if identity.get("session_id") != self.session_id:
            raise SessionIdCollisionError(
                f"{self.path} already holds session {identity.get('session_id')!r};"
                f" refusing to mix in {self.session_id!r} (case-insensitive file system?)"
            )
        # Adopted: finish moving the foreign files aside (read-only: read them as they are).
        if identity["format"] == ADOPTED_IDENTITY_FORMAT and not self.options.read_only:
            compacted = self.fs.stat(self.file(manifest_mod.MANIFEST_FILE)) is not None
            finish_moves(self.fs, self.path, adopted_from(identity, path), compacted)
        return True

    def _refuse_foreign_files(self) -> None:
        """No identity, yet the docs' files without a compaction manifest: another store's
        session, which only adoption (`Journal` does it) may take in."""
        if self.fs.stat(self.file(manifest_mod.MANIFEST_FILE)) is not None:
            return
        for name in manifest_mod.SNAPSHOT_FILES:
            if self.fs.stat(self.file(name)) is not None:
                raise ForeignStoreError(self.file(name), "journal did not write this session; adopt it first")

    def _open_active(self) -> None:
        if self.options.read_only:  # the files read as the manifest says; nothing finished
            self.manifest = readonly.finished(manifest_mod.load(self.fs, self.path))
        else:
            if self.fs.mkdir(self.file(naming.LOG_DIR), self.options.dir_mode):
                self.fs.sync_dir(self.path)
            # Finish a committed compaction first: the live log starts just after its snapshot.
            self.manifest = manifest_mod.recover(
                self.fs, self.path, self.options.file_mode, self.max_record_bytes
            )
            removal.remove_quarantine_temps(self.fs, self.path)  # a crash during a quarantine write
        first_live = self.manifest.snapshot_seq + 1
        segments = self.segments() or [first_live]
        if segments[0] != first_live:  # the log's first segments are gone: never skip them
            reason = f"first live segment starts at {segments[0]}, the snapshot ends at {first_live - 1}"
            raise CorruptionError(self.segment_path(segments[0]), 0, reason)
        self.reader = (segments[0], 0, segments[0])
        self._enter_segment(segments[-1])
        self._catch_up()

    def _enter_segment(self, first_seq: int) -> None:
        """Make `first_seq`'s segment the active one, creating it (durably) if missing."""
        path = self.segment_path(first_seq)
        if self.seg_fd >= 0 and not self.options.read_only:  # before the next name exists
            self.tail.trim(self.seg_fd, self.seg_size)
        created = self.fs.stat(path) is None
        fd = self.tail.open(path, self.options.file_mode, self.options.read_only)
        if created and not self.options.read_only:  # read-only: the null handle, an empty file
            self.fs.sync_dir(os.path.dirname(path))
        if self.seg_fd >= 0:
            self._wait_for_sync()
            self.fs.close(self.seg_fd)
        self.seg_fd, self.seg_first, self.seg_size, self.next_seq = fd, first_seq, 0, first_seq

    # -- the lock and catching up ------------------------------------------------------------

    def lock(self) -> None:
        """Take the file lock and bring the handle up to date with the disk (`cond` held).

        The threads of a process share one lock file descriptor, and flock does not exclude
        holders of the same descriptor, so `in_lock` does it: a thread that waits on `cond`
        while it holds the lock (a roll waiting for an fsync to end) keeps others out.
        """
        while self.in_lock:
            self.lock_waiters += 1
            self.cond.wait()
            self.lock_waiters -= 1
        if self.closed:
            raise Closed()
        if self.broken:
            raise Stale()
        self.fs.lock(self.lock_fd, self.options.lock_timeout)
        self.in_lock = True
        try:
            if self.fs.size(self.lock_fd) != self.generation:
                raise Stale()
            self._catch_up()
        except BaseException as exc:
            # A catch-up cut short may have moved the cursor past a seal without opening the
            # next segment: this handle must not write again; the next use reopens the session.
            self.broken = True
            self.unlock()
            if isinstance(exc, OSError):  # e.g. EIO or ENOSPC while cutting a torn tail
                raise DurabilityError(f"{self.path}: could not bring the log up to date: {exc}") from exc
            raise

    def unlock(self) -> None:
        self.in_lock = False
        self.fs.unlock(self.lock_fd)
        if self.lock_waiters:
            self.cond.notify_all()

    def _catch_up(self) -> None:
        while True:
            size = self.tail.alloc = self.fs.size(self.seg_fd)
            if size < self.seg_size:
                raise Stale()
            data = self.tail.new_bytes(self.seg_fd, self.seg_size, size) if size > self.seg_size else b""
            if not data:
                return
            result = linecheck.scan(data, self.seg_size, self.next_seq, self.segment_path(self.seg_first))
            self.seg_size, self.next_seq = result.end, result.next_seq
            if result.problem is not None:
                self._handle_problem(result.problem, size)
            if not result.sealed:
                return
            # The writer of this seal may have died (or failed its fsync) before syncing it;
            # the seal must be durable before the next segment's name is, or a power loss
            # leaves a closed segment without a seal: corruption.
            if not self.options.read_only:
                self.fs.sync(self.seg_fd)
            self._enter_segment(self.next_seq)

    def _handle_problem(self, problem: Problem, size: int) -> None:
        if problem.kind == "torn-tail" and self.options.read_only:
            readonly.report_tail(self, problem, size)
        elif problem.kind == "torn-tail":
            self._cut_tail(problem, size)
        elif problem.kind == "unsupported-format":
            raise UnsupportedFormatError(problem.path, problem.reason)
        else:
            raise CorruptionError(problem.path, problem.offset, problem.reason)

    def _cut_tail(self, problem: Problem, size: int) -> None:
        """Keep the torn bytes in quarantine, then cut the segment back to its last record."""
        torn = self.fs.pread(self.seg_fd, size - problem.offset, problem.offset)
        saved = self.quarantine(f"{naming.segment_name(self.seg_first)}.{problem.offset}.torn", torn)
        self.fs.truncate(self.seg_fd, problem.offset)
        self.fs.sync(self.seg_fd)
        self.tail.alloc = problem.offset
        warnings.warn(
            RecoveryWarning(
                f"{problem.path}: cut a torn tail of {len(torn)} bytes at offset"
                f" {problem.offset} ({problem.reason}); the bytes are kept in {saved}"
            ),
            stacklevel=6,
        )

    def quarantine(self, name: str, data: bytes) -> str:
        return quarantine(self.fs, self.path, name, data, self.options)

    def seal(self) -> int:
        """Seal the active segment if it holds records, so every record so far lies in closed
        segments; return the last seq they hold. The caller holds `cond` and the lock."""
        if self.seg_size > 0:
            self._roll()
        return self.seg_first - 1

    def bump_generation(self, deleted: bool = False) -> None:
        """Tell every other handle on this session that its view is stale; a delete leaves
        `DELETED_MARK` last so a process that waited on this lock file knows to start over."""
        self.fs.append(self.lock_fd, naming.DELETED_MARK if deleted else b".")
        self.generation = self.fs.size(self.lock_fd)

    def _deleted(self) -> bool:
        return marked_deleted(self.fs, self.lock_fd)

    # -- writing -----------------------------------------------------------------------------

    def append(self, items: list[Item], durability: str) -> int:
        """Write `items` (kind, payload) as one batch; return its first seq once durable."""
        if durability == "batch":
            return self.group_commit(items)
        self.cond.acquire()  # `with self.cond` without Condition's Python-level __enter__
        try:
            first = self._write_batches([items], durability != "none")[0]
            self._make_durable(self.written, durability)
            return first
        finally:
            self.cond.release()

    def write_slots(self, slots: list[Slot]) -> None:
        for slot, first in zip(slots, self._write_batches([slot.items for slot in slots], True), strict=True):
            slot.first = first

    def _write_batches(self, batches: list[list[Item]], synced: bool) -> list[int]:
        """Write each batch all-or-nothing, all of them in one write under the file lock
        (`cond` held); return the first seq of each. `synced`: an fsync follows (preallocate)."""
        self.lock()
        try:
            # Under the lock: a thread that failed may have left a seal written and no next segment open.
            if self.poisoned is not None:
                raise self.poisoned
            if not self.dirs_durable:
                self._sync_dirs()
            if self.seg_size >= self.options.segment_bytes:
                self._roll()
            ts, seq = time.time(), self.next_seq
            if len(batches) == 1:  # an append (only a group commit writes several): no join
                firsts, lines = [seq], encode_batch(seq, ts, batches[0])
            else:
                firsts = list(itertools.accumulate(map(len, batches[:-1]), initial=seq))
                lines = b"".join(map(encode_batch, firsts, itertools.repeat(ts), batches))
            self._write(lines, synced)
            self.next_seq, self.written = firsts[-1] + len(batches[-1]), self.written + 1
        finally:
            self.unlock()
        return firsts

    def _write(self, lines: bytes, synced: bool = False) -> None:
        try:
            self.tail.write(self.seg_fd, lines, self.seg_size, synced)
        except OSError as exc:
            self._undo_partial_write(exc)
        self.seg_size += len(lines)

    def _undo_partial_write(self, exc: OSError) -> None:
        """A failed write may have left part of the batch: cut it, or poison if we cannot."""
        path = self.segment_path(self.seg_first)
        try:
            self.fs.truncate(self.seg_fd, self.seg_size)
            self.tail.alloc = self.seg_size
            # Durable before the next write lands on the same offset: a power loss that kept
            # that write but not the cut would show the rest of the failed batch after it.
            self.fs.sync(self.seg_fd)
        except OSError as undo:
            self.poisoned = DurabilityError(
                f"write to {path} failed ({exc}) and could not be undone ({undo})"
            )
            raise self.poisoned from exc
        raise DurabilityError(f"write to {path} failed, nothing was written: {exc}") from exc

    def _roll(self) -> None:
        """Seal the active segment durably, then start the next one."""
        self._write(encode(self.next_seq, time.time(), SEAL, b"{}"))
        self.next_seq += 1
        try:
            self._sync(self.seg_fd)
            self.synced = self.written
            self._enter_segment(self.next_seq)
        except BaseException as exc:
            # The seal is written but the handle still points at the sealed segment: writing
            # on would put records after the seal. Refuse until the session is reopened.
            if self.poisoned is None:
                self.poisoned = DurabilityError(f"{self.path}: could not start a new segment: {exc}")
            if isinstance(exc, OSError):
                raise self.poisoned from exc
            raise

    # -- reading -----------------------------------------------------------------------------

    def current_state(self, chat: bool = False) -> SessionState:
        """The folded state through every record on disk; parses only bytes not seen before.
        With `chat`, a snapshot read now also gives the state's `chat` (see `SessionState`)."""
        with self.cond:
            self.lock()
            try:
                reader.advance_state(self, chat)
            except BaseException:
                # The state may hold part of what was read, and the cursor not: folding it
                # again would repeat those records. The next use reopens the session.
                self.broken = True
                raise
            finally:
                self.unlock()
            # Copied under `cond`: a copy taken after it is released could catch another
            # thread's catch-up half way, e.g. a replace batch's "clear" without its messages.
            state = self.state.hand_off(chat)
            self.held = len(state.messages) + (len(state.lines) if state.lines is not None else 0)
            return state

    def read(self, start: int) -> list[Record]:
        """Every record with seq >= start, through the last one on disk."""
        with self.cond:
            self.lock()
            try:
                return reader.read_from(self, start)
            finally:
                self.unlock()

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        with self.cond:
            self.close_locked()

    def close_locked(self) -> None:
        """Close with `cond` already held."""
        if self.closed:
            return
        self._wait_for_holders()
        trim_at_rest(self)  # a segment at rest has no zeros after its data
        self.closed = True
        self._close_fds()
        self.cond.notify_all()  # threads waiting to lock find it closed

    def _close_fds(self) -> None:
        for fd in (self.seg_fd, self.lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    self.fs.close(fd)
        self.seg_fd = self.lock_fd = -1


def marked_deleted(fs: FileSystem, lock_fd: int) -> bool:
    """Does the lock file end in `naming.DELETED_MARK` (a delete marked it)?"""
    size, mark = fs.size(lock_fd), naming.DELETED_MARK
    return size >= len(mark) and fs.pread(lock_fd, len(mark), size - len(mark)) == mark
