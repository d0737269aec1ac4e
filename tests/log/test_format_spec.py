"""FORMAT.md is the spec: its golden example decodes, and reads parse only bytes not seen before."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson

from journal import Journal
from journal.log.fs import OsFileSystem
from journal.log.record import FORMAT_VERSION

FORMAT_MD = Path(__file__).resolve().parents[2] / "FORMAT.md"


def golden_lines() -> bytes:
    """The code block under "### Golden example" in FORMAT.md, as segment bytes."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    section = text.split("### Golden example", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None, "FORMAT.md has no golden example block"
    return block.group(1).encode()


class ReadCountingFileSystem(OsFileSystem):
    """The real OS, counting the bytes read with pread."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        data = super().pread(fd, size, offset)
        self.bytes_read += len(data)
        return data


def test_the_golden_example_in_format_md_is_a_valid_segment(tmp_path: Path) -> None:
    session = tmp_path / "store" / "golden"
    (session / "log").mkdir(parents=True)
    identity = {"format": FORMAT_VERSION, "session_id": "golden"}
    (session / "identity.json").write_bytes(orjson.dumps(identity))
    (session / "log" / "00000000000000000001.jsonl").write_bytes(golden_lines())

    with Journal(tmp_path / "store") as journal:
        records = list(journal.read("golden"))
        state = journal.state("golden")
        assert journal.verify("golden").ok

    assert [(r.seq, r.kind, r.more) for r in records] == [
        (1, "message", 0),
        (2, "message", 1),
        (3, "message", 0),
        (4, "meta", 0),
    ]
    assert state is not None
    assert [m.data["content"] for m in state.messages] == ["Hello! How are you?", "Fine.", "Good."]
    assert state.metadata == {"agent_name": "FileBot"}
    assert (state.created_at, state.updated_at) == (1732406400.5, 1732406402.0)


def test_a_changed_byte_in_the_golden_example_fails_its_checksum(tmp_path: Path) -> None:
    lines = golden_lines().replace(b"Good.", b"Goof.")
    session = tmp_path / "store" / "golden"
    (session / "log").mkdir(parents=True)
    (session / "identity.json").write_bytes(orjson.dumps({"format": FORMAT_VERSION, "session_id": "golden"}))
    (session / "log" / "00000000000000000001.jsonl").write_bytes(lines)

    with Journal(tmp_path / "store") as journal:
        problems = journal.verify("golden").problems
    assert [p.reason for p in problems] == ["checksum mismatch, and valid records follow"]


def test_reading_on_from_the_last_record_parses_only_the_new_bytes(tmp_path: Path) -> None:
    fs = ReadCountingFileSystem()
    with Journal(tmp_path, durability="none", fs=fs) as journal:
        for n in range(2000):
            journal.append("s", {"role": "user", "content": f"message {n}"})
        records = list(journal.read("s"))
        new_line = os.path.getsize(journal.session_path("s") + "/log/00000000000000000001.jsonl") / 2000

        journal.append("s", {"role": "user", "content": "one more"})
        fs.bytes_read = 0
        tail = list(journal.read("s", start=records[-1].seq + 1))

    assert [r.data["content"] for r in tail] == ["one more"]
    assert fs.bytes_read < 3 * new_line  # the new record, not the 2,000 before it


def test_state_of_a_growing_session_parses_only_the_new_bytes(tmp_path: Path) -> None:
    fs = ReadCountingFileSystem()
    with Journal(tmp_path, durability="none", fs=fs) as journal:
        for n in range(2000):
            journal.append("s", {"role": "user", "content": f"message {n}"})
        assert journal.state("s") is not None
        journal.append("s", {"role": "user", "content": "one more"})
        fs.bytes_read = 0
        state = journal.state("s")

    assert state is not None and len(state.messages) == 2001
    assert fs.bytes_read < 300
