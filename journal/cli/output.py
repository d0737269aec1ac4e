"""What the command line prints: data on stdout (text, or JSON), one-line errors on stderr.

Strategy: a command never prints a traceback or a multi-line error; it raises `Failure` (or a
`JournalError`/`OSError` reaches `main`), which prints `journal: error: ...` and maps to an exit
code. Data goes through `Output`, so `--json` switches every command at one place: single
results are one JSON document, results made item by item (ls, cat, tail, search, verify,
compact) one JSON object per line, written as each item is ready.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

OK = 0  # all is well
FAILED = 1  # problems found, or the operation failed
USAGE = 2  # the command line itself is wrong
INTERRUPTED = 130  # Ctrl-C (except for `tail -f`, where it is the way to stop)


class Failure(Exception):
    """A one-line error for the user; `code` is the exit status."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def error(message: str) -> None:
    """Print one error line on stderr (newlines in `message` are flattened)."""
    print(f"journal: error: {_one_line(message)}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    print(f"journal: warning: {_one_line(message)}", file=sys.stderr, flush=True)


def _one_line(message: str) -> str:
    return " ".join(message.split()) if "\n" in message else message


def iso(ts: float | None, *, millis: bool = True) -> str | None:
    """UTC ISO 8601 with a ``Z`` (milliseconds unless told otherwise); None stays None."""
    if ts is None:
        return None
    seconds, ms = divmod(int(ts * 1000), 1000)  # cut, not rounded: as the library's times
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{ms:03d}Z" if millis else f"{stamp}Z"


def dumps(value: Any, indent: bool = False) -> str:
    """JSON with its keys sorted (the same data prints the same bytes, whatever order a store
    kept its keys in), non-ASCII kept as is; compact on one line, or indented."""
    option = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(value, default=str, option=option).decode()


class Output:
    """Where a command's data goes: text lines, or JSON when `--json` was given."""

    def __init__(self, json: bool) -> None:
        self.json = json

    def line(self, text: str = "") -> None:
        """One line of text output."""
        sys.stdout.write(text + "\n")

    def item(self, value: Any) -> None:
        """One JSON line of a stream (ls, cat, tail, search, verify, compact)."""
        sys.stdout.write(dumps(value) + "\n")

    def document(self, value: Any) -> None:
        """The one JSON document a command prints, indented for reading."""
        sys.stdout.write(dumps(value, indent=True) + "\n")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()
    ) -> None:
        """Rows as plain aligned columns under a header; the columns in `right` right-aligned."""
        cells = [list(headers), *[["" if c is None else str(c) for c in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            parts = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            self.line("  ".join(parts).rstrip())
