"""`JournalSession` against the real OpenAI Agents SDK: every input item type round-trips, and
every operation gives what the SDK's own `SQLiteSession` gives for the same calls."""

from __future__ import annotations

import asyncio
import collections.abc
import threading
import time
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import typing_extensions
from agents import Agent, ItemHelpers, SQLiteSession
from agents.items import (
    MessageOutputItem,
    ReasoningItem,
    ToolCallItem,
    ToolCallOutputItem,
    TResponseInputItem,
)
from agents.memory import Session, SessionSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Summary

from journal import Journal
from journal.integrations._journals import strand_for
from journal.integrations.openai_agents import JournalSession
from journal.log.fs import OsFileSystem

SID = "chat-1"
_WRAPPERS = {typing.Required, typing.NotRequired, typing.Annotated}
_WRAPPERS |= {typing_extensions.Required, typing_extensions.NotRequired, typing_extensions.Annotated}


def sample(tp: Any, pick: int, depth: int = 0) -> Any:
    """A value of type `tp` with every key of every TypedDict in it; in a union, option `pick`."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in _WRAPPERS:
        return sample(args[0], pick, depth)
    scalars = {str: f"text ü {depth} \n\x00 \u2028", bool: True, int: -(2**63), float: 0.1 + 0.2}
    if tp in scalars:
        return scalars[tp]
    if tp in (object, Any):
        return {"any": [1, "x", None, 1.5e300]}
    if origin is Literal:
        return args[pick % len(args)]
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return sample(options[pick % len(options)] if depth < 4 else options[0], pick, depth)
    if (
        origin in (list, collections.abc.Iterable, collections.abc.Sequence)
        or getattr(origin, "__name__", "") == "SequenceNotStr"
    ):
        return [sample(args[0], pick, depth + 1)]
    if origin in (dict, collections.abc.Mapping):
        return {"key": sample(args[1], pick, depth + 1)}
    if typing_extensions.is_typeddict(tp):
        return {k: sample(v, pick, depth + 1) for k, v in typing_extensions.get_type_hints(tp).items()}
    raise TypeError(f"no sample for {tp!r}")


ITEM_TYPES = get_args(TResponseInputItem)


def sdk_made_items() -> list[TResponseInputItem]:
    """Items as the SDK itself makes them from model output (`RunItem.to_input_item`)."""
    agent = Agent(name="A")
    text = ResponseOutputText(annotations=[], text="Paris, 18°C", type="output_text", logprobs=[])
    call = ResponseFunctionToolCall(
        arguments='{"city": "Paris"}', call_id="call_1", name="get_weather", type="function_call", id="fc_1"
    )
    reasoning = ResponseReasoningItem(
        id="rs_1",
        type="reasoning",
        summary=[Summary(text="The user wants the weather.", type="summary_text")],
        encrypted_content="gAAAAABo-opaque==",
    )
    output = {"call_id": "call_1", "output": "sunny", "type": "function_call_output"}
    message = ResponseOutputMessage(
        id="msg_1", content=[text], role="assistant", status="completed", type="message"
    )
    return [
        *ItemHelpers.input_to_new_input_list("What is the weather in Paris?"),
        ReasoningItem(agent=agent, raw_item=reasoning).to_input_item(),
        ToolCallItem(agent=agent, raw_item=call).to_input_item(),
        ToolCallOutputItem(agent=agent, raw_item=output, output="sunny").to_input_item(),  # type: ignore[arg-type]
        MessageOutputItem(agent=agent, raw_item=message).to_input_item(),
    ]


def every_item() -> list[TResponseInputItem]:
    generated = [sample(t, pick) for t in ITEM_TYPES for pick in (0, -1)]
    return [*sdk_made_items(), *typing.cast("list[TResponseInputItem]", generated)]


def run(coro: collections.abc.Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def test_a_journal_session_is_an_sdk_session(tmp_path: Path) -> None:
    session = JournalSession(SID, tmp_path)
    assert isinstance(session, Session)
    assert session.session_settings == SQLiteSession(SID).session_settings == SessionSettings()
    assert JournalSession(SID, tmp_path, session_settings={"limit": 3}).session_settings == SessionSettings(
        limit=3
    )
    session.close()


def test_the_samples_are_every_input_item_type_of_the_sdk_with_every_field() -> None:
    assert len(ITEM_TYPES) >= 30  # TResponseInputItem is the union of every input item type
    for item_type in ITEM_TYPES:
        for pick in (0, -1):
            assert set(sample(item_type, pick)) == set(typing_extensions.get_type_hints(item_type))
    made = {item.get("type", "message") for item in sdk_made_items()}
    assert made == {"message", "reasoning", "function_call", "function_call_output"}


def test_every_item_type_round_trips_exactly_across_instances_as_with_sqlite(tmp_path: Path) -> None:
    items = every_item()

    async def scenario() -> tuple[list[Any], list[Any]]:
        writer, sqlite = JournalSession(SID, tmp_path, durability="none"), SQLiteSession(SID)
        for item in items[:5]:  # one at a time, then the rest as one batch
            await writer.add_items([item])
            await sqlite.add_items([item])
        await writer.add_items(items[5:])
        await sqlite.add_items(items[5:])
        writer.close()
        reader = JournalSession(SID, Journal(tmp_path).root)  # a new object, a new Journal
        try:
            return await reader.get_items(), await sqlite.get_items()
        finally:
            reader.close()

    from_journal, from_sqlite = run(scenario())
    assert from_journal == from_sqlite == items
    assert [type(v) for v in from_journal[0].values()] == [type(v) for v in items[0].values()]


def test_get_items_returns_copies_the_caller_may_change(tmp_path: Path) -> None:
    async def scenario() -> Any:
        session = JournalSession(SID, tmp_path, durability="none")
        await session.add_items([{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}])
        (await session.get_items())[0]["content"][0]["text"] = "changed"
        (await session.get_items(1))[0]["role"] = "changed"
        try:
            return await session.get_items()
        finally:
            session.close()

    assert run(scenario()) == [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]


# -- the same operations on both sessions give the same results --------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 3)),
        st.tuples(st.just("pop"), st.none()),
        st.tuples(st.just("clear"), st.none()),
        st.tuples(st.just("get"), st.sampled_from([None, 0, 1, 2, 5, -1])),
    ),
    max_size=25,
)


def numbered_item(n: int) -> dict[str, Any]:
    if n % 3 == 2:
        return {"type": "function_call", "call_id": f"c{n}", "name": "f", "arguments": f'{{"n": {n}}}'}
    return {"role": "user" if n % 3 == 0 else "assistant", "content": f"item {n}"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, limit=st.sampled_from([None, 2]))
def test_any_operations_give_what_sqlite_session_gives(
    tmp_path: Path, ops: list[tuple[str, Any]], limit: int | None
) -> None:
    root = tmp_path / f"store-{time.monotonic_ns()}"

    async def scenario() -> None:
        journal_session = JournalSession(SID, root, durability="none", session_settings={"limit": limit})
        sqlite = SQLiteSession(SID, session_settings=SessionSettings(limit=limit))
        n = 0
        for op, arg in ops:
            if op == "add":
                items = [numbered_item(n + i) for i in range(arg)]
                n += arg
                results = [await s.add_items(items) for s in (journal_session, sqlite)]
            elif op == "pop":
                results = [await s.pop_item() for s in (journal_session, sqlite)]
            elif op == "clear":
                results = [await s.clear_session() for s in (journal_session, sqlite)]
            else:
                results = [await s.get_items(arg) for s in (journal_session, sqlite)]
            assert results[0] == results[1], (op, arg)
        journal_session.close()
        fresh = JournalSession(SID, root)  # what another process reads
        assert await fresh.get_items(-1) == await sqlite.get_items(-1)
        fresh.close()

    run(scenario())


def test_pop_and_clear_are_logged_records_not_a_rewrite(tmp_path: Path) -> None:
    async def scenario() -> Any:
        session = JournalSession(SID, tmp_path, durability="none")
        await session.add_items([numbered_item(0), numbered_item(1), numbered_item(2)])
        popped = await session.pop_item()
        await session.clear_session()
        await session.add_items([numbered_item(3)])
        session.close()
        return popped

    assert run(scenario()) == numbered_item(2)
    with Journal(tmp_path) as j:
        assert [(r.seq, r.kind) for r in j.read(SID) if r.kind != "seal"] == [
            (1, "message"),
            (2, "message"),
            (3, "message"),
            (4, "pop"),
            (5, "clear"),
            (6, "message"),
        ]
        assert next(iter(j.read(SID, 4))).data == {"of": 3}


# -- concurrency within a process ---------------------------------------------------------------


def test_concurrent_tasks_take_effect_in_the_order_they_called(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        sessions = [JournalSession(SID, tmp_path, durability="batch") for _ in range(3)]  # one strand
        calls: list[Any] = []
        for i in range(30):
            session = sessions[i % 3]
            calls.append(session.pop_item() if i % 7 == 6 else session.add_items([numbered_item(i)]))
            if i % 10 == 9:
                calls.append(session.get_items())
        results = await asyncio.gather(*calls)
        items = await sessions[0].get_items()
        for session in sessions:
            session.close()
        return results, items

    results, items = run(scenario())
    expected: list[dict[str, Any]] = []
    seen = iter(results)
    for i in range(30):
        result = next(seen)
        if i % 7 == 6:
            assert result == expected.pop()  # each pop took the item added just before it
        else:
            expected.append(numbered_item(i))
        if i % 10 == 9:
            assert next(seen) == expected  # each read saw exactly the calls made before it
    assert items == expected


class ThreadRecordingFs(OsFileSystem):
    """The real OS, noting which threads write and read the log."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def append(self, fd: int, data: bytes) -> None:
        self.threads.add(threading.get_ident())
        super().append(fd, data)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self.threads.add(threading.get_ident())
        return super().pread(fd, size, offset)


def test_the_event_loop_thread_never_writes_reads_or_syncs(tmp_path: Path) -> None:
    fs = ThreadRecordingFs()
    journal = Journal(tmp_path, durability="always", fs=fs)

    async def scenario() -> None:
        session = JournalSession(SID, journal=journal)
        await session.add_items([numbered_item(0), numbered_item(1)])
        assert await session.pop_item() == numbered_item(1)
        assert await session.get_items() == [numbered_item(0)]
        await session.clear_session()
        session.close()

    run(scenario())
    journal.close()
    assert fs.threads and threading.get_ident() not in fs.threads


def test_a_cancelled_add_still_happens_before_the_cancellation_is_raised(tmp_path: Path) -> None:
    """As SQLiteSession: a write the caller gave up on is not dropped half known."""

    async def scenario() -> list[Any]:
        session = JournalSession(SID, tmp_path, durability="always")
        gate = threading.Event()
        strand_for(session.journal, SID).submit(gate.wait)  # the session's calls queue behind it
        task = asyncio.create_task(session.add_items([numbered_item(0)]))
        await asyncio.sleep(0)  # the add is queued, not started
        task.cancel()
        await asyncio.sleep(0)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        items = await session.get_items()
        session.close()
        return items

    assert run(scenario()) == [numbered_item(0)]


def test_a_closed_session_refuses_to_work(tmp_path: Path) -> None:
    session = JournalSession(SID, tmp_path)
    session.close()
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        run(session.add_items([numbered_item(0)]))
    with pytest.raises(RuntimeError, match="closed"):
        run(session.get_items())


def test_records_appended_by_other_means_read_as_easy_input_messages(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        j.append(SID, {"role": "user", "content": "typed with journal append", "metadata": {}})
        j.append(SID, {"content": "no role: skipped"})
    session = JournalSession(SID, tmp_path)
    assert run(session.get_items()) == [{"role": "user", "content": "typed with journal append"}]
    assert run(session.pop_item()) == {"role": "user", "content": "typed with journal append"}
    session.close()


def test_an_item_that_is_not_json_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    from journal import InvalidRecordError

    session = JournalSession(SID, tmp_path)
    with pytest.raises(InvalidRecordError):
        run(session.add_items([numbered_item(0), {"role": "user", "content": "x", "bad": {1, 2}}]))
    with pytest.raises(TypeError):
        run(session.add_items(["not a dict"]))  # type: ignore[list-item]
    assert run(session.get_items()) == []
    session.close()


# -- another writer between this session's read and its pop --------------------------------------


class RacingJournal(Journal):
    """A real Journal; just before this session logs its first pop, `race` runs on another
    Journal of the same store: what another process may do between the read and the pop."""

    def __init__(self, root: Path, race: collections.abc.Callable[[Journal], Any]) -> None:
        super().__init__(root, durability="none")
        self.race: collections.abc.Callable[[Journal], Any] | None = race

    def append_batch(self, session_id: str, entries: Any, *, durability: str | None = None) -> list[int]:
        entries = list(entries)
        race, self.race = self.race, None
        if race is not None and entries[0][0] == "pop":
            with Journal(self.root, durability="none") as other:
                race(other)
        return super().append_batch(session_id, entries, durability=durability)


def pop_racing(tmp_path: Path, race: collections.abc.Callable[[Journal], Any]) -> tuple[Any, list[Any]]:
    journal = RacingJournal(tmp_path, race)

    async def scenario() -> tuple[Any, list[Any]]:
        session = JournalSession(SID, journal=journal)
        await session.add_items([numbered_item(0), numbered_item(1)])
        popped = await session.pop_item()
        return popped, await session.get_items()

    try:
        return run(scenario())
    finally:
        journal.close()


def test_an_item_appended_between_the_read_and_the_pop_is_the_one_popped(tmp_path: Path) -> None:
    late = {"role": "user", "content": "late", "item": numbered_item(9)}
    popped, left = pop_racing(tmp_path, lambda other: other.append(SID, late))
    assert popped == numbered_item(9)  # the pop is after the append: it takes the newest item
    assert left == [numbered_item(0), numbered_item(1)]  # and no item is lost


def test_an_item_popped_by_another_writer_first_is_not_returned_twice(tmp_path: Path) -> None:
    popped, left = pop_racing(tmp_path, lambda other: other.append_batch(SID, [("pop", {"of": 2}, None)]))
    assert popped == numbered_item(0)  # the other writer took item 1: this pop takes item 0
    assert left == []
    with Journal(tmp_path) as j:  # the first pop of this session named item 1 and changed nothing
        assert [r.data for r in j.read(SID) if r.kind == "pop"] == [{"of": 2}, {"of": 2}, {"of": 1}]
