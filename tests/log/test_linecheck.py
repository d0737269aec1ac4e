"""`linecheck` checks a run of record lines at once and answers None for anything unusual, so
the caller's line-at-a-time code decides: whatever it accepts, it must read exactly as
`decode_header` and `scan` read it, and a segment it calls clean must be one that `scan` and
verify's payload check call clean. The fast path must also be taken for ordinary logs, or it
speeds nothing up."""

from __future__ import annotations

from typing import Any

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from journal.log import linecheck, record
from journal.log.linecheck import Run, check_run, clean_segment
from journal.log.record import decode, decode_header, encode, first_bad_payload
from journal.log.scan import scan

PATH = "seg"


def with_checksum(body: bytes) -> bytes:
    return b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(body).encode() + b'",' + body + b"\n"


def ordinary(first: int, count: int, sealed: bool) -> bytes:
    """A segment as journal writes it: single appends, batches, edits, pops, meta, a seal."""
    lines, seq = [], first
    while seq < first + count:
        if seq % 7 == 0:  # a batch of three
            for more in (2, 1, 0):
                payload = b'{"role":"user","content":"batch %d"}' % seq
                lines.append(encode(seq, 1700000000.25, "message", payload, more=more))
                seq += 1
            continue
        kind, payload = "message", b'{"role":"assistant","content":"t\\u00e9 \xf0\x9f\x98\x80 %d"}' % seq
        if seq % 5 == 0:
            kind, payload = "edit", b'{"of":%d,"append":"x"}' % (seq - 1)
        elif seq % 11 == 0:
            kind, payload = "pop", b'{"of":%d}' % (seq - 1)
        elif seq % 13 == 0:
            kind, payload = "meta", b'{"agent_name":"a"}'
        lines.append(encode(seq, 1700000000.0 + seq / 1000, kind, payload))
        seq += 1
    if sealed:
        lines.append(encode(seq, 1700000999.0, "seal", b"{}"))
    return b"".join(lines)


def slow(data: bytes, first: int) -> tuple[object, object]:
    """What verify found before the fast path: `scan`, then the payloads of what it kept."""
    result = scan(data, 0, first, PATH)
    return result, first_bad_payload(data[: result.end])


@pytest.mark.parametrize("sealed", [False, True])
@pytest.mark.parametrize("zeros", [0, 4096])
def test_an_ordinary_segment_is_checked_at_once_and_read_as_scan_reads_it(sealed: bool, zeros: int) -> None:
    data = ordinary(5, 3000, sealed) + b"\0" * zeros  # a preallocated tail ends the data
    fast = clean_segment(data, 5, chunk_bytes=4096)  # many runs: batches span their edges
    assert fast is not None
    assert (fast, None) == slow(data, 5)


def test_the_golden_example_is_checked_at_once() -> None:
    golden = b"".join(
        encode(seq, ts, "message", b'{"role":"user","content":"%d"}' % seq, more)
        for seq, ts, more in ((1, 1732406400.5, 0), (2, 1732406401.25, 1), (3, 1732406401.25, 0))
    )
    assert clean_segment(golden, 1) == slow(golden, 1)[0]


def test_every_line_a_run_accepts_reads_as_decode_header_reads_it() -> None:
    lines = ordinary(1, 400, True).split(b"\n")[:-1]
    run = check_run(lines, 1, 0, stamps=True)
    assert run is not None
    for i, line in enumerate(lines):
        header = decode_header(line)
        assert int(run.seqs[i]) == header.seq
        assert float(run.stamps[i]) == header.ts
        assert (run.kinds[i] or b"message").decode() == header.kind
        assert int(run.mores[i] or 0) == header.more
        assert run.starts[i] == header.data_start
    assert run.batch_left == 0


def _other_checksum(line: bytes) -> bytes:
    digit = b"1" if line[9:10] == b"0" else b"0"
    return line[:9] + digit + line[10:]


UNUSUAL = {
    "checksum": _other_checksum(encode(1, 1.5, "message", b"{}")),
    "edit in version 1": with_checksum(b'"v":1,"seq":1,"ts":1.000000,"kind":"edit","data":{"of":1}}'),
    "pop in version 2": with_checksum(b'"v":2,"seq":1,"ts":1.000000,"kind":"pop","data":{"of":1}}'),
    "version 4": with_checksum(b'"v":4,"seq":1,"ts":1.000000,"kind":"message","data":{}}'),
    "ts of 12 digits": encode(1, 253402300799.0, "message", b"{}"),
    "payload not JSON": with_checksum(b'"v":1,"seq":1,"ts":1.000000,"kind":"message","data":1,2}'),
    "unknown kind": with_checksum(b'"v":1,"seq":1,"ts":1.000000,"kind":"note","data":{}}'),
    "seq skipped": encode(3, 1.5, "message", b"{}"),
}


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_an_unusual_line_is_left_to_the_slow_path(name: str) -> None:
    line = UNUSUAL[name]
    lines = [encode(1, 1.5, "meta", b"{}")[:-1], line[:-1]] if name == "seq skipped" else [line[:-1]]
    assert check_run(lines, 1, 0) is None


def test_a_batch_cut_short_is_left_to_the_slow_path() -> None:
    lines = [encode(1, 1.5, "message", b"{}", more=2)[:-1], encode(2, 1.5, "message", b"{}")[:-1]]
    assert check_run(lines, 1, 0) is None
    assert check_run(lines[1:], 2, 2) is None  # the batch started in the run before
    assert check_run(lines[1:], 2, 1) is not None


def test_an_older_reader_leaves_every_line_to_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "RECORD_VERSIONS", frozenset({1, 2}))
    assert check_run([encode(1, 1.5, "message", b"{}")[:-1]], 1, 0) is None


ODD_LINES = [  # each a line with a valid checksum that breaks some other rule, or none
    encode(1, 1.5, "seal", b"{}"),
    encode(1, 1.5, "message", b"{}", more=1),
    encode(1, 1.5, "message", b'{"role":"user"} '),
    with_checksum(b'"v":1,"seq":1,"ts":1.000000,"kind":"message","data":1,2}'),
    with_checksum(b'"v":1,"seq":1,"ts":1.000000,"kind":"edit","data":{"of":1}}'),
    encode(1, 253402300799.0, "message", b"{}"),
]


def _damaged(data: bytes, where: int, how: int, what: bytes) -> bytes:
    """One of the damages a disk, a crash or a foreign writer leaves, at a spot of `data`."""
    at = where * len(data) // 1000
    if how == 0:
        return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :] if at < len(data) else data
    if how == 1:
        return data[:at]  # torn
    if how == 2:
        return data[:at] + what + data[at:]  # garbage, maybe a newline or a NUL
    if how == 3:
        return data[:at] + b"\0" * len(what) + data[at + len(what) :]  # a hole of zeros
    lines = data.split(b"\n")[:-1]
    i = at % len(lines)
    if how == 4:
        lines[i], lines[i - 1] = lines[i - 1], lines[i]  # two lines swapped
    elif how == 5:
        del lines[i]  # a line lost
    elif how == 6:
        lines.insert(i, lines[i])  # a line twice
    elif how == 7:
        lines = lines[: i + 1]  # cut at a line's end: maybe inside a batch
    else:  # a line of another writer, numbered in place (each odd line is seq 1)
        seq = decode_header(lines[i]).seq
        body = ODD_LINES[what[0] % len(ODD_LINES)][27:-1].replace(b'"seq":1,', b'"seq":%d,' % seq, 1)
        lines[i] = with_checksum(body)[:-1]
    return b"\n".join(lines) + b"\n" + b"\0" * (what[-1] % 3 * 100)


# A segment of `count` ordinary records, damaged at `where` in the way `how` with `what`.
DAMAGED = dict(
    count=st.integers(1, 60),
    sealed=st.booleans(),
    where=st.integers(0, 999),
    how=st.integers(0, 8),
    what=st.binary(min_size=1, max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(**DAMAGED)
def test_a_segment_called_clean_at_once_is_clean_for_scan_and_verify(
    count: int, sealed: bool, where: int, how: int, what: bytes
) -> None:
    data = _damaged(ordinary(1, count, sealed), where, how, what)
    fast = clean_segment(data, 1, chunk_bytes=512)
    if fast is not None:
        assert (fast, None) == slow(data, 1)
        for line in data[: fast.end].split(b"\n")[:-1]:
            decode(line)  # every record reads


@pytest.mark.parametrize("chunk_bytes", [64, 1 << 20])  # the seal ends a run, or is inside one
def test_records_after_a_seal_are_left_to_the_slow_path(chunk_bytes: int) -> None:
    data = b"".join(
        [encode(1, 1.5, "message", b"{}"), encode(2, 1.5, "seal", b"{}"), encode(3, 1.5, "message", b"{}")]
    )
    assert clean_segment(data, 1, chunk_bytes) is None
    assert slow(data, 1)[0].problem is not None


@settings(max_examples=300, deadline=None)
@given(**DAMAGED, base=st.sampled_from([0, 4096]))
def test_a_scan_that_checks_the_usual_stretch_at_once_finds_what_scan_finds(
    count: int, sealed: bool, where: int, how: int, what: bytes, base: int
) -> None:
    data = _damaged(ordinary(1, count, sealed), where, how, what)
    assert linecheck.scan(data, base, 1, PATH, chunk_bytes=512) == scan(data, base, 1, PATH)


def test_a_scan_of_an_ordinary_segment_checks_it_at_once_and_finds_what_scan_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    being_written = encode(3001, 1.5, "message", b"{}", more=1)[:40]  # a batch's first line, torn
    data = ordinary(1, 3000, False) + being_written
    checked: list[int] = []

    def counted(lines: list[bytes], *args: Any, **kwargs: Any) -> Run | None:
        checked.append(len(lines))
        return check_run(lines, *args, **kwargs)

    monkeypatch.setattr(linecheck, "check_run", counted)
    assert linecheck.scan(data, 0, 1, PATH, chunk_bytes=4096) == scan(data, 0, 1, PATH)
    assert sum(checked) >= 2900  # nearly every line was checked at once
