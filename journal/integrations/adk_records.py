"""What `journal.integrations.adk` writes: journal ids, record data and the stale-session marker.

Strategy: pure functions between ADK values and the journal's records (FORMAT.md, "Google ADK
sessions"), no I/O, so the service module holds only locking, threads and ADK's rules.

- Ids: an ADK session is the journal session ``adk/<app>/<user>/<session>``, the app state
  ``adk-app/<app>``, a user's state ``adk-user/<app>/<user>``; each part has ``%`` and ``/``
  percent-escaped, so parts never contain the separator and the mapping is injective.
- An ADK session's log: one meta record (the header: names, incarnation, times, state), then
  per event one batch of a message record (``role`` and ``content`` for people, the event's
  JSON under ``adk_event``) and a meta record (``last_update_time``, and ``state`` when the
  session state changed).
- The stale-session marker is ``journal:<incarnation>:<seq of the last message>``: any
  message written since a session object was read changes it, and a session deleted and
  created again has a new incarnation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import UnsupportedFormatError

ADK_FORMAT = 1  # of the header's "adk_format": what this module writes
SESSION_PREFIX, APP_PREFIX, USER_PREFIX = "adk/", "adk-app/", "adk-user/"
MARKER_PREFIX = "journal:"
EVENT_KEY = "adk_event"

_ESCAPED = re.compile("%2F|%25")


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def _unescape(part: str) -> str:
    return _ESCAPED.sub(lambda m: "/" if m.group(0) == "%2F" else "%", part)


def session_key(app_name: str, user_id: str, session_id: str) -> str:
    """The journal id of an ADK session."""
    return SESSION_PREFIX + "/".join(_escape(p) for p in (app_name, user_id, session_id))


def app_key(app_name: str) -> str:
    """The journal id holding an app's state (the ``app:`` keys)."""
    return APP_PREFIX + _escape(app_name)


def user_key(app_name: str, user_id: str) -> str:
    """The journal id holding a user's state (the ``user:`` keys) within an app."""
    return USER_PREFIX + _escape(app_name) + "/" + _escape(user_id)


def parse_session_key(key: str) -> tuple[str, str, str] | None:
    """(app_name, user_id, session_id) of an ADK session's journal id, else None."""
    if not key.startswith(SESSION_PREFIX):
        return None
    parts = key[len(SESSION_PREFIX) :].split("/")
    if len(parts) != 3:
        return None
    app_name, user_id, session_id = (_unescape(p) for p in parts)
    return app_name, user_id, session_id


def header(
    app_name: str, user_id: str, session_id: str, state: dict[str, Any], now: float, incarnation: str
) -> dict[str, Any]:
    """The metadata a new ADK session starts with."""
    return {
        "adk_format": ADK_FORMAT,
        "app_name": app_name,
        "user_id": user_id,
        "session_id": session_id,
        "incarnation": incarnation,
        "create_time": now,
        "last_update_time": now,
        "state": state,
    }


def is_adk_session(metadata: dict[str, Any], path: str) -> bool:
    """Does this metadata hold an ADK session header? A header of an ``adk_format`` this
    module does not read raises `UnsupportedFormatError` (`path`: the session's directory)."""
    version = metadata.get("adk_format")
    if version is None:
        return False
    if version != ADK_FORMAT or not isinstance(metadata.get("state"), dict):
        raise UnsupportedFormatError(path, version)
    return True


def marker(metadata: dict[str, Any], last_message_seq: int) -> str:
    """The stale-session marker of a session whose last message has `last_message_seq`."""
    return f"{MARKER_PREFIX}{metadata.get('incarnation')}:{last_message_seq}"


def event_message(author: str, dump: dict[str, Any]) -> dict[str, Any]:
    """The message record data of an event: `dump` is ``Event.model_dump(mode="json",
    exclude_none=True)``; role and content are only what a person reading the log needs."""
    parts = (dump.get("content") or {}).get("parts") or []
    if author == "user":
        role = "user"
    elif parts and all("function_response" in p for p in parts):
        role = "tool"
    else:
        role = "model"
    lines = [_readable(part) for part in parts]
    return {
        "role": role,
        "content": "\n".join(line for line in lines if line),
        "author": author,
        EVENT_KEY: dump,
    }


def _readable(part: dict[str, Any]) -> str:
    if isinstance(part.get("text"), str) and not part.get("thought"):
        return str(part["text"])
    if "function_call" in part:
        call = part["function_call"]
        return f"{call.get('name')}({_json(call.get('args') or {})})"
    if "function_response" in part:
        response = part["function_response"]
        return f"{response.get('name')} -> {_json(response.get('response'))}"
    return ""


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def state_message(delta: dict[str, Any], source: str) -> dict[str, Any]:
    """The message record data of an app or user state change (kept so people can see who
    changed shared state when; the current state is the metadata's "state")."""
    content = "\n".join(f"{key} = {_json(value)}" for key, value in delta.items())
    return {"role": "state", "content": content, "source": source, "state_delta": delta}


@dataclass
class Stored:
    """An ADK session as its journal session holds it."""

    metadata: dict[str, Any]
    events: list[dict[str, Any]]  # the events' JSON, oldest first
    last_message_seq: int

    @property
    def marker(self) -> str:
        return marker(self.metadata, self.last_message_seq)

    @property
    def last_update_time(self) -> float:
        return float(self.metadata["last_update_time"])


def stored(metadata: dict[str, Any], messages: Sequence[Any], path: str) -> Stored | None:
    """The ADK session in a journal session's state (its metadata and message records), or
    None if it holds none (`is_adk_session`). Messages that are not events (a ``journal append`` by hand) are
    left out of the events but still count for the marker."""
    if not is_adk_session(metadata, path):
        return None
    events = [m.data[EVENT_KEY] for m in messages if isinstance(m.data, dict) and EVENT_KEY in m.data]
    return Stored(metadata, events, messages[-1].seq if messages else 0)


def select_events(
    events: list[dict[str, Any]], num_recent_events: int | None, after_timestamp: float | None
) -> list[dict[str, Any]]:
    """`GetSessionConfig` applied as ADK's SQL services do: events at or after
    `after_timestamp` (a falsy time filters nothing), then the last `num_recent_events`."""
    if after_timestamp:
        events = [e for e in events if e["timestamp"] >= after_timestamp]
    if num_recent_events is not None:
        events = events[-num_recent_events:] if num_recent_events else []
    return events


def merged_state(
    app_state: dict[str, Any], user_state: dict[str, Any], session_state: dict[str, Any]
) -> dict[str, Any]:
    """A session's state as ADK hands it out: its own keys, then ``app:`` and ``user:`` ones;
    a fresh copy, so the caller may change it without touching what the journal caches."""
    merged = dict(session_state)
    merged.update({"app:" + key: value for key, value in app_state.items()})
    merged.update({"user:" + key: value for key, value in user_state.items()})
    copied: dict[str, Any] = fresh(merged)
    return copied


def fresh(value: Any) -> Any:
    """A deep copy of JSON data (records' data are shared with the journal's cache)."""
    return orjson.loads(orjson.dumps(value))
