"""`Journal`: the native API over a store root of per-session logs.

Strategy: validate and encode every payload before any file is touched, so bad input writes
nothing. Open sessions are cached in a bounded LRU (two file descriptors each) so a host with
thousands of live sessions does not run out of descriptors. A handle that finds itself stale
(the session was deleted or repaired by another process) is dropped and reopened.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .compaction import protocol as compaction
from .compaction.protocol import BackgroundCompactor, CompactionPolicy, CompactionReport, CompactionResult
from .errors import CorruptionError, DurabilityError, InvalidRecordError, JournalError, StoreRootError
from .log import naming
from .log.archive import verify_session_archives
from .log.fs import FileSystem, OsFileSystem, remove_tree
from .log.record import CLEAR, MESSAGE, META, Record, encode_payload
from .log.recovery import Report, find_problems, identity_problems, repair_segments
from .log.scan import Problem
from .log.session import DELETED_MARK, DURABILITY_MODES, Closed, Options, SessionLog, Stale
from .log.state import SessionState

T = TypeVar("T")
TRASH_PREFIX = ".trash-"
_RETRIES = 100  # an attempt fails only when another thread evicted or reopened the handle


class Journal:
    """A store of per-session append-only logs under `root`.

    Args:
        root: the store directory, created if missing.
        durability: "always" (fsync before each append returns), "batch" (group commit:
            concurrent appends share an fsync, each returns after the fsync covering it) or
            "none" (written to the OS: survives a process crash, not a power loss).
        segment_bytes: a log segment is sealed and a new one started past this size.
        max_record_bytes: payloads larger than this are refused.
        lock_timeout: seconds to wait for a session lock before `LockTimeout`.
        max_open_sessions: sessions kept open at once (two file descriptors each).
        max_cached_messages: messages the open sessions may hold in memory, their folded
            states together (each message's data, about its JSON size or more); past it the
            least recently used sessions are closed, and read again when next used.
        file_mode, dir_mode: permissions of new files and directories.
        fs: the file system; tests pass a simulated disk.
        compaction: when to compact, compression level, archive retention (`CompactionPolicy`).
        background_compaction: run `compact_all(only_due=True)` in a thread until `close()`.
        compact_on_close: `close()` compacts every open session that has new records.

    Raises:
        StoreRootError: `root` is a file or cannot be written.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "./sessions",
        *,
        durability: str = "batch",
        segment_bytes: int = 64 * 1024 * 1024,
        max_record_bytes: int = 16 * 1024 * 1024,
        lock_timeout: float = 30.0,
        max_open_sessions: int = 256,
        max_cached_messages: int = 250_000,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        fs: FileSystem | None = None,
        compaction: CompactionPolicy | None = None,
        background_compaction: bool = False,
        compact_on_close: bool = False,
    ) -> None:
        _check_durability(durability)
        if min(segment_bytes, max_record_bytes, max_open_sessions, max_cached_messages) < 1:
            raise ValueError(
                "segment_bytes, max_record_bytes, max_open_sessions and max_cached_messages must be positive"
            )
        if not isinstance(lock_timeout, (int, float)) or not 0 <= lock_timeout < float("inf"):
            raise ValueError(f"lock_timeout must be a finite number of seconds >= 0, not {lock_timeout!r}")
        self.root = os.fspath(root)
        self.options = Options(durability, segment_bytes, max_record_bytes, lock_timeout, file_mode, dir_mode)
        self.fs: FileSystem = fs if fs is not None else OsFileSystem()
        self._max_open = max_open_sessions
        self._max_cached = max_cached_messages
        self._cached = 0  # the sum of `counted` over the open sessions
        self._open: OrderedDict[str, SessionLog] = OrderedDict()
        self._poisoned: dict[str, DurabilityError] = {}
        self._lock = threading.Lock()
        self._make_root()
        self.compaction = compaction if compaction is not None else CompactionPolicy()
        self._compact_on_close = compact_on_close
        self._compactor: BackgroundCompactor | None = None
        if background_compaction:
            self.start_background_compactor()

    def _make_root(self) -> None:
        st = self.fs.stat(self.root)
        if st is not None and not st.is_dir:
            raise StoreRootError(f"store root {self.root} is a file, not a directory")
        try:
            if st is None:
                _make_dirs(self.fs, self.root, self.options.dir_mode)
        except OSError as exc:
            raise StoreRootError(f"cannot create store root {self.root}: {exc}") from exc
        if isinstance(self.fs, OsFileSystem) and not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreRootError(f"store root {self.root} is not writable")
        for name in self.fs.listdir(self.root):
            if name.startswith(TRASH_PREFIX):  # a delete interrupted after its rename: finish it
                remove_tree(self.fs, os.path.join(self.root, name))

    # -- writing -----------------------------------------------------------------------------

    def append(self, session_id: str, data: dict[str, Any], *, durability: str | None = None) -> int:
        """Append one message; return its sequence number once durable per the mode.

        Raises:
            TypeError: `data` is not a dict.
            InvalidRecordError: `data` cannot be stored as JSON exactly (the key is named).
            DurabilityError: the write or fsync failed; the message is not acknowledged.
        """
        payload = self._encode_message(data)
        return self._append(session_id, [(MESSAGE, payload)], durability)[0]

    def append_many(
        self, session_id: str, items: Iterable[dict[str, Any]], *, durability: str | None = None
    ) -> list[int]:
        """Append several messages as one batch: after a crash all of them are there or none."""
        payloads = [(MESSAGE, self._encode_message(item)) for item in items]
        return self._append(session_id, payloads, durability)

    def update_metadata(
        self, session_id: str, fields: dict[str, Any], *, durability: str | None = None
    ) -> int:
        """Merge `fields` into the session's metadata (a value of None removes the key)."""
        if not isinstance(fields, dict):
            raise TypeError(f"metadata fields must be a dict, not {type(fields).__name__}")
        payload = encode_payload(fields, self.options.max_record_bytes)
        return self._append(session_id, [(META, payload)], durability)[0]

    def clear(self, session_id: str, *, durability: str | None = None) -> int:
        """Log a "clear" event: the session's message history is empty from here on."""
        return self._append(session_id, [(CLEAR, b"{}")], durability)[0]

    def replace_messages(
        self, session_id: str, items: Iterable[dict[str, Any]], *, durability: str | None = None
    ) -> list[int]:
        """Clear the history and append `items`, all in one all-or-nothing batch."""
        payloads = [(CLEAR, b"{}")] + [(MESSAGE, self._encode_message(item)) for item in items]
        return self._append(session_id, payloads, durability)

    def _encode_message(self, data: dict[str, Any]) -> bytes:
        if not isinstance(data, dict):
            raise TypeError(f"a message must be a dict, not {type(data).__name__}")
        _check_message_fields(data)
        return encode_payload(data, self.options.max_record_bytes)

    def _append(self, session_id: str, items: list[tuple[str, bytes]], durability: str | None) -> list[int]:
        mode = self.options.durability if durability is None else durability
        if mode not in DURABILITY_MODES:
            _check_durability(mode)
        if not items:
            naming.encode_id(session_id)
            return []
        with self._lock:  # the hot path: a cached, current handle
            if self._poisoned and session_id in self._poisoned:
                raise self._poisoned[session_id]
            log = self._open.get(session_id)
            if log is not None:
                self._open.move_to_end(session_id)
        try:
            if log is None:
                raise Closed()
            first = log.append(items, mode)
        except (Stale, Closed):
            if log is not None:
                self._drop(session_id, log)
            first = self._with_log(session_id, True, lambda log: _require(log).append(items, mode))
        return list(range(first, first + len(items)))

    # -- reading -----------------------------------------------------------------------------

    def read(self, session_id: str, start: int = 0) -> Iterator[Record]:
        """Every record (all kinds) with `seq >= start`, in order; nothing if no such session."""
        if not isinstance(start, int) or isinstance(start, bool):
            raise TypeError(f"start must be an int, not {type(start).__name__}")
        records = self._with_log(session_id, False, lambda log: log.read(start) if log else [])
        return iter(records)

    def state(self, session_id: str) -> SessionState | None:
        """The session's current messages and metadata, or None if it does not exist. The
        lists and the metadata dict are new on each call; the records and their data are the
        ones kept for later reads in this process: treat them as read-only."""
        return self._with_log(session_id, False, lambda log: self._read_state(log, False))

    def _chat_state(self, session_id: str) -> SessionState | None:
        """`state`, plus `chat` when the state had to be read from the snapshot now: for
        `DefaultSessionStore.get_chat_history`, which then needs no pass of its own."""
        return self._with_log(session_id, False, lambda log: self._read_state(log, True))

    def _read_state(self, log: SessionLog | None, chat: bool) -> SessionState | None:
        if log is None:
            return None
        state = log.current_state(chat)
        self._count(log)
        return state

    def exists(self, session_id: str) -> bool:
        path = self.session_path(session_id)
        return self.fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None

    def sessions(self) -> Iterator[str]:
        """The ids of every session under the root."""
        for name in self.fs.listdir(self.root):
            session_id = naming.decode_id(name)
            if session_id is None:
                continue
            if self.fs.stat(os.path.join(self.root, name, naming.IDENTITY_FILE)) is not None:
                yield session_id

    def session_path(self, session_id: str) -> str:
        """The directory of `session_id` (whether or not it exists)."""
        return os.path.join(self.root, naming.encode_id(session_id))

    # -- maintenance -------------------------------------------------------------------------

    def delete(self, session_id: str) -> bool:
        """Remove the session and every file of it, lock included; False if it did not exist."""

        def delete(log: SessionLog | None) -> bool:
            if log is None:
                return False
            trash = os.path.join(self.root, f"{TRASH_PREFIX}{secrets.token_hex(8)}")
            with log.cond:
                log.lock()
                try:
                    log.bump_generation(deleted=True)
                    log.broken = True  # threads of this process waiting on the handle reopen
                    self.fs.rename(log.path, trash)
                    self.fs.sync_dir(self.root)
                finally:
                    log.unlock()
                log.close_locked()
            remove_tree(self.fs, trash)
            return True

        found = self._with_log(session_id, False, delete)
        self._drop(session_id)
        with self._lock:
            self._poisoned.pop(session_id, None)  # a new session of that id starts clean
        return found

    def verify(self, session_id: str) -> Report:
        """Check every segment of the session; change nothing. `report.ok` is True if clean."""
        path = self.session_path(session_id)
        if self.fs.stat(path) is None:
            return Report(ok=True)
        # No lock file means no journal ever wrote here (a copied or hand-made session): there
        # is no writer to exclude, and verify must not create one.
        try:
            lock_fd = self._lock_session(path, create=False)
        except _Gone:
            return Report(ok=True)
        except OSError as exc:  # e.g. the lock file is a directory: damage, not a crash
            problem = Problem(os.path.join(path, naming.LOCK_FILE), 0, "corruption", str(exc))
            return Report(ok=False, problems=[problem])
        try:
            problems = identity_problems(self.fs, path, session_id)
            problems += find_problems(self.fs, path) + verify_session_archives(self.fs, path)
        except OSError as exc:
            raise CorruptionError(path, 0, f"cannot read the session's files: {exc}") from exc
        finally:
            if lock_fd is not None:
                self.fs.unlock(lock_fd)
                self.fs.close(lock_fd)
        return Report(ok=not problems, problems=problems)

    def repair(self, session_id: str) -> Report:
        """Salvage a damaged session: damaged files are copied to its quarantine directory,
        every valid record is kept, unsaved sequence numbers become "lost" records."""
        path = self.session_path(session_id)
        self._drop(session_id)
        if not self._holds_session(path):
            return Report(ok=True)
        try:
            lock_fd = self._lock_session(path, create=True)
        except _Gone:
            return Report(ok=True)
        except OSError as exc:
            raise CorruptionError(os.path.join(path, naming.LOCK_FILE), 0, str(exc)) from exc
        assert lock_fd is not None  # create=True always opens one
        try:
            report = repair_segments(self.fs, path, self.options)
            if report.problems:
                self.fs.append(lock_fd, b".")  # bump the generation: other handles reopen
        except OSError as exc:
            raise DurabilityError(f"repair of {path} failed: {exc}") from exc
        finally:
            self.fs.unlock(lock_fd)
            self.fs.close(lock_fd)
        with self._lock:
            self._poisoned.pop(session_id, None)
        return report

    def _holds_session(self, path: str) -> bool:
        if self.fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None:
            return True
        return bool(self.fs.listdir(os.path.join(path, naming.LOG_DIR)))

    def _lock_session(self, path: str, create: bool) -> int | None:
        """Hold the session lock of `path`; None if it has no lock file and `create` is False.

        Raises:
            _Gone: the session was deleted before the lock was ours.
        """
        lock_path = os.path.join(path, naming.LOCK_FILE)
        if not create and self.fs.stat(lock_path) is None:
            return None
        try:
            fd = self.fs.open(lock_path, create=create, mode=self.options.file_mode)
        except FileNotFoundError:  # renamed away by a delete
            raise _Gone() from None
        try:
            self.fs.lock(fd, self.options.lock_timeout)
            size = self.fs.size(fd)
            if size and self.fs.pread(fd, 1, size - 1) == DELETED_MARK:
                self.fs.unlock(fd)
                raise _Gone()
        except BaseException:
            self.fs.close(fd)
            raise
        return fd

    def reopen(self, session_id: str) -> None:
        """Forget a poisoned or cached handle; the next use recovers the session from disk."""
        self._drop(session_id)
        with self._lock:
            self._poisoned.pop(session_id, None)

    # -- compaction --------------------------------------------------------------------------

    def compact(self, session_id: str) -> CompactionResult:
        """Fold the session's log into messages.json, session_id.json, metadata.json and
        zstd archives (FORMAT.md, "Compaction"). Appends may go on meanwhile; reads return
        the same history before and after. Crash-safe at every step.

        Raises:
            CorruptionError: a segment to fold is damaged (nothing is published).
            JournalError: the session was deleted or repaired meanwhile (nothing published).
        """
        path = self.session_path(session_id)
        try:
            result = compaction.compact(self.fs, path, session_id, self.options, self.compaction)
        except (CorruptionError, OSError) as exc:
            # Files vanishing under the compactor's feet mean a delete, not damage.
            gone = isinstance(exc, FileNotFoundError) or not self.exists(session_id)
            if gone:
                raise JournalError(f"session {session_id!r} was deleted while compacting") from exc
            if isinstance(exc, OSError):
                raise DurabilityError(f"compacting {session_id!r} failed: {exc}") from exc
            raise
        if result.compacted or result.pruned_archives:
            self._drop(session_id)  # its segments and archives changed: reopen on next use
        return result

    def maybe_compact(self, session_id: str) -> CompactionResult | None:
        """Compact if the policy (`compaction`) says the session is due; else None."""
        with self._lock:
            log = self._open.get(session_id)
        live = None if log is None else log.next_seq - 1 - log.manifest.snapshot_seq
        if not compaction.is_due(self.fs, self.session_path(session_id), self.compaction, live):
            return None
        return self.compact(session_id)

    def compact_all(self, *, only_due: bool = False) -> CompactionReport:
        """Compact every session with new records (`only_due`: only those the policy wants)."""
        return compaction.compact_all(self, only_due)

    def start_background_compactor(self, interval: float | None = None) -> None:
        """Run `compact_all(only_due=True)` every `interval` seconds until `close()`."""
        with self._lock:
            if self._compactor is None:
                every = self.compaction.interval if interval is None else interval
                self._compactor = BackgroundCompactor(self, every)
                self._compactor.start()

    def close(self) -> None:
        with self._lock:
            compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.stop()
        if self._compact_on_close:
            with self._lock:
                open_ids = list(self._open)
            compaction.compact_sessions(self, open_ids)
        with self._lock:
            logs = [self._forget(session_id) for session_id in list(self._open)]
        for log in logs:
            log.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the handle cache --------------------------------------------------------------------

    def _with_log(self, session_id: str, create: bool, action: Callable[[SessionLog | None], T]) -> T:
        for _ in range(_RETRIES):
            log = self._get(session_id, create)
            try:
                return action(log)
            except (Stale, Closed):
                if log is not None:
                    self._drop(session_id, log)
        raise JournalError(f"session {session_id!r} kept changing on disk; try again")

    def _get(self, session_id: str, create: bool) -> SessionLog | None:
        with self._lock:
            log = self._open.get(session_id)
            if log is not None:
                self._open.move_to_end(session_id)
                return log
            if create and session_id in self._poisoned:
                raise self._poisoned[session_id]
        log = SessionLog(self.fs, self.session_path(session_id), session_id, self.options)
        try:
            if not log.open(create):
                return None
        except PermissionError as exc:
            raise StoreRootError(f"cannot open session {session_id!r} under {self.root}: {exc}") from exc
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.EISDIR, errno.ENOTDIR):  # file vs directory mix-up
                raise CorruptionError(log.path, 0, f"damaged layout: {exc}") from exc
            # ENOSPC/EIO writing the identity file or cutting a torn tail
            raise DurabilityError(f"cannot open session {session_id!r}: {exc}") from exc
        return self._remember(session_id, log)

    def _remember(self, session_id: str, log: SessionLog) -> SessionLog:
        with self._lock:
            existing = self._open.get(session_id)
            if existing is not None:
                evicted = [log]
                log = existing
            else:
                self._open[session_id] = log
                evicted = []
                while len(self._open) > self._max_open:
                    evicted.append(self._forget(next(iter(self._open))))
        for old in evicted:
            self._retire(old)
        return log

    def _drop(self, session_id: str, log: SessionLog | None = None) -> None:
        with self._lock:
            current = self._open.get(session_id)
            if current is not None and (log is None or current is log):
                self._forget(session_id)
                log = current
        if log is not None:
            self._retire(log)

    def _count(self, log: SessionLog) -> None:
        """Count the messages `log`'s state holds; while the open sessions hold more than
        `max_cached_messages`, close the least recently used others."""
        evicted: list[SessionLog] = []
        with self._lock:
            if self._open.get(log.session_id) is not log:
                return  # evicted or dropped meanwhile: no longer counted
            self._cached += log.held - log.counted
            log.counted = log.held
            for session_id, other in list(self._open.items()):  # least recently used first
                if self._cached <= self._max_cached:
                    break
                if other is not log and other.counted:
                    evicted.append(self._forget(session_id))
        for old in evicted:
            self._retire(old)

    def _forget(self, session_id: str) -> SessionLog:
        """Take a session out of the cache (`_lock` held); the caller retires its handle."""
        log = self._open.pop(session_id)
        self._cached -= log.counted
        return log

    def _retire(self, log: SessionLog) -> None:
        log.close()
        if log.poisoned is not None:
            with self._lock:
                self._poisoned[log.session_id] = log.poisoned


class _Gone(Exception):
    """Internal: the session was deleted while we waited for its lock."""


def _require(log: SessionLog | None) -> SessionLog:
    if log is None:  # open(create=True) always returns a session
        raise JournalError("session could not be created")
    return log


def _check_durability(mode: str) -> None:
    if mode not in DURABILITY_MODES:
        raise ValueError(f"durability must be one of {DURABILITY_MODES}, not {mode!r}")


def _check_message_fields(data: dict[str, Any]) -> None:
    if "role" in data and not isinstance(data["role"], str):
        raise InvalidRecordError(f"role must be a str, not {type(data['role']).__name__}", "data['role']")
    content = data.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise InvalidRecordError(
            f"content must be a str (or a list of content parts), not {type(content).__name__}",
            "data['content']",
        )


def _make_dirs(fs: FileSystem, path: str, mode: int) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if fs.stat(parent) is None:
        _make_dirs(fs, parent, mode)
    if fs.mkdir(path, mode):
        fs.sync_dir(parent)
