"""Verify checks an archive's content with `RunChecker.check_chunks`, the usual runs of lines
at once and anything else a line at a time: it must end in the same state, or fail with the
same `CorruptionError` (offset and reason), as checking every line by itself (`check`), for
any damage: a seal inside a batch, a record after a seal of the next segment, lines lost,
repeated or swapped, bytes flipped or torn."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from journal.errors import CorruptionError
from journal.log.archive_file import RunChecker
from journal.log.record import encode
from journal.log.snapshot import iter_lines


def segments(first: int, sizes: list[int]) -> bytes:
    """Closed segments of `sizes` records each (the last one its seal), batches included."""
    lines, seq = [], first
    for size in sizes:
        for i in range(size - 1):
            more = 1 if i % 4 == 1 and i + 2 < size else 0  # two-record batches now and then
            lines.append(encode(seq, 1700000000.0 + seq, "message", b'{"content":"m%d"}' % seq, more=more))
            seq += 1
        lines.append(encode(seq, 1700000099.0, "seal", b"{}"))
        seq += 1
    return b"".join(lines)


def outcome(content: bytes, at_once: bool) -> object:
    checker = RunChecker("archive", 10, payloads=True)
    try:
        if at_once:
            checker.check_chunks([content[i : i + 300] for i in range(0, len(content), 300)])
        else:
            for line in iter_lines([content]):
                checker.check(line)
        checker.end()
    except CorruptionError as exc:
        return ("error", exc.offset, exc.reason)
    return (checker.next_seq, checker.seals, checker.offset, checker.batch_left, checker.last_kind)


def damaged(content: bytes, where: int, how: int) -> bytes:
    lines = content.split(b"\n")[:-1]
    i = where % len(lines)
    if how == 0:
        lines[i], lines[i - 1] = lines[i - 1], lines[i]
    elif how == 1:
        del lines[i]
    elif how == 2:
        lines.insert(i, lines[i])
    elif how == 3:
        seq = int(lines[i].split(b'"seq":')[1].split(b",")[0])
        lines[i] = encode(seq, 1.5, "seal", b"{}", more=where % 2)[:-1]  # a seal, maybe in a batch
    elif how == 4:
        at = where * 7 % len(content)
        return content[:at] + bytes([content[at] ^ 1]) + content[at + 1 :]
    else:
        return content[: where * 7 % len(content)]
    return b"\n".join(lines) + b"\n"


def test_undamaged_segments_check_alike_at_once() -> None:
    content = segments(10, [30, 1, 12])
    assert outcome(content, True) == outcome(content, False) == (53, 3, len(content), 0, "seal")


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 25), min_size=1, max_size=4),
    where=st.integers(0, 10_000),
    how=st.integers(0, 5),
)
def test_any_damage_is_found_alike_at_once_and_a_line_at_a_time(
    sizes: list[int], where: int, how: int
) -> None:
    content = damaged(segments(10, sizes), where, how)
    assert outcome(content, True) == outcome(content, False)
