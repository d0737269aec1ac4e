"""Google ADK: `JournalSessionService`, a `BaseSessionService` keeping sessions in a journal store.

    from google.adk.runners import Runner
    from journal.integrations.adk import JournalSessionService

    runner = Runner(agent=agent, app_name="support", session_service=JournalSessionService("./sessions"))

Strategy: each ADK session is one journal session, its app and user state two more
(`adk_records` names them and shapes the records; FORMAT.md, "Google ADK sessions"). ADK's
rules are those of its in-memory and SQL services: ``temp:`` state is applied to the caller's
session object and never stored, ``app:`` and ``user:`` state is shared by every session of the
app or user, a partial event is not stored, and an append from a session object that is older
than the stored session raises `StaleSessionError`. That check compares the object's marker
(the journal seq of the last message it saw) with the log's, and must not race another
writer: every write to a session (create, append, delete) and every read-modify-write of shared
state holds a lock file of its own, ``<root>/.adk-locks/<journal dir name>``, across processes.
Locks are taken session first, then app state, then user state, so two writers never wait on
each other. The async methods run the journal calls in threads, one call per session at a
time in call order (an `asyncio.Lock` per session and event loop), so the loop never waits for
an fsync and a session's events keep the order they were appended in.

Requires ``google-adk`` 2.13: ``pip install 'journal[adk]'``.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.platform import time as platform_time
from google.adk.platform import uuid as platform_uuid
from google.adk.sessions import _session_util  # ADK's own state splitting, to match it exactly
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from typing_extensions import override

from ..errors import UnreadableSessionWarning, UnsupportedFormatError
from ..log.record import MAX_TS, MESSAGE, META, MIN_TS
from ..log.session import DURABILITY_MODES
from ..log.summary import read_summary
from ..native import Journal
from . import adk_records as records
from .adk_locks import CallOrder, LockFiles

__all__ = ["JournalSessionService"]

LOCK_DIR = ".adk-locks"  # a dot name: never a session directory, left alone by listings
# DatabaseSessionService's words, so callers that match on them keep working.
STALE_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)

T = TypeVar("T")


class JournalSessionService(BaseSessionService):
    """ADK sessions, events and app/user state in a journal store (crash-safe JSONL logs).

    Args:
        session_dir: the store directory, created if missing (ignored when `journal` is given).
        durability: of every write: "always", "batch" (group commit) or "none"
            (`journal.Journal`); None: "batch", or the mode of the `journal` given.
        journal: an open `Journal` to use instead of opening `session_dir`; it is not closed
            by `close()`.

    Raises:
        ValueError: an unknown durability mode.
        StoreRootError: `session_dir` is a file or cannot be written.

    The store stays readable with the ``journal`` CLI: each session is ``adk/<app>/<user>/<id>``
    (``journal show``), its events are messages with a role and text (``journal search``).
    """

    def __init__(
        self,
        session_dir: str | os.PathLike[str] = "./sessions",
        *,
        durability: str | None = None,
        journal: Journal | None = None,
    ) -> None:
        if durability is not None and durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, not {durability!r}")
        self._owns_journal = journal is None
        if journal is None:
            journal = Journal(session_dir, durability=durability or "batch")
        self.journal = journal
        self.durability = durability  # None: the journal's own mode
        self._locks = LockFiles(self.journal, LOCK_DIR)
        self._order = CallOrder()

    # -- BaseSessionService ------------------------------------------------------------------

    @override
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        session_id = (session_id.strip() if session_id else None) or platform_uuid.new_uuid()
        key = records.session_key(app_name, user_id, session_id)
        now = platform_time.get_time()
        incarnation = platform_uuid.new_uuid()
        names = (app_name, user_id, session_id)
        merged, marker = await self._run(key, self._create, names, state or {}, now, incarnation)
        session = Session(
            id=session_id, app_name=app_name, user_id=user_id, state=merged, last_update_time=now
        )
        session._storage_update_marker = marker
        return session

    @override
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        session_id = session_id.strip() if session_id else session_id
        key = records.session_key(app_name, user_id, session_id)
        return await self._run(key, self._get, app_name, user_id, session_id, config)

    @override
    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        return await asyncio.to_thread(self._list, app_name, user_id)

    @override
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        session_id = session_id.strip() if session_id else session_id
        key = records.session_key(app_name, user_id, session_id)
        await self._run(key, self._delete, key)

    @override
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._shared_state, records.user_key(app_name, user_id))

    @override
    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        # As ADK's SQL services: temp: state reaches the caller's object, never the store.
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        key = records.session_key(session.app_name, session.user_id, session.id)
        async with self._order.hold(key):
            # What the object knew is read once earlier calls on the session have updated it.
            marker = await self._thread(self._append, key, _Seen(session), event)
            if marker is None:  # this very event again (a retried call): stored once, as in ADK's
                return event
            session.last_update_time = event.timestamp
            session._storage_update_marker = marker
            return self._commit_event_to_session(session, event)

    async def close(self) -> None:
        """Close the journal this service opened (one given to it is left open)."""
        if self._owns_journal:
            await asyncio.to_thread(self.journal.close)

    async def __aenter__(self) -> JournalSessionService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the work, in a thread ---------------------------------------------------------------

    async def _run(self, key: str, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in a thread, after every earlier call on session `key` of this loop."""
        async with self._order.hold(key):
            return await self._thread(work, *args)

    @staticmethod
    async def _thread(work: Callable[..., T], *args: Any) -> T:
        task = asyncio.ensure_future(asyncio.to_thread(work, *args))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The thread runs on: later calls on the session must still come after it. (A
            # cancelled append may be stored; the caller's object then reads as stale.)
            await asyncio.wait([task])
            raise

    def _create(
        self, names: tuple[str, str, str], state: dict[str, Any], now: float, incarnation: str
    ) -> tuple[dict[str, Any], str]:
        app_name, user_id, session_id = names
        key = records.session_key(*names)
        deltas = _session_util.extract_json_safe_state_delta(state)
        with self._locks.hold(key):
            if self.journal.state(key) is not None:  # an ADK session, or anything else: never mixed
                raise AlreadyExistsError(f"Session with id {session_id} already exists.")
            meta = records.header(app_name, user_id, session_id, deltas["session"], now, incarnation)
            self.journal.append_batch(key, [(META, meta, _ts(now))], durability=self.durability)
            source = f"create_session {session_id}"
            app_state = self._update_shared(records.app_key(app_name), deltas["app"], source)
            user_state = self._update_shared(records.user_key(app_name, user_id), deltas["user"], source)
        return records.merged_state(app_state, user_state, deltas["session"]), records.marker(meta, 0)

    def _get(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None
    ) -> Session | None:
        found = self._stored(records.session_key(app_name, user_id, session_id))
        if found is None:
            return None
        events = found.events
        if config is not None:
            events = records.select_events(events, config.num_recent_events, config.after_timestamp)
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=self._merged(app_name, user_id, found.metadata["state"]),
            events=[_event(e) for e in events],
            last_update_time=found.last_update_time,
        )
        session._storage_update_marker = found.marker
        return session

    def _list(self, app_name: str, user_id: str | None) -> ListSessionsResponse:
        app_state = self._shared_state(records.app_key(app_name))
        user_states: dict[str, dict[str, Any]] = {}
        sessions = []
        for key in self.journal.sessions():
            parts = records.parse_session_key(key)
            if parts is None or parts[0] != app_name or (user_id is not None and parts[1] != user_id):
                continue
            metadata = self._metadata(key)
            if metadata is None or not self._readable(key, metadata):
                continue
            owner = parts[1]
            if owner not in user_states:
                user_states[owner] = self._shared_state(records.user_key(app_name, owner))
            state = records.merged_state(app_state, user_states[owner], metadata["state"])
            last_update_time = float(metadata["last_update_time"])
            sessions.append(
                Session(
                    id=parts[2],
                    app_name=app_name,
                    user_id=owner,
                    state=state,
                    last_update_time=last_update_time,
                )
            )
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    def _delete(self, key: str) -> None:
        with self._locks.hold(key, remove=True):
            self.journal.delete(key)

    def _append(self, key: str, seen: _Seen, event: Event) -> str | None:
        """Store `event` if the session is still as `seen`; the session's new marker, or None
        if this very event is stored already."""
        dump = event.model_dump(mode="json", exclude_none=True)
        deltas = _session_util.extract_json_safe_state_delta(event.actions.state_delta or {})
        with self._locks.hold(key):
            found = self._stored(key)
            if found is None:
                raise SessionNotFoundError(f"Session {seen.session_id} not found.")
            if any(e.get("id") == event.id and e == dump for e in found.events):
                return None
            if seen.is_stale(found):
                raise StaleSessionError(STALE_MESSAGE)
            meta: dict[str, Any] = {"last_update_time": event.timestamp}
            if deltas["session"]:
                meta["state"] = {**found.metadata["state"], **deltas["session"]}
            ts = _ts(event.timestamp)
            batch = [(MESSAGE, records.event_message(event.author, dump), ts), (META, meta, ts)]
            seq = self.journal.append_batch(key, batch, durability=self.durability)[0]
            # After the event, which is the record of truth: a crash between the two leaves
            # the event (its state_delta included) without its app/user state change.
            source = f"session {seen.session_id}, event {event.id}"
            self._update_shared(records.app_key(seen.app_name), deltas["app"], source)
            self._update_shared(records.user_key(seen.app_name, seen.user_id), deltas["user"], source)
        return records.marker(found.metadata, seq)

    # -- reading and shared state ------------------------------------------------------------

    def _stored(self, key: str) -> records.Stored | None:
        state = self.journal.state(key)
        path = self.journal.session_path(key)
        return None if state is None else records.stored(state.metadata, state.messages, path)

    def _metadata(self, key: str) -> dict[str, Any] | None:
        """A session's metadata, from its summary files when they say it cheaply."""
        summary = read_summary(self.journal.fs, self.journal.session_path(key))
        if summary is not None:
            return summary.metadata
        state = self.journal.state(key)
        return None if state is None else state.metadata

    def _readable(self, key: str, metadata: dict[str, Any]) -> bool:
        """Is this an ADK session this module reads? One it cannot is left out of a listing
        with a warning, as the journal's own listings do."""
        try:
            return records.is_adk_session(metadata, self.journal.session_path(key))
        except UnsupportedFormatError as exc:
            warnings.warn(f"left out of the sessions: {exc}", UnreadableSessionWarning, stacklevel=2)
            return False

    def _shared_state(self, key: str) -> dict[str, Any]:
        state = self.journal.state(key)
        found = state.metadata.get("state") if state is not None else None
        return dict(records.fresh(found)) if isinstance(found, dict) else {}

    def _merged(self, app_name: str, user_id: str, session_state: dict[str, Any]) -> dict[str, Any]:
        app_state = self._shared_state(records.app_key(app_name))
        user_state = self._shared_state(records.user_key(app_name, user_id))
        return records.merged_state(app_state, user_state, session_state)

    def _update_shared(self, key: str, delta: dict[str, Any], source: str) -> dict[str, Any]:
        """Merge `delta` into the app or user state at `key`; return the state after it."""
        if not delta:
            return self._shared_state(key)
        with self._locks.hold(key):
            state = {**self._shared_state(key), **delta}
            batch = [(MESSAGE, records.state_message(delta, source), None), (META, {"state": state}, None)]
            self.journal.append_batch(key, batch, durability=self.durability)
        return state


class _Seen:
    """What the caller's session object knew of the store, for the stale-session check."""

    def __init__(self, session: Session) -> None:
        self.app_name, self.user_id, self.session_id = session.app_name, session.user_id, session.id
        self.marker = session._storage_update_marker
        self.last_update_time = session.last_update_time
        self.last_event_id = session.events[-1].id if session.events else None

    def is_stale(self, found: records.Stored) -> bool:
        if self.marker is not None and self.marker.startswith(records.MARKER_PREFIX):
            return self.marker != found.marker
        # A session object this service did not hand out (built by hand, or by another
        # service): stale, as for DatabaseSessionService, if the store is newer and its last
        # event is not the object's.
        if found.last_update_time <= self.last_update_time:
            return False
        last_stored = found.events[-1].get("id") if found.events else None
        return last_stored != self.last_event_id


def _event(data: dict[str, Any]) -> Event:
    return Event.model_validate(records.fresh(data))


def _ts(timestamp: float) -> float | None:
    """A record time for an event time: the event's, if the journal can keep it."""
    return float(timestamp) if MIN_TS <= timestamp <= MAX_TS else None
