"""`gcgan doctor`: a table of what this machine has for gcgan, each gap with its fix."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from gcgan_cli.commands.options import DeviceOpt
from gcgan_cli.console import console


def doctor(device: DeviceOpt = "auto") -> None:
    """Check what this machine has for gcgan: torch, GPU, custom ops, FaceMesh, FID weights, disk.

    On a GPU the CUDA ops are built (cached) and compared with the reference. Exits 0 unless the core (Python, torch, numpy, the reference ops) is broken.
    """  # noqa: E501 (help text: one line per paragraph)
    from gcgan_cli.core.environment import FAIL, OK, WARN, run_checks  # imports torch: here, so --help stays fast

    style_of = {OK: "green", WARN: "yellow", FAIL: "bold red"}
    with console.status("checking...") as status:
        checks = run_checks(device, Path.cwd(), lambda name: status.update(f"checking {name}..."))
    table = Table(title="gcgan doctor", show_lines=False)
    table.add_column("part", style="bold")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")
    for check in checks:
        style = style_of.get(check.status, "dim")
        table.add_row(check.name, f"[{style}]{check.status}[/]", check.detail, check.fix)
    console.print(table)
    failed = [c.name for c in checks if c.status == FAIL]
    warned = [c.name for c in checks if c.status == WARN]
    if failed:
        console.print(f"[bold red]core broken:[/] {', '.join(failed)}")
        raise typer.Exit(1)
    summary = f"{len(warned)} optional part(s) missing: {', '.join(warned)}" if warned else "all parts present"
    console.print(f"[green]core OK[/]; {summary}")
