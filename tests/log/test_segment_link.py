"""A file linked at the next segment's name is never written (team rule: journal never writes
over a file it did not create).

A roll seals the active segment and opens the next one by name, creating it; if a file is
already there (a hard link someone made to a file of their own) journal did not write it. A
preallocating writer writes at offset 0 of a new segment, so it would write over that file; an
appending one would add to it. Either way the first write into a segment this handle has not
read checks that it is empty, and refuses. (A later open still takes such a file for the
active segment and cuts it as a torn tail, its bytes kept in quarantine: telling a foreign
hard link from a segment needs its link count, which `FileStat` does not carry.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _core_helpers import active_segment, message

from journal import Journal, UnsafePathError
from journal.log.naming import segment_name

SID = "chat"
FOREIGN = b"somebody else's file\n"


@pytest.mark.parametrize("preallocate", [64 * 1024, 0])
def test_a_file_linked_at_the_next_segments_name_is_not_written(tmp_path: Path, preallocate: int) -> None:
    root, outside = tmp_path / "store", tmp_path / "mine.txt"
    outside.write_bytes(FOREIGN)
    with Journal(root, durability="always", segment_bytes=600, preallocate=preallocate) as journal:
        seq = journal.append(SID, message("m0"))
        while len(active_segment(root / SID).read_bytes().rstrip(b"\0")) < 600:
            seq = journal.append(SID, message(f"m{seq}"))  # m0 is seq 1, m1 seq 2, ...
        # The next append seals this segment (seq + 1) and starts the next one at seq + 2.
        os.link(outside, root / SID / "log" / segment_name(seq + 2))
        with pytest.raises(UnsafePathError, match="did not write"):
            journal.append(SID, message("after the roll"))
        assert outside.read_bytes() == FOREIGN
    assert outside.read_bytes() == FOREIGN  # nor by closing
    sealed = (root / SID / "log" / segment_name(1)).read_bytes()
    assert sealed.count(b"\n") == seq + 1 and b'"kind":"seal"' in sealed.splitlines()[-1]
