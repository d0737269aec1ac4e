"""A `Journal` carried across fork(): every acknowledged message lands exactly once.

Real `multiprocessing` with the fork start method, in every durability mode. Before the child
dropped its inherited handles, children shared the parent's open file descriptions, so flock
did not exclude them from one another: messages were lost, sequence numbers acknowledged
twice, and the log corrupted.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from journal import Journal
from journal.compaction.protocol import CompactionPolicy
from journal.store.session_store import DefaultSessionStore

CHILDREN = 4
EACH = 150
_FORK = multiprocessing.get_context("fork")


def _append_in_child(journal: Journal, child: int, mode: str, out: Any) -> None:
    out.put(
        [
            journal.append("s", {"role": "user", "content": f"{child}-{i}"}, durability=mode)
            for i in range(EACH)
        ]
    )


@pytest.mark.parametrize("mode", ["always", "batch", "none"])
def test_forked_children_appending_through_the_parents_journal_lose_nothing(
    tmp_path: Path, mode: str
) -> None:
    journal = Journal(tmp_path / "s", durability=mode)
    journal.append("s", {"role": "user", "content": "parent"})  # the handle the children inherit
    out = _FORK.Queue()
    children = [_FORK.Process(target=_append_in_child, args=(journal, k, mode, out)) for k in range(CHILDREN)]
    for child in children:
        child.start()
    acknowledged = [seq for _ in children for seq in out.get(timeout=60)]
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    journal.append("s", {"role": "user", "content": "parent again"})  # the parent's handle still works
    journal.close()

    with Journal(tmp_path / "s") as fresh:
        messages = [r for r in fresh.read("s") if r.kind == "message"]
        assert fresh.verify("s").ok
    seqs = [r.seq for r in messages]
    assert seqs == list(range(1, len(seqs) + 1))  # gapless
    assert len(messages) == CHILDREN * EACH + 2
    assert Counter(acknowledged).most_common(1)[0][1] == 1  # no seq acknowledged twice
    assert set(acknowledged) <= set(seqs)
    contents = Counter(r.data["content"] for r in messages)
    assert all(contents[f"{k}-{i}"] == 1 for k in range(CHILDREN) for i in range(EACH))
    assert not (tmp_path / "s" / "s" / "quarantine").exists()  # no torn tails were cut


def _use_store_in_child(store: DefaultSessionStore, out: Any) -> None:
    store.add_user_message("child", "from the child")
    store.close()  # joins the child's own threads, never the parent's
    out.put(store.get_chat_history("child"))


def test_a_forked_store_does_not_deadlock_on_locks_or_threads_of_the_parent(tmp_path: Path) -> None:
    policy = CompactionPolicy(interval=0.05)
    store = DefaultSessionStore(tmp_path / "s", view_lag=0.05, compaction=policy, background_compaction=True)
    store.add_user_message("parent", "hello")  # the view keeper and the compactor run
    held = threading.Event()
    release = threading.Event()

    def hold_the_locks() -> None:  # a parent thread inside the pool at the moment of the fork
        with store.journal._pool.lock, store.journal._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_locks)
    holder.start()
    held.wait(10)
    out = _FORK.Queue()
    child = _FORK.Process(target=_use_store_in_child, args=(store, out))
    child.start()
    try:
        history = out.get(timeout=60)
    finally:
        release.set()
        holder.join()
        child.join(60)
    assert child.exitcode == 0
    assert [m["content"] for m in history] == ["from the child"]
    store.add_user_message("parent", "still writing")
    store.close()
    messages = (tmp_path / "s" / "child" / "messages.json").read_text()
    assert "from the child" in messages  # the child's close wrote its views
    assert len(DefaultSessionStore(tmp_path / "s").get_chat_history("parent")) == 2


class _FileSink:
    """A mirror sink that writes each record's content to a file named after the process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def append(self, session_id: str, records: list[dict[str, Any]]) -> None:
        import os

        with (self.directory / f"{os.getpid()}.txt").open("a") as out:
            out.writelines(f"{r['content']}\n" for r in records)


def _mirror_in_child(store: DefaultSessionStore, out: Any) -> None:
    store.add_user_message("m", "from the child")
    out.put(store.flush_mirror(timeout=10))


def test_a_forked_store_mirrors_what_the_child_writes(tmp_path: Path) -> None:
    sinks = tmp_path / "sink"
    sinks.mkdir()
    store = DefaultSessionStore(tmp_path / "s", mirror=_FileSink(sinks), durability="none", view_lag=None)
    store.add_user_message("m", "from the parent")
    assert store.flush_mirror(timeout=10)
    out = _FORK.Queue()
    child = _FORK.Process(target=_mirror_in_child, args=(store, out))
    child.start()
    flushed = out.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and flushed
    written = sorted(p.read_text() for p in sinks.iterdir())
    assert written == ["from the child\n", "from the parent\n"]  # one file per process
    store.close_mirror()
    store.close()
