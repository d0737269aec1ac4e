"""The optional mirror of PraisonAI's store: persisted messages also go to a sink's `append`.

Strategy: as in PraisonAI, local first. A daemon thread drains a bounded queue into
`mirror.append(session_id, records)`, retrying a failing sink a few times; a full queue or a
sink that keeps failing drops records with a warning and never fails or blocks a write.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from typing import Any

from ..log import forksafe
from .session_data import SessionMessage

QUEUE_SIZE, RETRIES = 1000, 3


def mirror_records(session_id: str, messages: list[SessionMessage]) -> list[dict[str, Any]]:
    """PraisonAI's mirror records: the message dict plus a stable "id" and the session id."""
    records = []
    for message in messages:
        record = message.to_dict()
        record.setdefault("id", f"{session_id}:{record.get('timestamp')}")
        record["session_id"] = session_id
        records.append(record)
    return records


class MirrorWriter:
    """A background thread that hands queued records to `mirror.append`."""

    def __init__(self, mirror: Any) -> None:
        self.mirror = mirror
        self.closed = False
        self._start()
        forksafe.register(self)

    def _start(self) -> None:
        self._queue: queue.Queue[tuple[str, list[dict[str, Any]]] | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="journal-session-mirror", daemon=True)
        self._thread.start()

    def after_fork(self) -> None:
        """In a child of `fork()`: the parent's thread is not there, so the child gets its
        own (and an empty queue: what the parent had queued is the parent's to send)."""
        if not self.closed:
            self._start()

    def enqueue(self, session_id: str, records: list[dict[str, Any]]) -> None:
        """Queue records for the sink; drop them with a warning if the queue is full."""
        if not records or not self._thread.is_alive():
            return
        try:
            self._queue.put_nowait((session_id, records))
        except queue.Full:
            warnings.warn(f"session mirror queue full; {len(records)} record(s) not mirrored", stacklevel=3)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._flush_one(*item)
            finally:
                self._queue.task_done()

    def _flush_one(self, session_id: str, records: list[dict[str, Any]]) -> None:
        for attempt in range(RETRIES):
            try:
                self.mirror.append(session_id, records)
                return
            except Exception:  # a sink's outage must never reach the writer
                time.sleep(0.05 * (attempt + 1))
        warnings.warn(f"session mirror failed for {session_id!r}; records dropped", stacklevel=1)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record was handed over; False if `timeout` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if not self._thread.is_alive() or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Drain the queue, then stop the thread."""
        self.closed = True
        if self._thread.is_alive():
            self.flush(timeout)
            self._queue.put(None)
            self._thread.join(timeout)
