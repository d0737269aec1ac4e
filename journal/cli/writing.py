"""The commands that add or remove sessions' data: append, rm, and the demo.

Strategy: `append` is the one command besides the imports and the demo that may create the
store (`opening.CREATE`); `rm` needs an existing store and session, and says so in one line if
either is missing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..native import Journal
from .args import add_json, command, positive
from .opening import CREATE, WRITE
from .output import FAILED, OK, Failure, Output
from .reading import require


def add_parsers(commands: Any) -> None:
    append_ = command(
        commands,
        "append",
        append,
        CREATE,
        help="append one message to a session; prints its seq",
        example='journal append support-42 user "Where is my order?"\n'
        "some-tool | journal append support-42 assistant -",
    )
    append_.add_argument("session_id", metavar="ID")
    append_.add_argument("role", metavar="ROLE", help="user, assistant, system, tool, ...")
    append_.add_argument("text", metavar="TEXT", help='the content; "-" reads it from stdin, as is')
    add_json(append_, '{"session_id": ..., "seq": ...}')
    rm = command(
        commands,
        "rm",
        remove,
        WRITE,
        help="delete a session and every file of it",
        example="journal rm support-42",
    )
    rm.add_argument("session_id", metavar="ID")


def add_demo(commands: Any) -> None:
    demo_ = command(
        commands,
        "demo",
        demo,
        "none",
        help="concurrent agents, a crash, recovery and compaction",
        example="journal demo\njournal --dir /tmp/demo demo --agents 8 --messages 500",
    )
    demo_.add_argument("--agents", type=positive, default=4, help="agent processes (4)")
    demo_.add_argument("--messages", type=positive, default=200, help="messages per agent (200)")


def append(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    text = args.text
    if text == "-":
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Failure(f"stdin is not UTF-8 text: {exc}") from None
    seq = journal.append(args.session_id, {"role": args.role, "content": text})
    if out.json:
        out.document({"session_id": args.session_id, "seq": seq})
    else:
        out.line(str(seq))
    return OK


def remove(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    require(journal, args.session_id)
    if not journal.delete(args.session_id):
        raise Failure(f"no session {args.session_id!r} in {journal.root}")
    out.line(f"removed {args.session_id}")
    return OK


def demo(root: str, args: argparse.Namespace, out: Output) -> int:
    from .demo import run_demo  # multiprocessing and friends: only for the demo

    return OK if run_demo(root, args.agents, args.messages)["ok"] else FAILED
