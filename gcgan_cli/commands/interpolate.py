"""`gcgan interpolate`: animations where one part's latent (or the gaze) moves and the rest stays."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import imageio.v2 as imageio
import numpy as np
import torch
import typer

from gcgan_cli.commands.display import progress_bar, stop_on_sigterm, summary_table
from gcgan_cli.commands.options import DeviceOpt
from gcgan_cli.console import console
from gcgan_cli.core.synthesis import (component_path, component_rows, gaze_sweep, load_generator, render,
                                      truncated_latents, truncation_centre)
from gcgan_cli.core.visualize import class_ids, draw_gaze_arrow, to_uint8
from gcgan_cli.data.masks import colorize
from gcgan_cli.data.pack_inputs import SAMPLES
from gcgan_cli.errors import DatasetError, UsageError


def interpolate_command(
    ckpt: Annotated[Path, typer.Argument(help="A checkpoint from `gcgan train`.")],
    latent: Annotated[Path, typer.Option(help="A latent from `gcgan sample --save-latent` (compact W+ [rows, style_dim], or a w [style_dim]).")],
    outdir: Annotated[Path, typer.Option("--outdir", "-o", help="Folder for the GIFs.")] = Path("results_interp"),
    component: Annotated[str, typer.Option(help="A class of the checkpoint (e.g. nose, eye, iris, eyebrow, skin, background), gaze, or all.")] = "all",
    frames: Annotated[int, typer.Option(min=2, help="Frames per animation.")] = 160,
    keyframes: Annotated[int, typer.Option(min=2, help="Random codes the spline passes through (the base is the first).")] = 8,
    fps: Annotated[float, typer.Option(min=0.1, help="Frames per second of the GIF (and MP4).")] = 30.0,
    with_mask: Annotated[bool, typer.Option("--with-mask", help="Frames show image | coloured mask side by side.")] = False,
    gaze: Annotated[str | None, typer.Option(help="PITCH,YAW for the part animations (default: the gaze the latent was sampled at, from samples.jsonl beside it).")] = None,
    truncation: Annotated[float, typer.Option(min=0.0, max=1.0, help="Truncation of the random keyframe codes.")] = 0.7,
    batch: Annotated[int, typer.Option(min=1, help="Frames per forward pass.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the keyframe codes.")] = 0,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use G_ema (default) or the raw G.")] = True,
    device: DeviceOpt = "auto",
) -> None:
    """Animate one face part at a time: only that class's local latent moves along a closed cubic spline through random keyframes, every other code and the gaze stay fixed.

    --component gaze keeps the latent and sweeps pitch and yaw around the training range. Frame 0 is the sampled image itself. Writes NN_name.gif (and .mp4 when imageio-ffmpeg is installed).
    """
    loaded = load_generator(ckpt, device, ema)
    config, generator = loaded.config, loaded.generator
    names = list(config.class_names) + ["gaze"] if component == "all" else [component]
    for name in names:
        if name != "gaze":
            component_rows(config, name)  # a wrong name fails before any work
    base = _read_latent(latent, config).to(device)
    base_gaze = _base_gaze(latent, gaze, loaded.gaze_labels)
    outdir.mkdir(parents=True, exist_ok=True)
    stop_on_sigterm()
    written, start = [], time.perf_counter()
    z = torch.randn(keyframes - 1, config.style_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    others = truncated_latents(generator, z, truncation, truncation_centre(generator, seed))
    with progress_bar("interpolate") as progress:
        bar = progress.add_task("", total=len(names) * frames)
        for index, name in enumerate(names):
            progress.update(bar, description=name)
            if name == "gaze":
                latents, gazes = base[None].repeat(frames, 1, 1), gaze_sweep(loaded.gaze_labels, frames)
            else:
                latents = component_path(base, component_rows(config, name), others, frames)
                gazes = torch.tensor(base_gaze).repeat(frames, 1)
            pictures = []
            for first, out in zip(range(0, frames, batch), render(generator, latents, gazes.to(device), batch)):
                pictures += _frames(out, gazes[first : first + batch], with_mask, arrows=name == "gaze")
                progress.advance(bar, len(out.image))
            written += _write_animation(outdir / f"{index:02d}_{name}", pictures, fps)
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
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--latent {path}: not a readable .npy ({exc})") from None
    array = np.asarray(array, dtype=np.float32).squeeze(0) if array.ndim == 3 and array.shape[0] == 1 else np.asarray(array, dtype=np.float32)
    if array.shape == (config.style_dim,) or array.shape == (1, config.style_dim):
        array = np.repeat(array.reshape(1, -1), config.n_latent, axis=0)
    if array.shape != (config.n_latent, config.style_dim):
        raise DatasetError(f"--latent {path}: shape {array.shape}; this checkpoint's latents are ({config.n_latent}, {config.style_dim}) compact W+ or ({config.style_dim},) w")
    return torch.from_numpy(array)


def _base_gaze(latent: Path, given: str | None, labels: torch.Tensor) -> tuple[float, float]:
    if given is not None:
        try:
            pitch, yaw = (float(v) for v in given.split(","))
            return pitch, yaw
        except ValueError:
            raise UsageError(f"--gaze {given!r}: expected PITCH,YAW in radians") from None
    manifest = latent.parent / SAMPLES
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            if row.get("latent") == latent.name:
                return float(row["pitch"]), float(row["yaw"])
    pitch, yaw = labels.median(dim=0).values.tolist()
    return pitch, yaw


def _frames(out, gazes: torch.Tensor, with_mask: bool, arrows: bool) -> list[np.ndarray]:
    images, masks = to_uint8(out.image), class_ids(out.seg)
    pictures = []
    for image, mask, (pitch, yaw) in zip(images, masks, gazes.tolist()):
        if arrows:
            image = draw_gaze_arrow(image, pitch, yaw, length=image.shape[1] / 3)
        pictures.append(np.concatenate([image, colorize(mask)], axis=1) if with_mask else image)
    return pictures


def _write_animation(stem: Path, pictures: list[np.ndarray], fps: float) -> list[Path]:
    """stem.gif (looping), plus stem.mp4 when imageio-ffmpeg is there; written then renamed."""
    written = []
    gif = stem.with_suffix(".gif")
    tmp = gif.with_name(f".{gif.name}.tmp")
    imageio.mimsave(tmp, pictures, format="GIF", duration=1000 / fps, loop=0)
    tmp.replace(gif)
    written.append(gif)
    try:
        import imageio_ffmpeg  # noqa: F401  (optional)
    except ImportError:
        return written
    mp4 = stem.with_suffix(".mp4")
    tmp = mp4.with_name(f".{mp4.stem}.tmp.mp4")
    imageio.mimsave(tmp, pictures, fps=fps, macro_block_size=1)
    tmp.replace(mp4)
    written.append(mp4)
    return written
