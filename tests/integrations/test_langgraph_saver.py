"""`JournalSaver` (journal.integrations.langgraph) with the real LangGraph: the same answers
as SqliteSaver side by side, across saver instances, with real graphs; rewrites (prune,
delete_for_runs) that keep what another writer appended meanwhile; async calls in call order,
off the event loop; the thread readable in messages.json and by the CLI."""

from __future__ import annotations

import asyncio
import json
import operator
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_config
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

import journal
from journal.integrations.langgraph import JournalSaver


class Chat(TypedDict):
    messages: Annotated[list[Any], add_messages]
    steps: Annotated[list[str], operator.add]


def chat_graph() -> StateGraph[Chat]:
    """START -> a -> b -> END; each node answers and notes its name."""

    def node(name: str) -> Any:
        return lambda state: {"messages": [AIMessage(f"{name} says hi")], "steps": [name]}

    builder = StateGraph(Chat)
    builder.add_node("a", node("a"))
    builder.add_node("b", node("b"))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder


@pytest.fixture
def sqlite_saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(tmp_path / "baseline.sqlite", check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def put(saver: Any, thread: str, ns: str = "", parent: str | None = None, **metadata: Any) -> str:
    """Put an empty checkpoint; return its id (the same dict goes to every saver given it)."""
    checkpoint = generate_checkpoint(channel_values={"x": thread}, channel_versions={"x": 1})
    return put_checkpoint([saver], thread, checkpoint, ns, parent, metadata)


def put_checkpoint(
    savers: list[Any], thread: str, checkpoint: Any, ns: str, parent: str | None, metadata: dict[str, Any]
) -> str:
    config = generate_config(thread, checkpoint_ns=ns, checkpoint_id=parent)
    for saver in savers:
        saver.put(config, checkpoint, {"source": "loop", "step": 0, "parents": {}, **metadata}, {"x": 1})
    return str(checkpoint["id"])


def summary(found: CheckpointTuple | None) -> Any:
    """What a checkpoint tuple says, comparable across savers."""
    if found is None:
        return None
    parent = found.parent_config["configurable"]["checkpoint_id"] if found.parent_config else None
    return (
        found.config["configurable"],
        found.checkpoint,
        dict(found.metadata),
        parent,
        found.pending_writes,
    )


# -- the same answers as SqliteSaver ------------------------------------------------------------


def test_put_writes_replays_keep_or_replace_as_sqlite_saver_does(
    tmp_path: Path, sqlite_saver: SqliteSaver
) -> None:
    saver = JournalSaver(tmp_path / "store")
    checkpoint = generate_checkpoint()
    put_checkpoint([saver, sqlite_saver], "t", checkpoint, "", None, {})
    config = generate_config("t", checkpoint_id=checkpoint["id"])
    calls: list[tuple[list[tuple[str, Any]], str, str]] = [
        ([("a", 1), ("b", 2)], "task-1", "~p, x"),
        ([("a", 9)], "task-1", "~p, x"),  # same (task, idx 0): the first stays
        ([(ERROR, "first error")], "task-1", "~p, x"),  # idx -1
        ([(ERROR, "second error")], "task-1", "~p, x"),  # all special: replaces
        ([("c", 3), (ERROR, "mixed")], "task-1", "~p, x"),  # mixed: both stay as they were
        ([(INTERRUPT, {"ask": "?"})], "task-0", "~p, z"),
        ([("a", "early path")], "task-2", "~p, a"),
        ([("d", 4)], "task-0", ""),
    ]
    for writes, task, path in calls:
        saver.put_writes(config, writes, task, path)
        sqlite_saver.put_writes(config, writes, task, path)

    expected = sqlite_saver.get_tuple(config)
    assert expected is not None and expected.pending_writes is not None
    assert ("task-1", ERROR, "second error") in expected.pending_writes  # the rules were exercised
    assert summary(saver.get_tuple(config)) == summary(expected)
    saver.close()
    with JournalSaver(tmp_path / "store") as reopened:  # replayed from the log
        assert summary(reopened.get_tuple(config)) == summary(expected)


def test_list_answers_as_sqlite_saver_does(tmp_path: Path, sqlite_saver: SqliteSaver) -> None:
    saver = JournalSaver(tmp_path / "store")
    both = [saver, sqlite_saver]
    rng = random.Random(7)
    for thread in ("t1", "t2"):
        for ns in ("", "child:1"):
            parent = None
            for step in range(5):
                checkpoint = generate_checkpoint(channel_values={"n": step}, channel_versions={"n": step + 1})
                metadata = {
                    "step": step,
                    "source": rng.choice(["loop", "input"]),
                    "run_id": f"run-{step % 2}",
                }
                metadata["nested"] = {"score": step % 3}
                parent = put_checkpoint(both, thread, checkpoint, ns, parent, metadata)
    ids = [t.checkpoint["id"] for t in sqlite_saver.list({"configurable": {"thread_id": "t1"}})]
    queries: list[tuple[Any, dict[str, Any]]] = [
        (None, {}),
        (None, {"limit": 3}),
        (None, {"filter": {"source": "loop"}}),
        (generate_config("t1"), {}),
        ({"configurable": {"thread_id": "t1"}}, {}),  # no namespace: all of them
        (generate_config("t2", checkpoint_ns="child:1"), {"limit": 2}),
        (generate_config("t1"), {"filter": {"step": 3}}),
        (generate_config("t1"), {"filter": {"source": "input", "run_id": "run-0"}}),
        (generate_config("t1"), {"filter": {"nested.score": 2}}),
        (generate_config("t1"), {"filter": {"nested": {"score": 1}}}),
        (generate_config("t1"), {"filter": {"missing": None}}),
        ({"configurable": {"thread_id": "t1"}}, {"before": {"configurable": {"checkpoint_id": ids[3]}}}),
        (generate_config("t1"), {"before": {"configurable": {"checkpoint_id": ids[6]}}, "limit": 1}),
        (None, {"before": {"configurable": {"checkpoint_id": ids[4]}}}),
        (generate_config("t1", checkpoint_id=ids[0]), {}),
        (generate_config("t2", checkpoint_id=ids[0]), {}),
        (generate_config("nobody"), {}),
    ]
    for config, options in queries:
        expected = [summary(t) for t in sqlite_saver.list(config, **options)]
        assert [summary(t) for t in saver.list(config, **options)] == expected, (config, options)
    saver.close()


def test_get_tuple_answers_as_sqlite_saver_does(tmp_path: Path, sqlite_saver: SqliteSaver) -> None:
    with JournalSaver(tmp_path / "store") as saver:
        both = [saver, sqlite_saver]
        first = put_checkpoint(both, "t", generate_checkpoint(), "", None, {})
        second = put_checkpoint(both, "t", generate_checkpoint(), "", first, {"step": 1})
        put_checkpoint(both, "t", generate_checkpoint(), "inner", None, {})
        for config in (
            generate_config("t"),
            generate_config("t", checkpoint_ns="inner"),
            generate_config("t", checkpoint_id=first),
            generate_config("t", checkpoint_id=second),
            generate_config("t", checkpoint_id="no-such-id"),
            generate_config("t", checkpoint_ns="other"),
        ):
            assert summary(saver.get_tuple(config)) == summary(sqlite_saver.get_tuple(config)), config


def test_a_checkpoint_put_again_under_its_id_replaces_the_old_one(tmp_path: Path) -> None:
    with JournalSaver(tmp_path) as saver:
        checkpoint = generate_checkpoint(channel_values={"x": "old"}, channel_versions={"x": 1})
        put_checkpoint([saver], "t", checkpoint, "", None, {})
        checkpoint["channel_values"] = {"x": "new"}
        put_checkpoint([saver], "t", checkpoint, "", None, {"step": 5})
        listed = list(saver.list(generate_config("t")))
    assert [(t.checkpoint["channel_values"], t.metadata["step"]) for t in listed] == [({"x": "new"}, 5)]


# -- across instances and with real graphs -----------------------------------------------------


def test_a_new_saver_resumes_a_thread_another_saver_wrote(tmp_path: Path) -> None:
    config: Any = {"configurable": {"thread_id": "chat-1"}}
    with JournalSaver(tmp_path) as saver:
        graph = chat_graph().compile(checkpointer=saver)
        graph.invoke({"messages": [HumanMessage("hello")]}, config)
        before = [summary(t) for t in saver.list(config)]
    with JournalSaver(tmp_path) as saver:
        assert [summary(t) for t in saver.list(config)] == before
        graph = chat_graph().compile(checkpointer=saver)
        state = graph.invoke({"messages": [HumanMessage("again")]}, config)
    assert state["steps"] == ["a", "b", "a", "b"]
    assert [m.content for m in state["messages"]] == [
        "hello", "a says hi", "b says hi", "again", "a says hi", "b says hi"
    ]  # fmt: skip


def test_metadata_json_cannot_hold_goes_through_the_serde(tmp_path: Path) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    with JournalSaver(tmp_path) as saver:
        put(saver, "t", when=when, step=3)
    with JournalSaver(tmp_path) as saver:
        found = saver.get_tuple(generate_config("t"))
        assert found is not None and found.metadata["when"] == when  # type: ignore[typeddict-item]
        assert [t.metadata["step"] for t in saver.list(None, filter={"step": 3})] == [3]


# -- rewrites: prune, delete_for_runs, copy_thread ----------------------------------------------


class InterleavingJournal(journal.Journal):
    """A real Journal that runs `meanwhile` once, just before the first batch starting with a
    clear (a rewrite) is written: another writer appending between the rewrite's read and its
    write, deterministically."""

    meanwhile: Any = None

    def append_batch(self, session_id: str, entries: Any, **options: Any) -> list[int]:
        entries = list(entries)
        if entries and entries[0][0] == "clear" and self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        return super().append_batch(session_id, entries, **options)


def test_a_prune_keeps_what_another_writer_appended_while_it_ran(tmp_path: Path) -> None:
    interleaving = InterleavingJournal(tmp_path)
    pruner = JournalSaver(journal=interleaving)
    other = JournalSaver(tmp_path)  # another process's saver: its own Journal on the store
    parent = None
    for _ in range(4):
        parent = put(pruner, "t", parent=parent)
    late: list[str] = []
    interleaving.meanwhile = lambda: late.append(put(other, "t", parent=parent))

    pruner.prune(["t"])

    assert len(late) == 1, "the other writer did not run"
    for saver in (pruner, other, JournalSaver(tmp_path)):
        assert [t.checkpoint["id"] for t in saver.list(generate_config("t"))] == [late[0], parent]
    # and written again among the live records: reads need not reach back into the history
    live = pruner.journal.state("t")
    assert live is not None and late[0] in [m.data.get("checkpoint_id") for m in live.messages]
    interleaving.close()
    other.close()


def test_prune_keeps_each_namespace_latest_with_its_whole_conversation_readable(tmp_path: Path) -> None:
    config: Any = {"configurable": {"thread_id": "chat"}}
    with JournalSaver(tmp_path) as saver:
        graph = chat_graph().compile(checkpointer=saver)
        graph.invoke({"messages": [HumanMessage("first question")]}, config)
        graph.invoke({"messages": [HumanMessage("second question")]}, config)
        values = graph.get_state(config).values
        saver.prune(["chat"])
        assert len(list(saver.list(config))) == 1
    with JournalSaver(tmp_path) as saver:
        graph = chat_graph().compile(checkpointer=saver)
        assert graph.get_state(config).values == values
    view = json.loads((tmp_path / "chat" / "messages.json").read_text())
    checkpoints = [m for m in view["messages"] if m["role"] == "langgraph.checkpoint"]
    assert len(checkpoints) == 1
    assert checkpoints[0]["content"].splitlines() == [
        "user: first question", "assistant: a says hi", "assistant: b says hi",
        "user: second question", "assistant: a says hi", "assistant: b says hi",
    ]  # fmt: skip


def extend(state: list[int], writes: list[list[int]]) -> list[int]:
    return [*state, *(item for write in writes for item in write)]


class Items(TypedDict):  # LangGraph reads the annotations: module level, where they resolve
    items: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=3)]


def test_prune_keeps_the_ancestors_a_delta_channel_is_rebuilt_from(tmp_path: Path) -> None:
    builder = StateGraph(Items)
    builder.add_node("add", lambda state: {"items": [len(state["items"])]})
    builder.add_edge(START, "add")
    builder.add_edge("add", END)
    config: Any = {"configurable": {"thread_id": "delta"}}
    with JournalSaver(tmp_path) as saver:
        graph = builder.compile(checkpointer=saver)
        for _ in range(5):
            graph.invoke({"items": []}, config)
        assert graph.get_state(config).values == {"items": [0, 1, 2, 3, 4]}
        latest = next(saver.list(config, limit=1))
        assert latest.metadata.get("counters_since_delta_snapshot"), "the latest is no snapshot"
        saver.prune(["delta"])
        assert 1 < len(list(saver.list(config))) < 5
    with JournalSaver(tmp_path) as saver:
        assert builder.compile(checkpointer=saver).get_state(config).values == {"items": [0, 1, 2, 3, 4]}


def test_delete_for_runs_spans_threads_and_leaves_other_sessions_alone(tmp_path: Path) -> None:
    with JournalSaver(tmp_path) as saver:
        saver.journal.append("notes", {"role": "user", "content": "not a thread", "run_id": "r1"})
        kept = [put(saver, "t1", run_id="r2"), put(saver, "t2", run_id="r3")]
        put(saver, "t1", run_id="r1")
        put(saver, "t2", run_id="r1")
        saver.delete_for_runs(["r1"])
        assert sorted(t.checkpoint["id"] for t in saver.list(None)) == sorted(kept)
        assert [m.data["content"] for m in saver.journal.state("notes").messages] == ["not a thread"]  # type: ignore[union-attr]
        saver.delete_thread("notes")  # not a thread: left alone
        saver.delete_thread("t1")
        assert saver.journal.exists("notes") and not saver.journal.exists("t1")


def test_a_copied_thread_goes_on_independently(tmp_path: Path) -> None:
    source: Any = {"configurable": {"thread_id": "source"}}
    target: Any = {"configurable": {"thread_id": "target"}}
    with JournalSaver(tmp_path) as saver:
        graph = chat_graph().compile(checkpointer=saver)
        graph.invoke({"messages": [HumanMessage("shared start")]}, source)
        saver.copy_thread("source", "target")
        graph.invoke({"messages": [HumanMessage("only in the copy")]}, target)
        assert graph.get_state(source).values["steps"] == ["a", "b"]
        assert graph.get_state(target).values["steps"] == ["a", "b", "a", "b"]
        assert (
            sorted(t.config["configurable"]["thread_id"] for t in saver.list(None, limit=100)).count("source")
            == 4
        )


# -- async ----------------------------------------------------------------------------------------


class SlowSerde(JsonPlusSerializer):
    """The default serde, with a random pause in each dumps_typed (it runs in the executor)."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        time.sleep(random.uniform(0, 0.004))
        return super().dumps_typed(obj)


def test_async_calls_of_one_thread_are_written_in_call_order(tmp_path: Path) -> None:
    saver = JournalSaver(tmp_path, serde=SlowSerde())
    config = generate_config("t", checkpoint_id="c1")

    async def main() -> None:
        await asyncio.gather(*(saver.aput_writes(config, [("ch", i)], f"task-{i:02}") for i in range(40)))

    asyncio.run(main())
    tasks = [r.data["task_id"] for r in saver.journal.read("t") if r.kind == "message"]
    assert tasks == [f"task-{i:02}" for i in range(40)]
    saver.close()


class WaitingSerde(JsonPlusSerializer):
    """dumps_typed waits until the event loop has run another task (or gives up)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop_ran = threading.Event()
        self.saw_loop_run: list[bool] = []

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.saw_loop_run.append(self.loop_ran.wait(timeout=10))
        return super().dumps_typed(obj)


def test_async_calls_leave_the_event_loop_free(tmp_path: Path) -> None:
    serde = WaitingSerde()
    saver = JournalSaver(tmp_path, serde=serde)

    async def other_task() -> None:
        await asyncio.sleep(0)
        serde.loop_ran.set()

    async def main() -> Any:
        return await asyncio.gather(
            saver.aput(generate_config("t"), generate_checkpoint(), {"step": 0}, {}), other_task()
        )

    stored, _ = asyncio.run(main())
    assert serde.saw_loop_run == [True]
    assert saver.get_tuple(stored) is not None
    saver.close()


# -- readable by people and by the CLI -----------------------------------------------------------


def test_the_thread_reads_as_a_conversation_in_messages_json_and_the_cli(tmp_path: Path) -> None:
    config: Any = {"configurable": {"thread_id": "support/42"}}
    store = tmp_path / "store"
    with JournalSaver(store) as saver:
        graph = chat_graph().compile(checkpointer=saver)
        graph.invoke({"messages": [HumanMessage("where is my parcel?")]}, config)
        directory = Path(saver.journal.session_path("support/42"))
    view = json.loads((directory / "messages.json").read_text())
    texts = [m["content"] for m in view["messages"] if m["role"] == "langgraph.checkpoint" and m["content"]]
    assert texts == ["user: where is my parcel?", "assistant: a says hi", "assistant: b says hi"]
    assert all(
        isinstance(m.get("checkpoint"), str) for m in view["messages"] if m["role"].endswith("checkpoint")
    )
    assert json.loads((directory / "metadata.json").read_text())["langgraph"] == {"format": 1}

    cli = [sys.executable, "-m", "journal", "--dir", str(store)]
    shown = json.loads(
        subprocess.run([*cli, "show", "support/42", "--json"], capture_output=True, check=True).stdout
    )
    assert "user: where is my parcel?" in [m["content"] for m in shown["messages"]]
    found = subprocess.run([*cli, "search", "parcel", "--json"], capture_output=True, text=True, check=True)
    assert [json.loads(line)["session_id"] for line in found.stdout.splitlines()] == ["support/42"]

    # exported and imported into another store, the thread reads the same there
    archive, elsewhere = tmp_path / "export.json", tmp_path / "elsewhere"
    subprocess.run([*cli, "export", str(archive), "support/42"], capture_output=True, check=True)
    subprocess.run(
        [sys.executable, "-m", "journal", "--dir", str(elsewhere), "import", str(archive)], check=True
    )
    with JournalSaver(store) as here, JournalSaver(elsewhere) as there:
        assert [summary(t) for t in there.list(config)] == [summary(t) for t in here.list(config)]
