"""Progress bars and summary tables for the command line (rich when installed).

:class:`TransferProgress` is a simulated-network process (``net.add_process``)
that redraws a bar of bytes delivered, the transfer rate in virtual time and
the retransmissions so far, at most ten times per wall-clock second; it reads
only, so a run with a bar is the same run as without.  :func:`print_summary`
prints the table every command ends with, as plain text when rich is missing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TextIO


def rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def print_summary(
    rows: Sequence[tuple[str, str, str]], out: TextIO, *, title: str = "summary"
) -> None:
    """A three-column table (what, value, note): rich if available, else aligned text."""
    if not rich_available():
        print(title, file=out)
        for name, value, note in rows:
            print(f"{name:<24} {value:<28} {note}", file=out)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), show_header=False)
    for _ in range(3):
        table.add_column()
    for name, value, note in rows:
        # Plain text, never markup: "pip install -e '.[plot]'" must keep its brackets.
        table.add_row(Text(name), Text(value), Text(note))
    Console(file=out, width=100).print(table)


class TransferProgress:
    """A progress bar for a transfer on the simulated network.

    ``done()`` returns bytes delivered so far, ``retransmits()`` the count of
    retransmitted segments.  Use as a context manager around the run and
    register the instance with ``net.add_process``.  With ``enabled=False``
    (or without rich) it does nothing.
    """

    def __init__(
        self,
        total: int,
        done: Callable[[], int],
        retransmits: Callable[[], int],
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        description: str = "transfer",
        interval: float = 0.1,
    ) -> None:
        self.total = total
        self.done = done
        self.retransmits = retransmits
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and rich_available()
        self.description = description
        self.interval = interval
        self._progress: Any = None
        self._task: Any = None
        self._calls = 0
        self._next_draw = 0.0
        self.updates = 0

    def __enter__(self) -> TransferProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            console = Console(file=self.stream, force_terminal=None)
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("retx {task.fields[retx]}"),
                TextColumn("t={task.fields[vt]}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.description, total=self.total, rate="", retx=0, vt="0.000s"
            )
        return self

    def __call__(self, now: float) -> None:
        if self._progress is None:
            return
        self._calls += 1
        if self._calls & 255:
            return
        wall = time.monotonic()
        if wall < self._next_draw:
            return
        self._next_draw = wall + self.interval
        self._draw(now)

    def _draw(self, now: float) -> None:
        done = self.done()
        rate = f"{done * 8 / now / 1e6:.2f} Mbit/s (virtual)" if now > 0 else ""
        self._progress.update(
            self._task, completed=done, rate=rate, retx=self.retransmits(), vt=f"{now:.3f}s"
        )
        self.updates += 1

    def finish(self, now: float) -> None:
        """Draw the final state."""
        if self._progress is not None:
            self._draw(now)

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
