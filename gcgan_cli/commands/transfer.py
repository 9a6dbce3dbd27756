"""`gcgan transfer synth|landmarks-fit|fit|run|eval`: FP-GAN, gaze- and landmark-preserving
translation of eye patches between a synthetic domain (S, UnityEyes) and a real one (R, MPIIFaceGaze)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gcgan_cli.commands.config_options import with_config_options
from gcgan_cli.commands.display import plain_text, progress_bar, summary_table
from gcgan_cli.commands.examples import epilog
from gcgan_cli.commands.options import DeviceOpt
from gcgan_cli.console import console
from gcgan_cli.core.training.config import read_options
from gcgan_cli.core.transfer.config import DATA, EYE_SOURCES, NET_PRESETS, OUTPUT, TransferConfig, resolve
from gcgan_cli.core.transfer.ini import import_ini
from gcgan_cli.data.atomic import write_json_atomic
from gcgan_cli.data.synthetic_eye import write_set
from gcgan_cli.errors import UsageError

# The gaze sources, networks and trainers import torch: they are imported in the functions that use them,
# so --help stays fast.

app = typer.Typer(
    help="FP-GAN: translate eye patches between a synthetic (S) and a real (R) domain, keeping gaze and landmarks.",
    no_args_is_help=True,
)

SHOWN = ("g_adv", "f_adv", "cycle", "gaze", "landmarks", "d_r", "d_s")
_PRESET = NET_PRESETS[TransferConfig.preset]
_NET_FIELDS = {
    "upsample": "upsample",
    "net_d": "netD",
    "d_layers": "d_layers",
    "d_last_stride": "d_last_stride",
    "norm": "norm",
}
_DERIVED = {
    **{
        name: f"the preset's ({TransferConfig.preset}: {getattr(_PRESET, field)})"
        for name, field in _NET_FIELDS.items()
    },
    "max_head_pose": "off",
}


@app.command("synth", epilog=epilog("transfer synth"))
def synth_command(
    out: Annotated[Path, typer.Option("--outdir", "-o", help="The folder to write (unity), or the .h5 file (mpii).")],
    style: Annotated[
        str,
        typer.Option(
            help="s: clean, UnityEyes-like, wide gaze prior; r: degraded, MPII-like, 15 persons, narrow prior."
        ),
    ] = "s",
    fmt: Annotated[
        str, typer.Option("--format", help="unity (N.jpg + N.json) or mpii (one .h5 of 36 x 60 patches).")
    ] = "unity",
    n: Annotated[int, typer.Option("--n", min=1, help="Samples to render.")] = 1000,
    persons: Annotated[
        int | None, typer.Option(min=1, help="Persons (r: 15 by default; s: one identity per sample).")
    ] = None,
    first_person: Annotated[
        int, typer.Option(min=0, help="Number of the first person (train p00-p11 and test p12-p14 from one seed).")
    ] = 0,
    twin: Annotated[
        bool,
        typer.Option(
            "--twin",
            help="Also write each sample re-rendered in the other style with the same geometry, beside --outdir "
            "(OUTDIR-twin).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --outdir if it exists.")] = False,
) -> None:
    """Render a synthetic eye set whose labels (gaze, head pose, 18 landmarks) are exact by construction.

    Global gamma or contrast make no domain gap: every input is histogram-equalised. R differs from S by resolution loss, defocus, sensor noise, JPEG, uneven light, lash shadow and lower contrast.
    """  # noqa: E501 (help text: one line per paragraph)
    start = time.perf_counter()
    with progress_bar("transfer synth") as progress:
        bar = progress.add_task(f"style {style}", total=n * (2 if twin else 1))
        summary = write_set(
            out,
            style,
            fmt,
            n,
            seed=seed,
            persons=persons,
            first_person=first_person,
            twin=twin,
            overwrite=overwrite,
            on_item=lambda: progress.advance(bar),
        )
    table = summary_table("gcgan transfer synth")
    for key, value in summary.items():
        table.add_row(str(key), str(value))
    table.add_row("time", f"{time.perf_counter() - start:.1f} s")
    console.print(table)


@app.command("landmarks-fit", epilog=epilog("transfer landmarks-fit"))
def landmarks_fit_command(
    data: Annotated[Path, typer.Option("--data", help=f"Training data with landmarks: {EYE_SOURCES}.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The landmark model file to write (the best epoch on validation).")
    ],
    val: Annotated[
        Path | None, typer.Option(help="Validation source (default: the training set itself, unaugmented).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training data.")] = 30,
    batch: Annotated[int, typer.Option(min=1, help="Patches per step (GazeML: 32).")] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate (GazeML: 1e-3).")] = 1e-3,
    stride: Annotated[
        int, typer.Option(help="First-layer stride: 1 (GazeML's 36 x 60 recipe) or 2 (FP-GAN's ELG).")
    ] = 1,
    maps: Annotated[int, typer.Option(min=1, help="Feature maps (GazeML 36 x 60: 32; FP-GAN: 64).")] = 32,
    modules: Annotated[int, typer.Option(min=1, help="Hourglass modules (GazeML 36 x 60: 2; FP-GAN: 3).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the order and the weights.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Fit the ELG landmark network (hourglass heatmaps, soft-argmax) on 36 x 60 eye patches with landmarks."""
    from gcgan_cli.core.gaze.sources import EyeOptions, open_source
    from gcgan_cli.core.transfer.landmarks import ElgConfig, LandmarkFitConfig, fit_landmarks

    if out.exists() and not overwrite:
        raise UsageError(f"--out {out} exists; pass --overwrite to replace it")
    train = open_source(data, 0, EyeOptions(seed=seed))
    val_source = open_source(val, 0, EyeOptions(seed=seed + 1), flag="--val") if val else None
    config = LandmarkFitConfig(
        model=ElgConfig(stride=stride, maps=maps, modules=modules), epochs=epochs, batch=batch, lr=lr, seed=seed
    )
    start = time.perf_counter()
    with progress_bar("transfer landmarks-fit") as progress:
        bar = progress.add_task(train.describe(), total=epochs)

        def epoch_done(row: dict) -> None:
            progress.advance(bar)
            progress.console.print(
                f"epoch {row['epoch']}: loss {row['loss']:.4g}, landmark error {row['error']:.2f} px "
                f"(iris centre {row['iris_error']:.2f} px)"
            )

        report = fit_landmarks(train, val_source, config, out, device, on_epoch=epoch_done)
    table = summary_table("gcgan transfer landmarks-fit")
    table.add_row("data", f"{report['train_count']} train, {report['val_count']} validation")
    table.add_row(
        "landmark error",
        f"{report['error']:.2f} px, iris centre {report['iris_error']:.2f} px on {report['measured_on']} "
        f"(epoch {report['best_epoch']} of {epochs}; untrained {report['start_error']:.2f} px)",
    )
    table.add_row("time", f"{time.perf_counter() - start:.1f} s on {device}")
    table.add_row("model", str(out))
    console.print(table)


@app.command("fit", epilog=epilog("transfer fit"))
@with_config_options(TransferConfig, _DERIVED)
def fit_command(
    *,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Options from a TOML file (flat keys named like the flags).", rich_help_panel=DATA
        ),
    ] = None,
    from_ini: Annotated[
        Path | None,
        typer.Option(
            "--from-ini",
            help="Options from the FP-GAN original's .ini file (with --section); its traps are reported.",
            rich_help_panel=DATA,
        ),
    ] = None,
    section: Annotated[
        str, typer.Option(help="The .ini section to import (values inherit from [DEFAULT]).", rich_help_panel=DATA)
    ] = "DEFAULT",
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the newest checkpoint in --outdir exactly (flags given here win).",
            rich_help_panel=DATA,
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved options and exit.", rich_help_panel=OUTPUT)
    ] = False,
    **given,
) -> None:
    """Train G: S -> R and F: R -> S (LSGAN, cycle, self-regularisation, and gaze / landmark consistency through frozen networks).

    Ctrl-C or SIGTERM saves a checkpoint and exits 130; --resume continues exactly.
    """  # noqa: E501 (help text: one line per paragraph)
    file_options = read_options(config, TransferConfig) if config else {}
    if from_ini:
        imported, warnings = import_ini(from_ini, section)
        for warning in warnings:
            console.print(f"[yellow]warning[/] {from_ini} [{section}]: {warning}", soft_wrap=True)
        file_options = {**imported, **file_options}
    # Paths are stored absolute, so a run resumes and is evaluated from any folder.
    given, file_options = (
        {k: (_absolute(v) if k in PATH_OPTIONS else v) for k, v in layer.items()} for layer in (given, file_options)
    )
    folder = given["out"] or file_options.get("out")
    stored = None
    if resume:
        from gcgan_cli.core.transfer.trainer import run_dir

        if not folder:
            raise UsageError("--resume needs --outdir (the run folder to continue)")
        stored = (run_dir(Path(folder)).read_config() or {}).get("transfer")
        if stored is None:
            raise UsageError(f"--resume: {folder} has no config.json; is it a `gcgan transfer fit` run?")
    resolved = resolve(given, file_options, stored)
    if dry_run:
        console.print_json(json.dumps({"transfer": resolved.to_dict(), "net": resolved.net().__dict__}))
        return
    _fit(resolved, resume)


PATH_OPTIONS = ("s", "r", "out", "gaze_model", "landmark_model")


def _absolute(value):
    return str(Path(value).expanduser().resolve()) if isinstance(value, (str, Path)) and str(value) else value


def _fit(config: TransferConfig, resume: bool) -> None:
    from gcgan_cli.core.training.run_dir import RunLog
    from gcgan_cli.core.transfer.trainer import Hooks, TransferTrainer, run_dir

    stop = {"requested": False}

    def request_stop(signum, frame) -> None:
        stop["requested"] = True

    run = run_dir(Path(config.out))
    log = RunLog(run)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with progress_bar("transfer fit", "steps", log=log) as progress:
            bar = progress.add_task("", total=config.steps)

            def started(info: dict) -> None:
                log.open()
                progress.update(bar, completed=info["step"])
                features = ", ".join(f"{k} {v['path']}" for k, v in info["features"].items() if v) or "none"
                progress.print(
                    f"[bold]gcgan transfer fit[/]: S {info['s']}; R {info['r']}; G/F {info['g_params']:,} params each, "
                    f"D {info['d_params']:,}; feature networks: {escape(features)}; on {info['device']}"
                    + (f"; resuming at step {info['step']}" if info["step"] else ""),
                    markup=True,
                )

            def logged(row: dict) -> None:
                shown = " ".join(f"{k} {row[k]:.3g}" for k in SHOWN if k in row)
                progress.update(bar, description=f"{row['img_per_s']:.0f} img/s {shown}")

            hooks = Hooks(
                on_start=started,
                on_step=lambda step: progress.update(bar, completed=step),
                on_log=logged,
                on_event=progress.print,
                should_stop=lambda: stop["requested"],
            )
            result = TransferTrainer(config, hooks, resume).train()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    table = summary_table("gcgan transfer fit")
    table.add_row("steps", f"{result.step} of {config.steps}" + (" (interrupted)" if result.interrupted else ""))
    if result.seconds > 0:
        table.add_row("time", f"{result.seconds:.1f} s, {result.images / result.seconds:.1f} img/s per domain")
    losses = {k: v for k, v in result.last_row.items() if k not in ("step", "sec_per_step", "img_per_s", "lr")}
    if losses:
        table.add_row("losses", ", ".join(f"{k} {v:.4g}" for k, v in losses.items()))
    table.add_row("checkpoint", str(result.checkpoint))
    sheets = sorted(run.samples.glob("*.png")) if run.samples.is_dir() else []
    if sheets:
        table.add_row("samples", str(sheets[-1]))
    table.add_row("metrics", str(run.metrics))
    table.add_row("log", str(run.log))
    console.print(table)
    log(plain_text(table))
    if result.interrupted:
        console.print(
            f"[yellow]interrupted[/] at step {result.step}; continue with: gcgan transfer fit --resume --outdir "
            f"{config.out}"
        )
        raise typer.Exit(130)


@app.command("run", epilog=epilog("transfer run"))
def run_command(
    checkpoint: Annotated[
        Path,
        typer.Option("--network", help="A `gcgan transfer fit` run folder (its newest checkpoint) or checkpoint file."),
    ],
    data: Annotated[Path, typer.Option("--data", help=f"The images to translate: {EYE_SOURCES}.")],
    direction: Annotated[str, typer.Option(help="s2r (G: synthetic to real) or r2s (F: real to synthetic).")] = "s2r",
    outdir: Annotated[
        Path,
        typer.Option(
            "--outdir",
            help="The translated folder: ID.png, ID_clean.png (the equalised input), manifest.jsonl, transfer.json.",
        ),
    ] = Path("translated"),
    batch: Annotated[
        int, typer.Option(min=1, help="Patches per forward pass (any size; the last batch may be partial).")
    ] = 100,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --outdir if it is not empty.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Translate every image of a source exactly once; the folder is a gaze source for `gcgan gaze fit/eval`."""
    from gcgan_cli.core.gaze.sources import EyeOptions, open_source
    from gcgan_cli.core.transfer.translate import translate

    source = open_source(data, 0, EyeOptions(), flag="--data")
    start = time.perf_counter()
    with progress_bar("transfer run") as progress:
        bar = progress.add_task(direction, total=len(source))
        summary = translate(
            checkpoint,
            source,
            direction,
            outdir,
            batch,
            device,
            overwrite,
            on_batch=lambda done: progress.update(bar, completed=done),
        )
    seconds = time.perf_counter() - start
    table = summary_table("gcgan transfer run")
    table.add_row(
        "translated", f"{summary['count']} images ({direction}, step {summary['step']}) in {summary['batches']} batches"
    )
    table.add_row("mean |G(x) - x|", f"{summary['mean_abs_change']:.3f}")
    table.add_row("time", f"{seconds:.1f} s, {summary['count'] / max(seconds, 1e-9):.0f} img/s")
    table.add_row("folder", str(outdir))
    console.print(table)


@app.command("eval", epilog=epilog("transfer eval"))
def eval_command(
    checkpoint: Annotated[
        Path, typer.Option("--network", help="A `gcgan transfer fit` run folder or checkpoint file.")
    ],
    s_test: Annotated[
        Path, typer.Option("--s-test", help="Held-out S, with true gazes (and landmarks for --landmarks-r).")
    ],
    r_test: Annotated[Path, typer.Option("--r-test", help="Held-out R persons, with gazes.")],
    s_train: Annotated[
        Path, typer.Option("--s-train", help="S training data (the realism judge and the downstream estimator).")
    ],
    r_train: Annotated[
        Path, typer.Option("--r-train", help="R training data (the realism judge and the downstream upper bound).")
    ],
    gaze_r: Annotated[
        Path,
        typer.Option(
            "--gaze-r", help="The independent gaze evaluator E_R: an eye estimator trained on R_train, no loss network."
        ),
    ],
    gaze_s: Annotated[
        Path | None,
        typer.Option(
            "--gaze-s",
            help="E_S': an eye estimator trained on S (another seed or arch than the loss network), for R -> S.",
        ),
    ] = None,
    landmarks_r: Annotated[
        Path | None,
        typer.Option("--landmarks-r", help="The independent landmark evaluator L_R (landmarks-fit on R_train)."),
    ] = None,
    twins: Annotated[
        Path | None,
        typer.Option(
            "--twins", help="S_test re-rendered in R's style (`transfer synth --twin`): a paired ideal translation."
        ),
    ] = None,
    downstream_epochs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also train fresh estimators on G(S_train), S_train and R_train for this many epochs and test them "
            "on R_test (0: off).",
        ),
    ] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the JSON report here as well.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report (and nothing else).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the downstream estimators.")] = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Judge a translator with evaluators no loss saw: realism beside gaze and landmark preservation, in both directions."""  # noqa: E501 (help text: one line per paragraph)
    from gcgan_cli.core.gaze.sources import EyeOptions, open_source
    from gcgan_cli.core.transfer.evaluate import evaluate, table_rows

    options = EyeOptions()
    sources = {
        name: open_source(path, 0, options, flag=f"--{name.replace('_', '-')}")
        for name, path in (("s_test", s_test), ("r_test", r_test), ("s_train", s_train), ("r_train", r_train))
    }
    twin_source = open_source(twins, 0, options, flag="--twins") if twins else None
    with console.status("transfer eval") as status:
        report = evaluate(
            checkpoint,
            sources["s_test"],
            sources["r_test"],
            sources["s_train"],
            sources["r_train"],
            gaze_r,
            device,
            gaze_s=gaze_s,
            landmarks_r=landmarks_r,
            twins=twin_source,
            downstream_epochs=downstream_epochs,
            seed=seed,
            on_stage=lambda stage: status.update(f"transfer eval: {stage}"),
        )
    if out is not None:
        write_json_atomic(out, report)
    if as_json:
        print(json.dumps(report))
        return
    table = summary_table(f"gcgan transfer eval: {report['checkpoint']} (step {report['step']})")
    for name, value in table_rows(report):
        table.add_row(name, value)
    if out is not None:
        table.add_row("report", str(out))
    console.print(table)
