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

from gcgan_cli.commands.display import QuietOpt, StatusProgress, peak_memory, plain_text, progress_bar, summary_table
from gcgan_cli.commands.helptext import defaults_help
from gcgan_cli.console import console
from gcgan_cli.core.model.config import PRESETS
from gcgan_cli.core.training.config import (
    PRECISIONS,
    REFERENCE_R1,
    REFERENCE_R1_SIZE,
    SWAP_CHECKS,
    TrainConfig,
    checked_options,
    read_options,
    resolve,
    with_paths_absolute,
)
from gcgan_cli.data.atomic import write_json_atomic
from gcgan_cli.device import DEVICE_CHOICES
from gcgan_cli.errors import GcganError, UsageError
from gcgan_cli.outputs import folder_place, writer_lock

# The networks, the trainer and the run folder import torch: they are imported in the functions that use them,
# so --help stays fast.

if TYPE_CHECKING:
    from gcgan_cli.core.training.run_dir import RunLog
    from gcgan_cli.core.training.trainer import Hooks

SHOWN_LOSSES = ("d", "g", "mask", "r1_seg", "path_length")
DATA, MODEL, SCHEDULE, REGULARISATION = "Data and run", "Model", "Schedule", "Regularisation"
GAZE, STAGE2, OUTPUT, DEVICE = "Gaze conditioning", "Stage 2", "Output and logging", "Distributed and device"
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


helped = defaults_help(TrainConfig(), _DERIVED)

# Set by the --nproc launcher, which holds the run folder's writer lock while its workers write.
LOCK_HELD = "GCGAN_TRAIN_LOCK_HELD"


def train_command(
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help=helped("dataset", "A DB from `gcgan pack`: labelled for stage 1, any for stage 2."),
            rich_help_panel=DATA,
        ),
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--outdir",
            "-o",
            help=helped("checkpoint_dir", "The run folder: checkpoints/, samples/, metrics.jsonl, config.json."),
            rich_help_panel=DATA,
        ),
    ] = None,
    stage: Annotated[
        int | None,
        typer.Option(
            help=helped(
                "stage",
                "1: gaze-conditioned training on labelled data; 2: transfer to an unlabelled domain from --network.",
            ),
            rich_help_panel=DATA,
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help=helped(
                "preset",
                "Model preset: ref256 (the reference's), small (64 px, trains on a laptop CPU) or tiny (32 px, tests).",
            ),
            rich_help_panel=MODEL,
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(help=helped("size", "Image size; DB images are resized on read."), rich_help_panel=MODEL),
    ] = None,
    seg_dim: Annotated[
        int | None,
        typer.Option(
            help=helped(
                "seg_dim", "Classes trained: the DB's first N (6: background..iris; ids >= N count as background)."
            ),
            rich_help_panel=MODEL,
        ),
    ] = None,
    residual_refine: Annotated[
        bool | None,
        typer.Option(
            "--residual-refine/--no-residual-refine",
            help=helped("residual_refine", "Add the coarse mask into the render net's segmentation."),
            rich_help_panel=MODEL,
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            help=helped("batch", "Images per process per step; the total batch is this x processes."),
            rich_help_panel=SCHEDULE,
        ),
    ] = None,
    iters: Annotated[
        int | None, typer.Option(help=helped("iters", "Train until this many steps."), rich_help_panel=SCHEDULE)
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help=helped("lr", "Learning rate before lazy-regularisation scaling."), rich_help_panel=SCHEDULE),
    ] = None,
    r1_img: Annotated[
        float | None, typer.Option(help=helped("r1_img", "R1 gamma on real images."), rich_help_panel=REGULARISATION)
    ] = None,
    r1_seg: Annotated[
        float | None, typer.Option(help=helped("r1_seg", "R1 gamma on real masks."), rich_help_panel=REGULARISATION)
    ] = None,
    d_reg_every: Annotated[
        int | None, typer.Option(help=helped("d_reg_every", "R1 every N steps."), rich_help_panel=REGULARISATION)
    ] = None,
    g_reg_every: Annotated[
        int | None,
        typer.Option(
            help=helped("g_reg_every", "Path-length regularisation every N steps."), rich_help_panel=REGULARISATION
        ),
    ] = None,
    path_regularize: Annotated[
        float | None,
        typer.Option(help=helped("path_regularize", "Path-length weight (0 = off)."), rich_help_panel=REGULARISATION),
    ] = None,
    path_batch_shrink: Annotated[
        int | None,
        typer.Option(
            help=helped("path_batch_shrink", "Path-length batch = batch / N."), rich_help_panel=REGULARISATION
        ),
    ] = None,
    mixing: Annotated[
        float | None, typer.Option(help=helped("mixing", "Style-mixing probability."), rich_help_panel=REGULARISATION)
    ] = None,
    lambda_mask: Annotated[
        float | None,
        typer.Option(
            help=helped(
                "lambda_mask", "Weight of the mask terms (coarse vs fine; stage 2 adds the pretrained-mask MSE)."
            ),
            rich_help_panel=REGULARISATION,
        ),
    ] = None,
    d_gaze_mismatch: Annotated[
        float | None,
        typer.Option(
            help=helped(
                "d_gaze_mismatch",
                "Stage 1: weight of a D term that calls real images with a wrong gaze fake (matching-aware D); 0 = the reference, which computes it and never uses it.",
            ),
            rich_help_panel=GAZE,
        ),
    ] = None,
    mismatch_min_deg: Annotated[
        float | None,
        typer.Option(
            help=helped("mismatch_min_deg", "Stage 1: a wrong gaze is drawn at least this far from the true one."),
            rich_help_panel=GAZE,
        ),
    ] = None,
    gaze_norm: Annotated[
        bool | None,
        typer.Option(
            "--gaze-norm/--no-gaze-norm",
            help=helped(
                "gaze_norm",
                "G and D embed the gaze standardised by the label set's mean and std (the reference: raw radians).",
            ),
            rich_help_panel=GAZE,
        ),
    ] = None,
    d_conditioning: Annotated[
        str | None,
        typer.Option(
            help=helped(
                "d_conditioning",
                "How D sees the gaze: concat (the reference: joined before the first linear layer) or projection (inner product with D's features).",
            ),
            rich_help_panel=GAZE,
        ),
    ] = None,
    d_gaze_head: Annotated[
        int | None,
        typer.Option(help=helped("d_gaze_head", "Width of D's gaze-regression head (0 = none)."), rich_help_panel=GAZE),
    ] = None,
    lambda_gaze_head: Annotated[
        float | None,
        typer.Option(
            help=helped(
                "lambda_gaze_head",
                "Stage 1, AC-GAN style: D's head regresses the gaze of real images and G is pulled to make it read the conditioning gaze.",
            ),
            rich_help_panel=GAZE,
        ),
    ] = None,
    gaze_model: Annotated[
        Path | None,
        typer.Option(
            help=helped(
                "gaze_model",
                "Stage 1: a frozen gaze estimator (from `gcgan gaze fit`) for the --lambda-gaze loss; judge the result with another estimator.",
            ),
            rich_help_panel=GAZE,
        ),
    ] = None,
    lambda_gaze: Annotated[
        float | None,
        typer.Option(
            help=helped(
                "lambda_gaze",
                "Stage 1: weight of the MSE between --gaze-model's reading of G's image and the conditioning gaze.",
            ),
            rich_help_panel=GAZE,
        ),
    ] = None,
    gaze_warmup: Annotated[
        int | None,
        typer.Option(
            help=helped("gaze_warmup", "Steps before the --lambda-gaze loss starts (G must draw irises first)."),
            rich_help_panel=GAZE,
        ),
    ] = None,
    gaze_ramp: Annotated[
        int | None,
        typer.Option(
            help=helped("gaze_ramp", "Steps over which the --lambda-gaze weight then rises linearly."),
            rich_help_panel=GAZE,
        ),
    ] = None,
    mirror: Annotated[
        bool | None,
        typer.Option(
            "--mirror/--no-mirror",
            help=helped("mirror", "Stage 1: flip real images and masks horizontally with p = 0.5, negating yaw."),
            rich_help_panel=DATA,
        ),
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help=helped(
                "augment", "Translate and cut out real and fake images with their masks before D (differentiable)."
            ),
            rich_help_panel=DATA,
        ),
    ] = None,
    ema_decay: Annotated[
        float | None, typer.Option(help=helped("ema_decay", "EMA decay of G_ema per step."), rich_help_panel=SCHEDULE)
    ] = None,
    n_sample: Annotated[
        int | None, typer.Option(help=helped("n_sample", "Samples in each grid."), rich_help_panel=OUTPUT)
    ] = None,
    log_every: Annotated[
        int | None,
        typer.Option(
            help=helped("log_every", "Write a metrics.jsonl row (means since the last) every N steps."),
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    viz_every: Annotated[
        int | None,
        typer.Option(help=helped("viz_every", "Write a sample grid every N steps (0 = off)."), rich_help_panel=OUTPUT),
    ] = None,
    save_every: Annotated[
        int | None,
        typer.Option(
            help=helped("save_every", "Save a checkpoint every N steps (0 = only at the end)."), rich_help_panel=OUTPUT
        ),
    ] = None,
    fid_every: Annotated[
        int | None,
        typer.Option(
            help=helped("fid_every", "FID every N steps when --inception is given and the weights are here (0 = off)."),
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    fid_n: Annotated[
        int | None, typer.Option(help=helped("fid_n", "Generated images per FID."), rich_help_panel=OUTPUT)
    ] = None,
    inception: Annotated[
        Path | None,
        typer.Option(
            help=helped("inception", "FID statistics of the training domain (.npz from `gcgan inception`)."),
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            help=helped(
                "inception_weights",
                "The FID Inception weights file (else $GCGAN_INCEPTION_WEIGHTS or the torch hub cache).",
            ),
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(help=helped("keep", "Keep the newest N checkpoints (0 = all)."), rich_help_panel=OUTPUT),
    ] = None,
    ckpt: Annotated[
        Path | None,
        typer.Option(
            "--network", help=helped("ckpt", "Stage 2: the stage-1 checkpoint to start from."), rich_help_panel=DATA
        ),
    ] = None,
    gaze_labels: Annotated[
        Path | None,
        typer.Option(
            help=helped(
                "gaze_labels",
                "Stage 2: the gaze label set (.npy [N, 2] or .json); default: the one stored in --network.",
            ),
            rich_help_panel=DATA,
        ),
    ] = None,
    swap_check: Annotated[
        str | None,
        typer.Option(
            help=helped(
                "swap_check",
                f"Stage 2, {'|'.join(SWAP_CHECKS)}: whose mask the unbroken test checks. pretrained never pairs a fake with a broken pretrained mask; current is the reference's inverted test.",
            ),
            rich_help_panel=STAGE2,
        ),
    ] = None,
    unbroken_class: Annotated[
        str | None,
        typer.Option(
            help=helped("unbroken_class", "Stage 2: the class of the unbroken-mask test."), rich_help_panel=STAGE2
        ),
    ] = None,
    unbroken_fraction: Annotated[
        float | None,
        typer.Option(
            help=helped(
                "unbroken_fraction", "Stage 2: a mask is broken when that class covers more than this fraction."
            ),
            rich_help_panel=STAGE2,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help=helped("seed", "Seed of weights, data order and sampling (rank r draws from seed + r)."),
            rich_help_panel=SCHEDULE,
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help=helped(
                "precision",
                f"{'|'.join(PRECISIONS)}: bf16 autocasts the main passes on CUDA (the regularisers stay fp32); tf32 allows TF32 matmuls.",
            ),
            rich_help_panel=DEVICE,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            help=helped("workers", "DataLoader workers per process (on the CPU 0 leaves the cores to the math)."),
            rich_help_panel=DATA,
        ),
    ] = None,
    deterministic: Annotated[
        bool | None,
        typer.Option(
            "--deterministic/--no-deterministic",
            help=helped("deterministic", "Deterministic algorithms (a resumed run repeats an unbroken one exactly)."),
            rich_help_panel=DEVICE,
        ),
    ] = None,
    compile: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            rich_help_panel=DEVICE,
            help=helped(
                "compile",
                (
                    "torch.compile the G and D passes of the D and G steps (R1 and path length take a double backward "
                    "and stay eager). For GPUs: the first steps are slow while each graph compiles. It works on the CPU "
                    "too (inductor builds C++ with gcc). GCGAN_COMPILE_BACKEND picks the backend: inductor (default), "
                    "or eager / aot_eager, which trace without generating code."
                ),
            ),
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help=helped("device", f"{DEVICE_CHOICES} (under torchrun: cuda:LOCAL_RANK)."), rich_help_panel=DEVICE
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Options from a TOML file (flat keys named like the fields of the run's config.json: dataset, checkpoint_dir, ckpt, and the other options' flag names); flags given here win.",
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
            help="Print the resolved config, the DB and the model (with G and D parameter counts) and exit; writes nothing.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train GC-GAN: stage 1 on a labelled DB, stage 2 on an unlabelled one from a stage-1 checkpoint.

    Options resolve in this order: defaults, the run's config.json (with --resume), --config TOML, then the flags given.

    Ctrl-C or SIGTERM saves a checkpoint and exits 130; --resume continues. A NaN or infinite loss stops the run (exit 3) and keeps the last good checkpoint.

    Multi-GPU: [cyan]torchrun --nproc_per_node N -m gcgan_cli train ...[/cyan] or --nproc N.
    """
    given = {k: v for k, v in locals().items() if k not in ("config", "resume", "nproc", "dry_run", "quiet")}
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in given.items()}
    options = read_options(config) if config else {}
    folder = given["checkpoint_dir"] or options.get("checkpoint_dir")
    stored = None
    if resume:
        from gcgan_cli.core.training.run_dir import RunDir  # not above `given`: locals() must hold the options alone

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
