"""`gcgan interpolate`: animations where one part's latent (or the gaze) moves and the rest stays."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from gcgan_cli.commands.display import progress_bar, stop_on_sigterm, summary_table
from gcgan_cli.commands.options import AllowExtrapolationOpt, DeviceOpt, parse_gaze
from gcgan_cli.console import console
from gcgan_cli.data.gaze_values import check_pair
from gcgan_cli.data.pack_inputs import SAMPLES, listing
from gcgan_cli.errors import DatasetError, UsageError
from gcgan_cli.outputs import folder_place, output_folder, writer_lock

# torch and the modules that import it are imported in the functions that use them, so --help stays fast.

if TYPE_CHECKING:
    import torch


def interpolate_command(
    ckpt: Annotated[
        Path, typer.Option("--network", help="A checkpoint from `gcgan train` or a model folder from `gcgan export`.")
    ],
    latent: Annotated[
        Path,
        typer.Option(
            help="A latent from `gcgan sample --save-latent` (compact W+ \\[rows, style_dim], or a w \\[style_dim])."
        ),
    ],
    outdir: Annotated[Path, typer.Option("--outdir", "-o", help="Folder for the GIFs.")] = Path("results_interp"),
    component: Annotated[
        str,
        typer.Option(help="A class of the checkpoint (e.g. nose, eye, iris, eyebrow, skin, background), gaze, or all."),
    ] = "all",
    frames: Annotated[int, typer.Option(min=2, help="Frames per animation.")] = 160,
    keyframes: Annotated[
        int, typer.Option(min=2, help="Random codes the spline passes through (the base is the first).")
    ] = 8,
    fps: Annotated[float, typer.Option(min=0.1, help="Frames per second of the GIF (and MP4).")] = 30.0,
    with_mask: Annotated[
        bool, typer.Option("--with-mask", help="Frames show image | coloured mask side by side.")
    ] = False,
    gaze: Annotated[
        str | None,
        typer.Option(
            help="PITCH,YAW for the part animations (default: the gaze the latent was sampled at, from samples.jsonl "
            "beside it)."
        ),
    ] = None,
    truncation: Annotated[float, typer.Option(min=0.0, max=1.0, help="Truncation of the random keyframe codes.")] = 0.7,
    batch: Annotated[int, typer.Option(min=1, help="Frames per forward pass.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the keyframe codes.")] = 0,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use G_ema (default) or the raw G.")] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace animations of the same names already in --outdir.")
    ] = False,
    allow_extrapolation: AllowExtrapolationOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Animate one face part at a time: only that class's local latent moves along a closed cubic spline through random keyframes, every other code and the gaze stay fixed.

    --component gaze keeps the latent and sweeps pitch and yaw around the training range. Frame 0 is the sampled image itself. Writes NN_name.gif (and .mp4 when imageio-ffmpeg is installed).
    """  # noqa: E501 (help text: one line per paragraph)
    import torch

    from gcgan_cli.core.synthesis import (
        animation_files,
        check_label_range,
        component_rows,
        load_generator,
        write_animations,
    )

    fixed = parse_gaze(gaze) if gaze is not None else None
    loaded = load_generator(ckpt, device, ema)
    names = list(loaded.config.class_names) + ["gaze"] if component == "all" else [component]
    for name in names:
        if name != "gaze":
            component_rows(loaded.config, name)  # a wrong name fails before any work
    base = _read_latent(latent, loaded.config)
    base_gaze, where = (fixed, f"--gaze {gaze}") if fixed is not None else _base_gaze(latent, loaded.gaze_labels)
    if not allow_extrapolation:
        check_label_range(torch.tensor([base_gaze]), loaded.gaze_labels, where)
    outdir = folder_place(outdir, "--outdir")
    stop_on_sigterm()
    start = time.perf_counter()
    with writer_lock(outdir, "interpolate"):
        taken = [path.name for path in animation_files(outdir, names) if path.exists()]
        if taken and not overwrite:
            raise UsageError(
                f"--outdir {outdir} already holds {listing(taken)}; pass --overwrite to replace them "
                "or choose another folder"
            )
        output_folder(outdir, "--outdir")
        with progress_bar("interpolate") as progress:
            bar = progress.add_task("", total=len(names) * frames)
            written = write_animations(
                loaded,
                base,
                base_gaze,
                names,
                outdir,
                frames,
                keyframes,
                truncation,
                batch,
                seed,
                fps,
                with_mask,
                on_advance=lambda name, k: progress.update(bar, description=name, advance=k),
            )
    elapsed = time.perf_counter() - start
    table = summary_table("gcgan interpolate")
    table.add_row("checkpoint", f"{ckpt} (step {loaded.step})")
    table.add_row("latent", f"{latent}; gaze {base_gaze[0]:.3f}, {base_gaze[1]:.3f} for the parts")
    table.add_row("animations", f"{len(names)} x {frames} frames, {keyframes} keyframes, {fps:g} fps")
    table.add_row("time", f"{elapsed:.1f} s, {len(names) * frames / elapsed:.1f} frames/s on {device}")
    table.add_row("written", ", ".join(str(p) for p in written))
    console.print(table)


def _read_latent(path: Path, config) -> torch.Tensor:
    """Compact W+ [n_latent, style_dim] from a .npy: compact W+ (optionally with a leading 1) or a
    single w (the reference's (1, 512)), which is repeated to every row."""
    import torch

    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(
            f"--latent {path}: not a readable .npy ({reason}); give a NNNNNN_latent.npy "
            "from `gcgan sample --save-latent`"
        ) from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"--latent {path}: not an array of numbers; give a latent from `gcgan sample --save-latent`")
    array = (
        np.asarray(array, dtype=np.float32).squeeze(0)
        if array.ndim == 3 and array.shape[0] == 1
        else np.asarray(array, dtype=np.float32)
    )
    if array.shape == (config.style_dim,) or array.shape == (1, config.style_dim):
        array = np.repeat(array.reshape(1, -1), config.n_latent, axis=0)
    if array.shape != (config.n_latent, config.style_dim):
        raise DatasetError(
            f"--latent {path}: shape {array.shape}; this checkpoint's latents are ({config.n_latent}, "
            f"{config.style_dim}) compact W+ or ({config.style_dim},) w"
        )
    if not np.isfinite(array).all():
        raise DatasetError(
            f"--latent {path}: {int((~np.isfinite(array)).sum())} value(s) are NaN or infinite; "
            "give a latent from `gcgan sample --save-latent`"
        )
    return torch.from_numpy(array)


def _base_gaze(latent: Path, labels: torch.Tensor) -> tuple[tuple[float, float], str]:
    """(the gaze the latent was sampled at, from samples.jsonl beside it, else the label set's
    median; where it came from, for messages)."""
    manifest = latent.parent / SAMPLES
    if manifest.is_file():
        for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                if row.get("latent") != latent.name:
                    continue
                pitch, yaw = float(row["pitch"]), float(row["yaw"])
            except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
                raise DatasetError(
                    f"{manifest}:{number}: expected a JSON row with latent, pitch and yaw; fix the line or pass --gaze"
                ) from None
            where = f"{manifest}:{number}"
            return check_pair(pitch, yaw, where), where
    pitch, yaw = labels.median(dim=0).values.tolist()
    return (pitch, yaw), "the label set's median"
