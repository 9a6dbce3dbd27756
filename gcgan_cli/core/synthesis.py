"""Generation from a training checkpoint or its export: gaze-conditioned samples with their masks and
latents, and animations where one part's latent (or the gaze) moves while the rest stays fixed.

Latents are saved as the **compact W+** [n_latent, style_dim] float32: rows 0..base_layers-1 are
the shared base codes, then (shape, texture) per class c at rows base_layers + 2c and + 2c + 1,
already truncated. Rendering always uses the generator's fixed noise buffers, so a saved latent and
its gaze reproduce the sample exactly.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import scipy.interpolate
import torch

from cuda_ops import compiler
from gcgan_cli.checkpoint import contents_of, file_sha256
from gcgan_cli.core.export import is_export, read_export, train_checkpoint
from gcgan_cli.core.folders import SHEET, SHEET_MAX
from gcgan_cli.core.metrics.fid import seeded_inputs
from gcgan_cli.core.model import Generator, GeneratorOutput, ModelConfig
from gcgan_cli.core.visualize import class_ids, draw_gaze_arrow, to_uint8
from gcgan_cli.data.atomic import replace_path, write_atomic
from gcgan_cli.data.contact_sheet import tile
from gcgan_cli.data.masks import colorize
from gcgan_cli.data.pack_inputs import SAMPLES
from gcgan_cli.data.png import encode_png
from gcgan_cli.device import place
from gcgan_cli.errors import UsageError

TRUNCATION_SAMPLES = 10_000  # z codes averaged for the truncation centre (the reference's)
EXTRAPOLATION_MARGIN = 0.1  # radians a requested gaze may lie beyond the training label set, per axis
# One row per image as Hugging Face `datasets` imagefolder reads it: `file_name` is the image; recent
# versions load `mask_file_name` as a second image column, `mask`.
METADATA = "metadata.jsonl"


@dataclass
class LoadedGenerator:
    generator: Generator
    config: ModelConfig
    gaze_labels: torch.Tensor  # [N, 2] the training label set (pitch, yaw)
    sha256: str
    step: int
    gaze_loss_model: dict | None = None  # {"path", "sha256"} of the estimator in its gaze loss; None without one


def load_generator(path: Path, device: torch.device, ema: bool = True) -> LoadedGenerator:
    """G_ema (or G) of a `gcgan train` checkpoint, or the G_ema of a `gcgan export` folder (or its
    model.safetensors), in eval mode on `device`. Both give the same generator, weights and all."""
    if is_export(path):
        if not ema:
            raise UsageError(f"--no-ema: {path} is an export, which holds G_ema only; give the training checkpoint")
        exported = read_export(path)
        config, state, where = exported.config, exported.state, exported.weights
        labels, sha, step, loss_model = exported.gaze_labels, exported.sha256, exported.step, exported.gaze_loss_model
    else:
        record = train_checkpoint(path)
        config, state, where = ModelConfig.from_checkpoint(record, path), record["g_ema" if ema else "g"], path
        sha, loss_model = file_sha256(path), record.get("gaze_loss_model")
        with contents_of(path):
            labels, step = record["gaze_labels"].float(), int(record["step"])
    with contents_of(where):
        generator = Generator(config)
        generator.load_state_dict(state)
    place(generator, device).eval().requires_grad_(False)
    return LoadedGenerator(generator, config, labels, sha, step, loss_model)


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0-99`, `1,5,9` or a mix (`0-9,20`) -> the seeds in the order given."""
    seeds = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise UsageError(f"--seeds {text!r}: expected numbers and ranges such as 0-99 or 1,5,9") from None
        if first < 0 or last < first:
            raise UsageError(f"--seeds {text!r}: {part.strip()} is not a range of seeds >= 0 (low-high)")
        seeds += range(first, last + 1)
    return seeds


def drawn_inputs(
    style_dim: int, labels: torch.Tensor, n: int, seed: int, seeds: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(z [n, D], gazes drawn from `labels` [n, 2], each image's seed) on the CPU. With `seeds`, image i
    draws from its own seed as `gcgan fid --seeds` does, so it is the same whatever else is in the run;
    without, all n come from one stream of `seed` (z) and one of `seed + 1` (gazes)."""
    if seeds is not None:
        z, gazes = seeded_inputs(style_dim, labels, seeds)
        return z, gazes, list(seeds)
    z = torch.randn(n, style_dim, generator=torch.Generator().manual_seed(seed))
    pick = torch.randint(len(labels), (n,), generator=torch.Generator().manual_seed(seed + 1))
    return z, labels.cpu()[pick], [seed] * n


@torch.no_grad()
def truncation_centre(generator: Generator, seed: int) -> torch.Tensor:
    """w-bar [1, style_dim]: the mean mapped w of TRUNCATION_SAMPLES seeded z."""
    return generator.mean_latent(TRUNCATION_SAMPLES, torch.Generator(generator.grid.device).manual_seed(seed))


@torch.no_grad()
def truncated_latents(generator: Generator, z: torch.Tensor, truncation: float, centre: torch.Tensor) -> torch.Tensor:
    """Compact W+ [B, n_latent, D] of z [B, D], truncated toward `centre`."""
    w = generator.mapping(z)
    if truncation < 1:
        w = centre + truncation * (w - centre)
    return generator.compact(w).contiguous()


@torch.no_grad()
def render(
    generator: Generator, latents: torch.Tensor, gazes: torch.Tensor, batch: int, compile: bool = False
) -> Iterator[GeneratorOutput]:
    """Outputs for latents [N, rows, D] at gazes [N, 2], `batch` at a time, fixed noise. With `compile`,
    through torch.compile: the first batch compiles a graph, and a smaller last batch another."""
    synthesize = compiler.compiled(generator.synthesize) if compile else generator.synthesize
    for start in range(0, len(latents), batch):
        yield synthesize(latents[start : start + batch], gazes[start : start + batch], randomize_noise=False)


def gaze_grid(labels: torch.Tensor, rows: int) -> torch.Tensor:
    """rows x rows (pitch, yaw) points spanning the label set's 5th-95th percentiles, pitch-major."""
    low, high = torch.quantile(labels, 0.05, dim=0), torch.quantile(labels, 0.95, dim=0)
    pitch, yaw = (torch.linspace(low[i], high[i], rows) for i in range(2))
    return torch.stack(torch.meshgrid(pitch, yaw, indexing="ij"), dim=-1).reshape(-1, 2)


def check_label_range(gazes: torch.Tensor, labels: torch.Tensor, where: str) -> None:
    """Refuse gazes [N, 2] more than EXTRAPOLATION_MARGIN beyond the label set's range on an axis:
    the generator never saw such a gaze, so what it draws there is not that gaze."""
    low, high = labels.min(dim=0).values.double(), labels.max(dim=0).values.double()
    gazes = gazes.double()
    beyond = (gazes < low - EXTRAPOLATION_MARGIN) | (gazes > high + EXTRAPOLATION_MARGIN)
    if beyond.any():
        row, axis = beyond.nonzero()[0].tolist()
        span = ", ".join(f"{name} {low[i]:.3f}..{high[i]:.3f}" for i, name in enumerate(("pitch", "yaw")))
        raise UsageError(
            f"{where}: {('pitch', 'yaw')[axis]} {gazes[row, axis]:.3f} is more than "
            f"{EXTRAPOLATION_MARGIN} rad outside the checkpoint's training gazes ({span} rad); "
            "choose a gaze inside that range or pass --allow-extrapolation"
        )


def gaze_sweep(labels: torch.Tensor, frames: int) -> torch.Tensor:
    """A closed loop through the label set's 5th-95th percentile box: an ellipse, so pitch and yaw
    both sweep their range and the animation loops without a jump. [frames, 2]."""
    low, high = torch.quantile(labels, 0.05, dim=0), torch.quantile(labels, 0.95, dim=0)
    centre, radius = (low + high) / 2, (high - low) / 2
    t = torch.arange(frames) / frames * 2 * torch.pi
    return torch.stack([centre[0] + radius[0] * torch.sin(t), centre[1] + radius[1] * torch.cos(t)], dim=1)


def component_rows(config: ModelConfig, name: str) -> list[int]:
    """The compact W+ rows of a class (its shape and texture codes)."""
    if name not in config.class_names:
        raise UsageError(f"--component {name!r}: choose one of {', '.join(config.class_names)}, gaze or all")
    c = config.class_names.index(name)
    return [config.base_layers + 2 * c, config.base_layers + 2 * c + 1]


def periodic_path(keyframes: np.ndarray, frames: int) -> np.ndarray:
    """A closed cubic spline through keyframes [K, ...] (first repeated at the end), sampled at
    `frames` evenly spaced points from the first keyframe on. [frames, ...] float32."""
    closed = np.concatenate([keyframes, keyframes[:1]], axis=0).reshape(len(keyframes) + 1, -1).astype(np.float64)
    spline = scipy.interpolate.CubicSpline(np.linspace(0, 1, len(closed)), closed, bc_type="periodic")
    return spline(np.arange(frames) / frames).reshape(frames, *keyframes.shape[1:]).astype(np.float32)


def component_path(base: torch.Tensor, rows: list[int], others: torch.Tensor, frames: int) -> torch.Tensor:
    """Compact W+ per frame [frames, n_latent, D]: `rows` move along a closed spline through the
    base's own codes and those of `others` [K-1, n_latent, D]; every other row stays the base's."""
    keys = base[None].repeat(len(others) + 1, 1, 1)
    keys[1:, rows] = others[:, rows]
    moving = torch.from_numpy(periodic_path(keys[:, rows].cpu().numpy(), frames)).to(base.device)
    path = base[None].repeat(frames, 1, 1)
    path[:, rows] = moving
    return path


def write_samples(
    loaded: LoadedGenerator,
    outdir: Path,
    z: torch.Tensor,
    gazes: torch.Tensor,
    seeds: list[int],
    centre_seed: int,
    truncation: float,
    batch: int,
    save_latent: bool,
    sheet: bool,
    provenance: dict,
    on_advance: Callable[[int], None] = lambda k: None,
    compile: bool = False,
) -> list[dict]:
    """Render one sample per z [n, D] and gaze [n, 2] into `outdir` (images, masks, latents, contact sheet,
    metadata.jsonl; `seeds[i]` recorded as image i's seed) and write samples.jsonl last, so a folder with
    a manifest is complete; `compile` renders through torch.compile. Returns the manifest rows."""
    generator, device = loaded.generator, loaded.generator.grid.device
    n, z = len(gazes), z.to(device)
    centre = truncation_centre(generator, centre_seed)
    latents = torch.cat(
        [truncated_latents(generator, z[i : i + batch], truncation, centre) for i in range(0, n, batch)]
    )
    gazes = gazes.to(device)
    rows, shown = [], []
    for first, out in zip(range(0, n, batch), render(generator, latents, gazes, batch, compile)):
        for j, (image, mask) in enumerate(zip(to_uint8(out.image), class_ids(out.seg))):
            i = first + j
            pitch, yaw = (float(v) for v in gazes[i].cpu())
            row = {
                "image": f"{i:06d}.png",
                "file_name": f"{i:06d}.png",
                "mask": f"{i:06d}_mask.png",
                "mask_color": f"{i:06d}_mask_color.png",
                "pitch": pitch,
                "yaw": yaw,
                "name": f"{i:06d}",
                "index": i,
                "seed": seeds[i],
                "truncation": truncation,
                **provenance,
            }
            write_atomic(outdir / row["image"], encode_png(image))
            write_atomic(outdir / row["mask"], encode_png(mask))
            write_atomic(outdir / row["mask_color"], encode_png(colorize(mask)))
            if save_latent:
                row["latent"] = f"{i:06d}_latent.npy"
                buffer = io.BytesIO()
                np.save(buffer, latents[i].cpu().numpy().astype(np.float32), allow_pickle=False)
                write_atomic(outdir / row["latent"], buffer.getvalue())
            rows.append(row)
            if sheet and len(shown) < SHEET_MAX:
                shown.append(np.concatenate([draw_gaze_arrow(image, pitch, yaw), colorize(mask)], axis=1))
        on_advance(len(out.image))
    write_atomic(outdir / METADATA, "".join(json.dumps(metadata_row(r)) + "\n" for r in rows).encode())
    write_atomic(outdir / SAMPLES, "".join(json.dumps(r) + "\n" for r in rows).encode())
    if shown:
        write_atomic(outdir / SHEET, encode_png(tile(shown, math.ceil(math.sqrt(len(shown))))))
    return rows


def metadata_row(row: dict) -> dict:
    """The metadata.jsonl row of a samples.jsonl row (paths relative to the folder)."""
    return {
        "file_name": row["file_name"],
        "pitch": row["pitch"],
        "yaw": row["yaw"],
        "mask_file_name": row["mask"],
        "seed": row["seed"],
    }


def write_animations(
    loaded: LoadedGenerator,
    base: torch.Tensor,
    base_gaze: tuple[float, float],
    names: list[str],
    outdir: Path,
    frames: int,
    keyframes: int,
    truncation: float,
    batch: int,
    seed: int,
    fps: float,
    with_mask: bool,
    on_advance: Callable[[str, int], None] = lambda name, k: None,
) -> list[Path]:
    """One animation per name (a class, or "gaze") from compact W+ `base`; GIF (+ MP4) files."""
    generator, config, device = loaded.generator, loaded.config, loaded.generator.grid.device
    rows = {name: component_rows(config, name) for name in names if name != "gaze"}  # a wrong name fails first
    z = torch.randn(keyframes - 1, config.style_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    others = truncated_latents(generator, z, truncation, truncation_centre(generator, seed))
    base, written = base.to(device), []
    for index, name in enumerate(names):
        if name == "gaze":
            latents, gazes = base[None].repeat(frames, 1, 1), gaze_sweep(loaded.gaze_labels, frames)
        else:
            latents, gazes = component_path(base, rows[name], others, frames), torch.tensor(base_gaze).repeat(frames, 1)
        pictures = []
        for first, out in zip(range(0, frames, batch), render(generator, latents, gazes.to(device), batch)):
            for image, mask, (pitch, yaw) in zip(
                to_uint8(out.image), class_ids(out.seg), gazes[first : first + batch].tolist()
            ):
                if name == "gaze":
                    image = draw_gaze_arrow(image, pitch, yaw, length=image.shape[1] / 3)
                pictures.append(np.concatenate([image, colorize(mask)], axis=1) if with_mask else image)
            on_advance(name, len(out.image))
        written += _write_animation(animation_stem(outdir, index, name), pictures, fps)
    return written


def animation_stem(outdir: Path, index: int, name: str) -> Path:
    return outdir / f"{index:02d}_{name}"


def animation_files(outdir: Path, names: list[str]) -> list[Path]:
    """Every file write_animations may write for `names` (a GIF and an MP4 each)."""
    return [
        animation_stem(outdir, i, name).with_suffix(suffix)
        for i, name in enumerate(names)
        for suffix in (".gif", ".mp4")
    ]


def _write_animation(stem: Path, pictures: list[np.ndarray], fps: float) -> list[Path]:
    """stem.gif (looping), plus stem.mp4 when imageio-ffmpeg is there; each written then renamed."""
    gif = stem.with_suffix(".gif")
    tmp = gif.with_name(f".{gif.name}.tmp")
    imageio.mimsave(tmp, pictures, format="GIF", duration=1000 / fps, loop=0)
    replace_path(tmp, gif)
    try:
        import imageio_ffmpeg  # noqa: F401  (optional)
    except ImportError:
        return [gif]
    mp4 = stem.with_suffix(".mp4")
    tmp = mp4.with_name(f".{mp4.stem}.tmp.mp4")
    imageio.mimsave(tmp, pictures, fps=fps, macro_block_size=1)
    replace_path(tmp, mp4)
    return [gif, mp4]
