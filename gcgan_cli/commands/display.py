"""What long-running commands share: the progress bar, the summary table, SIGTERM as Ctrl-C."""

from __future__ import annotations

import signal

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from gcgan_cli.console import console


def progress_bar(command: str) -> Progress:
    """A transient bar `command [description] ━━━ done/total elapsed remaining`."""
    return Progress(TextColumn(f"[bold]{command}[/] {{task.description}}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)


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
