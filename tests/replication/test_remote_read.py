"""A replica read in place (`RemoteReplica`, `journal remote ...`): what it reads, searches
and exports is what the store it was shipped from reads, searches and exports; a corrupt
run is reported, never skipped; nothing is written. Both backends (the `replica` fixture)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from conftest import Replica

from journal import DefaultSessionStore, Journal
from journal.cli.main import main
from journal.errors import UnreadableSessionWarning
from journal.replication.objects import ObjectStore, ReplicaCorruptionError
from journal.replication.remote import RemoteReplica
from journal.replication.runs import list_runs

QUIET = 3600.0  # a replica interval that never fires during a test: passes run on sync_replica


def records(reader: Journal | RemoteReplica, session_id: str, start: int = 0) -> list[tuple[Any, ...]]:
    return [(r.seq, r.ts, r.kind, r.data, r.more) for r in reader.read(session_id, start)]


def shipped(root: Path, replica: Replica) -> None:
    """A store with every record kind (streamed edits, pops, clears, meta, seals, archives)
    written at `root` and shipped whole to `replica`."""
    store = DefaultSessionStore(session_dir=str(root))
    store.add_message("stream", "user", "tell me about machine learning")
    for text in ("Machine", "Machine learning is", "Machine learning is fitting models"):
        store.upsert_partial_assistant_message("stream", text)
    store.upsert_partial_assistant_message("stream", "Machine learning is fitting models.", finalize=True)
    store.upsert_partial_assistant_message("stream", "an abandoned answer about LEARNING")
    store.close()
    with Journal(root, replica=replica.url, replica_options=replica.options or None,
                 replica_interval=QUIET, segment_bytes=1500) as j:  # fmt: skip
        for i in range(30):
            role = "user" if i % 2 else "assistant"
            j.append("chat", {"role": role, "content": f"message {i} about learning " + "x" * 40})
        j.update_metadata("chat", {"agent_name": "Bot", "title": "t"})
        j.compact("chat")
        j.replace_messages("chat", [{"role": "user", "content": "fresh start, learning again"}])
        seq = j.append("chat", {"role": "assistant", "content": "wrong learning"})
        j.append_batch("chat", [("pop", {"of": seq}, None)])
        j.append_many("user/42 chat", [{"role": "user", "content": "ünïcode learning"}] * 3)
        j.clear("user/42 chat")
        j.append("tools", {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]})
        j.append("tools", {"role": "tool", "content": "result: learning", "tool_call_id": "1"})
        j.sync_replica(timeout=30)


def remote(replica: Replica, **kw: Any) -> RemoteReplica:
    return RemoteReplica(replica.url, replica.options or None, **kw)


def snapshot(store: ObjectStore) -> list[tuple[str, int, str]]:
    return [(info.key, info.size, info.etag) for info in store.list()]


def test_reads_and_states_of_a_replica_are_the_sources(tmp_path: Path, replica: Replica) -> None:
    shipped(tmp_path / "a", replica)
    with Journal(tmp_path / "a", read_only=True) as source, remote(replica) as replica_view:
        assert sorted(replica_view.sessions()) == sorted(source.sessions())
        for sid in source.sessions():
            assert replica_view.exists(sid)
            assert records(replica_view, sid) == records(source, sid)
            assert records(replica_view, sid, 7) == records(source, sid, 7)
            assert replica_view.state(sid) == source.state(sid)
            assert replica_view.session_document(sid) == _document(source, sid)
        assert not replica_view.exists("nobody") and replica_view.state("nobody") is None
        assert list(replica_view.read("nobody")) == []


def _document(source: Journal, sid: str) -> dict[str, Any]:
    from journal.ops.transfer import session_document

    return session_document(source, sid)


QUERIES: list[dict[str, Any]] = [
    {"query": "learning"},
    {"query": "LEARNING", "role": "assistant"},
    {"query": "learn[a-z]+ (is|again)", "regex": True},
    {"query": "message 1", "limit": 3},
    {"query": "ünïcode"},
    {"query": "learning", "sessions": ["chat", "tools"], "since": 0.0, "until": 4e9},
]


def test_a_search_of_a_replica_finds_what_the_source_finds(tmp_path: Path, replica: Replica) -> None:
    shipped(tmp_path / "a", replica)
    with Journal(tmp_path / "a", read_only=True) as source, remote(replica) as replica_view:
        for args in QUERIES:
            query, options = args["query"], {k: v for k, v in args.items() if k != "query"}
            expected = list(source.search(query, **options))
            assert expected, args  # every query finds something: the comparison says something
            assert list(replica_view.search(query, **options)) == expected, args


def test_an_export_of_a_replica_is_the_sources_export(tmp_path: Path, replica: Replica) -> None:
    shipped(tmp_path / "a", replica)
    with Journal(tmp_path / "a", read_only=True) as source, remote(replica) as replica_view:
        for name, fmt in [("x.json", "portable"), ("y.json.zst", "portable"), ("z.json", "archive")]:
            mine, theirs = tmp_path / f"replica-{name}", tmp_path / f"source-{name}"
            report = replica_view.export_archive(mine, format=fmt)
            source.export_archive(theirs, format=fmt)
            assert report.skipped == () and report.sessions == 4
            if fmt == "portable":  # nothing in it depends on the time of the export
                assert mine.read_bytes() == theirs.read_bytes()
            else:
                assert _without_time(mine) == _without_time(theirs)
        with Journal(tmp_path / "b") as imported:
            imported.import_archive(tmp_path / "replica-z.json")
            for sid in source.sessions():
                assert _messages(imported, sid) == _messages(source, sid)


def _messages(j: Journal, sid: str) -> list[tuple[float, Any]]:
    state = j.state(sid)
    assert state is not None
    return [(m.ts, m.data) for m in state.messages]


def _without_time(path: Path) -> dict[str, Any]:
    document = orjson.loads(path.read_bytes())
    assert isinstance(document.pop("export_timestamp"), str)
    return dict(document)


def test_a_replica_read_at_a_time_is_the_restore_at_that_time(tmp_path: Path, replica: Replica) -> None:
    with Journal(tmp_path / "a", replica=replica.url, replica_options=replica.options or None,
                 replica_interval=QUIET) as j:  # fmt: skip
        j.append_batch(
            "s", [("message", {"role": "user", "content": f"old {i}"}, 100.0 + i) for i in range(3)]
        )
        j.append_batch("s", [("message", {"role": "user", "content": "new"}, 200.0)])
        j.append_batch("late", [("message", {"role": "user", "content": "later"}, 300.0)])
        j.sync_replica(timeout=30)
    with Journal(tmp_path / "b") as restored, remote(replica, to_time=150.0) as then:
        restored.restore(replica.url, to_time=150.0, replica_options=replica.options or None)
        assert sorted(then.sessions()) == sorted(restored.sessions()) == ["s"]
        assert records(then, "s") == records(restored, "s")
        assert [m.data["content"] for m in then.state("s").messages] == ["old 0", "old 1", "old 2"]  # type: ignore[union-attr]
        assert list(then.search("new")) == [] and not then.exists("late")


def _corrupt_first_run(store: ObjectStore, dir_name: str) -> str:
    """One byte of a record line changed (the frame still decompresses): its checksum fails."""
    key = list_runs(store, dir_name)[0].key
    content = zstandard.ZstdDecompressor().decompress(store.get(key)[0])
    header, lines = content.split(b"\n", 1)
    store.delete(key)
    store.put_new(
        key, zstandard.ZstdCompressor().compress(header + b"\n" + lines.replace(b"message 3", b"massage 3"))
    )
    return key


def test_a_corrupt_run_is_reported_never_skipped(tmp_path: Path, replica: Replica) -> None:
    shipped(tmp_path / "a", replica)
    key = _corrupt_first_run(replica.store(), "chat")
    with remote(replica) as replica_view:
        with pytest.raises(ReplicaCorruptionError) as raised:
            list(replica_view.read("chat"))
        assert key in str(raised.value)
        with pytest.raises(ReplicaCorruptionError):
            replica_view.state("chat")
        with pytest.warns(UnreadableSessionWarning, match="ReplicaCorruption|checksum") as caught:
            hits = list(replica_view.search("learning"))
        assert any(key in str(w.message) for w in caught)
        assert {hit.session_id for hit in hits} == {"stream", "tools", "user/42 chat"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreadableSessionWarning)
            report = replica_view.export_archive(tmp_path / "out.json")
        assert report.skipped == ("chat",) and report.sessions == 3


def test_reading_a_replica_writes_nothing(tmp_path: Path, replica: Replica) -> None:
    shipped(tmp_path / "a", replica)
    store = replica.store()
    before = snapshot(store)
    files_before = sorted(os.listdir(tmp_path))
    with remote(replica) as replica_view:
        for sid in replica_view.sessions():
            list(replica_view.read(sid))
            replica_view.state(sid)
        list(replica_view.search("learning", regex=True))
        replica_view.export_archive(tmp_path / "out.json")
    assert snapshot(store) == before
    assert sorted(os.listdir(tmp_path)) == sorted([*files_before, "out.json"])


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_remote_commands_print_what_the_local_ones_print(
    tmp_path: Path, replica: Replica, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped(tmp_path / "a", replica)
    for name, value in replica.env.items():
        monkeypatch.setenv(name, value)
    here = ["--dir", str(tmp_path / "a")]
    pairs = [
        (["ls", "--json"], ["remote", "ls", replica.url, "--json"]),
        (["show", "chat", "--json"], ["remote", "show", replica.url, "chat", "--json"]),
        (["show", "stream", "--tail", "1"], ["remote", "show", replica.url, "stream", "--tail", "1"]),
        (["cat", "user/42 chat"], ["remote", "cat", replica.url, "user/42 chat"]),
        (["search", "learning", "--role", "user", "--json"],
         ["remote", "search", replica.url, "learning", "--role", "user", "--json"]),
    ]  # fmt: skip
    for local, remote_argv in pairs:
        expected = run_cli([*here, *local], capsys)
        assert expected[0] == 0 and expected[1]
        assert run_cli(remote_argv, capsys) == expected
    code, out, _ = run_cli(
        ["remote", "export", replica.url, str(tmp_path / "r.json"), "--format", "portable"], capsys
    )
    assert code == 0 and "4" in out
    run_cli([*here, "export", str(tmp_path / "l.json"), "--format", "portable"], capsys)
    assert (tmp_path / "r.json").read_bytes() == (tmp_path / "l.json").read_bytes()
    code, _, err = run_cli(["remote", "show", replica.url, "nobody"], capsys)
    assert code == 1 and "no session 'nobody'" in err


def test_a_corrupt_run_makes_the_remote_commands_fail(
    tmp_path: Path, replica: Replica, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped(tmp_path / "a", replica)
    key = _corrupt_first_run(replica.store(), "chat")
    for name, value in replica.env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_cli(["remote", "cat", replica.url, "chat"], capsys)
    assert code == 1 and key in err
    code, out, err = run_cli(["remote", "search", replica.url, "learning"], capsys)
    assert code == 1 and key in err and "tools" in out
    code, _, err = run_cli(["remote", "export", replica.url, str(tmp_path / "e.json")], capsys)
    assert code == 1 and key in err
