"""`Replicator`: ships every session of a store to a replica, at an interval and on demand.

Strategy: Litestream's model. The local, fsynced log stays the source of truth; a background
thread wakes every `interval` seconds and, per session (a few in parallel), reads the record
lines past the last one the replica holds (`source.LocalLog`: raw bytes, whole batches,
fsynced first) and uploads them as one run object with a create-only put (`runs`). What the
replica holds is learned once per session from the bucket (the newest run, `chain.head`) and
then tracked in memory; before shipping on top of it, the local record at that seq must carry
the same checksum, else the bucket holds another history (`ReplicaConflictError`). A put that
finds its name taken compares: the same lines (a retried upload, or a shorter earlier upload
of ours) are kept as shipped; anything else is a second writer (`ReplicaConflictError`), and
nothing is overwritten. `sync()` runs a pass in the caller's thread: a pass starts after the
call, so it ships every record acknowledged before it.

Public names (stable; leases and the CLI build on them): `Replicator`, `ReplicaSource`,
`SessionStatus`, and the methods `start`, `stop`, `sync`, `sync_session`, `remote_head`,
`status`.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..errors import CorruptionError, JournalError, RecoveryWarning, UnsupportedFormatError
from ..log import forksafe, naming
from ..log.fs import FileSystem
from ..log.record import decode_header
from ..log.session import Options
from . import chain
from .objects import ObjectExists, ObjectStore, ReplicaConflictError, ReplicaCorruptionError, ReplicaTimeout
from .runs import decode_run, encode_run, line_checksum, run_key
from .source import HistoryPrunedError, LocalLog

MAX_OBJECT_BYTES = 8 * 1024 * 1024  # of lines per run (a larger batch makes a larger run)
# Errors that waiting cannot fix: `sync` raises them at once.
FATAL = (
    ReplicaConflictError,
    ReplicaCorruptionError,
    CorruptionError,
    UnsupportedFormatError,
    HistoryPrunedError,
)


class ReplicaSource(Protocol):
    """What the replicator needs of a store (the `Journal` facade offers it)."""

    root: str
    fs: FileSystem
    options: Options
    read_only: bool

    def sessions(self) -> Iterator[str]: ...

    def session_path(self, session_id: str) -> str: ...


@dataclass(frozen=True)
class SessionStatus:
    """How far the replica is behind one session. `behind_seconds` is the age of the oldest
    record the replica lacks (0 when it has them all); `error` the last shipping failure."""

    session_id: str
    local_seq: int
    replicated_seq: int
    behind_seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Shipper:
    """One session's shipping state; `lock` serializes its passes."""

    def __init__(self, owner: Replicator, session_id: str) -> None:
        self.owner, self.session_id = owner, session_id
        self.dir_name = naming.encode_id(session_id)
        self.path = owner.source.session_path(session_id)
        limit = owner.source.options.max_record_bytes
        self.log = LocalLog(owner.source.fs, self.path, limit)
        self.tip = LocalLog(owner.source.fs, self.path, limit)  # status's own cursor
        self.lock = threading.Lock()
        self.known = False  # `shipped` / `prev` were read from the bucket
        self.shipped, self.prev = 0, ""
        self.identity: tuple[int, int] | None = None
        self.error: BaseException | None = None

    def ship(self) -> int:
        """Upload every whole batch on disk the replica lacks; the last seq it holds."""
        with self.lock:
            try:
                self._ship()
                self.error = None
            except BaseException as exc:
                self.error = exc
                self.known = False  # learn the bucket's state again next time
                raise
            return self.shipped

    def _ship(self) -> None:
        epoch = self.owner.epoch_of(self.session_id) if self.owner.epoch_of else 0
        if epoch is None:
            return  # leases: a session whose lease this store does not hold is not shipped
        self._check_identity()
        if not self.known:
            self._load_head()
        while True:
            raw = self.log.read_from(
                self.shipped + 1, self.owner.max_object_bytes, self.owner.sync_local, self.prev or None
            )
            if not raw:
                return
            self._upload(raw, epoch)

    def _check_identity(self) -> None:
        """A session deleted and created again is a new history: forget what was shipped."""
        try:
            st = os.stat(os.path.join(self.path, naming.IDENTITY_FILE))
            identity = (st.st_ino, st.st_ctime_ns)  # an inode number alone may be reused
        except FileNotFoundError:
            identity = None
        if identity != self.identity:
            self.identity, self.known = identity, False
            self.log.cursor = self.tip.cursor = None

    def _load_head(self) -> None:
        store = self.owner.store
        last, checksum = chain.head(store, self.dir_name, self.session_id, self.owner.fence)
        if last:
            local = self.log.line_at(last)
            if local is None or line_checksum(local) != checksum:
                have = "another record" if local is not None else "no such record"
                reason = f"the replica holds {self.session_id!r} through seq {last}; this store has {have}"
                raise ReplicaConflictError(f"{store.url}/{self.dir_name}", reason)
        self.shipped, self.prev, self.known = last, checksum, True

    def _upload(self, raw: bytes, epoch: int) -> None:
        first = self.shipped + 1
        key = run_key(self.dir_name, first, epoch)
        blob = encode_run(self.session_id, first, epoch, self.prev, raw)
        store = self.owner.store
        try:
            store.put_new(key, blob)
            last, checksum = first + raw.count(b"\n") - 1, line_checksum(_last_line(raw))
        except ObjectExists:
            there = decode_run(f"{store.url}/{key}", store.get(key)[0])
            if there.prev != self.prev or not raw.startswith(there.raw):
                reason = "another writer uploaded other records of this session under this name"
                raise ReplicaConflictError(f"{store.url}/{key}", reason) from None
            last, checksum = there.last, there.last_checksum  # ours: a retried upload
        self.shipped, self.prev = last, checksum
        if self.owner.on_shipped is not None:
            self.owner.on_shipped(self.session_id, first, last)

    def status(self, now: float, started: float) -> SessionStatus:
        with self.lock:
            self._check_identity()
            if not self.known:
                try:
                    self._load_head()
                except (JournalError, OSError) as exc:
                    self.error = exc
            local = self.tip.last_seq(self.shipped)
            behind = 0.0
            if local > self.shipped:
                line = self.tip.line_at(self.shipped + 1)
                written = decode_header(line[:-1]).ts if line else now
                behind = max(0.0, now - max(written, started))
            error = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
            return SessionStatus(self.session_id, local, self.shipped, behind, error)


def _last_line(raw: bytes) -> bytes:
    return raw[raw.rfind(b"\n", 0, len(raw) - 1) + 1 :]


class Replicator:
    """Ships every session of `source` to `store` (see the module docstring).

    Args:
        source: the store to replicate (a `Journal`).
        store: the replica (`open_store(url)`).
        interval: seconds between background passes.
        epoch_of: the writer's lease epoch of a session, put in each object's name (0: none;
            None: do not ship the session now, its lease is not held).
        fence: which records of a run count (`chain.Fence`), for leases.
        on_shipped: called with (session_id, first, last) after each upload.
        workers: sessions shipped in parallel in a pass.
    """

    def __init__(
        self,
        source: ReplicaSource,
        store: ObjectStore,
        *,
        interval: float = 1.0,
        epoch_of: Callable[[str], int | None] | None = None,
        fence: chain.Fence | None = None,
        on_shipped: Callable[[str, int, int], None] | None = None,
        workers: int = 8,
        max_object_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        self.source, self.store, self.interval = source, store, interval
        self.epoch_of, self.fence, self.on_shipped = epoch_of, fence, on_shipped
        self.workers, self.max_object_bytes = workers, max_object_bytes
        self.sync_local = not source.read_only  # a read-only store is not fsynced by us
        self.started = time.time()
        self._shippers: dict[str, _Shipper] = {}
        self._lock = threading.Lock()  # guards `_shippers`, `_pool`, `_thread`
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        forksafe.register(self)

    def after_fork(self) -> None:
        """In a child of `fork()`: the parent's threads are not here; nothing runs in the
        background, `sync` still works from the child's own thread."""
        self._lock = threading.Lock()
        self._pool, self._thread = None, None
        self._shippers = {}

    # -- the background thread -------------------------------------------------------------------

    def start(self) -> None:
        """Ship in a daemon thread every `interval` seconds until `stop()`."""
        with self._lock:
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="journal-replicator", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.run_pass()
            except Exception as exc:  # a listing that failed: the next pass tries again
                warnings.warn(f"replication pass failed: {exc}", RecoveryWarning, stacklevel=1)

    def stop(self, final_pass: bool = True) -> None:
        """Stop the thread; with `final_pass`, ship what is left once (failures are warned
        about, not raised: the log keeps everything for the next replicator)."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join()
        if final_pass:
            for session_id, exc in self.run_pass().items():
                warnings.warn(f"{session_id!r} not replicated on stop: {exc}", RecoveryWarning, stacklevel=2)
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- passes --------------------------------------------------------------------------------

    def _shipper(self, session_id: str) -> _Shipper:
        with self._lock:
            shipper = self._shippers.get(session_id)
            if shipper is None:
                shipper = self._shippers[session_id] = _Shipper(self, session_id)
            return shipper

    def run_pass(self) -> dict[str, BaseException]:
        """Ship every session once; the failures by session id."""
        ids = list(self.source.sessions())
        with self._lock:
            for gone in set(self._shippers) - set(ids):  # deleted sessions
                del self._shippers[gone]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="journal-ship")
            pool = self._pool
        futures = {sid: pool.submit(self._shipper(sid).ship) for sid in ids}
        errors: dict[str, BaseException] = {}
        for session_id, future in futures.items():
            exc = future.exception()
            if exc is not None:
                errors[session_id] = exc
        return errors

    def sync(self, timeout: float | None = None) -> None:
        """Return once the replica holds every record of every session acknowledged before
        the call.

        Raises:
            ReplicaTimeout: the bucket did not take it all within `timeout` seconds.
            ReplicaConflictError, ReplicaCorruptionError, CorruptionError: what waiting
                cannot fix, at once.
        """
        self._retry(self.run_pass, timeout)

    def sync_session(self, session_id: str, timeout: float | None = None) -> int:
        """Ship one session now (thread-safe); the last seq the replica then holds of it."""
        shipped: list[int] = []

        def once() -> dict[str, BaseException]:
            try:
                shipped.append(self._shipper(session_id).ship())
            except (JournalError, OSError) as exc:
                return {session_id: exc}
            return {}

        self._retry(once, timeout)
        return shipped[-1]

    def _retry(self, attempt: Callable[[], dict[str, BaseException]], timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            errors = attempt()
            if not errors:
                return
            for exc in errors.values():
                if isinstance(exc, FATAL):
                    raise exc
            if deadline is not None and time.monotonic() + delay > deadline:
                session_id, exc = next(iter(errors.items()))
                reason = f"not replicated within {timeout} s; {session_id!r}: {exc}"
                raise ReplicaTimeout(self.store.url, reason) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- reporting ------------------------------------------------------------------------------

    def forget(self, session_id: str) -> None:
        """Learn again from the bucket what the replica holds of the session before shipping
        it next (a lease changed hands: what was shipped under an older epoch may not count)."""
        shipper = self._shipper(session_id)
        with shipper.lock:  # after an upload in flight
            shipper.known = False

    def remote_head(self, session_id: str) -> int:
        """The last seq the replica holds of the session (0: none), read from the bucket."""
        return chain.head(self.store, naming.encode_id(session_id), session_id, self.fence)[0]

    def status(self) -> dict[str, SessionStatus]:
        """Per session: the last seq on local disk, the last one the replica holds (as last
        shipped or learned by this replicator), how many seconds behind, the last error."""
        now = time.time()
        return {sid: self._shipper(sid).status(now, self.started) for sid in self.source.sessions()}
