"""The record line codec (journal/record.py): pure bytes in, bytes out."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from journal import CorruptionError, DefaultSessionStore, InvalidRecordError, Journal, Record, RecoveryWarning
from journal.log.record import (
    KINDS,
    BadLine,
    decode,
    decode_header,
    encode,
    encode_payload,
    find_embedded_record,
)

BIG = 16 * 1024 * 1024

# (seq, ts, kind, payload, more) -> the exact line on disk
GOLDEN = [
    (
        (1, 1700000000.5, "message", b'{"role":"user","content":"hi"}', 0),
        b'{"xxh3":"3d73bb651fe65eac","v":1,"seq":1,"ts":1700000000.500000,"kind":"message",'
        b'"data":{"role":"user","content":"hi"}}\n',
    ),
    (
        (2, 1700000001.25, "meta", '{"title":"Café ☕"}'.encode(), 0),
        b'{"xxh3":"5660f89eaa28f7c0","v":1,"seq":2,"ts":1700000001.250000,"kind":"meta",'
        + '"data":{"title":"Café ☕"}}\n'.encode(),
    ),
    (
        (3, 0.0, "clear", b"{}", 2),
        b'{"xxh3":"19e6c05f06280520","v":1,"seq":3,"ts":0.000000,"kind":"clear","more":2,"data":{}}\n',
    ),
    (
        (42, 1700000002.123456, "seal", b"{}", 0),
        b'{"xxh3":"4041f057780eb99f","v":1,"seq":42,"ts":1700000002.123456,"kind":"seal","data":{}}\n',
    ),
    (
        (2**63 - 1, 1.000001, "lost", b"null", 0),
        b'{"xxh3":"842f7f06fc2141e0","v":1,"seq":9223372036854775807,"ts":1.000001,"kind":"lost",'
        b'"data":null}\n',
    ),
]


def with_checksum(body: bytes) -> bytes:
    """A line whose checksum is right for `body`, whatever the body says."""
    return b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(body).encode() + b'",' + body + b"\n"


@pytest.mark.parametrize(("fields", "line"), GOLDEN)
def test_encode_writes_the_golden_line(fields: tuple[Any, ...], line: bytes) -> None:
    assert encode(*fields) == line


@pytest.mark.parametrize(("fields", "line"), GOLDEN)
def test_decode_reads_the_golden_line_back(fields: tuple[Any, ...], line: bytes) -> None:
    seq, ts, kind, payload, more = fields
    assert decode(line) == Record(seq=seq, ts=ts, kind=kind, data=orjson.loads(payload), more=more)
    assert decode(line.rstrip(b"\n")) == decode(line)


@pytest.mark.parametrize(("fields", "line"), GOLDEN)
def test_checksum_covers_everything_after_the_hex_digits_up_to_the_newline(
    fields: tuple[Any, ...], line: bytes
) -> None:
    assert line[9:25] == xxhash.xxh3_64_hexdigest(line[27:-1]).encode()


# -- round trip ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=25,
)


@given(
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    ts=st.floats(min_value=0, max_value=4e9),
    kind=st.sampled_from(sorted(KINDS)),
    more=st.integers(min_value=0, max_value=10**6),
    data=json_values,
)
def test_any_json_payload_round_trips_exactly(seq: int, ts: float, kind: str, more: int, data: Any) -> None:
    line = encode(seq, ts, kind, encode_payload(data, BIG), more=more)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = decode(line)
    assert record == Record(seq=seq, ts=float(f"{ts:.6f}"), kind=kind, data=data, more=more)


@given(text=st.text(), key=st.text())
def test_unicode_text_and_keys_round_trip(text: str, key: str) -> None:
    data = {key: text, "nested": [{key: text}]}
    assert decode(encode(1, 1.0, "message", encode_payload(data, BIG))).data == data


# -- what encode_payload refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"x": float("nan")}, "data['x']"),
        ({"x": float("inf")}, "data['x']"),
        ({"a": [1.0, -math.inf]}, "data['a'][1]"),
        ({"n": 2**64}, "data['n']"),
        ({"n": -(2**63) - 1}, "data['n']"),
        ({"deep": {"n": 10**30}}, "data['deep']['n']"),
    ],
)
def test_non_finite_floats_and_integers_beyond_64_bits_are_refused(data: Any, where: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        encode_payload(data, BIG)
    assert caught.value.path == where


@pytest.mark.parametrize("number", [-(2**63), 2**63 - 1, 2**64 - 1])
def test_integers_at_the_64_bit_limits_round_trip(number: int) -> None:
    assert decode(encode(1, 1.0, "message", encode_payload({"n": number}, BIG))).data == {"n": number}


def test_a_null_that_is_really_null_is_kept() -> None:
    assert encode_payload({"x": None, "y": "null"}, BIG) == b'{"x":null,"y":"null"}'


# -- what decode refuses ---------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "line"), GOLDEN)
def test_any_changed_byte_is_a_checksum_mismatch(fields: tuple[Any, ...], line: bytes) -> None:
    for at in range(27, len(line) - 2):  # the body, short of the closing brace and newline
        damaged = bytearray(line)
        damaged[at] ^= 0x01
        with pytest.raises(BadLine) as caught:
            decode(bytes(damaged))
        assert caught.value.reason == "checksum mismatch", at


def test_a_changed_checksum_digit_is_a_checksum_mismatch() -> None:
    line = GOLDEN[0][1]
    damaged = line[:9] + (b"0" if line[9:10] != b"0" else b"1") + line[10:]
    with pytest.raises(BadLine, match="checksum mismatch"):
        decode(damaged)


@pytest.mark.parametrize("version", [0, 4, 99])
def test_unsupported_version_is_a_bad_line_carrying_the_version(version: int) -> None:
    body = b'"v":%d,"seq":1,"ts":1.000000,"kind":"message","data":{}}' % version
    with pytest.raises(BadLine) as caught:
        decode(with_checksum(body))
    assert caught.value.version == version
    assert str(version) in caught.value.reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "not a record line"),
        (b"\x00" * 64, "not a record line"),
        (b'{"role":"user","content":"plain JSON is not a record"}', "not a record line"),
        (GOLDEN[0][1][:40], "not a record line"),
        (GOLDEN[0][1][:-2], "checksum mismatch"),  # ends in the payload's own brace
        (with_checksum(b'"v":1,"seq":0,"ts":1.000000,"kind":"message","data":{}}'), "malformed header"),
        (with_checksum(b'"v":1,"seq":1,"ts":1.5,"kind":"message","data":{}}'), "malformed header"),
        (with_checksum(b'"v":1,"seq":1,"ts":1.000000,"kind":"bogus","data":{}}'), "unknown record kind"),
        (with_checksum(b'"v":1,"seq":1,"ts":1.000000,"kind":"message","data":{]}'), "payload is not JSON"),
    ],
)
def test_lines_that_are_not_records_are_bad_lines(line: bytes, reason: str) -> None:
    with pytest.raises(BadLine) as caught:
        decode(line)
    assert reason in caught.value.reason
    assert caught.value.version is None


def test_a_bad_line_never_decodes_as_a_header_either() -> None:
    with pytest.raises(BadLine):
        decode_header(GOLDEN[0][1][:-3])


@pytest.mark.parametrize("torn", [1, 9, 30, len(GOLDEN[0][1]) - 2])
def test_a_record_starting_inside_a_torn_line_is_found(torn: int) -> None:
    whole = GOLDEN[2][1].rstrip(b"\n")
    line = GOLDEN[0][1][:torn] + whole
    assert find_embedded_record(line) == torn
    assert decode(line[torn:]) == decode(whole)


def test_no_embedded_record_in_garbage_or_a_single_record() -> None:
    assert find_embedded_record(b"garbage" * 10) == -1
    assert find_embedded_record(GOLDEN[0][1].rstrip(b"\n")) == -1


@pytest.mark.parametrize("ts", [253402300800.0, 999999999999.0, -62135596801.0])
def test_a_record_whose_time_is_outside_years_1_to_9999_is_damage_though_its_checksum_holds(
    ts: float,
) -> None:
    line = encode(1, ts, "message", b'{"role":"user","content":"x"}')
    with pytest.raises(BadLine, match="outside years 1 to 9999"):
        decode(line.rstrip(b"\n"))


def test_a_session_holding_a_record_dated_past_year_9999_is_reported_and_others_still_list(
    tmp_path: Path,
) -> None:
    with Journal(tmp_path, durability="always") as journal:
        journal.append("good", {"role": "user", "content": "ok"})
        journal.append("bad", {"role": "user", "content": "ok"})
    segment = next((tmp_path / "bad" / "log").glob("*.jsonl"))
    far = encode(2, 999999999999.0, "message", b'{"role":"user","content":"far"}')
    after = encode(3, 1700000000.0, "message", b'{"role":"user","content":"after"}')
    with segment.open("ab") as out:
        out.write(far + after)  # not the last line: damage, not a torn tail
    store = DefaultSessionStore(tmp_path, view_lag=None)
    with pytest.raises(CorruptionError, match="outside years 1 to 9999"):
        store.get_session("bad")
    assert not store.journal.verify("bad").ok
    with pytest.warns(RecoveryWarning, match="bad"):
        assert [row["session_id"] for row in store.list_sessions()] == ["good"]
    store.close()
