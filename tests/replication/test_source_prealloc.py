"""The shipper's reader of a live log (`replication.source.LocalLog`) over a preallocated
segment: asking for a record that is not there yet must not leave it believing the record
starts at the file's end, past the zeros (FORMAT.md "Segments", "Zero-filled tail")."""

from __future__ import annotations

import os
from pathlib import Path

from journal import Journal
from journal.log.fs import OsFileSystem
from journal.replication.source import LocalLog


def test_a_record_asked_for_before_it_exists_is_read_right_once_it_does(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="always", preallocate=64 * 1024) as journal:
        for n in range(20):
            journal.append("s", {"role": "user", "content": f"m{n}"})
        segment = next((tmp_path / "s" / "log").iterdir())
        assert segment.read_bytes().endswith(b"\0")  # the zeros are there to be misread
        reader = LocalLog(OsFileSystem(), os.path.join(tmp_path, "s"), 1 << 24)
        assert reader.line_at(25) is None  # a replica ahead of this copy asks for seq 25
        for n in range(20, 400):
            journal.append("s", {"role": "user", "content": f"m{n}" * 5})
        line = reader.line_at(25)
        assert line is not None and b'"seq":25,' in line
        assert reader.last_seq(0) == 400
