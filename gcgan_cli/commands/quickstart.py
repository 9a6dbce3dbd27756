"""`gcgan quickstart`: the whole pipeline on synthetic data in a time box, with one progress display, a summary
table and an index.html; the orchestration is core/quickstart.py."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gcgan_cli.commands.display import QuietOpt, clock, plain_text, progress_bar, stop_on_sigterm
from gcgan_cli.commands.options import DeviceOpt
from gcgan_cli.console import console
from gcgan_cli.core import quickstart as qs
from gcgan_cli.errors import UsageError

SCALE_HELP = "auto (gpu on a CUDA device, else cpu), cpu, gpu or tiny (the tests' few-second run)."
PRETRAINED_HELP = "The `gcgan export` folder shown beside stage 1 (the tests' own): by default the one gcgan ships."


def quickstart_command(
    outdir: Annotated[
        Path,
        typer.Option(
            "--outdir",
            "-o",
            help=(
                "The run folder: data, both training runs, samples, GIFs, gaze and FP-GAN results, index.html. "
                "Running again continues it: finished steps are skipped."
            ),
        ),
    ] = Path("runs/quickstart"),
    minutes: Annotated[
        float,
        typer.Option(
            min=0.1, help=("The time box: each step gets a share, the trainings fill theirs at the speed measured.")
        ),
    ] = 12.0,
    device: DeviceOpt = "auto",
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="CPU threads for torch (0: the cores idle now, at least 1).",
        ),
    ] = 0,
    scale: Annotated[str, typer.Option(hidden=True, help=SCALE_HELP)] = "auto",
    pretrained: Annotated[Path, typer.Option(hidden=True, help=PRETRAINED_HELP)] = qs.PRETRAINED,
    quiet: QuietOpt = False,
) -> None:
    """Run the whole pipeline on synthetic data in a time box, ending in one index.html.

    Data, stage 1 and 2 training, samples and GIFs, gaze consistency, FP-GAN translation: each prints its commands.

    Beside stage 1 it samples and judges the pretrained generator gcgan ships (6,000 steps of the same model).

    Ctrl-C stops it; the same command continues (finished steps are skipped, an interrupted training resumes).

    A GPU gets the same steps with 2-3x the data, batch 32 and FP-GAN's reference preset.
    """
    name = ("gpu" if device.type == "cuda" else "cpu") if scale == "auto" else scale
    if name not in qs.SCALES:
        raise UsageError(f"--scale {scale}: choose auto, {', '.join(qs.SCALES)}")
    chosen = qs.SCALES[name]
    qs.check_outdir(outdir, chosen)
    options = qs.Options(
        outdir=outdir,
        minutes=minutes,
        device=str(device),
        scale=chosen,
        threads=qs.cpu_threads(threads) if device.type == "cpu" else 0,
        quiet=quiet,
        pretrained=pretrained,
    )
    outdir.mkdir(parents=True, exist_ok=True)
    log_path = outdir / qs.LOG

    def log(line: str) -> None:
        with open(log_path, "a") as handle:
            handle.write(line + "\n")

    stop_on_sigterm()
    threads_used = f", {options.threads} CPU thread(s)" if options.threads else ""
    start = (
        f"gcgan quickstart: {minutes:g} minutes on {options.device}{threads_used}, scale {chosen.name}, into {outdir}"
    )
    split = _split_table(options)
    log(start + "\n" + plain_text(split))
    if not quiet:
        console.print(start, soft_wrap=True, markup=False)
        console.print(split)
    with progress_bar("quickstart", "steps", quiet, log=log) as progress:
        bar = progress.add_task("", total=len(qs.STEPS))
        events = qs.Events(
            command=lambda line: progress.print(f"$ {line}"),
            step_started=lambda index, step, budget: (
                progress.update(bar, description=step),
                progress.print(
                    f"[bold]step {index + 1}/{len(qs.STEPS)}[/] {escape(step)}: {clock(budget)} of the time box",
                    markup=True,
                ),
            ),
            step_done=lambda index, result, skipped: (
                progress.advance(bar),
                progress.print(
                    f"{result.name}: {'already done' if skipped else 'done in ' + clock(result.seconds)}: "
                    f"{result.headline}"
                ),
            ),
        )
        results = qs.run_quickstart(options, _runner(quiet, log_path), events)
    table = _summary_table(results, outdir)
    log(plain_text(table))
    console.print(table)


def _runner(quiet: bool, log_path: Path) -> qs.Runner:
    """Subcommands in this process through the CLI, as typed; stdout captured when asked for (a --json result),
    and with --quiet sent to the log."""

    def run(argv: list[str], capture: bool) -> tuple[int, str]:
        from gcgan_cli import cli  # cli imports this module: not at import time

        if capture:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                return cli.run(argv), buffer.getvalue()
        if quiet:
            with open(log_path, "a") as handle, contextlib.redirect_stdout(handle):
                return cli.run(argv), ""
        return cli.run(argv), ""

    return run


def _split_table(options: qs.Options) -> Table | str:
    """The split of the time box between the steps still to run, printed before they start."""
    left = qs.plan(options.outdir, options.minutes)
    if not left:
        return (
            f"every step is finished: {options.outdir / qs.PAGE}; to redo a step and those after it, "
            f"delete its {qs.STEPS_DIR}/NAME.json"
        )
    table = Table(title="the time box")
    for column in ("step", "share", "ends by"):
        table.add_column(column)
    ends = 0.0
    for _, title, seconds in left:
        ends += seconds
        table.add_row(title, clock(seconds), clock(ends))
    return table


def _summary_table(results: list[qs.StepResult], outdir: Path) -> Table:
    table = Table(title=f"gcgan quickstart: {outdir / qs.PAGE}")
    for column in ("step", "wrote", "time", "number"):
        table.add_column(column)
    for result in results:
        table.add_row(result.title, ", ".join(result.wrote), clock(result.seconds), result.headline)
    table.add_row("all", "", clock(sum(r.seconds for r in results)), "")
    return table
