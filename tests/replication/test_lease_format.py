"""The lease object's format and the epoch fence (FORMAT.md, "Replicas" > "Leases")."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from journal.errors import UnsupportedFormatError
from journal.replication.lease import LeaseError, LeaseRecord, decode, encode, fence, lease_key

FORMAT = Path(__file__).resolve().parents[2] / "FORMAT.md"
GOLDEN = (
    b'{"epoch":2,"epochs":[[1,1],[2,57]],"expires_at":1732406430.5,"format":1,'
    b'"holder":"host-a:4242:1a2b3c4d","place":"host-a:/srv/sessions","session_id":"s1",'
    b'"synced_seq":56}\n'
)


def test_format_md_shows_the_golden_lease_object() -> None:
    section = FORMAT.read_text().split("\n### Leases\n", 1)[1]
    example = section.split("```\n", 2)[1]
    assert example.replace("\n ", "").encode() == GOLDEN


def test_the_golden_lease_object_decodes_and_encodes_to_the_same_bytes() -> None:
    record = decode(GOLDEN, "leases/s1.json")
    assert record == LeaseRecord(
        "s1", "host-a:4242:1a2b3c4d", 2, 1732406430.5, 56, ((1, 1), (2, 57)), "host-a:/srv/sessions"
    )
    assert encode(record) == GOLDEN


def test_a_released_lease_has_no_holder_and_is_not_live() -> None:
    record = LeaseRecord("s1", None, 3, 2e9, 10, ((1, 1), (2, 5), (3, 11)))
    assert decode(encode(record), "k") == record
    assert not record.live(1.0)
    assert LeaseRecord("s1", "h", 1, 100.0).live(99.9)
    assert not LeaseRecord("s1", "h", 1, 100.0).live(100.0)


def test_an_unknown_lease_format_is_refused() -> None:
    body = orjson.loads(GOLDEN)
    body["format"] = 2
    with pytest.raises(UnsupportedFormatError, match="unsupported format version 2"):
        decode(orjson.dumps(body), "leases/s1.json")


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b'{"format":1}', b'{"format":1,"epochs":[[1]]}'])
def test_bytes_that_are_not_a_lease_object_are_refused(data: bytes) -> None:
    with pytest.raises(LeaseError, match="not a lease object"):
        decode(data, "leases/s1.json")


def test_the_lease_key_uses_the_session_directory_name() -> None:
    assert lease_key("s1") == "leases/s1.json"
    assert lease_key("a/b") == "leases/a%2Fb.json"


HISTORY = LeaseRecord("s", "h", 3, 0.0, 0, ((1, 1), (2, 57), (3, 121)))


@pytest.mark.parametrize(
    ("epoch", "first", "last", "used"),
    [
        (1, 1, 56, (1, 56)),  # wholly inside its epoch
        (1, 50, 80, (50, 56)),  # a stalled writer's late upload past the takeover: cut at 56
        (1, 57, 80, None),  # wholly past it: ignored
        (2, 57, 120, (57, 120)),
        (2, 100, 130, (100, 120)),
        (3, 121, 500, (121, 500)),  # the current epoch: open-ended
        (4, 121, 130, None),  # an epoch the lease does not know
        (0, 1, 10, None),  # written without a lease before epoch 1 took seq 1
    ],
)
def test_the_fence_keeps_each_epochs_records_below_the_next_epoch(
    epoch: int, first: int, last: int, used: tuple[int, int] | None
) -> None:
    assert fence(HISTORY, epoch, first, last) == used


def test_without_a_lease_only_epoch_zero_counts() -> None:
    assert fence(None, 0, 1, 9) == (1, 9)
    assert fence(None, 1, 1, 9) is None
    leased_later = LeaseRecord("s", "h", 1, 0.0, 0, ((1, 10),))
    assert fence(leased_later, 0, 1, 20) == (1, 9)  # unleased writes before the first lease
