"""Cross-session recall, as PraisonAI 1.7: `search`, `window` and `recent`.

Strategy: the same dependency-free substring scan and scoring as PraisonAI's store, over each
session's full history (journal archives nothing out of `messages`, so there are no
"archived" items: every item has ``"archived": False``). The result objects have the fields
and `as_dict` of PraisonAI's `SessionHit` and `SessionSummary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from ..native import Journal
from .session_data import SessionData

AUTOMATED_SOURCES = frozenset({"scheduled", "automated", "cron", "system", "batch"})
LINEAGE_KEYS = ("lineage_id", "root_session_id", "thread_id")


@dataclass
class SessionHit:
    """One session matching a search, with the messages around the best match."""

    session_id: str
    title: str = ""
    when: str | None = None
    snippet: str = ""
    score: float = 0.0
    anchor_index: int = -1
    messages: list[dict[str, Any]] = field(default_factory=list)
    bookends: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict; `bookends` only when not empty."""
        result: dict[str, Any] = {
            "session_id": self.session_id,
            "title": self.title,
            "when": self.when,
            "snippet": self.snippet,
            "score": self.score,
            "anchor_index": self.anchor_index,
            "messages": self.messages,
        }
        if self.bookends:
            result["bookends"] = self.bookends
        return result


@dataclass
class SessionSummary:
    """A session in a "recent" listing."""

    session_id: str
    title: str = ""
    when: str | None = None
    message_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "title": self.title,
            "when": self.when,
            "message_count": self.message_count,
        }


class RecallMixin:
    """`search`, `window` and `recent`."""

    _journal: Journal
    BOOKEND_SIZE = 2
    AUTOMATED_RATE_THRESHOLD = 60.0
    AUTOMATED_DEMOTION = 0.25

    if TYPE_CHECKING:

        def get_session(self, session_id: str) -> SessionData: ...

        def list_sessions(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def search(self, query: str, *, limit: int = 5, window: int = 5) -> list[SessionHit]:
        """The `limit` sessions that best match `query` (case-insensitive substring and terms),
        each with ±`window` messages around its best message; one per lineage."""
        query = (query or "").strip()
        if not query:
            return []
        hits: list[tuple[str | None, SessionHit]] = []
        for session_id in list(self._journal.sessions()):
            try:
                data = self.get_session(session_id).to_dict()
            except JournalError:
                continue
            hit = self._hit(data, query, window)
            if hit is not None:
                hits.append((_lineage_key(data), hit))
        hits.sort(key=lambda item: (item[1].score, item[1].when or ""), reverse=True)
        found: list[SessionHit] = []
        seen: set[str] = set()
        for lineage, hit in hits:
            if lineage is not None:
                if lineage in seen:
                    continue
                seen.add(lineage)
            found.append(hit)
            if len(found) >= limit:
                break
        return found

    def _hit(self, data: dict[str, Any], query: str, window: int) -> SessionHit | None:
        messages = data["messages"]
        needle = query.lower()
        terms = needle.split()
        best_index, best_score, total = -1, 0.0, 0.0
        for index, message in enumerate(messages):
            lowered = str(message.get("content", "")).lower()
            score = (2.0 if needle in lowered else 0.0) + sum(1.0 for term in terms if term in lowered)
            total += score
            if score > best_score:
                best_index, best_score = index, score
        if best_index < 0:
            return None
        if self._is_automated(data, messages):
            total *= self.AUTOMATED_DEMOTION
        return SessionHit(
            session_id=data["session_id"],
            title=_title(data),
            when=data.get("updated_at") or data.get("created_at"),
            snippet=_snippet(messages[best_index].get("content", ""), query),
            score=total,
            anchor_index=best_index,
            messages=_items(messages, best_index - window, best_index + window + 1),
            bookends=_bookends(messages, self.BOOKEND_SIZE),
        )

    def _is_automated(self, data: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
        meta = data.get("metadata") or {}
        if str(data.get("source") or meta.get("source") or "").lower() in AUTOMATED_SOURCES:
            return True
        if meta.get("automated") is True:
            return True
        stamps = [float(m["timestamp"]) for m in messages if m.get("timestamp") is not None]
        if len(stamps) < 4:
            return False
        span_hours = (max(stamps) - min(stamps)) / 3600.0
        return span_hours > 0 and len(stamps) / span_hours > self.AUTOMATED_RATE_THRESHOLD

    def window(
        self, session_id: str, around_message_id: str | int | None = None, *, window: int = 5
    ) -> list[dict[str, Any]]:
        """±`window` messages around message number `around_message_id` (default and when not a
        number: the last), as items {"index", "role", "content", "timestamp", "archived"}."""
        messages = self.get_session(session_id).to_dict()["messages"]
        if not messages:
            return []
        anchor = len(messages) - 1
        if around_message_id is not None and str(around_message_id) != "":
            try:
                anchor = int(around_message_id)
            except (TypeError, ValueError):
                anchor = len(messages) - 1
        anchor = max(0, min(anchor, len(messages) - 1))
        return _items(messages, anchor - window, anchor + window + 1)

    def recent(self, *, limit: int = 10) -> list[SessionSummary]:
        """The most recently updated sessions; title is the agent name, else the id."""
        return [
            SessionSummary(
                session_id=row.get("session_id", ""),
                title=row.get("agent_name") or row.get("session_id", ""),
                when=row.get("updated_at") or row.get("created_at"),
                message_count=row.get("message_count", 0),
            )
            for row in self.list_sessions(limit=limit)
        ]


def _item(index: int, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "role": message.get("role", ""),
        "content": message.get("content", ""),
        "timestamp": message.get("timestamp"),
        "archived": False,
    }


def _items(messages: list[dict[str, Any]], start: int, end: int) -> list[dict[str, Any]]:
    return [_item(i, messages[i]) for i in range(max(0, start), min(len(messages), end))]


def _title(data: dict[str, Any]) -> str:
    """metadata.title, else agent_name, else the first user message (60 chars), else the id."""
    explicit = (data.get("metadata") or {}).get("title")
    if explicit:
        return str(explicit)
    if data.get("agent_name"):
        return str(data["agent_name"])
    for message in data["messages"]:
        if message.get("role") == "user" and message.get("content"):
            return " ".join(str(message["content"]).split())[:60]
    return str(data.get("session_id", ""))


def _snippet(content: Any, query: str, width: int = 120) -> str:
    text = " ".join(str(content).split())
    pos = text.lower().find(query.lower())
    if pos < 0:
        return text[:width]
    start = max(0, pos - width // 2)
    end = min(len(text), start + width)
    return ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")


def _bookends(messages: list[dict[str, Any]], size: int) -> dict[str, list[dict[str, Any]]]:
    convo = [_item(i, m) for i, m in enumerate(messages) if m.get("role") in ("user", "assistant")]
    if not convo:
        return {}
    return {"opening": convo[:size], "closing": convo[-size:] if len(convo) > size else []}


def _lineage_key(data: dict[str, Any]) -> str | None:
    meta = data.get("metadata") or {}
    for key in LINEAGE_KEYS:
        value = data.get(key) or meta.get(key)
        if value:
            return str(value)
    return None
