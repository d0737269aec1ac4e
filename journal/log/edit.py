"""Pure folding of an "edit" record into the message it edits (FORMAT.md, "Edit records").

Strategy: a streamed assistant answer is one message record (its first flush, marked
``"metadata": {"partial": true}``) followed by edit records that extend, replace, finalize or
drop it. An edit names the seq of the message it edits ("of") and applies only while that
message is the last one and still partial; otherwise it changes nothing. So a flush costs the
new text only, and a stream that is never finalized still reads as everything it flushed.
The same function serves the live fold (`SessionState.apply`) and the compactor's.
"""

from __future__ import annotations

from typing import Any

from .record import MESSAGE, Record

OF = "of"  # the seq of the message record the edit applies to
APPEND = "append"  # text added to the end of the content
CONTENT = "content"  # the new content, replacing the old
FINAL = "final"  # true: the message is complete (its "partial" mark is removed)
DROP = "drop"  # true: the message is removed
PARTIAL = "partial"  # the message metadata key marking an unfinished streamed turn


def is_partial(data: Any) -> bool:
    """Whether a message's data is an unfinished streamed assistant turn."""
    if not isinstance(data, dict) or data.get("role") != "assistant":
        return False
    metadata = data.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get(PARTIAL))


def applies(edit: Any, message: Record | None) -> bool:
    """Whether `edit` (an edit record's data) edits `message`, the session's last message."""
    return (
        message is not None
        and isinstance(edit, dict)
        and type(edit.get(OF)) is int
        and edit[OF] == message.seq
        and is_partial(message.data)
    )


def apply_edit(edit: dict[str, Any], message: Record, ts: float) -> Record | None:
    """The message after `edit` (for which `applies` holds), stamped `ts`; None if dropped.
    `message` is left as it is: records are shared by states and never changed in place."""
    if edit.get(DROP) is True:
        return None
    data = dict(message.data)
    if CONTENT in edit:
        data["content"] = edit[CONTENT]
    text = edit.get(APPEND)
    if isinstance(text, str) and isinstance(data.get("content"), str):
        data["content"] = data["content"] + text
    if edit.get(FINAL) is True:
        data["metadata"] = {k: v for k, v in data["metadata"].items() if k != PARTIAL}
    return Record(message.seq, ts, MESSAGE, data, message.more)


def edit_data(of: int, previous: Any, content: Any, final: bool) -> dict[str, Any]:
    """The edit that turns a partial message whose content is `previous` into one whose
    content is `content`: only the new text when it extends the old, else the whole."""
    edit: dict[str, Any] = {OF: of}
    if isinstance(previous, str) and isinstance(content, str) and content.startswith(previous):
        if len(content) > len(previous):
            edit[APPEND] = content[len(previous) :]
    else:
        edit[CONTENT] = content
    if final:
        edit[FINAL] = True
    return edit
