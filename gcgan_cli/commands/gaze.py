"""`gcgan gaze fit|eval|predict|consistency`: a gaze estimator that measures what data is worth."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import cv2
import numpy as np
import typer
from rich.table import Table

from gcgan_cli.commands.display import QuietOpt, progress_bar, summary_table
from gcgan_cli.commands.examples import epilog
from gcgan_cli.commands.options import DeviceOpt
from gcgan_cli.console import console
from gcgan_cli.core.gaze.angles import angular_error
from gcgan_cli.core.gaze.kinds import ARCH_INPUTS, INPUTS, KINDS
from gcgan_cli.data import eye_patch
from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.data.png import encode_png
from gcgan_cli.errors import DatasetError, UsageError
from gcgan_cli.outputs import output_file

# torch and the modules that import it are imported in the functions that use them, so --help stays fast.

if TYPE_CHECKING:
    import torch

    from gcgan_cli.core.gaze.sources import GazeSource

SOURCES_HELP = (
    "A gaze source: "
    + ", ".join(k.name for k in KINDS)
    + " (a `gcgan pack` DB, a `gcgan sample` folder, an MPIIFaceGaze .h5, "
    "a translated eye folder, a UnityEyes folder)."
)

ARCH_HELP = (
    "Network: "
    + ", ".join(f"{arch} ({' or '.join(inputs)})" for arch, inputs in ARCH_INPUTS.items())
    + "; gazenet is FP-GAN's net (83.5M parameters, sized for a GPU), gazenet-slim its conv trunk with small "
    "dense layers (4.2M)."
)
INPUT_HELP = (
    "What the estimator reads: face (RGB strips, --size square) or eye (36 x 60 grayscale eye patches, "
    "histogram-equalised: MPIIFaceGaze .h5, UnityEyes, translated folders)."
)
READ_INPUT_HELP = "face or eye: the estimator's own input (from its file); a different value is refused."
HEAD_POSE_HELP = (
    "Eye input, UnityEyes sources: drop samples whose head pitch or yaw exceeds DEG degrees "
    "(GazeML used 20; default: keep all, as FP-GAN did)."
)
PREDICT_GRAY = "mean"  # colour files are grayed as MPIIFaceGaze's patches are; gray files are unchanged by it
DEFAULT_SIZE = 64

app = typer.Typer(
    help="A gaze estimator: fit it on any mix of gaze sources, evaluate it (angular error), predict, and measure how "
    "gaze-aware a generator is.",
    no_args_is_help=True,
)


@app.command("fit", epilog=epilog("gaze fit"))
def fit_command(
    data: Annotated[list[Path], typer.Option("--data", help=SOURCES_HELP + " Repeat to mix sources.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The estimator file to write (the best epoch on validation).")
    ],
    mix: Annotated[
        str | None, typer.Option(help="Sampling weights per --data, e.g. 1,0.5 (default: equal shares).")
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option(help="Validation source (default: held out from the first --data, by subject where known)."),
    ] = None,
    input_kind: Annotated[str, typer.Option("--input", help=INPUT_HELP)] = "face",
    arch: Annotated[str, typer.Option(help=ARCH_HELP)] = "small",
    init: Annotated[
        Path | None,
        typer.Option(
            "--init",
            help=(
                "--arch resnet18: start the backbone from a local torchvision ImageNet file (resnet18-f37072fd.pth, a "
                "state_dict; .safetensors with the safetensors package); never downloaded. The net then normalises its "
                "input as those weights expect; the file's path and sha256 go in --out."
            ),
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            help=f"Face input: the side in pixels, a multiple of 16 (default {DEFAULT_SIZE}); eye patches are 36 x 60."
        ),
    ] = None,
    jitter: Annotated[
        bool,
        typer.Option(
            "--jitter/--no-jitter",
            help="Eye input: UnityEyes crop jitter (random scale and shift of the crop) on the training data; "
            "validation is never jittered.",
        ),
    ] = False,
    max_head_pose: Annotated[
        float | None, typer.Option("--max-head-pose", min=0.0, metavar="DEG", help=HEAD_POSE_HELP)
    ] = None,
    epochs: Annotated[
        int, typer.Option(min=1, help="Passes over the training data (one-cycle learning rate over all of them).")
    ] = 60,
    batch: Annotated[int, typer.Option(min=1, help="Images per step.")] = 64,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate of the one-cycle schedule (AdamW).")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seed of the split, the sampling and the weights.")] = 0,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="DataLoader workers.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out (at the first epoch that is kept).")
    ] = False,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Fit a gaze estimator; the best epoch on the validation split is kept in --out."""
    from gcgan_cli.core.gaze.fit import FitConfig, fit

    weights = _weights(mix, len(data))
    _check_input(input_kind)
    if input_kind == "eye" and size is not None:
        raise UsageError(f"--size {size}: applies to --input face; eye patches are 36 x 60")
    if input_kind == "face" and (jitter or max_head_pose is not None):
        raise UsageError(
            f"{'--jitter' if jitter else '--max-head-pose'}: applies to --input eye; drop it or add --input eye"
        )
    size = (DEFAULT_SIZE if size is None else size) if input_kind == "face" else 0
    config = FitConfig(arch=arch, size=size, epochs=epochs, batch=batch, lr=lr, seed=seed, workers=workers, init=init)
    sources = [_open(path, input_kind, size, max_head_pose, jitter=jitter, seed=seed) for path in data]
    val_source = _open(val, input_kind, size, max_head_pose, flag="--val") if val else None
    held_from = (
        _open(data[0], input_kind, size, max_head_pose) if jitter and val is None else None
    )  # the split, unjittered
    output_file(out, "--out", overwrite)
    start = time.perf_counter()
    with progress_bar("gaze fit", "batches", quiet) as progress:
        bar = progress.add_task("", total=None)

        def started(train: int, held: int, how: str) -> None:
            progress.update(bar, total=epochs * max(1, train // batch), description=f"{train} train, {held} val")
            progress.print(f"[bold]gcgan gaze fit[/]: {train} training samples, {held} validation ({how})", markup=True)

        result = fit(
            sources,
            weights,
            val_source,
            config,
            out,
            device,
            {"sources": [s.describe() for s in sources], "mix": weights},
            held_out=held_from,
            on_start=started,
            on_batch=lambda: progress.advance(bar),
            on_epoch=lambda row: progress.print(
                f"epoch {row['epoch']}: loss {row['loss']:.4f}, validation error {row['val_error']:.2f} deg"
            ),
        )
    table = summary_table("gcgan gaze fit")
    for source, weight in zip(sources, weights):
        table.add_row("data", f"{source.describe()}, weight {weight:g}")
    table.add_row("input", f"{input_kind}, {' x '.join(map(str, sources[0].shape))}")
    table.add_row("split", f"{result.train_count} train / {result.val_count} validation")
    table.add_row("validation error", f"{result.best_error:.2f} deg (epoch {result.best_epoch} of {epochs})")
    table.add_row("mean-gaze baseline", f"{result.baseline_error:.2f} deg")
    table.add_row("time", f"{time.perf_counter() - start:.1f} s on {device}")
    table.add_row("estimator", str(out))
    console.print(table)


@app.command("eval", epilog=epilog("gaze eval"))
def eval_command(
    model: Annotated[Path, typer.Option("--model", help="An estimator from `gcgan gaze fit`.")],
    data: Annotated[Path, typer.Option("--data", help=SOURCES_HELP)],
    input_kind: Annotated[str | None, typer.Option("--input", help=READ_INPUT_HELP)] = None,
    max_head_pose: Annotated[
        float | None, typer.Option("--max-head-pose", min=0.0, metavar="DEG", help=HEAD_POSE_HELP)
    ] = None,
    plot_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="The histogram / scatter PNG (default: MODEL_eval.png beside the model)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (and nothing else).")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="DataLoader workers.")] = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Angular error of an estimator on a source: mean, median, std, per subject, and a plot."""
    from gcgan_cli.core.gaze.estimator import load_estimator
    from gcgan_cli.core.gaze.fit import evaluate
    from gcgan_cli.core.gaze.report import axis_error_stats, error_stats, plot

    network, config = load_estimator(model, device)
    kind = _estimator_input(model, config, input_kind)
    if kind == "face" and max_head_pose is not None:
        raise UsageError(f"--max-head-pose: applies to eye estimators; --model {model} reads face strips")
    source = _open(data, kind, config["size"], max_head_pose)
    predicted, true = evaluate(network, source, device, workers=workers)
    errors = angular_error(predicted, true)
    baseline = angular_error(np.broadcast_to(np.asarray(config["mean_gaze"]), true.shape), true)
    plot_path = plot_path or model.with_name(f"{model.stem}_eval.png")
    write_atomic(plot_path, encode_png(plot(predicted, true, errors)))
    result = {
        "model": str(model),
        "data": source.describe(),
        "error_deg": error_stats(errors),
        **axis_error_stats(predicted, true),
        "mean_gaze_baseline_deg": error_stats(baseline),
        "plot": str(plot_path),
    }
    subjects = sorted({s for s in source.subjects if s is not None})
    if subjects:
        per = np.array(source.subjects)
        result["per_subject_mean_deg"] = {s: float(errors[per == s].mean()) for s in subjects}
    if as_json:
        print(json.dumps(result))
        return
    table = summary_table("gcgan gaze eval")
    table.add_row("data", result["data"])
    stats = result["error_deg"]
    table.add_row(
        "angular error",
        f"mean {stats['mean']:.2f}, median {stats['median']:.2f}, std {stats['std']:.2f} deg ({stats['count']} "
        "samples)",
    )
    table.add_row("per axis", _axes(result))
    table.add_row("mean-gaze baseline", f"mean {result['mean_gaze_baseline_deg']['mean']:.2f} deg")
    table.add_row("plot", str(plot_path))
    console.print(table)


@app.command("predict", epilog=epilog("gaze predict"))
def predict_command(
    model: Annotated[Path, typer.Option("--model", help="An estimator from `gcgan gaze fit`.")],
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Image files (any size; resized to the estimator's input: a face strip, or an eye patch made gray "
            "and equalised)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write .csv or .jsonl (default: CSV on stdout).")
    ] = None,
    input_kind: Annotated[str | None, typer.Option("--input", help=READ_INPUT_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """(pitch, yaw) in radians per image."""
    import torch

    from gcgan_cli.core.gaze.estimator import load_estimator, predict
    from gcgan_cli.core.gaze.sources import prepare

    if out is not None and out.suffix not in (".csv", ".jsonl"):
        raise UsageError(f"--out {out}: use a .csv or .jsonl file name")
    network, config = load_estimator(model, device)
    kind = _estimator_input(model, config, input_kind)
    tensors = []
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{path}: not a readable image")
        tensors.append(prepare(image[:, :, ::-1], config["size"]) if kind == "face" else _eye_patch(image))
    if out is not None:
        output_file(out, "--out", overwrite)
    gazes = predict(network, torch.stack(tensors)).tolist()
    rows = [{"image": str(path), "pitch": pitch, "yaw": yaw} for path, (pitch, yaw) in zip(images, gazes)]
    if out is not None and out.suffix == ".jsonl":
        write_atomic(out, "".join(json.dumps(r) + "\n" for r in rows).encode())
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["image", "pitch", "yaw"])
    writer.writeheader()
    writer.writerows(rows)
    if out is None:
        sys.stdout.write(text.getvalue())
    else:
        write_atomic(out, text.getvalue().encode())


@app.command("consistency", epilog=epilog("gaze consistency"))
def consistency_command(
    ckpt: Annotated[
        Path,
        typer.Option(
            "--network",
            help="A checkpoint from `gcgan train` (the mean error is added to its run's metrics.jsonl) or a model "
            "folder from `gcgan export`.",
        ),
    ],
    model: Annotated[
        Path,
        typer.Option("--model", help="An estimator from `gcgan gaze fit`; not the one in the generator's gaze loss."),
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="Samples at gazes drawn from the generator's label set.")] = 1000,
    batch: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
    truncation: Annotated[float, typer.Option(min=0.0, max=1.0, help="psi of the sampled latents (1 = none).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of z and of the gazes drawn.")] = 0,
    grid: Annotated[
        int,
        typer.Option(
            "--grid",
            min=0,
            help="Also sweep the conditioning gaze on an N x N grid over the label set's 5th-95th percentiles (0: "
            "off).",
        ),
    ] = 0,
    grid_samples: Annotated[
        int, typer.Option("--grid-samples", min=1, help="Samples per grid cell (the same z in every cell).")
    ] = 16,
    grid_plot_path: Annotated[
        Path | None, typer.Option("--grid-plot", help="Write the grid's error heatmap PNG here (needs --grid).")
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(
            "--sweep",
            help="Write PREFIX_yaw.png and PREFIX_pitch.png: identities across yaws and pitches, conditioning "
            "(green) vs estimated (red) gaze.",
        ),
    ] = None,
    sweep_rows: Annotated[int, typer.Option("--sweep-rows", min=1, help="Identities (rows) on each sweep sheet.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """How gaze-aware a generator is: the error between the gaze it was conditioned on and an independent estimator's reading, beside a mean-gaze baseline and the estimator's own error."""  # noqa: E501 (help text: one line per paragraph)
    from gcgan_cli.core.gaze.consistency import (
        check_independent,
        consistency_grid,
        consistency_stats,
        generator_consistency,
        sweep_sheets,
    )
    from gcgan_cli.core.gaze.estimator import load_estimator
    from gcgan_cli.core.gaze.report import grid_plot
    from gcgan_cli.core.synthesis import load_generator
    from gcgan_cli.core.training.run_dir import record_measure

    if grid == 1:
        raise UsageError("--grid 1: use 0 (off) or at least 2")
    if grid_plot_path is not None and not grid:
        raise UsageError("--grid-plot needs --grid N")
    sweep_paths = [Path(f"{sweep}_{axis}.png") for axis in ("yaw", "pitch")] if sweep else []
    for path in ([grid_plot_path] if grid_plot_path else []) + sweep_paths:
        if not path.parent.is_dir():
            raise UsageError(f"{path}: folder {path.parent} does not exist")
    network, config = load_estimator(model, device)
    if config["input"] != "face":
        raise UsageError(
            f"--model {model} reads {config['input']} patches; a generator's consistency needs a face estimator "
            "(--input face)"
        )
    loaded = load_generator(ckpt, device)
    check_independent(loaded, model)
    conditioning, estimated = generator_consistency(loaded, network, config["size"], n, batch, seed, truncation)
    result = {
        "checkpoint": str(ckpt),
        "model": str(model),
        "n": n,
        "gaze_loss_model": loaded.gaze_loss_model,
        **consistency_stats(conditioning, estimated, config["report"].get("val_error")),
    }
    if grid:
        result["grid"] = consistency_grid(loaded, network, config["size"], grid, grid_samples, batch, seed, truncation)
        if grid_plot_path is not None:
            write_atomic(grid_plot_path, encode_png(grid_plot(**result["grid"])))
            result["grid_plot"] = str(grid_plot_path)
    if sweep_paths:
        for path, sheet in zip(
            sweep_paths, sweep_sheets(loaded, network, config["size"], sweep_rows, batch, seed, truncation)
        ):
            write_atomic(path, encode_png(sheet))
        result["sweep"] = [str(path) for path in sweep_paths]
    recorded = record_measure(
        ckpt,
        loaded.step,
        {
            "gaze_consistency_deg": result["error_deg"]["mean"],
            "gaze_consistency_model": str(model),
            "gaze_consistency_n": n,
        },
    )
    if recorded is not None:
        result["recorded"] = str(recorded)
    if as_json:
        print(json.dumps(result))
        return
    table = summary_table("gcgan gaze consistency")
    table.add_row("generator", f"{ckpt} (step {loaded.step})")
    stats = result["error_deg"]
    table.add_row(
        "conditioning vs estimate",
        f"mean {stats['mean']:.2f}, median {stats['median']:.2f}, std {stats['std']:.2f} deg over {n} samples",
    )
    table.add_row("per axis", _axes(result))
    table.add_row(
        "mean-gaze baseline",
        f"mean {result['mean_gaze_baseline_deg']['mean']:.2f} deg (always the mean conditioning gaze)",
    )
    table.add_row(
        "correlation",
        ", ".join(f"{axis} r = {'n/a' if r is None else f'{r:.3f}'}" for axis, r in result["correlation"].items()),
    )
    if result["estimator_validation_error_deg"] is not None:
        table.add_row(
            "estimator's own error", f"{result['estimator_validation_error_deg']:.2f} deg on its validation split"
        )
    for name, key in (
        ("ratio to estimator's error", "ratio_to_estimator_error"),
        ("ratio to baseline", "ratio_to_baseline"),
    ):
        if result[key] is not None:
            table.add_row(name, f"{result[key]:.2f}")
    if "grid_plot" in result:
        table.add_row("grid plot", result["grid_plot"])
    if "sweep" in result:
        table.add_row("sweep sheets", ", ".join(result["sweep"]))
    if "recorded" in result:
        table.add_row("recorded", f"{result['recorded']} (the row of step {loaded.step})")
    console.print(table)
    if grid:
        console.print(_grid_table(result["grid"]))


def _check_input(kind: str) -> None:
    if kind not in INPUTS:
        raise UsageError(f"--input {kind}: choose one of {', '.join(INPUTS)}")


def _estimator_input(model: Path, config: dict, given: str | None) -> str:
    """The estimator's input kind; a --input that names another is a mistake, not a conversion."""
    if given is not None:
        _check_input(given)
        if given != config["input"]:
            raise UsageError(
                f"--input {given}: --model {model} reads {config['input']} input; drop --input or give an estimator "
                f"fitted with --input {given}"
            )
    return config["input"]


def _open(
    path: Path,
    kind: str,
    size: int,
    max_head_pose: float | None,
    jitter: bool = False,
    seed: int = 0,
    flag: str = "--data",
) -> GazeSource:
    """A source as the estimator reads it: face strips at `size`, or eye patches."""
    from gcgan_cli.core.gaze.sources import EyeOptions, open_source

    if kind == "face":
        return open_source(path, size, flag=flag)
    return open_source(path, 0, EyeOptions(jitter=jitter, max_head_pose=max_head_pose, seed=seed), flag=flag)


def _eye_patch(bgr: np.ndarray) -> torch.Tensor:
    """An image file's pixels as eye mode reads a patch: gray, 36 x 60, equalised, [1, 36, 60] in [-1, 1]."""
    import torch

    gray, _ = eye_patch.resize_patch(eye_patch.to_gray(bgr, PREDICT_GRAY))
    return torch.from_numpy(eye_patch.to_unit(eye_patch.equalise(gray))[None])


def _axes(result: dict) -> str:
    pitch, yaw = result["pitch_error_deg"]["mean"], result["yaw_error_deg"]["mean"]
    return f"pitch mean {pitch:.2f}, yaw mean {yaw:.2f} deg (|difference| per axis)"


def _grid_table(grid: dict) -> Table:
    """Rows pitch, columns yaw, in degrees: the mean angular error per conditioning gaze."""
    table = Table(title="grid: mean angular error, deg")
    table.add_column("pitch \\ yaw", style="bold", justify="right")
    for yaw in grid["yaw"]:
        table.add_column(f"{np.degrees(yaw):+.1f}", justify="right")
    for pitch, row in zip(grid["pitch"], grid["error_deg"]):
        table.add_row(f"{np.degrees(pitch):+.1f}", *(f"{e:.1f}" for e in row))
    return table


def _weights(mix: str | None, count: int) -> list[float]:
    if mix is None:
        return [1.0] * count
    try:
        weights = [float(v) for v in mix.split(",")]
    except ValueError:
        raise UsageError(f"--mix {mix!r}: expected comma-separated numbers, one per --data") from None
    if len(weights) != count or any(w <= 0 for w in weights):
        raise UsageError(f"--mix {mix!r}: give {count} positive weight(s), one per --data")
    return weights
