"""A store the process cannot write is listed, read, verified and exported, and left as it was.

The store is a real copy made unwritable with `chmod -R a-w`. Tests run as root here, and
root ignores permissions, so every check runs in a subprocess that cannot bypass them: as
root, through `setpriv` with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from its
bounding set (root then obeys file modes like any user); otherwise as the user itself.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import replace
from pathlib import Path

from _unprivileged import cli_unprivileged, run_unprivileged

from journal import Journal
from journal.log import manifest as mf


def tree(root: Path) -> dict[str, str]:
    """Every entry under `root` with a digest of its bytes: to show nothing changed."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_store(root: Path) -> None:
    """a: plain; b: compacted, then one more message; c: a torn tail after 3 messages."""
    with Journal(root, durability="none") as journal:
        for sid in "abc":
            for n in range(3):
                journal.append(sid, {"role": "user", "content": f"{sid}{n}"})
        journal.compact("b")
        journal.append("b", {"role": "user", "content": "b3"})
    with open(root / "c" / "log" / "00000000000000000001.jsonl", "ab") as segment:
        segment.write(b'{"seq":4,"ts":1.0,"ki')  # a writer died mid-record


def lock_down(root: Path) -> None:
    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)


def unlock(root: Path) -> None:
    subprocess.run(["chmod", "-R", "u+rwX", str(root)], check=True)


READ_EVERYTHING = """
    import json, sys, warnings
    from journal import Journal, ReadOnlyError
    from journal.store.session_store import DefaultSessionStore
    root = sys.argv[1]
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Journal(root, read_only=True) as journal:
            out["sessions"] = sorted(journal.sessions())
            out["contents"] = {
                sid: [r.data["content"] for r in journal.read(sid) if r.kind == "message"]
                for sid in out["sessions"]
            }
            out["state"] = [m.data["content"] for m in journal.state("b").messages]
            out["verify"] = {sid: journal.verify(sid).ok for sid in out["sessions"]}
            refused = []
            for write in (
                lambda: journal.append("a", {"role": "user", "content": "x"}),
                lambda: journal.append("new", {"role": "user", "content": "x"}),
                lambda: journal.compact("a"),
                lambda: journal.repair("c"),
                lambda: journal.delete("a"),
            ):
                try:
                    write()
                except ReadOnlyError as exc:
                    refused.append(exc.path)
            out["refused"] = len(refused)
        store = DefaultSessionStore(root, read_only=True)
        out["history"] = [m["content"] for m in store.get_chat_history("c")]
        out["export"] = len(store.export_session("b")["sessions"][0]["messages"])
        store.close()
    out["warnings"] = [str(w.message) for w in caught]
    print(json.dumps(out))
"""


def test_a_store_that_cannot_be_written_is_listed_read_verified_and_exported(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_store(root)
    lock_down(root)
    before = tree(root)
    try:
        out = run_unprivileged(READ_EVERYTHING, str(root))
    finally:
        unlock(root)
    assert out["sessions"] == ["a", "b", "c"]
    assert out["contents"] == {
        "a": ["a0", "a1", "a2"],
        "b": ["b0", "b1", "b2", "b3"],
        "c": ["c0", "c1", "c2"],
    }
    assert out["state"] == ["b0", "b1", "b2", "b3"]
    assert out["verify"] == {"a": True, "b": True, "c": False}  # the torn tail is reported, not cut
    assert out["refused"] == 5
    assert out["history"] == ["c0", "c1", "c2"] and out["export"] == 4
    assert any("torn tail" in w and "not cut" in w for w in out["warnings"])  # type: ignore[attr-defined]
    assert tree(root) == before  # nothing created, cut or finished


def test_the_cli_read_commands_open_an_unwritable_store_read_only(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_store(root)
    lock_down(root)
    before = tree(root)
    try:
        ls = cli_unprivileged(root, "ls")
        cat = cli_unprivileged(root, "cat", "b")
        verify = cli_unprivileged(root, "verify", "a", "b")
        compact = cli_unprivileged(root, "compact")
    finally:
        unlock(root)
    listed = [line.split()[0] for line in ls.stdout.splitlines()[1:]]  # under the table's header
    assert ls.returncode == 0 and listed == ["a", "b", "c"], ls.stderr
    assert cat.returncode == 0 and len(cat.stdout.splitlines()) == 5, cat.stderr  # 4 messages, a seal
    assert verify.returncode == 0 and "2 session(s) verified, 0 with problems" in verify.stdout
    assert compact.returncode == 1 and "Traceback" not in compact.stderr
    assert tree(root) == before


def interrupt_after_commit(root: Path, sid: str) -> None:
    """Make the state a crash right after a compaction's manifest commit leaves: the new files
    still under their temp names, the folded segment still in log/."""
    first = root / sid / "log" / "00000000000000000001.jsonl"
    folded = first.read_bytes()
    with Journal(root) as journal:
        journal.compact(sid)
    session = root / sid
    manifest = mf.load(journal.fs, str(session))
    pending = []
    for final in [*mf.SNAPSHOT_FILES, *(mf.archive_name(s) for s in manifest.archived)]:
        temp = f"{final}.tmp-1-abcd"
        os.rename(session / final, session / temp)
        pending.append((temp, final))
    first.write_bytes(folded)
    half_done = replace(manifest, pending=tuple(pending), folded=(first.name,))
    (session / mf.MANIFEST_FILE).write_bytes(mf.encode(half_done))


HALF_DONE = """
    import json, sys
    from journal import Journal
    from journal.store.session_store import DefaultSessionStore
    with Journal(sys.argv[1], read_only=True) as journal:
        records = [r.data.get("content") for r in journal.read("s") if r.kind == "message"]
        state = [m.data["content"] for m in journal.state("s").messages]
        ok = journal.verify("s").ok
    listed = [e["message_count"] for e in DefaultSessionStore(sys.argv[1], read_only=True).list_sessions()]
    print(json.dumps({"records": records, "state": state, "ok": ok, "listed": listed}))
"""


def test_a_half_done_compaction_is_read_as_its_manifest_says_and_left_unfinished(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with Journal(root) as journal:
        for n in range(4):
            journal.append("s", {"role": "user", "content": f"m{n}"})
    interrupt_after_commit(root, "s")
    lock_down(root)
    before = tree(root)
    try:
        out = run_unprivileged(HALF_DONE, str(root))
    finally:
        unlock(root)
    expected = ["m0", "m1", "m2", "m3"]
    assert out["records"] == expected and out["state"] == expected
    assert out["listed"] == [4]
    assert tree(root) == before  # still half done: a reader finishes nothing
    with Journal(root) as journal:  # a writer finishes it and reads the same
        assert [m.data["content"] for m in journal.state("s").messages] == expected
        assert journal.verify("s").ok
