"""The argument parser: the main options, the shape every subcommand shares, value types.

Strategy: each command module declares its own subcommands (`add_parsers`) through `command`
here, so a command's options, help and example sit beside its code. `--dir` is accepted before
and after the subcommand: the main parser and every subparser declare it with
`default=SUPPRESS`, so the one given last wins and an absent one does not reset the other;
`store_root` then falls back to `$JOURNAL_DIR` and `./sessions`. Usage errors are one line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from .output import USAGE, error

DEFAULT_ROOT = "./sessions"
ENV_ROOT = "JOURNAL_DIR"

# What a command does to the store, which decides how `main` opens it: "read" (read-only, must
# exist), "write" (writable, must exist), "create" (writable, created if missing), "none" (the
# command opens what it needs itself).
Mode = str
Run = Callable[..., int]


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        error(f"{message} (see '{self.prog} --help')")
        sys.exit(USAGE)


def add_dir(parser: argparse.ArgumentParser) -> None:
    """`--dir DIR` (and the old `--root`, hidden), without a default of its own."""
    parser.add_argument(
        "--dir",
        dest="dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"the store directory (default: ${ENV_ROOT}, else {DEFAULT_ROOT})",
    )
    parser.add_argument("--root", dest="dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (see the README)")


def store_root(args: argparse.Namespace) -> str:
    """The store directory: --dir, else $JOURNAL_DIR, else ./sessions."""
    given = getattr(args, "dir", None)
    return str(given or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


def command(
    commands: Any,
    name: str,
    run: Run,
    mode: Mode | Callable[[argparse.Namespace], Mode],
    *,
    help: str,
    example: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Declare subcommand `name`: `run(journal, args, out)` does it, `mode` says how to open
    the store; its --help ends with `example` (one or more lines)."""
    examples = "\n".join(f"  {line}" for line in example.splitlines())
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=description or help[0].upper() + help[1:] + ".",
        epilog=f"example:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dir(parser)
    parser.set_defaults(run=run, mode=mode)
    return parser


def add_selection(parser: argparse.ArgumentParser, what: str) -> None:
    """`ID ...` or `--all` (the default when no id is given)."""
    parser.add_argument("session_ids", nargs="*", metavar="ID", help=f"the sessions to {what}")
    parser.add_argument("--all", action="store_true", help="every session of the store (the default)")


# -- value types (each raises ArgumentTypeError: a usage error naming the bad value) -------------


def positive(text: str) -> int:
    """An int >= 1."""
    return _int_at_least(text, 1)


def count(text: str) -> int:
    """An int >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
    return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s`, `2w` (a number and one unit)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30d, 12h, 90m, 3600s)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def moment(text: str) -> float:
    """A point in time as seconds since the epoch: an ISO date or date-time (UTC unless it
    names a zone: `2024-05-01`, `2024-05-01T12:30`, `2024-05-01T12:30:00+02:00`), or a
    duration meaning that long ago (`7d`)."""
    if _DURATION.fullmatch(text.strip().lower()):
        return datetime.now(timezone.utc).timestamp() - duration(text).total_seconds()
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (e.g. 2024-05-01, 2024-05-01T12:30, 7d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
