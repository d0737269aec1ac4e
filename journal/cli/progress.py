"""Progress bars for long commands: on stderr when it is a terminal, nothing otherwise.

Strategy: `rich` is optional (the `cli` extra) and imported only here, only when a bar is
really drawn, so `import journal` and piped or cron runs never load it; without it, or when
stderr is not a TTY, the callback handed to the library is None and nothing is printed. The
bar goes to stderr so stdout stays the command's data even on a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Callback = Callable[[int, "int | None"], None]


def wanted() -> bool:
    """Draw bars? Only on a terminal (cron, pipes and files get none)."""
    return _is_tty(sys.stderr)


def _is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


@contextmanager
def bar(label: str, *, unit: str = "sessions") -> Iterator[Callback | None]:
    """A `progress(done, total)` callback drawing one bar while the block runs, or None.

    `total` None (not known yet) pulses the bar; each call moves it to `done`.
    """
    rich = _rich() if wanted() else None
    if rich is None:
        yield None
        return
    progress_module, console_module = rich
    columns = (
        progress_module.TextColumn("{task.description}"),
        progress_module.BarColumn(),
        progress_module.TaskProgressColumn(),
        progress_module.MofNCompleteColumn(),
        progress_module.TextColumn(unit),
        progress_module.TimeElapsedColumn(),
    )
    console = console_module.Console(stderr=True)
    # Lines printed meanwhile go above the bar; stdout only when it is a terminal too (then
    # both are the screen), never when it is piped: the data must stay on stdout.
    redirect = _is_tty(sys.stdout)
    with progress_module.Progress(
        *columns, console=console, transient=False, redirect_stdout=redirect, redirect_stderr=True
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _rich() -> tuple[Any, Any] | None:
    try:
        import rich.console
        import rich.progress
    except ImportError:  # the `cli` extra is not installed: work without bars
        return None
    return rich.progress, rich.console
