"""The synchronous mode: an append is acknowledged only once the bucket holds it.

Strategy: group commit over the network, as `log.durability` does over fsync. Each session
has one upload in flight at a time; an append that finds one running waits for it and, if it
did not cover its seq, the next round (led by one of the waiters) uploads everything written
meanwhile in one go. So N threads appending to one session during an upload cost one more
upload, not N. Sessions upload independently of each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .objects import ReplicaError

# Upload everything of the session written so far; return the highest seq the bucket now
# holds of it.
Upload = Callable[[str], int]
# An append waits at most this long for the bucket, then raises (`ReplicaTimeout`): it is in
# the local log, not acknowledged, and shipped later.
UPLOAD_SECONDS = 30.0


@dataclass
class _Session:
    cond: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))
    held: int = 0  # the bucket holds the session through this seq
    leading: bool = False  # an upload of this session is in flight


class SyncGate:
    """Waits until the bucket holds a seq of a session, sharing uploads between waiters."""

    def __init__(self, upload: Upload, url: str) -> None:
        self._upload, self._url = upload, url
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()  # guards `_sessions`

    def wait(self, session_id: str, seq: int) -> None:
        """Return once the bucket holds `session_id` through `seq`.

        Raises:
            ReplicaError: the upload failed or did not reach `seq` (the record stays in the
                local log and is shipped later; it is not acknowledged).
        """
        with self._lock:
            state = self._sessions.setdefault(session_id, _Session())
        while True:
            with state.cond:
                while state.leading and state.held < seq:
                    state.cond.wait()
                if state.held >= seq:
                    return
                state.leading = True
            held = 0
            try:
                held = self._upload(session_id)
            finally:
                with state.cond:
                    state.held = max(state.held, held)
                    state.leading = False
                    state.cond.notify_all()
            if held < seq:
                raise ReplicaError(self._url, f"{session_id!r}: the replica holds seq {held}, not {seq}")

    def forget(self, session_id: str) -> None:
        """Drop what is known of the session (deleted, or restored anew)."""
        with self._lock:
            self._sessions.pop(session_id, None)
