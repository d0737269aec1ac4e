"""Session id <-> directory name (journal/naming.py)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from journal import InvalidSessionIdError
from journal.log.naming import MAX_NAME_BYTES, decode_id, encode_id

WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{dev}{n}" for dev in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"
}

# Ids built from the pieces that make file names dangerous, so examples hit them often.
tricky_ids = st.lists(
    st.sampled_from(
        [
            *[".", "..", "/", "\\", "\x00", ":", "%", "%2F", " ", "~", "a", "Z", "_", "-", "é", "☕", "😀"],
            *["CON", "nul", "Aux", "com1", "LPT9", "COM\u00b9", ".txt", "C:", "\u202e", "\n", "\ufeff"],
        ]
    ),
    min_size=1,
    max_size=8,
).map("".join)
any_ids = st.text(min_size=1) | tricky_ids | st.text(min_size=1, max_size=300, alphabet="a.%/")


def name_for(session_id: str) -> str:
    """The directory name, or skip the example if the id is too long to have one."""
    try:
        return encode_id(session_id)
    except InvalidSessionIdError:
        assume(False)
        raise


@given(any_ids)
def test_decode_reverses_encode(session_id: str) -> None:
    assert decode_id(name_for(session_id)) == session_id


@given(any_ids, any_ids)
def test_different_ids_get_different_directories(a: str, b: str) -> None:
    assume(a != b)
    assert name_for(a) != name_for(b)


@given(any_ids)
def test_no_directory_name_escapes_the_root(session_id: str) -> None:
    name = name_for(session_id)
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert not name.endswith((".", " "))  # Windows strips these, so two names would meet
    for forbidden in ("/", "\\", "\x00", ":"):
        assert forbidden not in name
    assert name.split(".", 1)[0].upper() not in WINDOWS_RESERVED
    assert name.isascii() and name.isprintable()
    assert 0 < len(name.encode()) <= MAX_NAME_BYTES


@given(st.from_regex(r"[A-Za-z0-9_-]([A-Za-z0-9_.-]{0,60}[A-Za-z0-9_-])?", fullmatch=True))
def test_plain_ids_are_their_own_directory_names(session_id: str) -> None:
    assume(session_id.split(".", 1)[0].upper() not in WINDOWS_RESERVED)
    assert encode_id(session_id) == session_id


@pytest.mark.parametrize(
    ("session_id", "name"),
    [
        ("abc", "abc"),
        ("session-2024_01.v2", "session-2024_01.v2"),
        ("a/b", "a%2Fb"),
        ("a_b", "a_b"),
        ("a b", "a%20b"),
        ("a%2Fb", "a%252Fb"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        (".hidden", "%2Ehidden"),
        ("trailing.", "trailing%2E"),
        ("CON", "%43ON"),
        ("nul.txt", "%6Eul.txt"),
        ("C:", "C%3A"),
        ("..\\..\\x", "%2E.%5C..%5Cx"),
        ("é", "%C3%A9"),
    ],
)
def test_golden_directory_names(session_id: str, name: str) -> None:
    assert encode_id(session_id) == name
    assert decode_id(name) == session_id


def test_slash_underscore_and_space_are_three_different_directories() -> None:
    assert len({encode_id("a/b"), encode_id("a_b"), encode_id("a b")}) == 3


@pytest.mark.parametrize(
    "session_id",
    ["", "x" * (MAX_NAME_BYTES + 1), "é" * 41, "/" * 81, "bad\ud800surrogate"],
    ids=["empty", "plain-too-long", "encoded-too-long", "slashes-too-long", "lone-surrogate"],
)
def test_ids_without_a_directory_name_are_invalid(session_id: str) -> None:
    with pytest.raises(InvalidSessionIdError):
        encode_id(session_id)


def test_the_longest_plain_id_fits() -> None:
    assert encode_id("x" * MAX_NAME_BYTES) == "x" * MAX_NAME_BYTES


@pytest.mark.parametrize("session_id", [None, 1, b"abc", ["a"]])
def test_an_id_that_is_not_a_str_is_a_type_error(session_id: object) -> None:
    with pytest.raises(TypeError):
        encode_id(session_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [".hidden", "..", "CON", "trailing.", "%", "%2", "%zz", "a%41", "%2e", "%C3", ".trash-0123", "a b"],
)
def test_names_no_id_encodes_to_decode_to_none(name: str) -> None:
    assert decode_id(name) is None
