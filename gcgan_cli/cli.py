"""The `gcgan` command: registers the subcommands and turns errors into one line."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

import gcgan_cli
from gcgan_cli.commands import gaze, segment, transfer
from gcgan_cli.commands.doctor import doctor
from gcgan_cli.commands.examples import epilog
from gcgan_cli.commands.export import export_command
from gcgan_cli.commands.fid import fid_command
from gcgan_cli.commands.inception import inception_command
from gcgan_cli.commands.interpolate import interpolate_command
from gcgan_cli.commands.pack import pack_command
from gcgan_cli.commands.quickstart import quickstart_command
from gcgan_cli.commands.sample import sample_command
from gcgan_cli.commands.train import train_command
from gcgan_cli.commands.unpack import unpack_command
from gcgan_cli.console import err_console
from gcgan_cli.errors import GcganError
from gcgan_cli.outputs import DISK_FULL_ERRNOS, disk_full

HELP = """Gaze-labelled face images from few labels: GC-GAN (gaze-aware compositional GAN)
and FP-GAN (feature-preserving eye translation) in one tool.

[bold]Pipeline[/bold], in order:

  1. [cyan]segment[/cyan]     datasets (ETH-XGaze .h5, CelebAMask-HQ, synthetic) -> eye-strip images + part masks
  2. [cyan]pack[/cyan]        image + mask folders -> LMDB (+ gaze label set)
  3. [cyan]inception[/cyan]   FID statistics of a packed dataset; [cyan]fid[/cyan] scores a network, folder or DB against them
  4. [cyan]train[/cyan]       --stage 1 on labelled data, then --stage 2 on an unlabelled domain (torchrun/DDP)
  5. [cyan]sample[/cyan] / [cyan]interpolate[/cyan]   gaze-annotated images with masks; part-wise and gaze animations

  [cyan]quickstart[/cyan]  all of it on synthetic data in a time box (12 minutes on 2 CPU cores) -> index.html

  [cyan]export[/cyan] a checkpoint's G_ema as a shareable model folder; [cyan]unpack[/cyan] a DB back to folders.
  Beside it: [cyan]transfer[/cyan] (FP-GAN synthetic <-> real eye translation) and [cyan]gaze[/cyan]
  (a gaze estimator that measures what the generated data is worth).

Commands appear here as they are implemented; [cyan]gcgan doctor[/cyan] checks this machine.
Set GCGAN_DEBUG=1 to see tracebacks."""  # noqa: E501 (help text: one line per paragraph)

app = typer.Typer(
    name="gcgan",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"gcgan {gcgan_cli.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Gaze-labelled face images from few labels."""


app.add_typer(segment.app, name="segment")
app.command("pack", epilog=epilog("pack"))(pack_command)
app.command("unpack", epilog=epilog("unpack"))(unpack_command)
app.command("inception", epilog=epilog("inception"))(inception_command)
app.command("fid", epilog=epilog("fid"))(fid_command)
app.command("train", epilog=epilog("train"))(train_command)
app.command("sample", epilog=epilog("sample"))(sample_command)
app.command("interpolate", epilog=epilog("interpolate"))(interpolate_command)
app.command("export", epilog=epilog("export"))(export_command)
app.add_typer(gaze.app, name="gaze")
app.add_typer(transfer.app, name="transfer")
app.command("quickstart", epilog=epilog("quickstart"))(quickstart_command)
app.command("doctor", epilog=epilog("doctor"))(doctor)


def _fail(message: str, code: int) -> int:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, markup=True, emoji=False)
    return code


def _describe(exc: Exception) -> tuple[str, int]:
    """One line and an exit code for an exception that escaped a command."""
    if isinstance(exc, typer.TyperException):  # bad option, missing argument, unknown command
        return exc.format_message().replace("\n", " "), exc.exit_code
    if isinstance(exc, GcganError):
        return str(exc), exc.exit_code
    ops = sys.modules.get("cuda_ops")  # not imported here (it imports torch); raising OpsBuildError imported it
    if ops is not None and isinstance(exc, ops.OpsBuildError):
        return str(exc), 1
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        where = exc.filename or os.getcwd()
        return str(disk_full(Path(where).parent if exc.filename else Path(where))), 2
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and exc.filename:
        return f"cannot write {exc.filename} ({exc.strerror}); choose a writable place or fix its permissions", 2
    return f"{type(exc).__name__}: {exc} (set GCGAN_DEBUG=1 for the traceback)", 1  # a bug


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; user mistakes become one line and code 2."""
    try:
        result = app(args=argv, prog_name="gcgan", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return _fail("aborted", 130)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("GCGAN_DEBUG") == "1":
            raise
        message, code = _describe(exc)
        return _fail(message, code) if message else code
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
