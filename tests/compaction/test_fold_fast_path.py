"""The compactor folds the usual run of lines at once (`linecheck.check_run`, then
`splice.splice_run`) and anything else a line at a time, the fold it had before. Both must
write the same files byte for byte: compacting a copy of the same session with the run-at-once
path switched off (so every line takes the line-at-a-time fold) is the reference. The history
holds every case either path decides: single appends (each its own ts) and batches (one ts)
that span many runs, edits, pops, clears, metadata, payloads that already hold a stamp key
(also escaped), objects with spaces or empty, payloads that are no object, and times that
orjson prints in exponent form or that take more digits than the fast grammar reads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import xxhash

from journal import Journal
from journal.compaction import folding
from journal.log import linecheck

SID = "chat"
VIEWS = ("messages.json", "metadata.json", "session_id.json", "compaction.json")


def with_checksum(body: bytes) -> bytes:
    return b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(body).encode() + b'",' + body + b"\n"


def raw_lines(seq: int) -> list[bytes]:
    """Lines journal's own API never writes, numbered from `seq`: another writer's."""
    bodies = [
        b'"v":1,"seq":%d,"ts":1700000001.000000,"kind":"message","data":{"\\u0074imestamp":1,"role":"user"}}',
        b'"v":1,"seq":%d,"ts":1700000002.000000,"kind":"message","data":{ "role": "user", "content": "sp" }}',
        b'"v":1,"seq":%d,"ts":1700000003.000000,"kind":"message","data":{"role":"user","content":"x"} }',
        b'"v":1,"seq":%d,"ts":0.000001,"kind":"message","data":{"role":"user","content":"1e-06"}}',
        b'"v":1,"seq":%d,"ts":253402300799.000000,"kind":"message","data":{"role":"user","content":"late"}}',
        b'"v":1,"seq":%d,"ts":1700000004.000000,"kind":"message","data":["not","an","object"]}',
        b'"v":1,"seq":%d,"ts":1700000005.000000,"kind":"message","data":"text"}',
    ]
    return [with_checksum(body % (seq + i)) for i, body in enumerate(bodies)]


def build(root: Path, rounds: int) -> None:
    """A varied history, written in `rounds` (each ends with the segment it wrote)."""
    with Journal(root, durability="none", segment_bytes=64 * 1024) as j:
        for n in range(rounds):
            if n == 1:  # the view holds what follows
                j.append_batch(SID, [("clear", {}, None)])
            stamps = [1700000000.0 + k * 0.0013 for k in range(150)]
            stamps += [-86400.0 - k * 0.0071 for k in range(50)]  # before 1970 too
            j.append_batch(SID, [("message", {"role": "user", "content": "t"}, ts) for ts in stamps])
            for i in range(300):  # single appends: each record its own ts
                j.append(SID, {"role": "user", "content": f"hi {n} {i} é 😀", "metadata": {}})
            j.append_many(SID, [{"role": "assistant", "content": f"b{k}"} for k in range(1200)])
            seq = j.append(SID, {"role": "assistant", "content": "It is", "metadata": {"partial": True}})
            j.append_batch(SID, [("message", {"role": "user", "timestamp": "mine"}, None)])
            j.append_batch(SID, [("pop", {"of": seq + 1}, None), ("meta", {"round": n}, None)])
            j.append_batch(SID, [("message", {}, 1700000000.5), ("message", {"_journal": 1}, None)])
            last = j.append(SID, {"role": "user", "content": "before raw lines"})
        path = j.session_path(SID)
    segment = sorted(os.listdir(os.path.join(path, "log")))[-1]
    with open(os.path.join(path, "log", segment), "ab") as out:  # another writer's lines
        out.writelines(raw_lines(last + 1))


def compact(root: Path) -> dict[str, bytes]:
    with Journal(root, durability="none") as j:
        j.compact(SID)
        path = Path(j.session_path(SID))
    return {name: (path / name).read_bytes() for name in VIEWS}


def test_a_compaction_writes_what_the_line_at_a_time_fold_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    build(fast, rounds=2)
    shutil.copytree(fast, slow)
    taken: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> linecheck.Run | None:
        run = linecheck.check_run(*args, **kwargs)
        taken.append(run is not None)
        return run

    monkeypatch.setattr(folding, "check_run", counted)
    written = compact(fast)
    assert True in taken and False in taken  # runs folded at once, and a run of odd lines
    monkeypatch.setattr(folding, "check_run", lambda *args, **kwargs: None)
    assert written == compact(slow)


def test_a_second_compaction_carries_the_first_one_forward_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    build(fast, rounds=1)
    shutil.copytree(fast, slow)
    compact(fast)
    with Journal(fast, durability="none") as j:
        j.append_many(SID, [{"role": "user", "content": f"more {k}"} for k in range(1500)])
    shutil.rmtree(slow)
    shutil.copytree(fast, slow)
    written = compact(fast)
    monkeypatch.setattr(folding, "check_run", lambda *args, **kwargs: None)
    assert written == compact(slow)
