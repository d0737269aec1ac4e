"""Streamed assistant turns: PraisonAI's partial-message calls, logged as edit records.

Strategy: the first flush of a turn is a message record marked ``{"partial": true}``; each
later flush appends an "edit" record (`log.edit`) holding only the text added since the last
flush (or the whole text when it does not extend it), so a streamed answer costs about its
final length on disk however often it is flushed. `finalize` and `discard` are edits too.
Folding gives one message, partial until finalized; a stream that is never finalized reads
as the text last flushed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..log.edit import DROP, OF, PARTIAL, edit_data, is_partial
from ..log.record import EDIT, Record
from ..native import Journal
from .messages import message_data
from .records import append_records
from .session_data import SessionMessage


class StreamingMixin:
    """`upsert_partial_assistant_message` and `discard_partial_assistant_message`."""

    _journal: Journal

    if TYPE_CHECKING:

        def _mirror_messages(self, session_id: str, messages: list[SessionMessage]) -> None: ...

    def upsert_partial_assistant_message(
        self, session_id: str, content: str, *, finalize: bool = False
    ) -> bool:
        """Create or update the session's one in-progress assistant turn with `content`, the
        full text so far. With `finalize` the turn is complete (its "partial" mark goes); an
        empty `content` then removes the partial turn, or writes nothing if there is none.

        Raises:
            InvalidRecordError: `content` is not a str (nothing is written).
        """
        data = message_data("assistant", content, {} if finalize else {PARTIAL: True})
        last = self._trailing_partial(session_id)
        if last is None:
            if finalize and not content:
                self._journal.session_path(session_id)  # still refuse a bad id
                return True
            self._journal.append(session_id, data)
        elif finalize and not content:
            append_records(self._journal, session_id, [(EDIT, {OF: last.seq, DROP: True})])
            return True
        else:
            edit = edit_data(last.seq, last.data.get("content"), content, finalize)
            if len(edit) > 1:  # more than the target: something changed
                append_records(self._journal, session_id, [(EDIT, edit)])
        if finalize:
            self._mirror_messages(session_id, [SessionMessage("assistant", content, time.time(), {})])
        return True

    def discard_partial_assistant_message(self, session_id: str) -> bool:
        """Remove the trailing in-progress assistant turn, if there is one."""
        last = self._trailing_partial(session_id)
        if last is None:
            self._journal.session_path(session_id)
        else:
            append_records(self._journal, session_id, [(EDIT, {OF: last.seq, DROP: True})])
        return True

    def _trailing_partial(self, session_id: str) -> Record | None:
        """The session's last message if it is an unfinished assistant turn."""
        state = self._journal.state(session_id)
        last: Any = state.messages[-1] if state is not None and state.messages else None
        return last if last is not None and is_partial(last.data) else None
