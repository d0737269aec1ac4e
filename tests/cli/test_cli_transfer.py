"""`journal export` / `journal import` through the real command line, and `show --json`: the
same conversation in two stores prints the same bytes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _unprivileged import unprivileged
from cli_helpers import JOURNAL, environment, make_store, one_error_line, run, run_all

from journal import Journal


def test_export_import_and_show_json_print_the_same_bytes_in_both_stores(tmp_path: Path) -> None:
    make_store(tmp_path / "one", {"a": 3, "b": 2})
    with Journal(tmp_path / "one") as store:
        store.update_metadata("a", {"title": "greetings", "agent_id": "bot-1"})
        store.append("a", {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]})
    for name in ("all.json", "a.json.zst"):
        export = run(
            "--dir", "one", "export", name, *(["a", "--json"] if name.endswith("zst") else []), cwd=tmp_path
        )
        assert export.returncode == 0 and export.stderr == "", export.stderr
    assert run("--dir", "one", "export", "all.json", cwd=tmp_path).returncode == 1  # never written over
    report = json.loads(
        run("--dir", "one", "export", "p.json", "--format", "portable", "--json", cwd=tmp_path).stdout
    )
    assert (report["sessions"], report["messages"], report["format"]) == (2, 6, "portable")

    first = run("--dir", "two", "import", "a.json.zst", "--json", cwd=tmp_path)
    assert json.loads(first.stdout)["imported"] == 1 and first.returncode == 0
    again = run("--dir", "two", "import", "all.json", cwd=tmp_path)
    assert again.returncode == 0 and "imported 1 new session(s), skipped 1" in again.stdout
    assert run("--dir", "three", "import", "p.json", "--on-conflict", "replace", cwd=tmp_path).returncode == 0

    shown = run_all([["--dir", d, "show", "a", "--json"] for d in ("one", "two", "three")], cwd=tmp_path)
    assert [s.returncode for s in shown] == [0, 0, 0]
    assert shown[0].stdout == shown[1].stdout == shown[2].stdout
    document = json.loads(shown[0].stdout)
    assert document["message_count"] == 4 and document["messages"][-1]["tool_calls"] == [{"id": "c1"}]
    assert str(tmp_path) not in shown[0].stdout
    tail = json.loads(run("--dir", "two", "show", "a", "--json", "--tail", "1", cwd=tmp_path).stdout)
    assert tail["messages"] == document["messages"][-1:]


def test_import_refuses_what_is_not_an_export_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    make_store(tmp_path / "one", {"a": 3})
    assert run("--dir", "one", "export", "good.json", cwd=tmp_path).returncode == 0
    good = (tmp_path / "good.json").read_bytes()
    (tmp_path / "cut.json").write_bytes(good[: len(good) // 2])  # a corrupt (truncated) archive
    (tmp_path / "other.json").write_text('{"hello": "world"}')  # JSON, but not an export
    (tmp_path / "notes.txt").write_text("dear diary")
    (tmp_path / "bad.json.zst").write_bytes(b"\x28\xb5\x2f\xfd garbage")
    for name in ("cut.json", "other.json", "notes.txt", "bad.json.zst", "missing.json"):
        done = run("--dir", "new", "import", name, cwd=tmp_path)
        assert done.returncode == 1, name
        assert name in one_error_line(done)
        assert not (tmp_path / "new").exists(), name  # not even the store directory
    (tmp_path / "existing").mkdir()
    done = run("--dir", "existing", "import", "cut.json", cwd=tmp_path)
    assert done.returncode == 1 and list((tmp_path / "existing").iterdir()) == []


def test_a_store_that_is_not_writable_is_a_one_line_error(tmp_path: Path) -> None:
    make_store(tmp_path / "st", {"a": 2})
    assert run("--dir", "st", "export", "a.json", cwd=tmp_path).returncode == 0
    subprocess.run(["chmod", "-R", "a-w", str(tmp_path / "st")], check=True)
    try:
        calls = [
            ["append", "a", "user", "x"],
            ["import", "a.json", "--on-conflict", "replace"],
            ["rm", "a"],
            ["compact", "a"],
            ["repair", "a"],
            ["gc", "--empty"],
        ]
        done = [
            subprocess.run(
                unprivileged([*JOURNAL, "--dir", "st", *args]),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                env=environment(),
            )
            for args in calls
        ]
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path / "st")], check=True)
    for args, result in zip(calls, done, strict=True):
        assert result.returncode == 1, args
        assert one_error_line(result) == "journal: error: store root st is not writable", args
