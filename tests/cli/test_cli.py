"""The command line through the real console script: 0 when all is well, 1 when something is
wrong, 2 on bad usage; every error is one line on stderr, never a traceback, and commands that
read create nothing."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from cli_helpers import JOURNAL, environment, make_store, one_error_line, run, run_all

import journal
from journal import Journal
from journal.cli.main import build_parser


def test_read_commands_on_a_missing_store_fail_in_one_line_and_create_nothing(tmp_path: Path) -> None:
    calls = [
        ["ls"],
        ["show", "s"],
        ["cat", "s"],
        ["tail", "s"],
        ["verify"],
        ["compact", "--all"],
        ["repair", "s"],
        ["rm", "s"],
        ["export", "out.json"],
        ["search", "x"],
        ["stats"],
        ["gc", "--empty"],
        ["gc", "--empty", "--dry-run"],
    ]
    for done in run_all([["--dir", "nowhere", *call] for call in calls], cwd=tmp_path):
        assert done.returncode == 1, done.args
        assert one_error_line(done) == "journal: error: no store at nowhere"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even out.json


def test_dir_is_taken_before_or_after_the_command_then_from_journal_dir(tmp_path: Path) -> None:
    make_store(tmp_path / "a", {"in-a": 1})
    make_store(tmp_path / "b", {"in-b": 1})
    make_store(tmp_path / "sessions", {"in-default": 1})
    ids = {
        "before": run("--dir", "a", "ls", "--json", cwd=tmp_path),
        "after": run("ls", "--json", "--dir", "a", cwd=tmp_path),
        "after wins": run("--dir", "b", "ls", "--dir", "a", "--json", cwd=tmp_path),
        "old --root": run("--root", "a", "ls", "--json", cwd=tmp_path),
        "env": run("ls", "--json", cwd=tmp_path, env=environment(JOURNAL_DIR="b")),
        "flag over env": run("ls", "--dir", "a", "--json", cwd=tmp_path, env=environment(JOURNAL_DIR="b")),
        "default": run("ls", "--json", cwd=tmp_path),
    }
    listed = {
        how: [json.loads(line)["session_id"] for line in done.stdout.splitlines()]
        for how, done in ids.items()
    }
    assert listed == {
        "before": ["in-a"],
        "after": ["in-a"],
        "after wins": ["in-a"],
        "old --root": ["in-a"],
        "env": ["in-b"],
        "flag over env": ["in-a"],
        "default": ["in-default"],
    }


def test_version_is_the_package_version_also_through_the_installed_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "journal"  # the console script pip installed
    assert script.is_file()
    for command in (JOURNAL, [str(script)]):
        done = run("--version", cwd=tmp_path, command=command)
        assert done.returncode == 0 and done.stdout == f"journal {journal.__version__}\n"
    make_store(tmp_path / "sessions", {"s": 2})
    listed = run("ls", cwd=tmp_path, command=[str(script)])
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[:2] == ["s", "2"]


def test_append_prints_the_seq_and_reads_the_text_from_stdin_as_is(tmp_path: Path) -> None:
    assert run("append", "s", "user", "hello", cwd=tmp_path).stdout == "1\n"
    piped = run("append", "s", "assistant", "-", "--json", cwd=tmp_path, stdin="two\nlines\n")
    assert json.loads(piped.stdout) == {"session_id": "s", "seq": 2}
    with Journal(tmp_path / "sessions", read_only=True) as store:
        assert [r.data for r in store.read("s")] == [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "two\nlines\n"},
        ]


def test_ls_and_show_print_counts_fields_and_messages(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"a": 3, "b": 1})
    with Journal(tmp_path / "sessions") as store:
        store.update_metadata("a", {"title": "greetings"})
    ls, ls_json, show, tail = run_all(
        [["ls"], ["ls", "--json"], ["show", "a"], ["show", "a", "--tail", "1"]], tmp_path
    )
    assert [line.split()[:2] for line in ls.stdout.splitlines()] == [
        ["ID", "MESSAGES"],
        ["a", "3"],
        ["b", "1"],
    ]
    rows = [json.loads(line) for line in ls_json.stdout.splitlines()]
    assert [(r["session_id"], r["messages"]) for r in rows] == [("a", 3), ("b", 1)]
    assert all(r["created_at"].endswith("Z") and r["updated_at"] >= r["created_at"] for r in rows)
    assert "messages  3" in show.stdout and '"title":"greetings"' in show.stdout
    assert [line.split(None, 2)[2] for line in show.stdout.splitlines() if line.startswith("  ")] == [
        "user: a message 0",
        "assistant: a message 1",
        "user: a message 2",
    ]
    assert tail.stdout.splitlines()[-1].endswith("user: a message 2") and "message 1" not in tail.stdout


def test_cat_into_a_reader_that_goes_away_ends_quietly_with_0(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"s": 3000})  # far more than a pipe holds
    proc = subprocess.Popen(
        [*JOURNAL, "cat", "s"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()  # what `| head -1` does after its line
    assert proc.wait(timeout=60) == 0 and proc.stderr.read() == b""
    assert first == {
        "seq": 1,
        "ts": first["ts"],
        "kind": "message",
        "data": {"role": "user", "content": "s message 0"},
    }


def test_an_unknown_session_is_a_one_line_error(tmp_path: Path) -> None:
    make_store(tmp_path / "st", {"s": 1})
    calls = [
        ["show", "nosuch"],
        ["cat", "nosuch"],
        ["tail", "nosuch"],
        ["rm", "nosuch"],
        ["repair", "nosuch"],
        ["verify", "nosuch"],
        ["compact", "nosuch"],
        ["export", "out.json", "nosuch"],
    ]
    for done in run_all([["--dir", "st", *call] for call in calls], cwd=tmp_path):
        assert done.returncode == 1, done.args
        assert one_error_line(done) == "journal: error: no session 'nosuch' in st"
    assert not (tmp_path / "out.json").exists()


def test_bad_usage_is_exit_2_and_one_line(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"s": 1})
    calls = {
        "no command": [],
        "unknown command": ["frobnicate"],
        "missing ID": ["show"],
        "empty id": ["cat", ""],
        "ids and --all": ["compact", "s", "--all"],
        "bad age": ["gc", "--older-than", "3 weeks"],
        "gc of nothing": ["gc"],
        "bad date": ["search", "x", "--since", "yesterday"],
        "bad regex": ["search", "(", "--regex"],
        "bad count": ["show", "s", "--tail", "-1"],
        "bad conflict": ["import", "x.json", "--on-conflict", "merge"],
        "bad demo": ["demo", "--agents", "-2"],
    }
    for (why, _), done in zip(calls.items(), run_all(list(calls.values()), cwd=tmp_path), strict=True):
        assert done.returncode == 2, why
        one_error_line(done)
        assert done.stdout == "", why
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions"]


COMMANDS = (
    "append cat compact demo export gc handoff import import-praisonai ls remote repair"
    " replica-compact replicate restore rm search show stats status tail verify"
)


def test_every_command_has_help_with_an_example(tmp_path: Path) -> None:
    top = run("--help", cwd=tmp_path)
    names = top.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert top.returncode == 0 and sorted(names) == COMMANDS.split()
    one = run("tail", "--help", cwd=tmp_path)
    assert one.returncode == 0 and "example:\n  journal tail -f " in one.stdout
    # The others in this process (the same parser the script builds), to keep the suite fast.
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in names:
        shown = commands.choices[name].format_help()
        assert "example:\n  journal " in shown and f" {name}" in shown.split("example:")[1], name
        assert "--dir DIR" in shown, name


def test_verify_reports_damage_with_1_and_repair_fixes_it_with_0(tmp_path: Path) -> None:
    make_store(tmp_path / "st", {"s": 5, "t": 2})
    segment = tmp_path / "st" / "s" / "log" / "00000000000000000001.jsonl"
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01  # a bit flip in the middle: corruption
    segment.write_bytes(bytes(data))

    verify = run("--dir", "st", "verify", cwd=tmp_path)
    assert verify.returncode == 1 and "s: corruption at " in verify.stdout
    assert "2 session(s) verified, 1 with problems" in verify.stdout
    as_json = [
        json.loads(line) for line in run("--dir", "st", "verify", "--json", cwd=tmp_path).stdout.splitlines()
    ]
    assert [(r["session_id"], r["ok"], [p["kind"] for p in r["problems"]]) for r in as_json] == [
        ("s", False, ["corruption"]),
        ("t", True, []),
    ]
    repair = run("--dir", "st", "repair", "s", cwd=tmp_path)
    assert repair.returncode == 0 and "1 problem(s) found" in repair.stdout
    after = run("--dir", "st", "verify", "--all", cwd=tmp_path)
    assert after.returncode == 0 and "2 session(s) verified, 0 with problems" in after.stdout
    assert "Traceback" not in verify.stderr + repair.stderr + after.stderr


def test_one_damaged_session_never_stops_ls_verify_or_compact_of_the_others(tmp_path: Path) -> None:
    make_store(tmp_path / "st", {"a": 2, "bad": 3, "c": 2})
    segment = tmp_path / "st" / "bad" / "log" / "00000000000000000001.jsonl"
    data = bytearray(segment.read_bytes())
    data[10] ^= 0x01
    segment.write_bytes(bytes(data))

    ls, verify = run_all([["--dir", "st", "ls"], ["--dir", "st", "verify", "--all"]], cwd=tmp_path)
    compact = run("--dir", "st", "compact", "--all", cwd=tmp_path)
    assert ls.returncode == 1 and [line.split()[0] for line in ls.stdout.splitlines()] == ["ID", "a", "c"]
    assert ls.stderr.startswith("journal: warning: bad: cannot be read")
    assert verify.returncode == 1 and "3 session(s) verified, 1 with problems" in verify.stdout
    assert compact.returncode == 1 and "2 of 3 session(s) compacted, 1 failed" in compact.stdout
    assert one_error_line(compact).startswith("journal: error: bad: ")
    assert (tmp_path / "st" / "a" / "messages.json").exists() and (
        tmp_path / "st" / "c" / "messages.json"
    ).exists()
    assert not (tmp_path / "st" / "bad" / "messages.json").exists()


def test_compact_and_rm(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"a": 2, "b": 2})
    compact = run("compact", "a", "--json", cwd=tmp_path)
    assert [json.loads(line)["session_id"] for line in compact.stdout.splitlines()] == ["a"]
    assert (tmp_path / "sessions" / "a" / "messages.json").exists()
    assert not (tmp_path / "sessions" / "b" / "messages.json").exists()
    assert run("rm", "a", cwd=tmp_path).stdout == "removed a\n"
    assert run("ls", "--json", cwd=tmp_path).stdout.count("session_id") == 1


def test_import_praisonai_reports_what_it_copied_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    source = tmp_path / "praisonai"
    source.mkdir()
    for sid in ("a", "b"):
        body = {"session_id": sid, "messages": [{"role": "user", "content": f"hi {sid}", "timestamp": 1.0}]}
        (source / f"{sid}.json").write_text(json.dumps(body))
    dry = run("--dir", "st", "import-praisonai", str(source), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "would import 2 session(s), 2 message(s)" in dry.stdout
    assert not (tmp_path / "st").exists()  # a dry run creates nothing, not even the store
    done = run("import-praisonai", str(source), "--dir", "st", cwd=tmp_path)
    assert done.returncode == 0 and "imported 2 session(s)" in done.stdout
    assert [line.split()[0] for line in run("--dir", "st", "ls", cwd=tmp_path).stdout.splitlines()] == [
        "ID",
        "a",
        "b",
    ]
    (source / "c.json").write_text("{broken")
    again = run("--dir", "st", "import-praisonai", str(source), cwd=tmp_path)
    assert again.returncode == 1 and "imported 0 session(s)" in again.stdout
    assert "skipped a.json" in again.stdout and "not imported c.json" in again.stderr
    assert "Traceback" not in again.stderr
    missing = run("--dir", "new", "import-praisonai", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 1 and "no directory" in one_error_line(missing)
    assert not (tmp_path / "new").exists()  # the store it would have created is gone again


def test_demo_runs_on_the_store_it_is_given(tmp_path: Path) -> None:
    done = run("demo", "--agents", "2", "--messages", "10", "--dir", "demo-store", cwd=tmp_path)
    assert done.returncode == 0 and "OK: nothing acknowledged was lost" in done.stdout
    assert (tmp_path / "demo-store" / "shared-room" / "messages.json").exists()
