"""OpenAI Agents SDK: `JournalSession`, a `Session` that keeps each conversation in a journal.

    from agents import Runner
    from journal.integrations.openai_agents import JournalSession

    session = JournalSession("user-42", "./sessions")
    result = await Runner.run(agent, "Hello", session=session)   # the next run sees this one

It implements the SDK's `Session` protocol (openai-agents 0.24) and behaves as the SDK's own
`SQLiteSession` does (`get_items(limit)`, `add_items`, `pop_item`, `clear_session`, and
`session_settings.limit` as the default limit), with one journal session per SDK session, of
the same id. ``import journal`` never imports the SDK; this module imports it only to read
`session_settings`. Install it with ``pip install 'journal[openai-agents]'``.

How items are stored: each item `add_items` is given is one message record whose data is

    {"role": <the item's role, else its type>, "content": <its text, or null>, "item": <the item>}

- ``item`` is the item exactly as given (as JSON: a tuple comes back as a list); `get_items`
  and `pop_item` return it, every item type the SDK has (messages, function calls and their
  outputs, reasoning items, computer, shell, MCP and custom tool items, ...) alike.
- ``role`` and ``content`` are for people and tools (`journal show`, `journal search`,
  ``messages.json``): the role is "user", "assistant", "system", ... for a message, else the
  item's type ("function_call", "function_call_output", "reasoning", ...); the content is the
  item's text: a message's text parts joined by newlines, a tool call as ``name(arguments)``,
  a tool's string output, a reasoning summary; null when it has none.
- A message record without an ``item`` (appended by other means, such as
  ``journal append ID user TEXT``) reads as ``{"role": ..., "content": ...}``, an easy input
  message; one with neither is skipped, as `SQLiteSession` skips a row that does not decode.

What each call writes (nothing is ever rewritten):

- `add_items`: the items as one all-or-nothing batch.
- `pop_item`: a ``pop`` record naming the last item's record (FORMAT.md "Pop records"), so
  `journal show` and ``messages.json`` no longer show it while the log keeps both records. A
  pop applies only if that item is still the last one: this session then reads the records
  logged between its read and its pop, and if another process moved the end first (appended,
  or popped the same item), it reads and pops again; two processes popping at once take two
  items.
- `clear_session`: a ``clear`` record; the items before it stay in the log and its archives.

The async methods run their journal calls on a thread pool, never on the event loop, one at a
time per session id and in the order they were called, whichever task called them; a write
whose caller is cancelled still finishes before the cancellation is raised (as with
`SQLiteSession`). Every `JournalSession` of a process on one directory shares one `Journal`,
which keeps ``messages.json`` at most 10 s behind and is closed, its views written, by the
last `close()` (or at exit).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

import orjson

from ..log.pop import pop_data
from ..log.record import POP, Record
from ..log.state import SessionState, fold
from ..native import Journal
from ._journals import acquire, release, strand_for

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

__all__ = ["JournalSession"]

ITEM = "item"  # the data key holding the SDK item verbatim
_TEXT_KEYS = ("content", "output", "summary")  # where an item keeps its text, in this order


class JournalSession:
    """An OpenAI Agents SDK session stored in a journal (see the module docstring).

    Args:
        session_id: the conversation's id; also the journal session's id.
        session_dir: the store directory, created if missing.
        durability: "always", "batch" (group commit) or "none", for the `Journal` this session
            opens; with `journal`, that Journal's own mode applies.
        session_settings: the SDK's `SessionSettings` (or a dict of them); its ``limit`` is
            what `get_items()` returns when called without one. Default: no limit.
        journal: an open `Journal` to use instead; it is not closed by `close()`.

    Raises:
        InvalidSessionIdError: `session_id` cannot name a session.
        StoreRootError: `session_dir` is a file or cannot be written.
    """

    session_id: str
    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        session_dir: str | os.PathLike[str] = "./sessions",
        *,
        durability: str = "batch",
        session_settings: SessionSettings | dict[str, Any] | None = None,
        journal: Journal | None = None,
    ) -> None:
        from agents.memory.session_settings import SessionSettings, coerce_session_settings

        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )
        self._owned = journal is None
        self.journal = journal if journal is not None else acquire(session_dir, durability)
        try:
            self.journal.session_path(session_id)  # a bad id fails here, not on first use
        except BaseException:
            self.close()
            raise
        self._strand = strand_for(self.journal, session_id)
        self._closed = False

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first: the latest `limit` of them (0: none; negative:
        all), or with no `limit` the latest ``session_settings.limit`` (None: all)."""
        from agents.memory.session_settings import resolve_session_limit

        wanted = resolve_session_limit(limit, self.session_settings)
        self._check_open()
        items = await self._strand.run(lambda: self._latest(wanted))
        return cast("list[TResponseInputItem]", items)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append `items` to the session, all or none of them.

        Raises:
            TypeError: an item is not a dict.
            InvalidRecordError: an item cannot be stored as JSON exactly (NaN, a set, ...).
        """
        self._check_open()
        if not items:
            return
        records = [_record(item) for item in items]
        await self._strand.write(lambda: self.journal.append_many(self.session_id, records))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the most recent item and return it; None if the session has none."""
        self._check_open()
        return cast("TResponseInputItem | None", await self._strand.write(self._pop))

    async def clear_session(self) -> None:
        """Remove every item: a "clear" record (the log keeps what came before)."""
        self._check_open()
        await self._strand.write(self._clear)

    def close(self) -> None:
        """Let go of the store (its views are written when its last session closes). The
        session cannot be used afterwards; closing twice is harmless."""
        self._closed = True
        if self._owned:
            self._owned = False
            release(self.journal)

    # -- on the strand -----------------------------------------------------------------------

    def _latest(self, limit: int | None) -> list[dict[str, Any]]:
        if limit is not None and limit < 0:  # as SQLite's LIMIT: a negative one is no limit
            limit = None
        state = self.journal.state(self.session_id)
        items: list[dict[str, Any]] = []
        for record in reversed(state.messages if state is not None else []):
            if limit is not None and len(items) >= limit:
                break
            item = _item(record.data)
            if item is not None:
                items.append(item)
        items.reverse()
        return items

    def _pop(self) -> dict[str, Any] | None:
        """Log the pop of the last item until one applies (FORMAT.md "Pop records")."""
        while True:
            state = self.journal.state(self.session_id)
            if state is None or not state.messages:
                return None
            last = state.messages[-1]
            entry = (POP, pop_data(last.seq), None)
            seq = self.journal.append_batch(self.session_id, [entry])[0]
            popped = _popped(
                last, [r for r in self.journal.read(self.session_id, state.last_seq + 1) if r.seq < seq]
            )
            if popped is None:
                continue  # another writer moved the end first: our pop changed nothing
            item = _item(popped.data)
            if item is not None:  # else a record that is no item went: pop the next one
                return item

    def _clear(self) -> None:
        state = self.journal.state(self.session_id)
        if state is not None and state.messages:
            self.journal.clear(self.session_id)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"JournalSession {self.session_id!r} is closed")


def _popped(last: Record, between: list[Record]) -> Record | None:
    """The message a pop of `last` removed, given the records logged between the read that
    saw `last` as the last message and the pop; None if they moved the end (no pop then)."""
    state = fold(between, SessionState(messages=[last]))
    end = state.messages[-1] if state.messages else None
    return end if end is not None and end.seq == last.seq else None


def _record(item: Any) -> dict[str, Any]:
    """The message record data of one item (see the module docstring)."""
    if not isinstance(item, dict):
        raise TypeError(f"a session item must be a dict (a TResponseInputItem), not {type(item).__name__}")
    role, kind = item.get("role"), item.get("type")
    role = role if isinstance(role, str) else kind if isinstance(kind, str) else ITEM
    return {"role": role, "content": _text(item), ITEM: item}


def _text(item: dict[str, Any]) -> str | None:
    """The item's text for people (see the module docstring), or None."""
    for key in _TEXT_KEYS:
        text = _plain(item.get(key))
        if text is not None:
            return text
    name, arguments = item.get("name"), item.get("arguments", item.get("input"))
    if isinstance(name, str) and isinstance(arguments, str):
        return f"{name}({arguments})"
    return None


def _plain(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return None
    parts = [p.get("text", p.get("refusal")) for p in value if isinstance(p, dict)]
    texts = [p for p in parts if isinstance(p, str)]
    return "\n".join(texts) if texts else None


def _item(data: Any) -> dict[str, Any] | None:
    """The SDK item a message record stands for (a copy: records are shared), or None."""
    if not isinstance(data, dict):
        return None
    item = data.get(ITEM)
    if isinstance(item, dict):
        return cast("dict[str, Any]", orjson.loads(orjson.dumps(item)))
    role, content = data.get("role"), data.get("content")
    if isinstance(role, str) and isinstance(content, (str, list)):
        return {"role": role, "content": orjson.loads(orjson.dumps(content))}
    return None
