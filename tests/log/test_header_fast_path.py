"""`decode_header` reads the usual line with one regex and falls back to a step-by-step
path for anything else: both must accept exactly the same lines and read them alike, and a
line the fast path refuses must get the step-by-step path's precise reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal.log import record
from journal.log.record import BadLine, decode_header, encode

VALID = [
    encode(1, 1700000000.123456, "message", b'{"role":"user","content":"hi"}'),
    encode(42, 0.0, "meta", b"{}", more=3),
    encode(7, -62135596800.0, "clear", b"{}"),
    encode(9, 253402300799.0, "seal", b"{}"),
    encode(3, 1.5, "edit", b'{"of":2,"content":"x"}'),
    encode(4, 1.5, "pop", b'{"of":3}'),
    encode(10**18, 1.0, "lost", b"[]", more=999999999),
]


def outcome(read: object, line: bytes) -> object:
    try:
        return read(line)  # type: ignore[operator]
    except BadLine as exc:
        return ("BadLine", exc.reason, exc.version)


@pytest.mark.parametrize("line", VALID)
def test_a_valid_line_reads_the_same_on_both_paths(line: bytes) -> None:
    body = line[:-1]
    assert decode_header(body) == record._decode_header_slowly(body)


def with_checksum(body: bytes) -> bytes:
    import xxhash

    return b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(body).encode() + b'",' + body


@pytest.mark.parametrize(
    "body",
    [
        b'"v":4,"seq":1,"ts":1.000000,"kind":"message","data":{}}',  # a version this reader lacks
        b'"v":1,"seq":1,"ts":1.000000,"kind":"edit","data":{}}',  # an edit in a version 1 record
        b'"v":1,"seq":1,"ts":1.000000,"kind":"bogus","data":{}}',
        b'"v":01,"seq":1,"ts":1.000000,"kind":"message","data":{}}',
        b'"v":1,"seq":1,"ts":999999999999.000000,"kind":"message","data":{}}',  # past year 9999
        b'"v":1,"seq":1,"ts":1.000000,"kind":"message","data":1',  # no closing brace
    ],
)
def test_a_line_the_fast_path_refuses_gets_the_precise_reason(body: bytes) -> None:
    line = with_checksum(body)
    assert outcome(decode_header, line) == outcome(record._decode_header_slowly, line)
    assert isinstance(outcome(decode_header, line), tuple)  # refused


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(VALID),
    st.integers(min_value=0, max_value=200),
    st.binary(min_size=0, max_size=3),
    st.booleans(),
)
def test_any_damaged_line_has_the_same_outcome_on_both_paths(
    line: bytes, at: int, junk: bytes, rehash: bool
) -> None:
    body = line[:-1]
    at = min(at, len(body))
    damaged = body[:at] + junk + body[at + len(junk) :]
    if rehash and damaged.startswith(b'{"xxh3":"') and len(damaged) > 27:
        damaged = with_checksum(damaged[27:])  # damage the checksum cannot catch
    assert outcome(decode_header, damaged) == outcome(record._decode_header_slowly, damaged)


def test_an_older_reader_narrowed_at_run_time_refuses_on_the_fast_path_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line = encode(4, 1.5, "pop", b'{"of":3}')[:-1]
    monkeypatch.setattr(record, "RECORD_VERSIONS", frozenset({1, 2}))
    with pytest.raises(BadLine, match="unsupported format version 3"):
        decode_header(line)


def test_first_bad_payload_finds_what_decode_refuses_in_checked_lines() -> None:
    good = b"".join(VALID)
    not_json = with_checksum(b'"v":1,"seq":8,"ts":1.000000,"kind":"message","data":{]}') + b"\n"
    too_deep = (
        with_checksum(
            b'"v":1,"seq":9,"ts":1.000000,"kind":"message","data":' + b"[" * 1100 + b"]" * 1100 + b"}"
        )
        + b"\n"
    )
    assert record.first_bad_payload(good) is None
    assert record.first_bad_payload(good + not_json + good) == (len(good), "payload is not JSON")
    assert record.first_bad_payload(too_deep) == (0, "payload is not JSON")
    for data in (not_json, too_deep):  # as decode says
        with pytest.raises(BadLine, match="payload is not JSON"):
            record.decode(data)
