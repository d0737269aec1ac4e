"""When an append is durable: the fsync policy of a session's writer, group commit included.

Strategy: `always` fsyncs before the append returns. `batch` is group commit: the first
appender to find no fsync running leads: it syncs, and keeps syncing while appenders that wrote
during its last fsync wait, so each fsync starts as soon as the one before ends. Those appenders
wait outside `cond` behind the gate of the round that will cover them; a woken follower only
reads `synced` and returns, instead of queueing for `cond` again as a Condition makes every
follower do. A failed fsync poisons the writer: it raises, and nothing later is acknowledged
until the session is reopened. `SessionLog` inherits this; the state it shares is declared here.
"""

from __future__ import annotations

import threading

from .errors import DurabilityError

_LEAD_ROUNDS = 4  # fsyncs one group-commit leader does back to back before handing over


class Round:
    """Batch appenders waiting for one fsync, behind one gate its leader opens when done.
    Waiters pass the gate on one by one; waking them all at once (one lock each) measured
    three times slower: they fight over the GIL."""

    __slots__ = ("gate",)

    def __init__(self) -> None:
        self.gate = threading.Lock()
        self.gate.acquire()

    def wait(self) -> None:
        self.gate.acquire()
        self.gate.release()  # let the next waiter through

    def open(self) -> None:
        self.gate.release()


class Durability:
    """The fsync half of `SessionLog` (a mixin: `SessionLog` sets these attributes)."""

    cond: threading.Condition
    owed_lock: threading.Lock
    written: int  # appends written so far (tickets)
    synced: int  # the last ticket known durable
    syncing: bool  # a group-commit leader is at work; it also keeps `seg_fd` open
    next_round: Round | None  # batch appenders waiting for the next fsync
    owed: int  # batch appenders that wrote and still wait for their fsync
    in_lock: bool
    poisoned: DurabilityError | None
    seg_fd: int
    seg_first: int

    def sync_file(self, fd: int) -> None:
        raise NotImplementedError

    def segment_path(self, first_seq: int) -> str:
        raise NotImplementedError

    def _make_durable(self, ticket: int, durability: str) -> None:
        """`always`: fsync now (called with `cond` held); `none`: nothing to do."""
        if durability == "always" and self.synced < ticket:
            target = self.written
            self._sync(self.seg_fd)
            self.synced = max(self.synced, target)

    def _commit_or_join(self, ticket: int, owed: bool) -> Round | None:
        """With `cond` held: lead a group commit, or join the next round; None when `ticket`
        is durable. `owed` says the caller is already counted in `self.owed`."""
        if self.synced >= ticket:
            return None
        if self.poisoned is not None:
            raise self.poisoned
        if not self.syncing:
            self._lead_group_commit()
            return None
        if self.next_round is None:
            self.next_round = Round()
        if not owed:
            with self.owed_lock:
                self.owed += 1
        return self.next_round

    def _await_round(self, round_: Round, ticket: int) -> None:
        try:
            while True:
                round_.wait()
                if self.synced >= ticket:
                    return
                with self.cond:  # the leader handed over or failed: lead or wait again
                    found = self._commit_or_join(ticket, owed=True)
                if found is None:
                    return
                round_ = found
        finally:
            with self.owed_lock:
                self.owed -= 1

    def _lead_group_commit(self) -> None:
        """Sync rounds while followers wait (called with `cond` held), then hand over."""
        fd = self.seg_fd
        self.syncing = True  # also keeps `fd` open: closing it waits for `syncing` to clear
        try:
            for _ in range(_LEAD_ROUNDS):
                serving, self.next_round = self.next_round, None
                target = self.written  # writers need `cond`: nothing is written until release
                self.cond.release()
                try:
                    self.sync_file(fd)
                    error: OSError | None = None
                except OSError as exc:
                    error = exc
                finally:
                    self.cond.acquire()
                if error is not None:
                    self._poison(error, serving)
                self.synced = max(self.synced, target)
                if serving is not None:
                    serving.open()
                if self.next_round is None:
                    break
        finally:
            self.syncing = False
            if self.next_round is not None:  # hand over: one of them leads the next round
                self.next_round.open()
                self.next_round = None
            self.cond.notify_all()

    def _sync(self, fd: int) -> None:
        try:
            self.sync_file(fd)
        except OSError as exc:
            self._poison(exc)

    def _poison(self, exc: OSError, waiting: Round | None = None) -> None:
        path = self.segment_path(self.seg_first)
        self.poisoned = DurabilityError(
            f"fsync of {path} failed ({exc}); nothing more is acknowledged on this session"
            " until it is reopened"
        )
        if waiting is not None:
            waiting.open()  # they find `poisoned` set and raise it
        self.cond.notify_all()
        raise self.poisoned from exc

    def _wait_for_sync(self) -> None:
        # Also wait for batch appenders still owed an fsync: closing the segment under them
        # (an LRU eviction) left one to lead a group commit on fd -1, failing an append that
        # had been written. They do not notify `cond` when done, hence the short timeout.
        while self.syncing or self.owed:
            self.cond.wait(0.001)

    def _wait_for_holders(self) -> None:
        """Before closing: let a thread that waits inside the lock (a roll) finish first."""
        while self.in_lock or self.syncing or self.owed:
            self.cond.wait(0.001)
