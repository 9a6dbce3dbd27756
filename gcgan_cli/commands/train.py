"""`gcgan train --stage 1|2`: GC-GAN training, resumable, under torchrun / DDP, observable."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gcgan_cli.commands.display import summary_table
from gcgan_cli.console import console
from gcgan_cli.core.training.config import (PRECISIONS, SWAP_CHECKS, TrainConfig, checked_options, read_options,
                                            resolve, with_paths_absolute)
from gcgan_cli.core.training.run_dir import RunDir
from gcgan_cli.core.training.trainer import Hooks, Trainer
from gcgan_cli.data.prep_dir import write_json_atomic
from gcgan_cli.errors import UsageError
from gcgan_cli.outputs import folder_place, writer_lock

SHOWN_LOSSES = ("d", "g", "mask", "r1_seg", "path_length")
# Set by the --nproc launcher, which holds the run folder's writer lock while its workers write.
LOCK_HELD = "GCGAN_TRAIN_LOCK_HELD"


def train_command(
    dataset: Annotated[Path | None, typer.Option(help="A DB from `gcgan pack`: labelled for stage 1, any for stage 2.")] = None,
    checkpoint_dir: Annotated[Path | None, typer.Option(help="The run folder: checkpoints/, samples/, metrics.jsonl, config.json.")] = None,
    stage: Annotated[int | None, typer.Option(help="1: gaze-conditioned training on labelled data; 2: transfer to an unlabelled domain from --ckpt. [default: 1]")] = None,
    preset: Annotated[str | None, typer.Option(help="Model preset: ref256 (the reference's), small (64 px, trains on a laptop CPU) or tiny (32 px, tests). [default: ref256]")] = None,
    size: Annotated[int | None, typer.Option(help="Image size (default: the preset's); DB images are resized on read.")] = None,
    seg_dim: Annotated[int | None, typer.Option(help="Classes trained: the DB's first N (default 6: background..iris; ids >= N count as background).")] = None,
    residual_refine: Annotated[bool | None, typer.Option("--residual-refine/--no-residual-refine", help="Add the coarse mask into the render net's segmentation (default: the preset's, on).")] = None,
    batch: Annotated[int | None, typer.Option(help="Images per process per step; the total batch is this x processes. [default: 4]")] = None,
    iters: Annotated[int | None, typer.Option(help="Train until this many steps. [default: 600000]")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate before lazy-regularisation scaling. [default: 0.002]")] = None,
    r1_img: Annotated[float | None, typer.Option(help="R1 gamma on real images. [default: the reference's 10 at 256 px, x (size/256)^2]")] = None,
    r1_seg: Annotated[float | None, typer.Option(help="R1 gamma on real masks. [default: the reference's 1000 at 256 px, x (size/256)^2]")] = None,
    d_reg_every: Annotated[int | None, typer.Option(help="R1 every N steps. [default: 16]")] = None,
    g_reg_every: Annotated[int | None, typer.Option(help="Path-length regularisation every N steps. [default: 4]")] = None,
    path_regularize: Annotated[float | None, typer.Option(help="Path-length weight (0 = off). [default: 0.5]")] = None,
    path_batch_shrink: Annotated[int | None, typer.Option(help="Path-length batch = batch / N. [default: 2]")] = None,
    mixing: Annotated[float | None, typer.Option(help="Style-mixing probability. [default: 0, the reference's]")] = None,
    lambda_mask: Annotated[float | None, typer.Option(help="Weight of the mask terms (coarse vs fine; stage 2 adds the pretrained-mask MSE). [default: 100]")] = None,
    d_gaze_mismatch: Annotated[float | None, typer.Option(help="Stage 1: weight of a D term that calls real images with a wrong gaze fake (matching-aware D); 0 = the reference, which computes it and never uses it. [default: 0.5]")] = None,
    mismatch_min_deg: Annotated[float | None, typer.Option(help="Stage 1: a wrong gaze is drawn at least this far from the true one. [default: 15]")] = None,
    gaze_norm: Annotated[bool | None, typer.Option("--gaze-norm/--no-gaze-norm", help="G and D embed the gaze standardised by the label set's mean and std (the reference: raw radians). [default: on]")] = None,
    d_conditioning: Annotated[str | None, typer.Option(help="How D sees the gaze: concat (the reference: joined before the first linear layer) or projection (inner product with D's features). [default: concat]")] = None,
    d_gaze_head: Annotated[int | None, typer.Option(help="Width of D's gaze-regression head (0 = none). [default: the preset's; with --lambda-gaze-head > 0 as wide as D's last layer]")] = None,
    lambda_gaze_head: Annotated[float | None, typer.Option(help="Stage 1, AC-GAN style: D's head regresses the gaze of real images and G is pulled to make it read the conditioning gaze. [default: 1]")] = None,
    gaze_model: Annotated[Path | None, typer.Option(help="Stage 1: a frozen gaze estimator (from `gcgan gaze fit`) for the --lambda-gaze loss; judge the result with another estimator.")] = None,
    lambda_gaze: Annotated[float | None, typer.Option(help="Stage 1: weight of the MSE between --gaze-model's reading of G's image and the conditioning gaze. [default: 0]")] = None,
    gaze_warmup: Annotated[int | None, typer.Option(help="Steps before the --lambda-gaze loss starts (G must draw irises first). [default: 2000]")] = None,
    gaze_ramp: Annotated[int | None, typer.Option(help="Steps over which the --lambda-gaze weight then rises linearly. [default: 2000]")] = None,
    mirror: Annotated[bool | None, typer.Option("--mirror/--no-mirror", help="Stage 1: flip real images and masks horizontally with p = 0.5, negating yaw. [default: off]")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="Translate and cut out real and fake images with their masks before D (differentiable). [default: off]")] = None,
    ema_decay: Annotated[float | None, typer.Option(help="EMA decay of G_ema per step. [default: 0.5^(32/10000) = 0.997784]")] = None,
    n_sample: Annotated[int | None, typer.Option(help="Samples in each grid. [default: 16]")] = None,
    log_every: Annotated[int | None, typer.Option(help="Write a metrics.jsonl row (means since the last) every N steps. [default: 100]")] = None,
    viz_every: Annotated[int | None, typer.Option(help="Write a sample grid every N steps (0 = off). [default: 1000]")] = None,
    save_every: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps (0 = only at the end). [default: 10000]")] = None,
    fid_every: Annotated[int | None, typer.Option(help="FID every N steps when --inception is given and the weights are here (0 = off). [default: 10000]")] = None,
    fid_n: Annotated[int | None, typer.Option(help="Generated images per FID. [default: 10000]")] = None,
    inception: Annotated[Path | None, typer.Option(help="FID statistics of the training domain (.npz from `gcgan inception`).")] = None,
    inception_weights: Annotated[Path | None, typer.Option(help="The FID Inception weights file (else $GCGAN_INCEPTION_WEIGHTS or the torch hub cache).")] = None,
    keep: Annotated[int | None, typer.Option(help="Keep the newest N checkpoints (0 = all). [default: 0]")] = None,
    ckpt: Annotated[Path | None, typer.Option(help="Stage 2: the stage-1 checkpoint to start from.")] = None,
    gaze_labels: Annotated[Path | None, typer.Option(help="Stage 2: the gaze label set (.npy [N, 2] or .json); default: the one stored in --ckpt.")] = None,
    swap_check: Annotated[str | None, typer.Option(help=f"Stage 2, {'|'.join(SWAP_CHECKS)}: whose mask the unbroken test checks. pretrained (default) never pairs a fake with a broken pretrained mask; current is the reference's inverted test.")] = None,
    unbroken_class: Annotated[str | None, typer.Option(help="Stage 2: the class of the unbroken-mask test. [default: iris]")] = None,
    unbroken_fraction: Annotated[float | None, typer.Option(help="Stage 2: a mask is broken when that class covers more than this fraction. [default: 10000/65536]")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, data order and sampling (rank r draws from seed + r). [default: 0]")] = None,
    precision: Annotated[str | None, typer.Option(help=f"{'|'.join(PRECISIONS)}: bf16 autocasts the main passes on CUDA (the regularisers stay fp32); tf32 allows TF32 matmuls. [default: fp32]")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="DataLoader workers per process (default: on CUDA cores / processes - 1, at most 4; on the CPU 0, which leaves the cores to the math).")] = None,
    deterministic: Annotated[bool | None, typer.Option("--deterministic/--no-deterministic", help="Deterministic algorithms (a resumed run repeats an unbroken one exactly).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Options from a TOML file (flat keys named like the flags); flags given here win.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --checkpoint-dir, with its config.json (flags given here win).")] = False,
    nproc: Annotated[int, typer.Option(min=1, help="Processes on this machine: runs this command under torch.distributed.run (DDP).")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and exit.")] = False,
) -> None:
    """Train GC-GAN: stage 1 on a labelled DB, stage 2 on an unlabelled one from a stage-1 checkpoint.

    Options resolve in this order: defaults, the run's config.json (with --resume), --config TOML, then the flags given.

    Ctrl-C or SIGTERM saves a checkpoint and exits 130; --resume continues. A NaN or infinite loss stops the run (exit 3) and keeps the last good checkpoint.

    Multi-GPU: [cyan]torchrun --nproc_per_node N -m gcgan_cli train ...[/cyan] or --nproc N.
    """
    given = {k: v for k, v in locals().items() if k not in ("config", "resume", "nproc", "dry_run")}
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in given.items()}
    options = read_options(config) if config else {}
    folder = given["checkpoint_dir"] or options.get("checkpoint_dir")
    stored = None
    if resume:
        if not folder:
            raise UsageError("--resume needs --checkpoint-dir (the run folder to continue)")
        run = RunDir(Path(folder))
        stored = (run.read_config() or {}).get("train")
        if stored is None:
            raise UsageError(f"--resume: {folder} has no config.json; is it a gcgan training run?")
        if not isinstance(stored, dict):
            raise UsageError(f"{run.config}: 'train' is not a table of options; "
                             "restore it or start a new --checkpoint-dir")
        checked_options(TrainConfig, stored, str(run.config))
    resolved = with_paths_absolute(resolve(given, options, stored))
    if dry_run:
        console.print_json(json.dumps(resolved.to_dict()))
        return
    with _run_folder_lock(Path(resolved.checkpoint_dir)):
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            raise typer.Exit(_launch(resolved.to_dict(), nproc, resume))
        _train(resolved, resume)


@contextlib.contextmanager
def _run_folder_lock(folder: Path) -> Iterator[None]:
    """Check that --checkpoint-dir can be written (without creating it: a refusal during setup
    leaves nothing behind), then hold its writer lock for the whole run, so a second `gcgan train`
    into it stops at once. Rank 0 takes it, or the --nproc launcher for its workers."""
    if int(os.environ.get("RANK", "0")) != 0 or os.environ.get(LOCK_HELD) == str(folder):
        yield
        return
    folder_place(folder, "--checkpoint-dir")
    with writer_lock(folder, "train"):
        yield


def _launch(options: dict, nproc: int, resume: bool) -> int:
    """Run this command in `nproc` processes through torch.distributed.run (DDP); the caller holds
    the run folder's lock, and tells rank 0 so."""
    run = RunDir(Path(options["checkpoint_dir"]))
    if not resume:
        run.refuse_overwrite()
    run.root.mkdir(parents=True, exist_ok=True)
    launch = run.root / "launch.json"
    write_json_atomic(launch, options)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "gcgan_cli", "train", "--config", str(launch), *(["--resume"] if resume else [])]
    console.print(f"[bold]gcgan train[/] launching {nproc} processes: {' '.join(command[1:])}")
    process = subprocess.Popen(command, env={**os.environ, LOCK_HELD: str(run.root)})
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # the workers got the same Ctrl-C: they save, then exit
            continue


def _progress() -> Progress:
    return Progress(TextColumn("[bold]train[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    TextColumn("{task.fields[losses]}"), console=console, transient=True)


def _train(config, resume: bool) -> None:
    stop = {"requested": False}

    def request_stop(signum, frame) -> None:
        stop["requested"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        with _progress() if main else _Quiet() as progress:
            bar = progress.add_task(f"stage {config.stage}", total=config.iters, speed="", losses="")
            hooks = Hooks(should_stop=lambda: stop["requested"])
            if main:
                hooks.on_start = lambda info: _show_start(progress, bar, info)
                hooks.on_step = lambda step: progress.update(bar, completed=step)
                hooks.on_log = lambda row: progress.update(
                    bar, speed=f"{1 / max(row['sec_per_step'], 1e-9):.2f} it/s {row['img_per_s']:.1f} img/s",
                    losses=" ".join(f"{k} {row[k]:.3g}" for k in SHOWN_LOSSES if k in row))
                hooks.on_event = lambda message: progress.console.print(message)
            trainer = Trainer(config, hooks, resume)
            try:
                result = trainer.train()
            finally:
                trainer.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if main:
        _summary(config, result)
    if result.interrupted:
        if main:
            console.print(f"[yellow]interrupted[/] at step {result.step}; continue with: gcgan train --resume --checkpoint-dir {config.checkpoint_dir}")
        raise typer.Exit(130)


def _show_start(progress: Progress, bar, info: dict) -> None:
    model = info["model"]
    progress.console.print(
        f"[bold]gcgan train[/] stage {info['stage']}: {model.size} px, {model.seg_dim} classes, "
        f"G {info['g_params']:,} params ({info['g_trainable']:,} trained), D {info['d_params']:,}; "
        f"{info['records']:,} records, {info['labels']:,} gaze labels; {info['world_size']} process(es) on {info['device']}, "
        f"total batch {info['total_batch']}" + (f"; resuming at step {info['step']}" if info["step"] else ""))
    progress.update(bar, completed=info["step"])


def _summary(config, result) -> None:
    run = RunDir(Path(config.checkpoint_dir))
    table = summary_table(f"gcgan train, stage {config.stage}")
    table.add_row("steps", f"{result.step} of {config.iters}" + (" (interrupted)" if result.interrupted else ""))
    if result.seconds > 0 and result.images:
        table.add_row("time", f"{result.seconds:.1f} s, {result.images / result.seconds:.1f} img/s")
    losses = {k: v for k, v in result.last_row.items() if k not in ("step", "kimg", "sec_per_step", "img_per_s")}
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
    console.print(table)


class _Quiet:
    """The progress interface for ranks other than 0: nothing shown."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0
