"""`journal.integrations.adk.JournalSessionService` against google-adk 2.13's own types: events
round-trip exactly across service instances, state prefixes behave as in ADK's
`InMemorySessionService` (side by side), the stale-session check, order under concurrent
tasks and processes, and the journal CLI reading what the service wrote."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events import Event, EventActions
from google.adk.platform import time as platform_time
from google.adk.sessions import InMemorySessionService, Session
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.genai import types

import journal
from journal.errors import ReadOnlyError, UnreadableSessionWarning, UnsupportedFormatError
from journal.integrations import adk_records
from journal.integrations.adk import LOCK_DIR, JournalSessionService
from journal.log import naming

T = TypeVar("T")
APP = "support"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def text_event(author: str, text: str, timestamp: float | None = None, **actions: Any) -> Event:
    role = "user" if author == "user" else "model"
    event = Event(author=author, content=types.Content(role=role, parts=[types.Part(text=text)]))
    if timestamp is not None:
        event.timestamp = timestamp
    if actions:
        event.actions = EventActions(**actions)
    return event


def rich_events() -> list[Event]:
    """Events with every kind of part and action ADK produces in a turn with tools."""
    call = types.FunctionCall(id="call-1", name="get_weather", args={"city": "Paris", "days": [1, 2.5, None]})
    response = types.FunctionResponse(id="call-1", name="get_weather", response={"forecast": "sunny"})
    usage = types.GenerateContentResponseUsageMetadata(prompt_token_count=12, candidates_token_count=3)
    return [
        Event(
            author="user",
            invocation_id="inv-1",
            content=types.Content(
                role="user",
                parts=[
                    types.Part(text="Weather in Paris? Photo attached."),
                    types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG\x00\xff")),
                ],
            ),
        ),
        Event(
            author="assistant",
            invocation_id="inv-1",
            content=types.Content(
                role="model",
                parts=[types.Part(text="Let me look that up.", thought=True), types.Part(function_call=call)],
            ),
            long_running_tool_ids={"call-1"},
            usage_metadata=usage,
            custom_metadata={"trace": {"span": 7}},
            branch="root.assistant",
        ),
        Event(
            author="assistant",
            invocation_id="inv-1",
            content=types.Content(role="user", parts=[types.Part(function_response=response)]),
            actions=EventActions(
                state_delta={"city": "Paris", "nothing": None},
                artifact_delta={"forecast.txt": 2},
                transfer_to_agent="planner",
                escalate=True,
            ),
        ),
        Event(
            author="assistant",
            invocation_id="inv-1",
            content=types.Content(role="model", parts=[types.Part(text="Sunny in Paris.")]),
            turn_complete=True,
            error_code="NONE",
            interrupted=False,
        ),
    ]


def test_events_round_trip_exactly_across_service_instances(tmp_path: Path) -> None:
    events = rich_events()

    async def write() -> str:
        async with JournalSessionService(tmp_path, durability="always") as service:
            session = await service.create_session(app_name=APP, user_id="u1", state={"plan": "gold"})
            for event in events:
                await service.append_event(session, event.model_copy(deep=True))
            return session.id

    async def read(session_id: str) -> Session | None:
        async with JournalSessionService(tmp_path) as service:
            return await service.get_session(app_name=APP, user_id="u1", session_id=session_id)

    session_id = run(write())
    session = run(read(session_id))
    assert session is not None
    assert session.events == events
    content = session.events[0].content
    assert content is not None and content.parts is not None and content.parts[1].inline_data is not None
    assert content.parts[1].inline_data.data == b"\x89PNG\x00\xff"
    assert session.state == {"plan": "gold", "city": "Paris", "nothing": None}
    assert session.last_update_time == events[-1].timestamp


def test_each_event_is_a_message_people_can_read(tmp_path: Path) -> None:
    async def write() -> str:
        async with JournalSessionService(tmp_path) as service:
            session = await service.create_session(app_name=APP, user_id="u1")
            for event in rich_events():
                await service.append_event(session, event)
            return session.id

    key = adk_records.session_key(APP, "u1", run(write()))
    with journal.Journal(tmp_path) as j:
        state = j.state(key)
    assert state is not None
    assert [(m.data["role"], m.data["content"]) for m in state.messages] == [
        ("user", "Weather in Paris? Photo attached."),
        ("model", 'get_weather({"city":"Paris","days":[1,2.5,null]})'),
        ("tool", 'get_weather -> {"forecast":"sunny"}'),
        ("model", "Sunny in Paris."),
    ]
    assert [m.data["author"] for m in state.messages] == ["user", "assistant", "assistant", "assistant"]


class SideBySide:
    """The same calls on ADK's InMemorySessionService and on the journal service; each call
    must give both the same visible result (the return value's JSON, or the same error)."""

    def __init__(self, directory: Path) -> None:
        self.memory = InMemorySessionService()
        self.journal = JournalSessionService(directory)

    async def same(self, call: Callable[[BaseSessionService], Awaitable[Any]]) -> Any:
        results = []
        for service in (self.memory, self.journal):
            try:
                results.append(("ok", visible(await call(service))))
            except (AlreadyExistsError, SessionNotFoundError, ValueError) as exc:
                results.append((type(exc).__name__, str(exc)))
        assert results[0] == results[1]
        return results[1][1]

    async def pair(self, **names: str) -> tuple[Session, Session]:
        """The session `names` as each service hands it out (to append to)."""
        found = [await s.get_session(app_name=APP, **names) for s in (self.memory, self.journal)]
        assert found[0] is not None and found[1] is not None
        return found[0], found[1]

    async def append(self, sessions: tuple[Session, Session], event: Event) -> Any:
        """Append copies of `event` through each service's own session object."""
        results = []
        for service, session in zip((self.memory, self.journal), sessions, strict=True):
            returned = await service.append_event(session, event.model_copy(deep=True))
            results.append((visible(returned), visible(session)))
        assert results[0] == results[1]
        return results[1]


def visible(value: Any) -> Any:
    """What a caller sees of a result: a model's JSON (events sorted out by position)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def test_the_same_calls_give_the_same_results_as_adks_in_memory_service(tmp_path: Path) -> None:
    sides = SideBySide(tmp_path)

    async def scenario() -> None:
        platform_time.set_time_provider(lambda: 1000.0)  # both services stamp creations alike
        try:
            await calls()
        finally:
            platform_time.reset_time_provider()
            await sides.journal.close()

    async def calls() -> None:
        first = {"tier": "gold", "app:motd": "hi", "user:lang": "en", "temp:scratch": 1}
        await sides.same(lambda s: s.create_session(app_name=APP, user_id="u1", session_id="s1", state=first))
        await sides.same(
            lambda s: s.create_session(app_name=APP, user_id="u2", session_id="s2", state={"user:lang": "fr"})
        )
        await sides.same(lambda s: s.create_session(app_name=APP, user_id="u1", session_id=" s3 "))
        await sides.same(lambda s: s.create_session(app_name=APP, user_id="u1", session_id="s1"))  # exists
        await sides.same(lambda s: s.create_session(app_name="other", user_id="u1", session_id="s1"))

        s1 = await sides.pair(user_id="u1", session_id="s1")
        delta1 = {"tier": "silver", "temp:step": 1, "app:motd": "bye", "user:seen": True}
        await sides.append(s1, text_event("user", "hello", 2000.0, state_delta=delta1))
        await sides.append(
            s1, text_event("bot", "hi", 2001.0, state_delta={"user:lang": None, "n": [1, {"a": None}]})
        )
        await sides.append(s1, text_event("bot", "partial", 2002.0).model_copy(update={"partial": True}))
        repeated = text_event("bot", "said once", 2003.0)
        await sides.append(s1, repeated)
        await sides.append(s1, repeated)  # delivered again: stored once
        await sides.append(s1, text_event("user", "late", 2004.0, state_delta={"temp:only": 2}))

        names = {"app_name": APP, "user_id": "u1", "session_id": "s1"}
        await sides.same(lambda s: s.get_session(**names))
        for config in [
            GetSessionConfig(num_recent_events=2),
            GetSessionConfig(num_recent_events=0),
            GetSessionConfig(num_recent_events=10),
            GetSessionConfig(after_timestamp=2001.0),
            GetSessionConfig(after_timestamp=2003.5, num_recent_events=5),
            GetSessionConfig(after_timestamp=9999.0),
        ]:
            await sides.same(lambda s, c=config: s.get_session(**names, config=c))
        await sides.same(lambda s: s.get_session(app_name=APP, user_id="u2", session_id="s1"))  # not u2's
        await sides.same(lambda s: s.get_session(app_name=APP, user_id="u1", session_id=" s1"))
        await sides.same(lambda s: s.get_session(app_name="nope", user_id="u1", session_id="s1"))

        await sides.same(lambda s: s.list_sessions(app_name=APP))
        await sides.same(lambda s: s.list_sessions(app_name=APP, user_id="u1"))
        await sides.same(lambda s: s.list_sessions(app_name=APP, user_id="nobody"))
        await sides.same(lambda s: s.list_sessions(app_name="nope"))
        await sides.same(lambda s: s.get_user_state(app_name=APP, user_id="u1"))
        await sides.same(lambda s: s.get_user_state(app_name=APP, user_id="u2"))

        s3 = await sides.pair(user_id="u1", session_id="s3")
        await sides.same(lambda s: s.delete_session(app_name=APP, user_id="u1", session_id="s3"))
        await sides.same(lambda s: s.delete_session(app_name=APP, user_id="u1", session_id="never"))
        await sides.same(lambda s: s.get_session(app_name=APP, user_id="u1", session_id="s3"))
        await sides.same(lambda s: s.list_sessions(app_name=APP))
        for service, session in zip((sides.memory, sides.journal), s3, strict=True):
            with pytest.raises(SessionNotFoundError, match=r"Session s3 not found\."):
                await service.append_event(session, text_event("user", "anyone?"))

    run(scenario())


def test_temp_state_is_applied_to_the_caller_but_never_stored(tmp_path: Path) -> None:
    async def scenario() -> Session:
        async with JournalSessionService(tmp_path) as service:
            state = {"temp:a": 1, "kept": 1}
            session = await service.create_session(app_name=APP, user_id="u1", state=state)
            await service.append_event(
                session, text_event("bot", "x", state_delta={"temp:b": 2, "user:c": 3})
            )
            assert session.state == {"kept": 1, "temp:b": 2, "user:c": 3}
            return session

    session = run(scenario())
    with journal.Journal(tmp_path) as j:
        written = [json.dumps(r.data) for key in j.sessions() for r in j.read(key)]
    assert written and not [line for line in written if "temp:" in line]
    assert any('"c": 3' in line for line in written) and session.events[0].actions.state_delta == {
        "user:c": 3
    }


def test_app_and_user_state_are_shared_and_scoped(tmp_path: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with JournalSessionService(tmp_path) as service:
            a = await service.create_session(app_name=APP, user_id="u1", session_id="a")
            await service.create_session(app_name=APP, user_id="u1", session_id="b")
            await service.create_session(app_name=APP, user_id="u2", session_id="c")
            await service.create_session(app_name="other", user_id="u1", session_id="d")
            delta = {"app:version": 2, "user:name": "Ann", "own": True}
            await service.append_event(a, text_event("user", "x", state_delta=delta))
        async with JournalSessionService(tmp_path) as service:
            found = []
            for user_id, session_id, app in [
                ("u1", "a", APP),
                ("u1", "b", APP),
                ("u2", "c", APP),
                ("u1", "d", "other"),
            ]:
                session = await service.get_session(app_name=app, user_id=user_id, session_id=session_id)
                assert session is not None
                found.append(session.state)
            return found

    assert run(scenario()) == [
        {"own": True, "app:version": 2, "user:name": "Ann"},
        {"app:version": 2, "user:name": "Ann"},
        {"app:version": 2},
        {},
    ]


def test_a_stale_session_object_cannot_append(tmp_path: Path) -> None:
    names = {"app_name": APP, "user_id": "u1", "session_id": "s1"}

    async def scenario() -> None:
        async with JournalSessionService(tmp_path) as one, JournalSessionService(tmp_path) as two:
            await one.create_session(**names)
            first = await one.get_session(**names)
            second = await two.get_session(**names)  # another process, the same session
            assert first is not None and second is not None
            await one.append_event(first, text_event("user", "from first", state_delta={"k": 1}))
            with pytest.raises(StaleSessionError, match="modified in storage since it was loaded"):
                await two.append_event(second, text_event("user", "from second", state_delta={"k": 2}))
            stored = await two.get_session(**names)
            assert stored is not None
            assert [e.content.parts[0].text for e in stored.events if e.content and e.content.parts] == [
                "from first"
            ]
            assert stored.state == {"k": 1}
            await two.append_event(stored, text_event("user", "after reload"))  # reloaded: fine
            await two.append_event(stored, text_event("user", "and again"))  # its own append: fine

    run(scenario())


def test_a_session_deleted_and_created_again_makes_old_objects_stale(tmp_path: Path) -> None:
    names = {"app_name": APP, "user_id": "u1", "session_id": "s1"}

    async def scenario() -> None:
        async with JournalSessionService(tmp_path) as service:
            old = await service.create_session(**names)
            await service.delete_session(**names)
            await service.create_session(**names)
            with pytest.raises(StaleSessionError):
                await service.append_event(old, text_event("user", "to the old one"))
            again = await service.get_session(**names)
            assert again is not None and again.events == []

    run(scenario())
    assert os.listdir(tmp_path / LOCK_DIR)  # the new session's lock; the deleted one's went with it


def test_a_session_object_built_by_hand_is_checked_as_the_database_service_does(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with JournalSessionService(tmp_path) as service:
            session = await service.create_session(app_name=APP, user_id="u1", session_id="s1")
            event = text_event("user", "first", 5000.0)
            await service.append_event(session, event)
            behind = Session(id="s1", app_name=APP, user_id="u1", last_update_time=1.0)
            with pytest.raises(StaleSessionError):
                await service.append_event(behind, text_event("user", "from behind", 5001.0))
            level = Session(id="s1", app_name=APP, user_id="u1", events=[event], last_update_time=1.0)
            await service.append_event(level, text_event("user", "second", 5002.0))  # it has the last event
            stored = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
            assert stored is not None and len(stored.events) == 2

    run(scenario())


def test_concurrent_tasks_on_one_session_keep_their_call_order(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        async with JournalSessionService(tmp_path, durability="none") as service:
            session = await service.create_session(app_name=APP, user_id="u1", session_id="s1")
            other = await service.create_session(app_name=APP, user_id="u1", session_id="s2")
            calls = []
            for i in range(30):
                calls.append(
                    service.append_event(session, text_event("bot", f"m{i}", state_delta={"last": i}))
                )
                calls.append(service.append_event(other, text_event("bot", f"o{i}")))
            await asyncio.gather(*calls)
            stored = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
            assert stored is not None and stored.state == {"last": 29}
            assert [e.id for e in stored.events] == [e.id for e in session.events]
            return [e.content.parts[0].text or "" for e in stored.events if e.content and e.content.parts]

    assert run(scenario()) == [f"m{i}" for i in range(30)]


def test_the_event_loop_runs_while_an_append_waits_for_the_session_lock(tmp_path: Path) -> None:
    """Another process holds the session's lock: the append waits in its thread, the loop
    keeps running other tasks, and the append completes once the lock is released."""

    async def scenario() -> None:
        j = journal.Journal(tmp_path, lock_timeout=10)
        async with JournalSessionService(journal=j) as service:
            session = await service.create_session(app_name=APP, user_id="u1", session_id="s1")
            lock_file = tmp_path / LOCK_DIR / naming.encode_id(adk_records.session_key(APP, "u1", "s1"))
            fd = os.open(lock_file, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)  # as another process writing to the session would
            try:
                append = asyncio.ensure_future(service.append_event(session, text_event("user", "waits")))
                for _ in range(5):
                    await asyncio.sleep(0.01)  # the loop is free: this returns
                assert not append.done()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            await append
            stored = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
            assert stored is not None and len(stored.events) == 1
        j.close()

    run(scenario())


def test_ids_with_separators_never_collide(tmp_path: Path) -> None:
    triples = [
        ("a/b", "c", "d"),
        ("a", "b/c", "d"),
        ("a", "b", "c/d"),
        ("a%2Fb", "c", "d"),
        ("a", "b", "c%2Fd"),
    ]

    async def scenario() -> list[Any]:
        async with JournalSessionService(tmp_path) as service:
            for app, user, session_id in triples:
                await service.create_session(
                    app_name=app, user_id=user, session_id=session_id, state={"me": [app, user]}
                )
            found = []
            for app, user, session_id in triples:
                session = await service.get_session(app_name=app, user_id=user, session_id=session_id)
                listed = await service.list_sessions(app_name=app, user_id=user)
                assert session is not None
                found.append((session.state["me"], [s.id for s in listed.sessions]))
            return found

    owned = [[t[2] for t in triples if t[:2] == (app, user)] for app, user, _ in triples]  # oldest first
    assert run(scenario()) == [([app, user], ids) for (app, user, _), ids in zip(triples, owned, strict=True)]
    assert {adk_records.parse_session_key(adk_records.session_key(*t)) for t in triples} == set(triples)


WRITER = """
import asyncio, sys, time
from google.adk.errors import StaleSessionError
from google.adk.events import Event, EventActions
from google.genai import types
from journal.integrations.adk import JournalSessionService

directory, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = {"app_name": "support", "user_id": "u1", "session_id": "shared"}


async def main() -> None:
    open(f"{directory}/{name}.ready", "w").close()
    while not __import__("os").path.exists(f"{directory}/go"):
        time.sleep(0.005)
    retries = 0
    async with JournalSessionService(directory, durability="none") as service:
        session = await service.get_session(**names)
        for i in range(count):
            delta = {name: i, "user:" + name: i, "app:" + name: i}
            while True:
                # Where this writer believes its event goes: what its session object has seen.
                text = f"{name}-{i}@{len(session.events)}"
                content = types.Content(role="model", parts=[types.Part(text=text)])
                event = Event(author=name, content=content, actions=EventActions(state_delta=delta))
                try:
                    await service.append_event(session, event)
                    break
                except StaleSessionError:  # the other writer came first: reload, append again
                    retries += 1
                    session = await service.get_session(**names)
    print(retries)


asyncio.run(main())
"""


def test_two_processes_appending_to_one_session_lose_nothing(tmp_path: Path) -> None:
    count = 40

    async def create() -> None:
        async with JournalSessionService(tmp_path) as service:
            await service.create_session(app_name=APP, user_id="u1", session_id="shared")

    run(create())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), name, str(count)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("w1", "w2")
    ]
    while not all((tmp_path / f"{name}.ready").exists() for name in ("w1", "w2")):
        if any(w.poll() is not None for w in writers):
            break
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode == 0

    async def read() -> Session | None:
        async with JournalSessionService(tmp_path) as service:
            return await service.get_session(app_name=APP, user_id="u1", session_id="shared")

    session = run(read())
    assert session is not None
    texts = [e.content.parts[0].text or "" for e in session.events if e.content and e.content.parts]
    # Every event went where its writer believed: no append was made from a stale object.
    assert [t.split("@")[1] for t in texts] == [str(i) for i in range(2 * count)]
    for name in ("w1", "w2"):
        assert [t.split("@")[0] for t in texts if t.startswith(name)] == [f"{name}-{i}" for i in range(count)]
    last = count - 1
    assert session.state == {
        "w1": last,
        "w2": last,
        "app:w1": last,
        "app:w2": last,
        "user:w1": last,
        "user:w2": last,
    }


def test_a_session_of_an_unknown_adk_format_is_refused_not_misread(tmp_path: Path) -> None:
    future = {**adk_records.header(APP, "u1", "s2", {}, 1.0, "i"), "adk_format": adk_records.ADK_FORMAT + 1}
    with journal.Journal(tmp_path) as j:
        j.update_metadata(adk_records.session_key(APP, "u1", "s2"), future)

    async def scenario() -> list[str]:
        async with JournalSessionService(tmp_path) as service:
            await service.create_session(app_name=APP, user_id="u1", session_id="s1")
            with pytest.raises(UnsupportedFormatError):
                await service.get_session(app_name=APP, user_id="u1", session_id="s2")
            with pytest.warns(UnreadableSessionWarning, match="unsupported format version 2"):
                listed = await service.list_sessions(app_name=APP)
            return [s.id for s in listed.sessions]

    assert run(scenario()) == ["s1"]


def test_a_read_only_store_reads_adk_sessions_and_refuses_writes(tmp_path: Path) -> None:
    async def write() -> None:
        async with JournalSessionService(tmp_path) as service:
            session = await service.create_session(app_name=APP, user_id="u1", session_id="s1")
            await service.append_event(session, text_event("user", "hello", state_delta={"user:x": 1}))

    async def read() -> None:
        with journal.Journal(tmp_path, read_only=True) as j:
            async with JournalSessionService(journal=j) as service:
                session = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
                assert session is not None and len(session.events) == 1 and session.state == {"user:x": 1}
                assert [s.id for s in (await service.list_sessions(app_name=APP)).sessions] == ["s1"]
                with pytest.raises(ReadOnlyError):
                    await service.append_event(session, text_event("user", "more"))
                with pytest.raises(ReadOnlyError):
                    await service.create_session(app_name=APP, user_id="u1")

    run(write())
    run(read())
    with pytest.raises(ValueError, match="durability"):
        JournalSessionService(tmp_path, durability="sometimes")


def test_compaction_changes_nothing_an_adk_caller_sees(tmp_path: Path) -> None:
    """Compaction seals the log (a record with a sequence number of its own) and moves the
    history into a snapshot: a session object read before it is not stale after it."""
    names = {"app_name": APP, "user_id": "u1", "session_id": "s1"}

    async def scenario() -> None:
        async with JournalSessionService(tmp_path) as service:
            session = await service.create_session(**names, state={"user:tz": "UTC"})
            for event in rich_events():
                await service.append_event(session, event)
            before = (await service.get_session(**names), await service.list_sessions(app_name=APP))
            report = service.journal.compact_all()
            assert report.compacted
            after = (await service.get_session(**names), await service.list_sessions(app_name=APP))
            assert before == after
            await service.append_event(session, text_event("user", "after compaction"))  # not stale
        async with JournalSessionService(tmp_path) as service:
            stored = await service.get_session(**names)
            assert stored is not None and before[0] is not None
            assert stored.events == [*before[0].events, session.events[-1]]

    run(scenario())
