"""The `journal` command line: inspect, search, move and maintain a store of sessions.

Strategy: `main` builds the parser from the command modules (reading, writing, maintenance,
archives), opens the store as the command needs it (`opening`), runs the command and turns
every failure into one line on stderr and an exit code: 0 all is well, 1 problems found or the
operation failed, 2 bad usage (130 interrupted). A session that cannot be read is reported (an
`UnreadableSessionWarning`) and the command goes on with the others, exiting 1 at the end. A
reader that goes away (`journal cat ID | head`) ends the command quietly with 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from ..errors import InvalidQueryError, InvalidSessionIdError, JournalError, UnreadableSessionWarning
from . import archives, maintenance, querying, reading, remote, replication, writing
from .args import DEFAULT_ROOT, ENV_ROOT, Parser, add_dir, store_root
from .opening import open_store
from .output import FAILED, INTERRUPTED, OK, USAGE, Failure, Output, error, warn

EPILOG = f"""\
The store is --dir DIR (before or after the command), else ${ENV_ROOT}, else {DEFAULT_ROOT}.
Exit codes: 0 ok, 1 problems found or the operation failed, 2 bad usage.

examples:
  journal ls
  journal --dir /var/lib/agents show support-42 --tail 20
  journal search "refund" --role user --since 7d --json
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of `journal` and all its subcommands."""
    parser = Parser(
        prog="journal",
        description=__doc__.splitlines()[0].split(": ", 1)[1].capitalize(),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"journal {_version()}")
    add_dir(parser)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    reading.add_parsers(commands)  # ls show cat tail
    querying.add_parsers(commands)  # search stats
    writing.add_parsers(commands)  # append rm
    maintenance.add_parsers(commands)  # compact verify repair gc
    archives.add_parsers(commands)  # export import import-praisonai
    replication.add_parsers(commands)  # replicate restore status handoff
    remote.add_parsers(commands)  # remote ls|show|cat|search|export
    writing.add_demo(commands)
    return parser


def _version() -> str:
    # `journal/__init__.py` (the public surface, above every layer) holds the version; it is
    # always imported before this module (its parent package), so this only looks it up.
    return str(importlib.import_module("journal").__version__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    unreadable: list[str] = []

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        if issubclass(category, UnreadableSessionWarning):
            unreadable.append(str(message))
        warn(f"{message}")

    warnings.showwarning = show
    try:
        code = _run(args)
        sys.stdout.flush()  # here, so a reader that went away is seen inside the try
    except BrokenPipeError:
        _stdout_to_devnull()
        return OK
    except KeyboardInterrupt:
        error("interrupted")
        return INTERRUPTED
    except Failure as exc:
        return _fail(str(exc), exc.code)
    except (InvalidSessionIdError, InvalidQueryError) as exc:  # the command line is wrong
        return _fail(str(exc), USAGE)
    except (JournalError, OSError) as exc:
        return _fail(str(exc), FAILED)
    except Exception as exc:  # never a traceback for the user; JOURNAL_DEBUG=1 shows it
        if os.environ.get("JOURNAL_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc}", FAILED)
    return FAILED if unreadable and code == OK else code


def _run(args: argparse.Namespace) -> int:
    out = Output(json=getattr(args, "json", False))
    mode = args.mode(args) if callable(args.mode) else args.mode
    if mode == "none":  # the command opens what it needs (demo)
        return int(args.run(store_root(args), args, out))
    with open_store(store_root(args), mode) as journal:
        return int(args.run(journal, args, out))


def _fail(message: str, code: int) -> int:
    try:
        sys.stdout.flush()  # what the command printed before failing, then the error
    except BrokenPipeError:
        _stdout_to_devnull()
    error(message)
    return code


def _stdout_to_devnull() -> None:
    """The reader of stdout went away: send what is still buffered to /dev/null, so the
    flush at interpreter exit does not fail again (the recipe of Python's `signal` docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
