"""A compaction writes each message line by splicing the two keys into the payload's own bytes
(`splice.splice_parsed`, given the payload it parsed anyway) instead of encoding the parsed
message again: the line must be byte for byte what `encode_message` writes, and a payload that
already holds either key must not be spliced."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from journal.log.record import MESSAGE, Record
from journal.log.snapshot import encode_message, splice_message
from journal.log.splice import splice_parsed

PAYLOADS: list[Any] = [
    {"role": "user", "content": "hi"},
    {},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"arguments": "{}"}}]},
    {"role": "user", "content": 'she wrote "timestamp": and "_journal" in the text'},  # only in a value
    {"role": "user", "content": "control \x01 and \u2028 and é and 😀"},  # orjson escapes \x01 as \u0001
    {"role": "user", "metadata": {"timestamp": 5, "_journal": "nested, not the message's"}},
    {"role": "user", "content": "x", "n": 1.5e-7, "big": 10**18},
]


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize(("seq", "ts", "more"), [(1, 1700000000.123456, 0), (10**18, 0.5, 3), (7, -1.25, 0)])
def test_a_spliced_line_is_what_encode_message_writes(data: Any, seq: int, ts: float, more: int) -> None:
    payload = orjson.dumps(data)
    spliced = splice_parsed(payload, orjson.loads(payload), seq, ts, more)
    assert spliced == encode_message(Record(seq, ts, MESSAGE, orjson.loads(payload), more))
    quick = splice_message(payload, seq, ts, more)  # the byte search refuses more, never differs
    assert quick is None or quick == spliced


@pytest.mark.parametrize(
    "data",
    [{"role": "user", "timestamp": "mine"}, {"_journal": 1}, [1, 2], "text", 3],
)
def test_a_payload_holding_either_key_or_not_an_object_is_not_spliced(data: Any) -> None:
    payload = orjson.dumps(data)
    assert splice_parsed(payload, orjson.loads(payload), 1, 1.0, 0) is None


def test_an_escaped_key_is_seen_in_the_parsed_payload() -> None:
    payload = b'{"\\u0074imestamp":"mine","role":"user"}'
    assert splice_parsed(payload, orjson.loads(payload), 1, 1.0, 0) is None


def test_a_ts_that_does_not_print_in_plain_decimals_is_not_spliced() -> None:
    payload = b'{"role":"user"}'
    assert splice_parsed(payload, orjson.loads(payload), 1, 1e-20, 0) is None
