"""Issue #11: the view files stay current while agents run, close() compacts only what this
store wrote, and list_sessions reads summaries, not histories. Real files, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from journal import DefaultSessionStore, Journal

ROOT = str(Path(__file__).resolve().parents[2])
LAG = 0.2


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    script = f"import sys; sys.path.insert(0, {ROOT!r})\n" + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)


def _poll(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


WRITER = """
import os, time
from journal import DefaultSessionStore
store = DefaultSessionStore(sys.argv[1], durability="none", view_lag=float(sys.argv[2]))
n = 0
print("ready", flush=True)
while not os.path.exists(sys.argv[3]):
    store.add_message("s", "user", f"m{n}")
    n += 1
    time.sleep(0.005)
os._exit(0)  # no close(): only the background thread wrote the views
"""


def _view(path: Path) -> list[str] | None:
    """The contents in messages.json; every read must be a complete JSON document."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    document = json.loads(raw)  # raises on a torn or partial file
    return [message["content"] for message in document["messages"]]


def test_messages_json_is_always_valid_and_holds_every_message_older_than_the_lag(tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    writer = _python(WRITER, str(tmp_path / "store"), str(LAG), str(stop))
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    view = tmp_path / "store" / "s" / "messages.json"
    reads, current_reads = 0, 0
    try:
        with Journal(tmp_path / "store") as journal:

            def current() -> bool:
                nonlocal reads, current_reads
                cutoff = time.time() - LAG - 0.5  # the margin: the compaction itself takes time
                shown = _view(view)
                reads += 1
                if shown is None:
                    return False
                old = [r.data["content"] for r in journal.read("s") if r.kind == "message" and r.ts < cutoff]
                if old and set(old) <= set(shown):
                    current_reads += 1
                return current_reads >= 20 and len(old) >= 100

            assert _poll(current), "messages.json never held every message older than the lag"
    finally:
        stop.touch()
        assert writer.wait(30) == 0
    assert reads >= 20


KILLED_WRITER = """
import os, time
from journal import DefaultSessionStore
store = DefaultSessionStore(sys.argv[1], view_lag=3600.0)
for n in range(25):
    store.add_message(f"s{n % 5}", "user", f"m{n}")
print("ready", flush=True)
time.sleep(3600)
"""

OPENER = """
import json, os, time
from journal import DefaultSessionStore
store = DefaultSessionStore(sys.argv[1])  # opening schedules the stale views' compaction
deadline = time.monotonic() + 60
def done():
    try:
        return all(len(json.load(open(os.path.join(sys.argv[1], f"s{k}", "messages.json")))["messages"]) == 5
                   for k in range(5))
    except FileNotFoundError:
        return False
while not done() and time.monotonic() < deadline:
    time.sleep(0.05)
print("current" if done() else "stale", flush=True)
os._exit(0)
"""


def test_a_store_opened_after_a_kill_9_brings_the_views_current(tmp_path: Path) -> None:
    writer = _python(KILLED_WRITER, str(tmp_path))
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert not (tmp_path / "s0" / "messages.json").exists()
    opener = _python(OPENER, str(tmp_path))
    out, _ = opener.communicate(timeout=120)
    assert out == "current\n"
    assert json.loads((tmp_path / "s3" / "messages.json").read_text())["messages"][-1]["content"] == "m23"


def test_close_compacts_only_the_sessions_this_store_wrote(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path) as store:
        for n in range(50):
            store.add_message(f"s{n}", "user", "hello")
    with Journal(tmp_path) as journal:  # every view stale: the old close() rewrote them all
        for n in range(50):
            journal.append(f"s{n}", {"role": "user", "content": "later"})
    before = {n: os.stat(tmp_path / f"s{n}" / "messages.json") for n in range(50)}
    store = DefaultSessionStore(tmp_path, view_lag=None)  # no background pass: close() alone
    store.get_chat_history("s3")  # read, not written: not compacted
    store.add_message("s7", "user", "again")
    store.close()
    for n in range(50):
        st = os.stat(tmp_path / f"s{n}" / "messages.json")
        same = (st.st_ino, st.st_mtime_ns) == (before[n].st_ino, before[n].st_mtime_ns)
        assert same == (n != 7), n
    assert _view(tmp_path / "s7" / "messages.json") == ["hello", "later", "again"]


def test_list_sessions_reads_no_history_and_returns_the_newest(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path) as store:
        for n in range(12):
            store.add_message(f"s{n:02d}", "user", "hello")
            store.add_message(f"s{n:02d}", "assistant", "hi")
    with Journal(tmp_path) as journal:  # live records after the views, in the newest session
        journal.append("s11", {"role": "user", "content": "more"})
    store = DefaultSessionStore(tmp_path, view_lag=None)
    folds: list[str] = []
    state = store.journal.state

    def counting_state(session_id: str) -> Any:
        folds.append(session_id)
        return state(session_id)

    store.journal.state = counting_state  # type: ignore[method-assign]
    rows = store.list_sessions(limit=2)
    assert [row["session_id"] for row in rows] == ["s11", "s10"]
    assert [row["message_count"] for row in rows] == [3, 2]
    assert len(store.list_sessions()) == 12 and len(store.list_sessions(limit=None)) == 12
    assert folds == []
    store.journal.close()


def test_list_sessions_entries_match_praisonai_on_the_same_data(tmp_path: Path) -> None:
    praison = pytest.importorskip("praisonaiagents.session.store")
    theirs = praison.DefaultSessionStore(session_dir=str(tmp_path / "p"), retention="keep_all")
    ours = DefaultSessionStore(tmp_path / "j")
    for store in (theirs, ours):
        for n in range(3):
            store.set_chat_history(f"s{n}", [{"role": "user", "content": "hi"}] * (n + 1))
            store.update_session_metadata(f"s{n}", title=f"T{n}", model="m", agent_name="bot")
        store.set_agent_info("s1", user_id="u1")
    ours.close()
    mine, base = ours.list_sessions(), theirs.list_sessions()
    assert set(base[0]) <= set(mine[0])
    shared = ("session_id", "id", "agent_name", "title", "agent_id", "source", "parent_id")
    shared += ("parent_session_id", "agent_key", "message_count", "model", "total_tokens", "cost")
    assert [{k: row[k] for k in shared} for row in mine] == [{k: row[k] for k in shared} for row in base]
