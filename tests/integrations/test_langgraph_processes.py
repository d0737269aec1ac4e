"""`JournalSaver` across real processes: a graph whose process is killed (SIGKILL) in the
middle of a run resumes in a new process from its last checkpoint, and two processes putting
checkpoints and writes to one thread at the same time lose nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from langgraph.checkpoint.conformance.test_utils import generate_config

from journal.integrations.langgraph import JournalSaver

GRAPH = """
import operator, os, sys
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph

from journal.integrations.langgraph import JournalSaver

store, runs, marker, mode = sys.argv[1:5]


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def node(name):
    def run(state):
        with open(runs, "a") as f:
            f.write(name + "\\n")
        if name == "c" and not os.path.exists(marker):  # the first time only
            open(marker, "w").close()
            os.kill(os.getpid(), 9)
        return {"steps": [name]}
    return run


builder = StateGraph(State)
for name in "abcd":
    builder.add_node(name, node(name))
for before, after in [(START, "a"), ("a", "b"), ("b", "c"), ("c", "d"), ("d", END)]:
    builder.add_edge(before, after)
saver = JournalSaver(store)
graph = builder.compile(checkpointer=saver)
config = {"configurable": {"thread_id": "job-1"}}
# durability="sync": LangGraph stores each step's checkpoint before the next step starts.
result = graph.invoke({"steps": []} if mode == "start" else None, config, durability="sync")
print(" ".join(result["steps"]))
saver.close()
"""


def test_a_graph_killed_mid_run_resumes_in_a_new_process_without_rerunning_done_nodes(
    tmp_path: Path,
) -> None:
    script = tmp_path / "graph.py"
    script.write_text(GRAPH)
    store, runs, marker = tmp_path / "store", tmp_path / "runs.txt", tmp_path / "killed-once"
    command = [sys.executable, str(script), str(store), str(runs), str(marker)]

    first = subprocess.run([*command, "start"], capture_output=True, text=True, timeout=60)
    assert first.returncode == -9, first.stderr
    assert runs.read_text().split() == ["a", "b", "c"]

    second = subprocess.run([*command, "resume"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["a", "b", "c", "d"]
    assert runs.read_text().split() == ["a", "b", "c", "c", "d"]  # a and b ran once
    with JournalSaver(store) as saver:
        latest = saver.get_tuple(generate_config("job-1"))
        assert latest is not None and latest.checkpoint["channel_values"]["steps"] == ["a", "b", "c", "d"]
        assert saver.journal.verify("job-1").ok


WRITER = """
import os, sys, time

from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_config

from journal.integrations.langgraph import JournalSaver

store, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
saver = JournalSaver(store)
while not os.path.exists(go):
    time.sleep(0.001)
parent = None
for i in range(count):
    checkpoint = generate_checkpoint(channel_values={"who": f"{name}-{i}"}, channel_versions={"who": i + 1})
    metadata = {"source": "loop", "step": i, "parents": {}, "writer": name}
    stored = saver.put(generate_config("shared", checkpoint_id=parent), checkpoint, metadata, {"who": i + 1})
    saver.put_writes(stored, [("who", f"write {name}-{i}")], f"task-{name}-{i}")
    assert saver.get_tuple(stored).checkpoint["id"] == checkpoint["id"]
    parent = checkpoint["id"]
# This saver's index (warm, not a new one) must come to show the other writer's records too.
deadline = time.monotonic() + 60
while len(list(saver.list({"configurable": {"thread_id": "shared"}}))) < 2 * count:
    if time.monotonic() > deadline:
        sys.exit("the other writer's checkpoints never showed")
    time.sleep(0.01)
saver.close()
"""


def test_two_processes_sharing_a_thread_interleave_without_loss(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    store, go, count = tmp_path / "store", tmp_path / "go", 40
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(store), name, str(count), str(go)], stderr=subprocess.PIPE
        )
        for name in ("left", "right")
    ]
    time.sleep(0.5)  # not needed for correctness: lets both start before the race begins
    go.touch()
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""

    with JournalSaver(store) as saver:
        listed = list(saver.list({"configurable": {"thread_id": "shared"}}))
        assert len(listed) == 2 * count
        for name in ("left", "right"):
            mine = sorted(
                (t for t in listed if t.metadata["writer"] == name), key=lambda t: t.metadata["step"]
            )  # type: ignore[typeddict-item]
            assert [t.checkpoint["channel_values"]["who"] for t in mine] == [
                f"{name}-{i}" for i in range(count)
            ]
            assert [t.pending_writes for t in mine] == [
                [(f"task-{name}-{i}", "who", f"write {name}-{i}")] for i in range(count)
            ]
            parents = [
                t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None for t in mine
            ]
            assert parents == [None] + [t.checkpoint["id"] for t in mine[:-1]]
        assert saver.journal.verify("shared").ok
