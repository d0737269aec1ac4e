"""When an append is durable: the fsync policy of a session's writer, group commit included.

Strategy: `always` fsyncs before the append returns. `batch` is group commit by flat
combining: a batch appender queues its records and waits on its own gate; the first to find no
leader leads. The leader writes every queued record in one write under one file lock, fsyncs
once, opens the gate of each appender it served, and hands the leadership to the first appender
that queued meanwhile. A waiting appender makes no system call and takes no shared lock: under
the GIL each thread hand-off costs tens of microseconds, and this keeps them to one per append.
Before it writes, a leader that finds fewer appenders queued than the last round served waits
for the rest, at most half as long as the last fsync took (PostgreSQL's `commit_delay`, made
to tune itself): the appenders it just served are usually about to append again, and without
the wait the leader syncs alone while they queue, so rounds alternate between one appender and
all the others. A failed fsync poisons the writer: it raises in every appender it
covered, and nothing later is acknowledged until the session is reopened. Before its first
write a handle fsyncs the directories the log's names live in (`_sync_dirs`): a directory
fsync that failed earlier leaves no trace, so it is redone rather than remembered. `SessionLog`
inherits this; the state it shares is declared here.
"""

from __future__ import annotations

import os
import threading
import time

from ..errors import DurabilityError
from .fs import FileSystem
from .naming import LOG_DIR
from .record import Item

GATHER_FRACTION = 0.5  # of the last fsync: the longest a leader waits for its round to fill
GATHER_CAP = 0.001  # seconds: and never longer than this


class Slot:
    """One batch append in the queue: its items, then its outcome, behind its own gate."""

    __slots__ = ("error", "first", "gate", "items", "lead")

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.first = 0  # the seq of its first record, once written
        self.error: BaseException | None = None
        self.lead = False  # woken to lead the next round, not with an outcome
        self.gate = threading.Lock()
        self.gate.acquire()

    def wait(self) -> BaseException | None:
        """Block until the gate opens, even through an interrupt such as KeyboardInterrupt:
        a leader may be about to hand this slot the leadership. Return the interrupt, for the
        caller to raise once it has done its part."""
        interrupt = None
        while True:
            try:
                self.gate.acquire()
                return interrupt
            except BaseException as exc:
                interrupt = exc

    def wake(self) -> None:
        self.gate.release()


class Durability:
    """The fsync half of `SessionLog` (a mixin: `SessionLog` sets these attributes)."""

    path: str
    cond: threading.Condition
    queue_lock: threading.Lock  # guards `queue` and `leading`; never held across a system call
    queue: list[Slot]  # batch appends waiting for a leader to write them
    leading: bool  # a group-commit leader is at work on the queue
    last_served = 0  # appenders the last group commit served
    awaited = 0  # a gathering leader waits for the queue to reach this length (0: none)
    last_sync = 0.0  # seconds the last group-commit fsync took
    written: int  # writes so far (tickets)
    synced: int  # the last ticket known durable
    syncing: bool  # an fsync runs without `cond`; it also keeps `seg_fd` open
    in_lock: bool
    poisoned: DurabilityError | None
    seg_fd: int
    seg_first: int
    fs: FileSystem
    dirs_durable: bool  # the directories `_sync_dirs` fsyncs were fsynced by this handle

    def sync_file(self, fd: int) -> None:
        raise NotImplementedError

    def segment_path(self, first_seq: int) -> str:
        raise NotImplementedError

    def write_slots(self, slots: list[Slot]) -> None:
        """Write every slot's records in one write (`cond` held); set each slot's `first`."""
        raise NotImplementedError

    def _make_durable(self, ticket: int, durability: str) -> None:
        """`always`: fsync now (called with `cond` held); `none`: nothing to do."""
        if durability == "always" and self.synced < ticket:
            target = self.written
            self._sync(self.seg_fd)
            self.synced = max(self.synced, target)

    def group_commit(self, items: list[Item]) -> int:
        """`batch`: queue `items`, return their first seq once an fsync covers them."""
        slot = Slot(items)
        try:
            interrupt = self._join(slot)
            if slot.lead:
                self._lead(slot)
        except BaseException:  # an interrupt: no later appender may wait on this one
            self._withdraw(slot)
            raise
        if interrupt is not None:
            raise interrupt
        if slot.error is not None:
            raise slot.error
        return slot.first

    def _join(self, slot: Slot) -> BaseException | None:
        """Queue `slot` and wait until it leads (`slot.lead`) or has its outcome; return an
        interrupt that came while it waited, for the caller to raise when done."""
        with self.queue_lock:
            self.queue.append(slot)
            if not self.leading:
                self.leading = slot.lead = True
            if len(self.queue) == self.awaited:  # the round the leader waits for is full
                self.awaited = 0
                self.queue[0].wake()
        return None if slot.lead else slot.wait()

    def _withdraw(self, slot: Slot) -> None:
        """Take `slot` out of the queue and pass on a leadership it holds."""
        with self.queue_lock:
            if slot in self.queue:
                self.queue.remove(slot)
            if not slot.lead:
                return
            slot.lead = False
        self._pass_leadership()

    def _pass_leadership(self) -> None:
        """Make the first appender queued the leader, or record that no one leads."""
        with self.queue_lock:
            heir = self.queue[0] if self.queue else None
            if heir is not None:
                heir.lead = True
            self.leading = heir is not None
        if heir is not None:
            heir.wake()

    def _lead(self, own: Slot) -> None:
        """Write and sync everything queued (`own` included), then wake the appenders served
        and hand the leadership to the first appender that queued meanwhile."""
        served: list[Slot] = []
        try:
            self._gather(own)
            with self.queue_lock:
                served, self.queue = self.queue, []
                self.last_served = len(served)
            self._commit(served)
        except BaseException as exc:  # an interrupt (KeyboardInterrupt...): raised here only
            unknown = DurabilityError(
                f"{self.path}: a group commit was interrupted ({exc!r}); this append may or may"
                " not be durable"
            )
            for slot in served:
                slot.error = unknown
            raise
        finally:
            with self.queue_lock:
                if own in self.queue:  # interrupted before it took the queue
                    self.queue.remove(own)
                own.lead = False
            self._pass_leadership()
            for slot in served:
                if slot is not own:
                    slot.wake()

    def _gather(self, own: Slot) -> None:
        """Wait until as many appenders have queued as the last round served, for at most a
        fraction of the last fsync: an appender just served is usually about to append again,
        and waiting briefly for it costs less than a second fsync would. `own` is `queue[0]`."""
        with self.queue_lock:
            if len(self.queue) >= self.last_served:
                return
            self.awaited = self.last_served
        try:
            # A wake after the timeout leaves the gate open; `own` never waits on it again.
            own.gate.acquire(timeout=min(self.last_sync * GATHER_FRACTION, GATHER_CAP))
        finally:
            with self.queue_lock:
                self.awaited = 0

    def _commit(self, slots: list[Slot]) -> None:
        """Write `slots`, then fsync without `cond`; a failure becomes every slot's error."""
        try:
            with self.cond:
                self.write_slots(slots)
                ticket, fd = self.written, self.seg_fd
                self.syncing = True  # keeps `fd` open: closing it waits for `syncing` to clear
        except Exception as exc:
            for slot in slots:
                slot.error = exc
            return
        started = time.perf_counter()
        failure: OSError | None = None
        try:
            self.sync_file(fd)
        except OSError as exc:
            failure = exc
        except BaseException:
            with self.cond:
                self.syncing = False
            raise
        self.last_sync = time.perf_counter() - started
        with self.cond:
            self.syncing = False
            if failure is not None:
                self._poison(failure)
            # Checked even when this fsync succeeded: another fsync of the file that failed
            # meanwhile may have been the one told that these bytes were lost (Linux reports
            # a write-back error once per open file).
            error = self.poisoned
            if error is None:
                self.synced = max(self.synced, ticket)
        for slot in slots:
            slot.error = error

    def _sync_dirs(self) -> None:
        """Fsync the directories holding the names the log depends on (the session in the
        store root; log/ and the identity file in the session; the segment in log/) before
        a handle's first write. A directory fsync that failed earlier, here or in another
        process, left no trace: mkdir and open find the names and fsync nothing again."""
        try:
            for directory in (os.path.dirname(self.path), self.path, os.path.join(self.path, LOG_DIR)):
                self.fs.sync_dir(directory)
        except OSError as exc:
            raise DurabilityError(f"{self.path}: directory fsync failed, nothing was written: {exc}") from exc
        self.dirs_durable = True

    def _sync(self, fd: int) -> None:
        try:
            self.sync_file(fd)
        except OSError as exc:
            raise self._poison(exc) from exc

    def _poison(self, exc: OSError) -> DurabilityError:
        """Refuse every later append on this handle; return the error to raise."""
        path = self.segment_path(self.seg_first)
        self.poisoned = DurabilityError(
            f"fsync of {path} failed ({exc}); nothing more is acknowledged on this session"
            " until it is reopened"
        )
        self.cond.notify_all()
        return self.poisoned

    def _wait_for_sync(self) -> None:
        # A group-commit leader fsyncs without `cond`: closing its descriptor under it would
        # fail an append that was written. It does not notify `cond`, hence the short timeout.
        while self.syncing:
            self.cond.wait(0.001)

    def _wait_for_holders(self) -> None:
        """Before closing: let a thread that waits inside the lock (a roll) finish first."""
        while self.in_lock or self.syncing:
            self.cond.wait(0.001)
