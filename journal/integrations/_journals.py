"""What the framework adapters share: one `Journal` per store, and ordered calls off the loop.

Strategy: frameworks make one session object per conversation, often one per request. Opening
a `Journal` for each would scan the store root, start a view-keeper thread and open file
handles every time, so `acquire` hands out one `Journal` per (directory, durability mode),
counted, and `release` closes it, after writing the views of the sessions it wrote, when the
last holder lets go; the ones still held at exit are closed the same way (messages.json is
then current for scripts that read it, as with `DefaultSessionStore`).

Async methods must not block the event loop on fsync, and calls on one session must take
effect in the order they were made, whatever task made them. `Strand` runs the calls of one
session one at a time, in order, on a shared thread pool (not a thread per session, not an
`asyncio.Lock`, which binds to one event loop); `strand_for` gives every adapter object of a
session id the same strand. `settle` waits for a write to finish even if the caller is
cancelled meanwhile, then re-raises the cancellation, as the frameworks' own stores do, so a
write is never half known.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..compaction.protocol import CompactionPolicy
from ..native import Journal

T = TypeVar("T")

VIEW_LAG = 10.0  # seconds messages.json may trail the log: `DefaultSessionStore`'s default

_lock = threading.Lock()  # guards the tables below
_journals: dict[tuple[str, str], tuple[Journal, int]] = {}  # (root, durability) -> (journal, holders)
_strands: weakref.WeakValueDictionary[tuple[str, str], Strand] = weakref.WeakValueDictionary()
_pool: ThreadPoolExecutor | None = None


def acquire(session_dir: str | os.PathLike[str], durability: str) -> Journal:
    """The process's `Journal` on `session_dir` with `durability`, opened if need be; every
    call must be matched by one `release`. A relative path is taken from the current directory
    now, so a later ``os.chdir`` does not move the store."""
    key = (os.path.abspath(os.fspath(session_dir)), durability)
    with _lock:
        journal, holders = _journals.get(key) or (None, 0)
        if journal is None:
            policy = CompactionPolicy(max_view_lag=VIEW_LAG)
            journal = Journal(key[0], durability=durability, compaction=policy)
        _journals[key] = (journal, holders + 1)
        return journal


def release(journal: Journal) -> None:
    """Let go of a `Journal` from `acquire`; the last holder's release writes the views of the
    sessions it wrote and closes it."""
    with _lock:
        key = next((k for k, (j, _) in _journals.items() if j is journal), None)
        if key is None:
            return
        _, holders = _journals[key]
        if holders > 1:
            _journals[key] = (journal, holders - 1)
            return
        del _journals[key]
    _close(journal)


def _close(journal: Journal) -> None:
    try:
        journal.compact_written()
    finally:
        journal.close()


@atexit.register
def _close_all() -> None:
    """Views current at exit, for scripts that read messages.json (as `DefaultSessionStore`)."""
    with _lock:
        held = [journal for journal, _ in _journals.values()]
        _journals.clear()
    for journal in held:
        with contextlib.suppress(Exception):  # at exit there is no caller left to tell
            _close(journal)


class Strand:
    """Runs the calls given to it one at a time, in the order given, on a shared thread pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._running = False

    def after_fork(self) -> None:
        """In a child of fork(): the parent's queued calls and its pool's threads are not here."""
        self._lock, self._queue, self._running = threading.Lock(), deque(), False

    def submit(self, call: Callable[[], T]) -> Future[T]:
        """Queue `call`; it runs after every call queued before it has finished."""
        future: Future[T] = Future()
        with self._lock:
            self._queue.append((call, future))
            if self._running:
                return future
            self._running = True
        _shared_pool().submit(self._drain)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                call, future = self._queue.popleft()
            if future.set_running_or_notify_cancel():  # False: cancelled before it started
                try:
                    future.set_result(call())
                except BaseException as exc:  # handed to the caller, who awaits it
                    future.set_exception(exc)

    async def run(self, call: Callable[[], T]) -> T:
        """`call`'s result, run on this strand; cancelling the caller before it starts drops it."""
        return await asyncio.wrap_future(self.submit(call))

    async def write(self, call: Callable[[], T]) -> T:
        """`call`'s result, run on this strand; see `settle`."""
        return await settle(asyncio.wrap_future(self.submit(call)))


def strand_for(journal: Journal, session_id: str) -> Strand:
    """The strand of `session_id` in `journal`'s store, shared by every adapter object of it."""
    key = (os.path.abspath(journal.root), session_id)
    with _lock:
        strand = _strands.get(key)
        if strand is None:
            strand = _strands[key] = Strand()
        return strand


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="journal"
            )
        return _pool


def _after_fork_in_child() -> None:
    """A child of fork() has none of the pool's threads: it starts its own pool and strands.
    (The `Journal`s drop their inherited handles themselves: `log.forksafe`.)"""
    global _lock, _pool
    _lock, _pool = threading.Lock(), None
    for strand in list(_strands.values()):
        strand.after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


async def settle(future: asyncio.Future[T]) -> T:
    """The outcome of a write: a caller cancelled meanwhile still waits for the write to end
    (it has started, or is queued behind others, and will happen), then is cancelled."""
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        raise cancelled
    return future.result()
