"""`Journal`: the native API over a store root of per-session logs.

Strategy: the facade wires the layers and holds little logic itself. It validates and encodes
every payload before any file is touched, so bad input writes nothing; the open sessions live
in a bounded pool (`log.pool`); verify, repair and delete are the log's (`log.maintenance`);
compaction, one session or the whole store, is the compactor's (`compaction`).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from .adoption import adopt
from .compaction import bulk
from .compaction import protocol as compaction
from .compaction.bulk import BackgroundCompactor
from .compaction.protocol import CompactionPolicy, CompactionReport, CompactionResult
from .compaction.views import Writes
from .errors import (
    CorruptionError,
    DurabilityError,
    ForeignStoreError,
    JournalError,
    ReadOnlyError,
    RecoveryWarning,
    StoreRootError,
)
from .log import entry, forksafe, maintenance, manifest, naming
from .log import index as listing_index
from .log.fs import FileSystem, OsFileSystem, make_dirs
from .log.options import checked_options
from .log.pool import SessionPool
from .log.readonly import ReadOnlyFileSystem
from .log.record import CLEAR, MESSAGE, META, Item, Record
from .log.recovery import Report
from .log.session import DURABILITY_MODES, Closed, SessionLog, Stale
from .log.state import SessionState
from .ops.facade import Operations
from .replication.facade import Replication
from .replication.leasing import NO_GATE, Leasing

T = TypeVar("T")


class Journal(Operations, Replication, Leasing):
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
        file_mode, dir_mode: permissions of new files and directories. preallocate: bytes of
            zeros kept ahead of a synced segment's data (0: off; see README "Durability modes").
        fs: the file system; tests pass a simulated disk.
        compaction: when to compact, compression level, archive retention (`CompactionPolicy`);
            with its `max_view_lag` set, a thread keeps the views of the sessions appended to
            here at most that far behind, and first brings stale views current.
        background_compaction: run `compact_all(only_due=True)` in a thread until `close()`.
        compact_on_close: `close()` compacts every open session that has new records.
        read_only: read a store this process cannot write: nothing is created, cut or
            finished (torn tails are skipped with a `RecoveryWarning`, half-done compactions
            read as committed), others' sessions are not adopted, writes raise `ReadOnlyError`.
        replica, replica_options, replica_interval: ship every session to this URL (`s3://`,
            `gs://`, `az://`, `file://`) every `replica_interval` s (`journal.replication`).
        lease, lease_ttl, lease_wait: one writer per session across hosts, through a lease in
            the replica; replica_sync: acknowledge an append once the replica holds it.

    Raises:
        StoreRootError: `root` is a file or cannot be written (read-only: does not exist).
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
        preallocate: int = 0,
        fs: FileSystem | None = None,
        compaction: CompactionPolicy | None = None,
        background_compaction: bool = False,
        compact_on_close: bool = False,
        read_only: bool = False,
        replica: str | None = None,
        replica_options: dict[str, Any] | None = None,
        replica_interval: float = 1.0,
        lease: bool = False,
        lease_ttl: float = 30.0,
        lease_wait: float = 0.0,
        replica_sync: bool = False,
    ) -> None:
        sizes = dict(segment_bytes=segment_bytes, max_record_bytes=max_record_bytes, preallocate=preallocate)
        sizes.update(max_open_sessions=max_open_sessions, max_cached_messages=max_cached_messages)
        self.options = checked_options(
            durability, DURABILITY_MODES, sizes, lock_timeout, file_mode, dir_mode, read_only
        )
        self.root = os.fspath(root)
        self.read_only = read_only
        self.fs: FileSystem = fs if fs is not None else OsFileSystem()
        if read_only:
            self.fs = ReadOnlyFileSystem(self.fs, self.root)
        self._make_root()
        prepare = None if read_only else self._adopt  # adoption writes: never in read-only mode
        self._pool = SessionPool(
            self.fs, self.root, self.options, max_open_sessions, max_cached_messages, prepare=prepare
        )
        self._lock = threading.Lock()  # guards `_compactor`
        self.compaction = compaction if compaction is not None else CompactionPolicy()
        self._compact_on_close = compact_on_close
        self._compactor: BackgroundCompactor | None = None
        if background_compaction:
            self.start_background_compactor()
        # The sessions appended to, for close() and the view keeper (compaction.views).
        self._writes = Writes(self, self.compaction)
        if not read_only:
            self._writes.start()
        forksafe.register(self)
        self._start_replica(replica, replica_options, replica_interval)
        self._gate = self._start_leases(lease, lease_ttl, lease_wait, replica_sync)

    def after_fork(self) -> None:
        """In a child of `fork()` (`log.forksafe`): drop the parent's handles, unlocking
        nothing, and its threads' locks; the child opens its own."""
        self._lock = threading.Lock()
        self._compactor = None  # the parent's keeps compacting the store: never run it twice
        self._writes = self._writes.forked()
        self._pool.after_fork()

    def _make_root(self) -> None:
        st = self.fs.stat(self.root)
        if st is not None and not st.is_dir:
            raise StoreRootError(f"store root {self.root} is a file, not a directory")
        if self.read_only and st is None:
            raise StoreRootError(f"no store at {self.root}")
        if self.read_only:  # nothing to create, nothing to finish
            return
        try:
            if st is None:
                make_dirs(self.fs, self.root, self.options.dir_mode)
        except OSError as exc:
            raise StoreRootError(f"cannot create store root {self.root}: {exc}") from exc
        if isinstance(self.fs, OsFileSystem) and not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreRootError(f"store root {self.root} is not writable")
        maintenance.finish_deletes(self.fs, self.root)

    # -- writing -----------------------------------------------------------------------------

    def append(self, session_id: str, data: dict[str, Any], *, durability: str | None = None) -> int:
        """Append one message; return its sequence number once durable per the mode.

        Raises:
            TypeError: `data` is not a dict.
            InvalidRecordError: `data` cannot be stored as JSON exactly (the key is named).
            DurabilityError: the write or fsync failed; the message is not acknowledged.
        """
        payload = entry.encode_message(data, self.options.max_record_bytes)
        return self._append(session_id, [(MESSAGE, payload, None)], durability)

    def append_many(
        self, session_id: str, items: Iterable[dict[str, Any]], *, durability: str | None = None
    ) -> list[int]:
        """Append several messages as one batch: after a crash all of them are there or none."""
        limit = self.options.max_record_bytes
        payloads: list[Item] = [(MESSAGE, entry.encode_message(item, limit), None) for item in items]
        first = self._append(session_id, payloads, durability)
        return list(range(first, first + len(payloads)))

    def append_batch(
        self,
        session_id: str,
        entries: Iterable[tuple[str, dict[str, Any], float | None]],
        *,
        durability: str | None = None,
    ) -> list[int]:
        """Append `(kind, data, ts)` entries as one all-or-nothing batch; kind is "message",
        "meta" (metadata fields to merge), "clear" (data ignored) or "pop" (data `{"of": seq}`:
        the last message goes if it is record `seq`; FORMAT.md "Pop records"). A ts of None is
        the time of the write; a number keeps a given time (to the microsecond): an imported
        message keeps its timestamp. Times need not increase.

        Raises:
            InvalidRecordError: an unknown kind, a bad ts, or data not storable as JSON.
        """
        limit = self.options.max_record_bytes
        items = [entry.encode_entry(i, item, limit) for i, item in enumerate(entries)]
        first = self._append(session_id, items, durability)
        return list(range(first, first + len(items)))

    def update_metadata(
        self, session_id: str, fields: dict[str, Any], *, durability: str | None = None
    ) -> int:
        """Merge `fields` into the session's metadata (a value of None removes the key)."""
        payload = entry.encode_fields(fields, self.options.max_record_bytes)
        return self._append(session_id, [(META, payload, None)], durability)

    def clear(self, session_id: str, *, durability: str | None = None) -> int:
        """Log a "clear" event: the session's message history is empty from here on."""
        return self._append(session_id, [(CLEAR, b"{}", None)], durability)

    def replace_messages(
        self, session_id: str, items: Iterable[dict[str, Any]], *, durability: str | None = None
    ) -> list[int]:
        """Clear the history and append `items`, all in one all-or-nothing batch."""
        return self.append_batch(
            session_id, [(CLEAR, {}, None)] + [(MESSAGE, m, None) for m in items], durability=durability
        )

    def _append(self, session_id: str, items: list[Item], durability: str | None) -> int:
        """Write `items` as one batch; return the first seq (any, if there are none)."""
        mode = self.options.durability if durability is None else durability
        if mode not in DURABILITY_MODES:
            _check_durability(mode)
        if not items:
            naming.encode_id(session_id)
            return 0
        gate = self._gate  # leases and the synchronous mode (replication.leasing)
        if gate is not NO_GATE:  # an identity check, not two calls, on the hot path when off
            gate.before(session_id)
        log = self._pool.current(session_id)  # the hot path: a cached, current handle
        try:
            if log is None:
                raise Closed()
            first = log.append(items, mode)
        except (Stale, Closed):
            if log is not None:
                self._pool.drop(session_id, log)
            log, first = self._pool.with_log(
                session_id, True, lambda log: (_require(log), _require(log).append(items, mode))
            )
        if not log.index_marked:  # one mark per handle for the listing index (log.index)
            self._mark(session_id, log)
        if session_id not in self._writes.pending:  # once per session until its views are written
            self._writes.note(session_id)
        if gate is not NO_GATE:
            gate.after(session_id, first + len(items) - 1)
        return first

    # -- reading -----------------------------------------------------------------------------

    def read(self, session_id: str, start: int = 0) -> Iterator[Record]:
        """Every record (all kinds) with `seq >= start`, in order; nothing if no such session."""
        if not isinstance(start, int) or isinstance(start, bool):
            raise TypeError(f"start must be an int, not {type(start).__name__}")
        records = self._pool.with_log(session_id, False, lambda log: log.read(start) if log else [])
        return iter(records)

    def state(self, session_id: str) -> SessionState | None:
        """The session's current messages and metadata, or None if it does not exist. The
        lists and the metadata dict are new on each call; the records and their data are the
        ones kept for later reads in this process: treat them as read-only."""
        return self._pool.with_log(session_id, False, lambda log: self._read_state(log, False))

    def _chat_state(self, session_id: str) -> SessionState | None:
        """`state`, plus `chat` when the state had to be read from the snapshot now: for
        `DefaultSessionStore.get_chat_history`, which then needs no pass of its own."""
        return self._pool.with_log(session_id, False, lambda log: self._read_state(log, True))

    def _read_state(self, log: SessionLog | None, chat: bool) -> SessionState | None:
        if log is None:
            return None
        state = log.current_state(chat)
        self._pool.count(log)
        return state

    def exists(self, session_id: str) -> bool:
        """Is there such a session (one another store left here counts: it is adopted now)?"""
        identity = os.path.join(self.session_path(session_id), naming.IDENTITY_FILE)
        if self.fs.stat(identity) is not None:
            return True
        if self.read_only:  # no identity yet (or another store's files): readable if it has a log
            return self._pool.with_log(session_id, False, lambda log: log is not None)
        self._adopt(session_id)
        return self.fs.stat(identity) is not None

    def sessions(self) -> Iterator[str]:
        """The ids of every session under the root, those other stores left here included
        (adopted as they are listed; one that cannot be understood is left out with a
        `RecoveryWarning` naming its file)."""
        found, foreign = adopt.scan_root(self.fs, self.root)
        if foreign and self.read_only:
            for name in foreign:  # adoption writes: left out, with a note
                warnings.warn(f"{self.root}/{name}: not adopted (read-only)", RecoveryWarning, 2)
        elif foreign:  # adopted now, here or by another thread or process: list again
            for name in foreign:
                self._adopt_listed(name)
            found, _ = adopt.scan_root(self.fs, self.root)
        return iter(found)

    def _adopt_listed(self, name: str) -> None:
        try:
            if name.endswith(".json"):
                self._adopt_file(name)
            else:
                self._adopt(naming.decode_id(name) or "")
        except ForeignStoreError as exc:
            warnings.warn(f"left out of the sessions: {exc}", RecoveryWarning, stacklevel=4)

    # -- adoption of other stores' sessions ----------------------------------------------------

    def _adopt(self, session_id: str) -> str | None:
        """Take in `session_id` if another store left it here (the docs' layout, or a PraisonAI
        file), then write its documented files; return the id if it exists now."""
        foreign = adopt.adopt_session(self.fs, self.root, session_id, self.options)
        if foreign is not None:
            self._write_views(session_id)
        return session_id

    def _adopt_file(self, name: str) -> str | None:
        """Adopt the PraisonAI session file `name` in the root; its session id, or None if
        it is not a session file of a session still to adopt."""
        foreign = adopt.adopt_praisonai_file(self.fs, self.root, name, self.options)
        if foreign is None:
            return None
        self._write_views(foreign.session_id)
        return foreign.session_id

    def _write_views(self, session_id: str) -> None:
        try:
            self.compact(session_id)
        except (JournalError, OSError) as exc:  # the log holds it all; the views come later
            message = f"adopted {session_id!r}; its JSON files are not written yet: {exc}"
            warnings.warn(message, RecoveryWarning, stacklevel=3)

    def import_praisonai(
        self, source: str | os.PathLike[str], *, dry_run: bool = False
    ) -> adopt.ImportReport:
        """Copy every PraisonAI session file (`<safe_id>.json`) of the directory `source` into
        this store, leaving `source` as it is; sessions already here are skipped (so a second
        run adds nothing). With `dry_run`, only report what would be imported.

        Raises:
            StoreRootError: `source` is not a directory.
        """
        self._writable("import into")
        source = os.fspath(source)
        st = self.fs.stat(source)
        if st is None or not st.is_dir:
            raise StoreRootError(f"{source} is not a directory")
        report = adopt.import_praisonai(self.fs, self.root, source, self.options, dry_run)
        if not dry_run:
            for session_id in report.sessions:
                self._write_views(session_id)
        return report

    def session_path(self, session_id: str) -> str:
        """The directory of `session_id` (whether or not it exists)."""
        return self._pool.path(session_id)

    # -- maintenance -------------------------------------------------------------------------

    def delete(self, session_id: str) -> bool:
        """Remove the session and every file of it, lock included; False if it did not exist."""
        self._writable(f"delete {session_id!r} of")

        def delete(log: SessionLog | None) -> bool:
            if log is not None:
                maintenance.delete_session(self.fs, self.root, log)
            return log is not None

        found = self._pool.with_log(session_id, False, delete)
        self._pool.drop(session_id)
        self._pool.forgive(session_id)  # a new session of that id starts clean
        return found

    def verify(self, session_id: str) -> Report:
        """Check every segment of the session; change nothing. `report.ok` is True if clean."""
        return maintenance.verify_session(self.fs, self.session_path(session_id), session_id, self.options)

    def repair(self, session_id: str) -> Report:
        """Salvage a damaged session: damaged files are copied to its quarantine directory,
        every valid record is kept, unsaved sequence numbers become "lost" records; a view
        edited by hand or lost is written again from the log (the edited file kept aside)."""
        self._writable(f"repair {session_id!r} of")
        self._pool.drop(session_id)
        path = self.session_path(session_id)
        report = maintenance.repair_session(self.fs, path, self.options)
        self._pool.forgive(session_id)
        self._mark(session_id, None)  # its summary may have changed with no append
        if compaction.views_damaged(self.fs, path, manifest.load(self.fs, path)):
            self.compact(session_id)  # an edited or lost view: written again, the edit kept aside
        return report

    def _mark(self, session_id: str, log: SessionLog | None) -> None:
        """Tell the listing index the session changed; once done for `log`, its later
        appends need no mark (`log.index` says why)."""
        if listing_index.mark(self.fs, self.root, naming.encode_id(session_id)) and log is not None:
            log.index_marked = True

    def reopen(self, session_id: str) -> None:
        """Forget a poisoned or cached handle; the next use recovers the session from disk."""
        self._pool.drop(session_id)
        self._pool.forgive(session_id)

    # -- compaction --------------------------------------------------------------------------

    def compact(self, session_id: str) -> CompactionResult:
        """Fold the session's log into messages.json, session_id.json, metadata.json and
        zstd archives (FORMAT.md, "Compaction"). Appends may go on meanwhile; reads return
        the same history before and after. Crash-safe at every step.

        Raises:
            CorruptionError: a segment to fold is damaged (nothing is published).
            JournalError: the session was deleted or repaired meanwhile (nothing published).
        """
        self._writable(f"compact {session_id!r} of")
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
            self._pool.drop(session_id)  # its segments and archives changed: reopen on next use
        return result

    def maybe_compact(self, session_id: str) -> CompactionResult | None:
        """Compact if the policy (`compaction`) says the session is due; else None."""
        with self._pool.lock:
            log = self._pool.open.get(session_id)
        live = None if log is None else log.next_seq - 1 - log.manifest.snapshot_seq
        if not compaction.is_due(self.fs, self.session_path(session_id), self.compaction, live):
            return None
        return self.compact(session_id)

    def compact_all(self, *, only_due: bool = False) -> CompactionReport:
        """Compact every session with new records (`only_due`: only those the policy wants)."""
        self._writable("compact")
        return bulk.compact_all(self, only_due)

    def start_background_compactor(self, interval: float | None = None) -> None:
        """Run `compact_all(only_due=True)` every `interval` seconds until `close()`."""
        self._writable("compact")
        with self._lock:
            if self._compactor is None:
                every = self.compaction.interval if interval is None else interval
                self._compactor = BackgroundCompactor(lambda: self.compact_all(only_due=True), every)
                self._compactor.start()

    def compact_written(self) -> CompactionReport:
        """Compact the sessions this `Journal` appended to since the last call whose views
        are stale (what `DefaultSessionStore.close()` does), not the whole store."""
        if self.read_only:  # nothing was written
            return CompactionReport()
        return bulk.compact_sessions(self, self._writes.take_written())

    def close(self) -> None:
        self._stop_leases()  # syncs the sessions it holds, then releases their leases
        self._stop_replica()
        with self._lock:
            compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.stop()
        self._writes.stop()
        if self._compact_on_close:
            bulk.compact_sessions(self, self._pool.open_ids())
        self._pool.close()

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(self.root, f"cannot {what} the store: it is open read-only")

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require(log: SessionLog | None) -> SessionLog:
    if log is None:  # open(create=True) always returns a session
        raise JournalError("session could not be created")
    return log


def _check_durability(mode: str) -> None:
    if mode not in DURABILITY_MODES:
        raise ValueError(f"durability must be one of {DURABILITY_MODES}, not {mode!r}")
