"""The journal side of `JournalSaver`: one session per LangGraph thread and its folded index.

Strategy: each thread's records are folded once into a `ThreadIndex` (`langgraph_records`),
kept for the most recently used threads. Every read first brings the index up to date with
the session: `Journal.state` parses only the bytes other processes appended since, and the
index folds only the records past its last seq, or all of them again when the session was
cleared (a rewrite), deleted or created anew. A write is prepared under the thread's lock,
appended without it (so concurrent writers of a process share an fsync), then folded in:
directly when it follows what the index holds, else by bringing the index up to date. The
first write of a thread also puts the marker (`MARKER`) in the session's metadata, so a
listing of the store can tell threads from other sessions. Records a rewrite's clear hid
from another writer are read back from the log (`Journal.read`) and written again as live
records by a rewrite that keeps everything. Nothing here knows LangGraph's types.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..native import Journal
from . import langgraph_records as records
from .langgraph_records import ThreadIndex

__all__ = ["Entries", "Survivors", "ThreadStore"]

T = TypeVar("T")
Entries = list[tuple[str, dict[str, Any], float | None]]  # what Journal.append_batch takes
Survivors = list[tuple[dict[str, Any], float | None]]  # records (data, ts) a rewrite keeps
_CACHED_THREADS = 256  # indexes kept in memory; a thread past that is folded again when used
_MARKER = {records.MARKER: {"format": records.RECORD_FORMAT}}


@dataclass
class _Thread:
    index: ThreadIndex
    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded: bool = False  # the index was brought up to date at least once
    marking: bool = False  # a write of this process is putting the marker


class ThreadStore:
    """LangGraph threads as sessions of `journal`, appended with `durability`."""

    def __init__(self, journal: Journal, durability: str) -> None:
        self.journal = journal
        self.durability = durability
        self._lock = threading.Lock()  # guards `_threads`
        self._threads: OrderedDict[str, _Thread] = OrderedDict()

    # -- reading -----------------------------------------------------------------------------

    @contextmanager
    def current(self, thread_id: str) -> Iterator[ThreadIndex]:
        """The thread's index, up to date, held locked for the `with` block."""
        thread = self._thread(thread_id)
        with thread.lock:
            self._refresh(thread, thread_id)
            yield thread.index

    def thread_ids(self) -> list[str]:
        """The ids of the store's sessions that are LangGraph threads."""
        found = []
        for thread_id in self.journal.sessions():
            with self.current(thread_id) as index:
                if index.marked:
                    found.append(thread_id)
        return found

    # -- writing -----------------------------------------------------------------------------

    def prepare(self, thread_id: str, look: Callable[[ThreadIndex], T]) -> tuple[T, bool]:
        """Before a write: `look` at the index (loaded once, not refreshed: a write needs no
        other process's records) under the thread's lock; also say whether this write is the
        one to put the thread's marker."""
        thread = self._thread(thread_id)
        with thread.lock:
            if not thread.loaded:
                self._refresh(thread, thread_id)
            mark = not thread.index.marked and not thread.marking
            thread.marking = thread.marking or mark
            return look(thread.index), mark

    def append(self, thread_id: str, data: dict[str, Any], mark: bool) -> int:
        """Append one record (after the marker, if `mark`); return its seq."""
        entries: Entries = [("message", data, None)]
        if mark:
            entries.insert(0, ("meta", _MARKER, None))
        try:
            return self.journal.append_batch(thread_id, entries, durability=self.durability)[-1]
        except BaseException:
            if mark:  # a later write marks instead
                thread = self._thread(thread_id)
                with thread.lock:
                    thread.marking = False
            raise

    def absorb(
        self,
        thread_id: str,
        seq: int,
        data: dict[str, Any],
        mark: bool,
        note: Callable[[ThreadIndex], None] | None = None,
    ) -> None:
        """Fold in the record this process appended as `seq`, then let `note` see the index."""
        thread = self._thread(thread_id)
        with thread.lock:
            index = thread.index
            if mark:
                thread.marking = False
            if seq > index.last_seq and (seq - 1 if mark else seq) == index.last_seq + 1:
                index.marked = index.marked or mark
                index.apply(seq, None, data)
                index.first_seq = seq if index.first_seq is None else index.first_seq
                index.last_seq = seq
            elif seq > index.last_seq:  # others appended in between: read them too
                self._refresh(thread, thread_id)
            if note is not None:
                note(thread.index)

    def rewrite(self, thread_id: str, choose: Callable[[ThreadIndex], Survivors | None], why: str) -> None:
        """Replace the thread's records by those `choose` returns (None: leave it as it is),
        in one batch: a clear, the survivors, and a rewrite record (`langgraph_records`)."""
        thread = self._thread(thread_id)
        with thread.lock:
            self._refresh(thread, thread_id)
            self._rewrite(thread, thread_id, choose(thread.index), why)

    def _rewrite(self, thread: _Thread, thread_id: str, survivors: Survivors | None, why: str) -> None:
        if survivors is None:
            return
        entries: Entries = [("clear", {}, None)]
        entries += [("message", data, ts) for data, ts in survivors]
        entries.append(("message", records.rewrite_data(thread.index.last_seq, len(survivors), why), None))
        self.journal.append_batch(thread_id, entries, durability=self.durability)
        self._refresh(thread, thread_id)

    def copy(self, source: str, target: str) -> None:
        """Append the records that make up the source thread to the target thread."""
        if source == target:
            return
        with self.current(source) as index:
            survivors = index.survivors(lambda ns, checkpoint_id: True)
        if not survivors:
            return
        thread = self._thread(target)
        with thread.lock:
            self._refresh(thread, target)
            entries: Entries = [("message", data, ts) for data, ts in survivors]
            if not thread.index.marked:
                entries.insert(0, ("meta", _MARKER, None))
            self.journal.append_batch(target, entries, durability=self.durability)
            self._refresh(thread, target)

    def delete(self, thread_id: str) -> None:
        """Delete the thread's session, if it is a thread."""
        thread = self._thread(thread_id)
        with thread.lock:
            self._refresh(thread, thread_id)
            index = thread.index
            if index.marked or index.checkpoints or index.writes:
                self.journal.delete(thread_id)
            thread.index = ThreadIndex(path=index.path)

    # -- the index ---------------------------------------------------------------------------

    def _thread(self, thread_id: str) -> _Thread:
        with self._lock:
            thread = self._threads.get(thread_id)
            if thread is None:
                thread = _Thread(ThreadIndex(path=self.journal.session_path(thread_id)))
                self._threads[thread_id] = thread
                while len(self._threads) > _CACHED_THREADS:
                    self._threads.popitem(last=False)
            else:
                self._threads.move_to_end(thread_id)
            return thread

    def _refresh(self, thread: _Thread, thread_id: str) -> None:
        """Bring the thread's index up to date with its session (its lock held)."""
        state = self.journal.state(thread_id)
        thread.loaded = True
        index = thread.index
        if state is None:
            if index.last_seq or index.marked:
                thread.index = ThreadIndex(path=index.path)
            return
        messages = state.messages
        first = messages[0].seq if messages else None
        replaced = state.created_at != index.created_at or state.last_seq < index.last_seq
        if replaced or first != index.first_seq:  # new, deleted and made again, or cleared
            index = thread.index = ThreadIndex(path=index.path, created_at=state.created_at, first_seq=first)
            fresh = messages
        else:
            cut = len(messages)
            while cut and messages[cut - 1].seq > index.last_seq:
                cut -= 1
            fresh = messages[cut:]
        gaps = 0
        for record in fresh:
            gap = index.apply(record.seq, record.ts, record.data)
            if gap is not None:
                gaps += self._fold_gap(index, thread_id, gap)
        index.marked = records.MARKER in state.metadata
        index.last_seq = state.last_seq
        if gaps and not self.journal.read_only:
            # Written again as the live records, so reads no longer need the log's history
            # (which archive retention may prune): a rewrite that keeps everything.
            survivors = index.survivors(lambda ns, checkpoint_id: True)
            self._rewrite(thread, thread_id, survivors, "kept what was written during a rewrite")

    def _fold_gap(self, index: ThreadIndex, thread_id: str, gap: tuple[int, int]) -> int:
        """Fold in the records another writer appended while a rewrite read its survivors
        (the rewrite's clear was not meant for them); return how many there were."""
        folded = 0
        for record in self.journal.read(thread_id, gap[0]):
            if record.seq > gap[1]:
                break
            role = record.data.get("role") if isinstance(record.data, dict) else None
            if record.kind == "message" and role in (records.CHECKPOINT, records.WRITES):
                index.apply(record.seq, record.ts, record.data)
                folded += 1
        return folded
