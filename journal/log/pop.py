"""Pure folding of a "pop" record: the last message taken off the history (FORMAT.md, "Pop records").

Strategy: a pop names the seq of the message it removes ("of") and applies only while that
message is the session's last one; otherwise it changes nothing. So a writer that read the
history, chose the last message and logged its pop can tell, from the records between its read
and its pop, whether the pop took that message or another writer got there first (then it
reads again and pops anew); the history is never rewritten. The same test serves the live fold
(`SessionState.apply`) and the compactor's.
"""

from __future__ import annotations

from typing import Any

from .record import Record

OF = "of"  # the seq of the message record the pop removes


def pop_data(of: int) -> dict[str, Any]:
    """The data of the pop that removes the message record numbered `of`."""
    return {OF: of}


def pop_applies(pop: Any, message: Record | None) -> bool:
    """Whether `pop` (a pop record's data) removes `message`, the session's last message."""
    return (
        message is not None and isinstance(pop, dict) and type(pop.get(OF)) is int and pop[OF] == message.seq
    )
