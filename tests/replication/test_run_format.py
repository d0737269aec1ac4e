"""Run objects as FORMAT.md "Replicas" > "Run objects" specifies them: the golden example
decodes, and every way an object can be wrong is refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import zstandard

from journal.errors import UnsupportedFormatError
from journal.replication.chain import Piece, pieces
from journal.replication.filestore import FileStore
from journal.replication.objects import ReplicaConflictError, ReplicaCorruptionError
from journal.replication.runs import RunRef, decode_run, encode_run, run_key

SPEC = (Path(__file__).resolve().parents[2] / "FORMAT.md").read_text()


def golden() -> tuple[bytes, bytes]:
    """The golden run's header line and lines, as FORMAT.md gives them."""
    lines = SPEC.split("### Golden example")[1].split("```")[1].strip("\n") + "\n"
    header = SPEC.split("### Run objects")[1].split("followed by those four lines")[0]
    header = header.split("```")[-2].strip("\n")
    return header.encode(), lines.encode()


def frame(content: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(content)


def test_the_golden_run_decodes() -> None:
    header, lines = golden()
    key = "sessions/s1/log/00000000000000000001.e0000000000.jsonl.zst"
    assert run_key("s1", 1, 0) == key
    run = decode_run(key, frame(header + b"\n" + lines), RunRef(key, 1, 0))
    assert (run.session_id, run.first, run.last, run.epoch, run.prev) == ("s1", 1, 4, 0, "")
    assert run.raw == lines and run.last_checksum == "1837822dbe1a0e9b"
    assert (
        zstandard.ZstdDecompressor().decompress(encode_run("s1", 1, 0, "", lines)) == header + b"\n" + lines
    )


def edited(field: str, value: object) -> bytes:
    header, lines = golden()
    body = orjson.loads(header)
    body[field] = value
    return frame(orjson.dumps(body) + b"\n" + lines)


@pytest.mark.parametrize(
    ("field", "value"),
    [("last", 5), ("first", 2), ("bytes", 549), ("xxh3", "0" * 16), ("epoch", -1), ("prev", 7)],
)
def test_a_header_that_does_not_match_its_lines_is_refused(field: str, value: object) -> None:
    with pytest.raises(ReplicaCorruptionError):
        decode_run("k", edited(field, value))


def test_a_run_named_for_another_seq_or_epoch_is_refused() -> None:
    header, lines = golden()
    blob = frame(header + b"\n" + lines)
    for ref in (RunRef("k", 2, 0), RunRef("k", 1, 3)):
        with pytest.raises(ReplicaCorruptionError, match="name"):
            decode_run("k", blob, ref)


def test_a_run_that_ends_inside_a_batch_is_refused() -> None:
    lines = golden()[1].splitlines(keepends=True)
    cut = b"".join(lines[:2])  # record 2 says one more record of its batch follows
    with pytest.raises(ReplicaCorruptionError, match="whole batch"):
        decode_run("k", encode_run("s1", 1, 0, "", cut))


def test_another_format_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError):
        decode_run("k", edited("format", 3))


def test_bytes_that_are_no_zstd_frame_are_refused() -> None:
    header, lines = golden()
    for blob in (b"", b"not zstd", frame(header + b"\n" + lines)[:-5], frame(b"x") + b"trailing"):
        with pytest.raises(ReplicaCorruptionError):
            decode_run("k", blob)


def test_runs_that_do_not_chain_are_two_histories(tmp_path: Path) -> None:
    lines = golden()[1].splitlines(keepends=True)
    store = FileStore(str(tmp_path))
    store.put_new(run_key("s1", 1, 0), encode_run("s1", 1, 0, "", b"".join(lines[:1])))
    store.put_new(run_key("s1", 2, 0), encode_run("s1", 2, 0, "0123456789abcdef", b"".join(lines[1:])))
    with pytest.raises(ReplicaConflictError, match="two writers"):
        list(pieces(store, "s1", "s1"))


def test_a_fence_keeps_part_of_a_run_cut_back_to_a_whole_batch(tmp_path: Path) -> None:
    lines = golden()[1]
    store = FileStore(str(tmp_path))
    store.put_new(run_key("s1", 1, 1), encode_run("s1", 1, 1, "", lines))
    got = list(pieces(store, "s1", "s1", fence=lambda sid, epoch, first, last: (1, 2)))
    # record 2 is inside the batch 2-3: the fence's cut at 2 goes back to 1
    assert [(p.lo, p.hi) for p in got] == [(1, 1)]
    assert isinstance(got[0], Piece) and got[0].lines() == lines.splitlines(keepends=True)[0]
