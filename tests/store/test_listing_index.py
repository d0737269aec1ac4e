"""The listing index (FORMAT.md, "Listing index"): advisory, so list_sessions always equals the
truth (every session's state read the locked way) whatever happens to the index, while a
listing with a current index reads no session's files but the marked ones."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from journal import DefaultSessionStore, Journal
from journal.log import index
from journal.store.session_data import iso_time

ROOT_OF_REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture(autouse=True)
def small_stores_get_an_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "MIN_SESSIONS", 0)


def truth(journal: Journal) -> list[tuple[Any, ...]]:
    rows = []
    for sid in journal.sessions():
        state = journal.state(sid)
        assert state is not None
        md = state.metadata
        rows.append((sid, iso_time(state.updated_at or 0.0), len(state.messages), md.get("title")))
    return sorted(rows)


def listed(store: DefaultSessionStore) -> list[tuple[Any, ...]]:
    rows = store.list_sessions(limit=None)
    return sorted((r["session_id"], r["updated_at"], r["message_count"], r["title"]) for r in rows)


def index_path(store: DefaultSessionStore) -> Path:
    return Path(store.journal.root) / index.INDEX_FILE


def damage(path: Path, rng: random.Random) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    how = rng.choice(["delete", "truncate", "flip", "garbage"])
    if how == "delete":
        path.unlink()
    elif how == "truncate":  # cut mid-line
        path.write_bytes(data[: rng.randrange(1, max(2, len(data)))])
    elif how == "flip" and len(data) > 80:
        at = rng.randrange(60, len(data))
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    else:
        with open(path, "ab") as f:
            f.write(b"\x00garbage with no newline")


def docs_layout_dir(root: Path, sid: str, count: int) -> None:
    session = root / sid
    session.mkdir()
    msgs = [{"role": "user", "content": f"m{i}", "timestamp": "2024-01-15T10:30:00Z"} for i in range(count)]
    (session / "messages.json").write_text(json.dumps({"messages": msgs}))
    (session / "session_id.json").write_text(json.dumps({"session_id": sid, "metadata": {"title": "docs"}}))


def test_listing_equals_the_truth_through_random_writes_deletes_adoption_and_index_damage(
    tmp_path: Path,
) -> None:
    rng = random.Random(11)
    root = tmp_path / "s"
    store = DefaultSessionStore(session_dir=str(root), durability="none", view_lag=None)
    other = Journal(root, durability="none")  # another writer: its own handles, its own marks
    ids = [f"s{i}" for i in range(12)] + ["a/b", "x y"]
    for step in range(160):
        op = rng.choice(
            ["add", "add", "other", "meta", "compact", "other_compact", "delete", "damage", "adopt"]
        )
        sid = rng.choice(ids)
        if op == "add":
            store.add_message(sid, "user", f"hi {step}")
        elif op == "other":
            other.append_many(sid, [{"role": "user", "content": f"o{step}"}] * rng.randint(1, 3))
        elif op == "meta":
            other.update_metadata(sid, {"title": f"t{step}"})
        elif op in ("compact", "other_compact") and store.journal.exists(sid):
            (store.journal if op == "compact" else other).compact(sid)
        elif op == "delete":
            (store.journal if step % 2 else other).delete(sid)
        elif op == "damage":
            damage(index_path(store), rng)
        elif op == "adopt" and not (root / f"docs{step}").exists():
            docs_layout_dir(root, f"docs{step}", rng.randint(0, 3))
        if step % 3 == 0:
            assert listed(store) == truth(store.journal), f"step {step} after {op} {sid}"
    assert listed(store) == truth(store.journal)
    other.close()
    store.close()


def test_a_listing_with_a_current_index_reads_no_unmarked_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "s"
    with DefaultSessionStore(session_dir=str(root), durability="none", view_lag=None) as store:
        for sid in ("a", "b"):
            store.add_message(sid, "user", "hi")
            store.journal.compact(sid)
        assert [r["message_count"] for r in store.list_sessions()] == [1, 1]
        # A tool (no journal, so no mark) rewrites b's summary: the index is trusted...
        info_path = root / "b" / "session_id.json"
        info = json.loads(info_path.read_text())
        info["_journal"]["messages"] = 7
        info_path.write_text(json.dumps(info))
        assert sorted(r["message_count"] for r in store.list_sessions()) == [1, 1]
        # ...until the next full pass, which reads every session's files.
        monkeypatch.setattr(index, "FULL_PASS_SECONDS", -1.0)
        assert sorted(r["message_count"] for r in store.list_sessions()) == [1, 7]


def test_an_index_written_before_a_reboot_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "s"
    with DefaultSessionStore(session_dir=str(root), durability="none", view_lag=None) as store:
        store.add_message("a", "user", "hi")
        store.journal.compact("a")
        store.list_sessions()
        # A power loss may drop marks (never fsynced); a boot id other than the index's says so.
        info_path = root / "a" / "session_id.json"
        info = json.loads(info_path.read_text())
        info["_journal"]["messages"] = 3
        info_path.write_text(json.dumps(info))
        monkeypatch.setattr(index, "boot_id", lambda: "another boot")
        assert [r["message_count"] for r in store.list_sessions()] == [3]


def test_a_small_store_holds_no_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "MIN_SESSIONS", 3)
    root = tmp_path / "s"
    with DefaultSessionStore(session_dir=str(root), durability="none", view_lag=None) as store:
        for sid in ("a", "b"):
            store.add_message(sid, "user", "hi")
        assert len(store.list_sessions()) == 2
        assert not index_path(store).exists()
        store.add_message("c", "user", "hi")
        assert len(store.list_sessions()) == 3
        assert index_path(store).exists()


_CHILD = """
import sys, os
sys.path.insert(0, {repo!r})
from journal import Journal
root, acks = sys.argv[1], sys.argv[2]
fd = os.open(acks, os.O_WRONLY | os.O_CREAT, 0o600)
with Journal(root, durability="none") as j:
    for n in range(1, 401):
        j.append("hot", {{"role": "user", "content": str(n)}})
        os.pwrite(fd, str(n).rjust(8).encode(), 0)  # acknowledged: listings must show it
        if n % 37 == 0:
            j.compact("hot")
"""


def test_a_session_another_process_appends_to_is_listed_with_every_acknowledged_message(
    tmp_path: Path,
) -> None:
    root, acks = tmp_path / "s", tmp_path / "acks"
    with DefaultSessionStore(session_dir=str(root), durability="none", view_lag=None) as store:
        store.add_message("cold", "user", "hi")
        store.list_sessions()
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(repo=ROOT_OF_REPO), str(root), str(acks)]
        )
        checks = 0
        while child.poll() is None or checks == 0:
            acked = int(acks.read_bytes() or b"0") if acks.exists() else 0
            rows = {r["session_id"]: r["message_count"] for r in store.list_sessions()}
            assert rows.get("hot", 0) >= acked
            checks += 1
            if checks % 5 == 0 and store.journal.exists("hot"):
                store.journal.compact("hot")  # the listing then sees the live log empty
            time.sleep(0.001)
        assert child.returncode == 0
        assert {r["session_id"]: r["message_count"] for r in store.list_sessions()}["hot"] == 400
        assert os.path.exists(index_path(store))
