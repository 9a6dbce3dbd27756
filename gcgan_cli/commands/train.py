"""`gcgan train --stage 1|2`: GC-GAN training, resumable, under torchrun / DDP, observable."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from gcgan_cli.commands.config_options import with_config_options
from gcgan_cli.commands.display import QuietOpt, StatusProgress, peak_memory, plain_text, progress_bar, summary_table
from gcgan_cli.console import console
from gcgan_cli.core.model.config import PRESETS
from gcgan_cli.core.training.config import (
    DATA,
    DEVICE,
    OUTPUT,
    REFERENCE_R1,
    REFERENCE_R1_SIZE,
    TrainConfig,
    checked_options,
    read_options,
    resolve,
    with_paths_absolute,
)
from gcgan_cli.data.atomic import write_json_atomic
from gcgan_cli.errors import GcganError, UsageError
from gcgan_cli.outputs import folder_place, writer_lock

# The networks, the trainer and the run folder import torch: they are imported in the functions that use them,
# so --help stays fast.

if TYPE_CHECKING:
    from gcgan_cli.core.training.run_dir import RunLog
    from gcgan_cli.core.training.trainer import Hooks

SHOWN_LOSSES = ("d", "g", "mask", "r1_seg", "path_length")
_PRESET = PRESETS[TrainConfig.preset]
# Defaults that TrainConfig leaves unset (None) because another option decides them.
_DERIVED = {
    "size": f"the preset's ({TrainConfig.preset}: {_PRESET.size})",
    "seg_dim": f"the preset's ({TrainConfig.preset}: {_PRESET.seg_dim})",
    "residual_refine": f"the preset's ({TrainConfig.preset}: {'on' if _PRESET.residual_refine else 'off'})",
    "d_conditioning": f"the preset's ({TrainConfig.preset}: {_PRESET.d_conditioning})",
    "d_gaze_head": f"the preset's ({TrainConfig.preset}: {_PRESET.d_gaze_head}); "
    "with --lambda-gaze-head > 0 as wide as D's last layer",
    **{name: f"{REFERENCE_R1[name]:g} x (size / {REFERENCE_R1_SIZE})^2" for name in REFERENCE_R1},
    "workers": "on CUDA cores / processes - 1, at most 4; on the CPU 0",
}


# Set by the --nproc launcher, which holds the run folder's writer lock while its workers write.
LOCK_HELD = "GCGAN_TRAIN_LOCK_HELD"


@with_config_options(TrainConfig, _DERIVED)
def train_command(
    *,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Options from a TOML file (flat keys named like the fields of the run's config.json: dataset, "
            "checkpoint_dir, ckpt, and the other options' flag names); flags given here win.",
            rich_help_panel=DATA,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from the newest checkpoint in --outdir, with its config.json (flags given here win).",
            rich_help_panel=DATA,
        ),
    ] = False,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes on this machine: runs this command under torch.distributed.run (DDP).",
            rich_help_panel=DEVICE,
        ),
    ] = 1,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the resolved config, the DB and the model (with G and D parameter counts) and exit; "
            "writes nothing.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    quiet: QuietOpt = False,
    **given,
) -> None:
    """Train GC-GAN: stage 1 on a labelled DB, stage 2 on an unlabelled one from a stage-1 checkpoint.

    Options resolve in this order: defaults, the run's config.json (with --resume), --config TOML, then the flags given.

    Ctrl-C or SIGTERM saves a checkpoint and exits 130; --resume continues.

    A NaN or infinite loss stops the run (exit 3) and keeps the last good checkpoint.

    Multi-GPU: [cyan]torchrun --nproc_per_node N -m gcgan_cli train ...[/cyan] or --nproc N.
    """
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in given.items()}
    options = read_options(config) if config else {}
    folder = given["checkpoint_dir"] or options.get("checkpoint_dir")
    stored = None
    if resume:
        from gcgan_cli.core.training.run_dir import RunDir

        if not folder:
            raise UsageError("--resume needs --outdir (the run folder to continue)")
        run = RunDir(Path(folder))
        stored = (run.read_config() or {}).get("train")
        if stored is None:
            raise UsageError(f"--resume: {folder} has no config.json; is it a gcgan training run?")
        if not isinstance(stored, dict):
            raise UsageError(f"{run.config}: 'train' is not a table of options; restore it or start a new --outdir")
        checked_options(TrainConfig, stored, str(run.config))
    resolved = with_paths_absolute(resolve(given, options, stored))
    if dry_run:
        console.print_json(json.dumps(_dry_run(resolved, resume)))
        return
    with _run_folder_lock(Path(resolved.checkpoint_dir)):
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            raise typer.Exit(_launch(resolved.to_dict(), nproc, resume, quiet))
        _train(resolved, resume, quiet)


def _dry_run(config: TrainConfig, resume: bool) -> dict:
    """The resolved options plus what the run would read and build (the DB, the model config, G and D
    on the CPU), so a wrong DB or preset shows before a run folder is made; nothing is written."""
    from gcgan_cli.core.model import Discriminator, Generator
    from gcgan_cli.core.training.run_dir import RunDir
    from gcgan_cli.core.training.trainer import RunPlan

    plan = RunPlan(config, RunDir(Path(config.checkpoint_dir)), resume)
    meta = plan.dataset.meta
    g, d = Generator(plan.model_config), Discriminator(plan.model_config, gaze=config.stage == 1)
    return {
        **config.to_dict(),
        "db": {
            "path": config.dataset,
            "count": meta.count,
            "size": meta.size,
            "labelled": meta.labelled,
            "class_names": list(meta.class_names),
        },
        "model": plan.model_config.to_dict(),
        "g_params": sum(p.numel() for p in g.parameters()),
        "d_params": sum(p.numel() for p in d.parameters()),
    }


@contextlib.contextmanager
def _run_folder_lock(folder: Path) -> Iterator[None]:
    """Check that --outdir can be written (without creating it: a refusal during setup
    leaves nothing behind), then hold its writer lock for the whole run, so a second `gcgan train`
    into it stops at once. Rank 0 takes it, or the --nproc launcher for its workers."""
    if int(os.environ.get("RANK", "0")) != 0 or os.environ.get(LOCK_HELD) == str(folder):
        yield
        return
    folder_place(folder, "--outdir")
    with writer_lock(folder, "train"):
        yield


def _launch(options: dict, nproc: int, resume: bool, quiet: bool) -> int:
    """Run this command in `nproc` processes through torch.distributed.run (DDP); the caller holds
    the run folder's lock, and tells rank 0 so."""
    from gcgan_cli.core.training.run_dir import RunDir

    run = RunDir(Path(options["checkpoint_dir"]))
    if not resume:
        run.refuse_overwrite()
    run.root.mkdir(parents=True, exist_ok=True)
    launch = run.root / "launch.json"
    write_json_atomic(launch, options)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "gcgan_cli",
        "train",
        "--config",
        str(launch),
        *(["--resume"] if resume else []),
        *(["--quiet"] if quiet else []),
    ]
    if not quiet:
        console.print(f"[bold]gcgan train[/] launching {nproc} processes: {' '.join(command[1:])}", soft_wrap=True)
    process = subprocess.Popen(command, env={**os.environ, LOCK_HELD: str(run.root)})
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # the workers got the same Ctrl-C: they save, then exit
            continue


def _train(config, resume: bool, quiet: bool) -> None:
    from gcgan_cli.core.training.run_dir import RunDir, RunLog
    from gcgan_cli.core.training.trainer import Hooks, Trainer

    stop = {"requested": False}

    def request_stop(signum, frame) -> None:
        stop["requested"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    main = int(os.environ.get("RANK", "0")) == 0
    log = RunLog(RunDir(Path(config.checkpoint_dir))) if main else None
    try:
        with progress_bar(
            "train", "steps", quiet=quiet or not main, fields=("speed", "losses", "memory"), log=log
        ) as progress:
            bar = progress.add_task(f"stage {config.stage}", total=config.iters, speed="", losses="", memory="")
            hooks = _hooks(progress, bar, log) if main else Hooks()
            hooks.should_stop = lambda: stop["requested"]
            trainer = Trainer(config, hooks, resume)
            try:
                result = trainer.train()
            except GcganError as exc:
                if log is not None:
                    log.failed(exc)
                raise
            finally:
                trainer.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if main:
        _summary(config, result, log)
    if result.interrupted:
        if main:
            _tell(
                f"[yellow]interrupted[/] at step {result.step}; continue with: "
                f"gcgan train --resume --outdir {escape(str(config.checkpoint_dir))}",
                log,
            )
        raise typer.Exit(130)


def _hooks(progress: StatusProgress, bar: int, log: RunLog) -> Hooks:
    """Rank 0's view of the run: the start line, the bar or status lines, events; all into log.txt too."""
    from gcgan_cli.core.training.trainer import Hooks

    device = {"name": "cpu"}

    def started(info: dict) -> None:
        device["name"] = info["device"]
        log.open()
        _show_start(progress, bar, info)

    def logged(row: dict) -> None:
        # Shown until the next metrics row: labelled with the step they were measured at.
        progress.update(
            bar,
            speed=f"logged at step {row['step']}: kimg {row['kimg']:.3f}  {row['img_per_s']:.1f} img/s",
            losses=" ".join(f"{k} {row[k]:.3g}" for k in SHOWN_LOSSES if k in row),
            memory=peak_memory(device["name"]),
        )

    return Hooks(
        on_start=started,
        on_step=lambda step: progress.update(bar, completed=step),
        on_log=logged,
        on_event=progress.print,
    )


def _show_start(progress: StatusProgress, bar: int, info: dict) -> None:
    model = info["model"]
    progress.print(
        f"[bold]gcgan train[/] stage {info['stage']}: {model.size} px, {model.seg_dim} classes, "
        f"G {info['g_params']:,} params ({info['g_trainable']:,} trained), D {info['d_params']:,}; "
        f"{info['records']:,} records, {info['labels']:,} gaze labels; "
        f"{info['world_size']} process(es) on {info['device']}, total batch {info['total_batch']}"
        + (f"; resuming at step {info['step']}" if info["step"] else "")
        + f"; started {time.strftime('%Y-%m-%d %H:%M:%S')}",
        markup=True,
    )
    from gcgan_cli.core.model.summary import format_summary

    progress.print(f"  G blocks: {format_summary(info['g_blocks'])}")
    progress.print(f"  D blocks: {format_summary(info['d_blocks'])}")
    progress.update(bar, total=info["iters"], completed=info["step"])


def _tell(message: str, log: RunLog) -> None:
    """A closing line: shown even with --quiet, and kept in log.txt."""
    console.print(message, soft_wrap=True)
    log(Text.from_markup(message).plain)


def _summary(config, result, log: RunLog) -> None:
    from gcgan_cli.core.training.run_dir import RunDir

    run = RunDir(Path(config.checkpoint_dir))
    table = summary_table(f"gcgan train, stage {config.stage}")
    table.add_row("steps", f"{result.step} of {config.iters}" + (" (interrupted)" if result.interrupted else ""))
    if result.seconds > 0 and result.images:
        table.add_row("time", f"{result.seconds:.1f} s, {result.images / result.seconds:.1f} img/s")
    losses = {
        k: v for k, v in result.last_row.items() if k not in ("step", "kimg", "sec_per_step", "img_per_s", "final")
    }
    if losses:
        table.add_row("losses", ", ".join(f"{k} {v:.4g}" for k, v in losses.items()))
    if result.fid is not None:
        table.add_row("FID", f"{result.fid:.2f}")
    if result.checkpoint:
        table.add_row("checkpoint", str(result.checkpoint))
    samples = sorted(run.samples.glob("*.png")) if run.samples.is_dir() else []
    if samples:
        table.add_row("samples", str(samples[-1]))
    table.add_row("metrics", str(run.metrics))
    table.add_row("log", str(run.log))
    console.print(table)
    log(plain_text(table))
