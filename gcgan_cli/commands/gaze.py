"""`gcgan gaze fit|eval|predict|consistency`: a gaze estimator that measures what data is worth."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import torch
import typer

from gcgan_cli.commands.display import progress_bar, summary_table
from gcgan_cli.commands.options import DeviceOpt
from gcgan_cli.console import console
from gcgan_cli.core.gaze.angles import angular_error
from gcgan_cli.core.gaze.consistency import generator_consistency
from gcgan_cli.core.gaze.estimator import ARCHS, load_estimator, predict
from gcgan_cli.core.gaze.fit import FitConfig, evaluate, fit
from gcgan_cli.core.gaze.report import error_stats, plot
from gcgan_cli.core.gaze.sources import KINDS, open_source, prepare
from gcgan_cli.core.synthesis import load_generator
from gcgan_cli.data.prep_dir import encode_png, write_atomic
from gcgan_cli.errors import DatasetError, UsageError

SOURCES_HELP = "A gaze source: " + ", ".join(k.name for k in KINDS) + " (a `gcgan pack` DB, a `gcgan sample` folder, an MPIIFaceGaze .h5, a UnityEyes folder)."

app = typer.Typer(help="A gaze estimator: fit it on any mix of gaze sources, evaluate it (angular error), predict, and measure how gaze-aware a generator is.",
                  no_args_is_help=True)


@app.command("fit")
def fit_command(
    data: Annotated[list[Path], typer.Option("--data", help=SOURCES_HELP + " Repeat to mix sources.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The estimator file to write (the best epoch on validation).")],
    mix: Annotated[str | None, typer.Option(help="Sampling weights per --data, e.g. 1,0.5 (default: equal shares).")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation source (default: held out from the first --data, by subject where known).")] = None,
    arch: Annotated[str, typer.Option(help=f"Network: {', '.join(ARCHS)}.")] = "small",
    size: Annotated[int, typer.Option(help="Input side in pixels (a multiple of 16).")] = 64,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed of the split, the sampling and the weights.")] = 0,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="DataLoader workers.")] = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Fit a gaze estimator; the best epoch on the validation split is kept in --out."""
    weights = _weights(mix, len(data))
    config = FitConfig(arch=arch, size=size, epochs=epochs, batch=batch, lr=lr, seed=seed, workers=workers)
    sources = [open_source(path, size) for path in data]
    val_source = open_source(val, size) if val else None
    start = time.perf_counter()
    with progress_bar("gaze fit") as progress:
        bar = progress.add_task("", total=None)

        def started(train: int, held: int, how: str) -> None:
            progress.update(bar, total=epochs * max(1, train // batch), description=f"{train} train, {held} val")
            progress.console.print(f"[bold]gcgan gaze fit[/]: {train} training samples, {held} validation ({how})")

        result = fit(sources, weights, val_source, config, out, device,
                     {"sources": [s.describe() for s in sources], "mix": weights},
                     on_start=started, on_batch=lambda: progress.advance(bar),
                     on_epoch=lambda row: progress.console.print(
                         f"epoch {row['epoch']}: loss {row['loss']:.4f}, validation error {row['val_error']:.2f} deg"))
    table = summary_table("gcgan gaze fit")
    for source, weight in zip(sources, weights):
        table.add_row("data", f"{source.describe()}, weight {weight:g}")
    table.add_row("split", f"{result.train_count} train / {result.val_count} validation")
    table.add_row("validation error", f"{result.best_error:.2f} deg (epoch {result.best_epoch} of {epochs})")
    table.add_row("mean-gaze baseline", f"{result.baseline_error:.2f} deg")
    table.add_row("time", f"{time.perf_counter() - start:.1f} s on {device}")
    table.add_row("estimator", str(out))
    console.print(table)


@app.command("eval")
def eval_command(
    model: Annotated[Path, typer.Option("--model", help="An estimator from `gcgan gaze fit`.")],
    data: Annotated[Path, typer.Option("--data", help=SOURCES_HELP)],
    plot_path: Annotated[Path | None, typer.Option("--plot", help="The histogram / scatter PNG (default: MODEL_eval.png beside the model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (and nothing else).")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0)] = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Angular error of an estimator on a source: mean, median, std, per subject, and a plot."""
    network, config = load_estimator(model, device)
    source = open_source(data, config["size"])
    predicted, true = evaluate(network, source, device, workers=workers)
    errors = angular_error(predicted, true)
    baseline = angular_error(np.broadcast_to(np.asarray(config["mean_gaze"]), true.shape), true)
    plot_path = plot_path or model.with_name(f"{model.stem}_eval.png")
    write_atomic(plot_path, encode_png(plot(predicted, true, errors)))
    result = {"model": str(model), "data": source.describe(), "error_deg": error_stats(errors),
              "mean_gaze_baseline_deg": error_stats(baseline), "plot": str(plot_path)}
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
    table.add_row("angular error", f"mean {stats['mean']:.2f}, median {stats['median']:.2f}, std {stats['std']:.2f} deg ({stats['count']} samples)")
    table.add_row("mean-gaze baseline", f"mean {result['mean_gaze_baseline_deg']['mean']:.2f} deg")
    table.add_row("plot", str(plot_path))
    console.print(table)


@app.command("predict")
def predict_command(
    model: Annotated[Path, typer.Option("--model", help="An estimator from `gcgan gaze fit`.")],
    images: Annotated[list[Path], typer.Argument(help="Image files (any size; resized to the estimator's input).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write .csv or .jsonl (default: CSV on stdout).")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """(pitch, yaw) in radians per image."""
    network, config = load_estimator(model, device)
    tensors = []
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{path}: not a readable image")
        tensors.append(prepare(image[:, :, ::-1], config["size"]))
    gazes = predict(network, torch.stack(tensors)).tolist()
    rows = [{"image": str(path), "pitch": pitch, "yaw": yaw} for path, (pitch, yaw) in zip(images, gazes)]
    if out is not None and out.suffix not in (".csv", ".jsonl"):
        raise UsageError(f"--out {out}: use a .csv or .jsonl file name")
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


@app.command("consistency")
def consistency_command(
    ckpt: Annotated[Path, typer.Argument(help="A checkpoint from `gcgan train`.")],
    model: Annotated[Path, typer.Option("--model", help="An estimator from `gcgan gaze fit`.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Samples.")] = 1000,
    batch: Annotated[int, typer.Option(min=1)] = 64,
    truncation: Annotated[float, typer.Option(min=0.0, max=1.0)] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """How gaze-aware a generator is: the angular error between the gaze it was conditioned on and the estimator's reading."""
    network, config = load_estimator(model, device)
    loaded = load_generator(ckpt, device)
    conditioning, estimated = generator_consistency(loaded, network, config["size"], n, batch, seed, truncation)
    errors = angular_error(estimated, conditioning)
    result = {"checkpoint": str(ckpt), "model": str(model), "n": n, "error_deg": error_stats(errors),
              "estimator_validation_error_deg": config["report"].get("val_error")}
    if as_json:
        print(json.dumps(result))
        return
    table = summary_table("gcgan gaze consistency")
    table.add_row("generator", f"{ckpt} (step {loaded.step})")
    stats = result["error_deg"]
    table.add_row("conditioning vs estimate", f"mean {stats['mean']:.2f}, median {stats['median']:.2f}, std {stats['std']:.2f} deg over {n} samples")
    if result["estimator_validation_error_deg"] is not None:
        table.add_row("estimator's own error", f"{result['estimator_validation_error_deg']:.2f} deg on its validation split")
    console.print(table)


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
