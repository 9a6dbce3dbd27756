"""What long-running commands share: progress (a bar on a terminal, plain status lines in a log file),
the summary table, SIGTERM as Ctrl-C."""

from __future__ import annotations

import io
import math
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from gcgan_cli.console import UNWRAPPED, console
from gcgan_cli.errors import UsageError

LOG_SECONDS = "GCGAN_LOG_SECONDS"
DEFAULT_LOG_SECONDS = 30.0

QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="No progress, status lines or events: only errors and the final summary "
        "(a training run's log.txt still gets everything).",
    ),
]


def log_seconds() -> float:
    """The least time between two status lines: $GCGAN_LOG_SECONDS, else 30."""
    text = os.environ.get(LOG_SECONDS)
    if text is None:
        return DEFAULT_LOG_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise UsageError(
            f"{LOG_SECONDS}={text!r}: expected the seconds between status lines (a number >= 0); "
            f"set a number or unset it for the default {DEFAULT_LOG_SECONDS:g}"
        )
    return seconds


def clock(seconds: float) -> str:
    """H:MM:SS, hours unbounded (a run's elapsed time or ETA)."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def peak_memory(device: str) -> str:
    """The peak so far: tensors allocated on a CUDA device, else this process's resident set."""
    import torch  # here, not above: every command imports this module, and --help should not wait for torch

    if torch.device(device).type == "cuda":
        return f"peak cuda {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss counts bytes on macOS, KiB on Linux
    return f"peak rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30:.2f} GiB"


def plain_text(renderable: RenderableType) -> str:
    """A rich renderable (a summary table) as a log file keeps it: no styles, no wrapping."""
    out = Console(file=io.StringIO(), width=UNWRAPPED, color_system=None, force_terminal=False, highlight=False)
    out.print(renderable)
    return out.file.getvalue()


@dataclass
class _Task:
    bar_id: int | None
    description: str
    total: float | None
    completed: float
    fields: dict
    since: float  # counting began: the task's start, or when its total was set
    base: float  # completed at `since`
    fresh: bool = False  # changed since the last status line


class StatusProgress:
    """Progress with rich Progress's calls (add_task, update, advance, print; `console`).

    On a terminal the rich bar. Elsewhere (a file, a pipe: a scheduler's log) the bar would draw
    nothing, so a plain status line `command description done/total unit (%)  rate  elapsed  eta
    fields` goes to stdout at most every $GCGAN_LOG_SECONDS, and one at the end. `quiet`: neither,
    and no messages. `log` gets every status line and message whatever stdout is (log.txt).
    Setting a task's total restarts the clock: the rate counts the work done since.
    """

    def __init__(
        self, command: str, unit: str, quiet: bool, fields: tuple[str, ...], log: Callable[[str], None] | None
    ):
        self.command, self.unit, self.quiet, self.log = command, unit, quiet, log
        self.console = console
        self.bar = None
        if not quiet and console.is_terminal:
            self.bar = Progress(
                TextColumn(f"[bold]{command}[/] {{task.description}}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                *(TextColumn(f"{{task.fields[{name}]}}") for name in fields),
                console=console,
                transient=True,
            )
        self.stdout_lines = not quiet and self.bar is None
        self.seconds = log_seconds()
        self.last_line = time.monotonic()
        self.tasks: list[_Task] = []

    def __enter__(self) -> StatusProgress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self.bar is not None:
            self.bar.__exit__(kind, value, traceback)
        if kind is None:  # after an error its one line says enough
            for task in self.tasks:
                if task.fresh:
                    self._line(task)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        bar_id = (
            None if self.bar is None else self.bar.add_task(description, total=total, completed=completed, **fields)
        )
        self.tasks.append(_Task(bar_id, description, total, completed, dict(fields), time.monotonic(), completed))
        return len(self.tasks) - 1

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **fields,
    ) -> None:
        task = self.tasks[task_id]
        if self.bar is not None:
            self.bar.update(
                task.bar_id, total=total, completed=completed, advance=advance, description=description, **fields
            )
        moved = completed is not None or advance is not None
        task.fresh = task.fresh or moved or bool(fields)
        task.fields.update(fields)
        if description is not None:
            task.description = description
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if total is not None:  # the work is known now: count (and space the lines) from here
            task.total, task.since, task.base, task.fresh = total, time.monotonic(), task.completed, False
            self.last_line = task.since
        elif moved and time.monotonic() - self.last_line >= self.seconds:
            self._line(task)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def print(self, message: str, markup: bool = False) -> None:
        """A message (an event, an epoch's result) as one line, above the bar on a terminal."""
        if not self.quiet:
            self.console.print(message, soft_wrap=True, markup=markup)
        if self.log is not None:
            self.log(Text.from_markup(message).plain if markup else message)

    def _line(self, task: _Task) -> None:
        if not self.stdout_lines and self.log is None:
            return
        line = self._text(task)
        task.fresh, self.last_line = False, time.monotonic()
        if self.stdout_lines:
            self.console.print(line, soft_wrap=True, markup=False)
        if self.log is not None:
            self.log(line)

    def _text(self, task: _Task) -> str:
        elapsed = time.monotonic() - task.since
        rate = (task.completed - task.base) / elapsed if elapsed > 0 else 0.0
        count = f"{task.completed:.0f}" + ("" if task.total is None else f"/{task.total:.0f}") + f" {self.unit}"
        if task.total:
            count += f" ({100 * task.completed / task.total:.0f}%)"
        speed = f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"
        parts = [
            " ".join(filter(None, (self.command, task.description))),
            count,
            f"{speed} {self.unit}/s",
            f"elapsed {clock(elapsed)}",
        ]
        if task.total is not None and rate > 0:
            parts.append(f"eta {clock(max(task.total - task.completed, 0) / rate)}")
        parts += [str(value) for value in task.fields.values() if value != ""]
        return "  ".join(parts)


def progress_bar(
    command: str,
    unit: str = "items",
    quiet: bool = False,
    fields: tuple[str, ...] = (),
    log: Callable[[str], None] | None = None,
) -> StatusProgress:
    """Progress for `command` counting `unit` (plural); `fields` name extra task fields shown after the bar."""
    return StatusProgress(command, unit, quiet, fields, log)


def summary_table(title: str) -> Table:
    """Two columns, name and value, no header: the short summary a command ends with."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    return table


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """A scheduler's SIGTERM stops the run like Ctrl-C: whole files kept, resumable, exit 130."""
    signal.signal(signal.SIGTERM, _interrupt)
