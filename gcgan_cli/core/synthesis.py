"""Generation from a training checkpoint (spec §7): gaze-conditioned samples with their masks and
latents, and animations where one part's latent (or the gaze) moves while the rest stays fixed.

Latents are saved as the **compact W+** [n_latent, style_dim] float32: rows 0..base_layers-1 are
the shared base codes, then (shape, texture) per class c at rows base_layers + 2c and + 2c + 1,
already truncated. Rendering always uses the generator's fixed noise buffers, so a saved latent and
its gaze reproduce the sample exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.interpolate
import torch

from gcgan_cli.checkpoint import load_checkpoint
from gcgan_cli.core.model import Generator, GeneratorOutput, ModelConfig
from gcgan_cli.errors import CheckpointError, UsageError

TRUNCATION_SAMPLES = 10_000  # z codes averaged for the truncation centre (the reference's)


@dataclass
class LoadedGenerator:
    generator: Generator
    config: ModelConfig
    gaze_labels: torch.Tensor  # [N, 2] the training label set (pitch, yaw)
    sha256: str
    step: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_generator(path: Path, device: torch.device, ema: bool = True) -> LoadedGenerator:
    """G_ema (or G) of a `gcgan train` checkpoint, in eval mode on `device`."""
    record = load_checkpoint(path, required=("config", "g", "g_ema", "gaze_labels", "step"))
    if record.get("kind") != "gcgan-train":
        raise CheckpointError(f"{path} is not a `gcgan train` checkpoint")
    config = ModelConfig.from_dict(record["config"]["model"])
    generator = Generator(config)
    generator.load_state_dict(record["g_ema" if ema else "g"])
    generator.to(device).eval().requires_grad_(False)
    return LoadedGenerator(generator, config, record["gaze_labels"].float(), file_sha256(path), int(record["step"]))


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
def render(generator: Generator, latents: torch.Tensor, gazes: torch.Tensor, batch: int) -> Iterator[GeneratorOutput]:
    """Outputs for latents [N, rows, D] at gazes [N, 2], `batch` at a time, fixed noise."""
    for start in range(0, len(latents), batch):
        yield generator.synthesize(latents[start : start + batch], gazes[start : start + batch], randomize_noise=False)


def gaze_grid(labels: torch.Tensor, rows: int) -> torch.Tensor:
    """rows x rows (pitch, yaw) points spanning the label set's 5th-95th percentiles, pitch-major."""
    low, high = torch.quantile(labels, 0.05, dim=0), torch.quantile(labels, 0.95, dim=0)
    pitch, yaw = (torch.linspace(low[i], high[i], rows) for i in range(2))
    return torch.stack(torch.meshgrid(pitch, yaw, indexing="ij"), dim=-1).reshape(-1, 2)


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
