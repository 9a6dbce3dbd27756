"""How gaze-aware a generator is: sample it at known gazes and estimate them back.

The error alone says little: it is set beside the error of always answering the mean conditioning
gaze (what a generator that ignores its gaze would score), the estimator's own validation error
(the floor it can measure), and a per-axis correlation. An estimator that was in the generator's
gaze loss is no judge (the generator was optimised to satisfy it), so it is refused by file hash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gcgan_cli.core.frozen import refuse_loss_network
from gcgan_cli.core.gaze.angles import angular_error
from gcgan_cli.core.gaze.report import axis_error_stats, error_stats, sweep_cell, sweep_sheet
from gcgan_cli.core.gaze.sources import prepare
from gcgan_cli.core.synthesis import LoadedGenerator, gaze_grid, render, truncated_latents, truncation_centre
from gcgan_cli.core.visualize import class_ids, to_uint8

SWEEP_YAWS = (-0.8, 0.8, 9)  # radians: first, last, columns of the yaw sheet
SWEEP_PITCHES = 7  # columns of the pitch sheet, over the label set's 5th-95th percentiles


def check_independent(loaded: LoadedGenerator, model_path: Path) -> None:
    """Refuse the estimator file the generator's gaze loss used."""
    refuse_loss_network(model_path, {"gaze loss": loaded.gaze_loss_model}, "--model", "generator")


def seeded_latents(
    loaded: LoadedGenerator, count: int, seed: int, truncation: float, draws: torch.Generator | None = None
) -> torch.Tensor:
    """Compact W+ [count, rows, D] of `count` z from `draws` (default: a fresh one seeded with
    `seed`), truncated toward the seed's w-bar."""
    generator = loaded.generator
    z = torch.randn(count, loaded.config.style_dim, generator=draws or torch.Generator().manual_seed(seed))
    return truncated_latents(generator, z.to(generator.grid.device), truncation, truncation_centre(generator, seed))


def _readings(model: torch.nn.Module, size: int, images: np.ndarray) -> np.ndarray:
    """The estimator's (pitch, yaw) [B, 2] of uint8 RGB images [B, H, W, 3]."""
    inputs = torch.stack([prepare(image, size) for image in images])
    return model(inputs.to(next(model.parameters()).device)).float().cpu().numpy()


@torch.no_grad()
def estimate_gazes(
    loaded: LoadedGenerator, model: torch.nn.Module, size: int, latents: torch.Tensor, gazes: torch.Tensor, batch: int
) -> np.ndarray:
    """The estimator's reading [N, 2] of the generator's image at each compact W+ [N, rows, D] and
    gaze [N, 2]. Images go through the same uint8 + resize path as saved samples, so the estimate
    sees what a file would hold."""
    device = loaded.generator.grid.device
    return np.concatenate(
        [
            _readings(model, size, to_uint8(out.image))
            for out in render(loaded.generator, latents, gazes.to(device), batch)
        ]
    )


def generator_consistency(
    loaded: LoadedGenerator, model: torch.nn.Module, size: int, n: int, batch: int, seed: int, truncation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(conditioning gazes, estimated gazes) [n, 2] for n samples at gazes drawn from the
    generator's training label set."""
    draws = torch.Generator().manual_seed(seed)
    gazes = loaded.gaze_labels[torch.randint(len(loaded.gaze_labels), (n,), generator=draws)]
    latents = seeded_latents(loaded, n, seed, truncation, draws)
    return gazes.numpy(), estimate_gazes(loaded, model, size, latents, gazes, batch)


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """r of a and b; None where it is undefined (fewer than 2 samples, or an axis that does not vary)."""
    if len(a) < 2:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.corrcoef(a, b)[0, 1])
    return r if np.isfinite(r) else None


def consistency_stats(conditioning: np.ndarray, estimated: np.ndarray, estimator_error: float | None) -> dict:
    """Error of the estimates against the conditioning gazes (angular and per axis), the mean-gaze
    baseline on the same gazes, per-axis Pearson r, and the mean error as a ratio of the
    estimator's own validation error and of the baseline (None where a divisor is missing or 0)."""
    errors = angular_error(estimated, conditioning)
    baseline = angular_error(np.broadcast_to(conditioning.mean(axis=0), conditioning.shape), conditioning)
    mean, baseline_mean = float(errors.mean()), float(baseline.mean())
    return {
        "error_deg": error_stats(errors),
        **axis_error_stats(estimated, conditioning),
        "mean_gaze_baseline_deg": error_stats(baseline),
        "correlation": {axis: _pearson(conditioning[:, i], estimated[:, i]) for i, axis in enumerate(("pitch", "yaw"))},
        "estimator_validation_error_deg": estimator_error,
        "ratio_to_estimator_error": mean / estimator_error if estimator_error else None,
        "ratio_to_baseline": mean / baseline_mean if baseline_mean > 0 else None,
    }


def consistency_grid(
    loaded: LoadedGenerator,
    model: torch.nn.Module,
    size: int,
    rows: int,
    samples: int,
    batch: int,
    seed: int,
    truncation: float,
) -> dict:
    """Mean angular error per cell of a rows x rows gaze grid over the label set's 5th-95th
    percentiles: {"pitch": [rows], "yaw": [rows] centres in radians, "error_deg": [pitch][yaw]}.
    Every cell renders the same `samples` z, so cells differ by gaze alone."""
    cells = gaze_grid(loaded.gaze_labels, rows)  # pitch-major
    conditioning = cells.repeat_interleave(samples, dim=0)
    latents = seeded_latents(loaded, samples, seed, truncation).repeat(len(cells), 1, 1)
    estimated = estimate_gazes(loaded, model, size, latents, conditioning, batch)
    errors = angular_error(estimated, conditioning.numpy()).reshape(rows, rows, samples).mean(axis=2)
    centres = cells.reshape(rows, rows, 2)
    return {"pitch": centres[:, 0, 0].tolist(), "yaw": centres[0, :, 1].tolist(), "error_deg": errors.tolist()}


def sweep_sheets(
    loaded: LoadedGenerator, model: torch.nn.Module, size: int, rows: int, batch: int, seed: int, truncation: float
) -> tuple[np.ndarray, np.ndarray]:
    """(yaw sheet, pitch sheet), RGB: `rows` identities (fixed z) across SWEEP_YAWS at the label
    set's median pitch, and across SWEEP_PITCHES pitches over its 5th-95th percentiles at its
    median yaw."""
    labels = loaded.gaze_labels
    median, low, high = (torch.quantile(labels, q, dim=0) for q in (0.5, 0.05, 0.95))
    yaws = torch.stack([torch.full((SWEEP_YAWS[2],), float(median[0])), torch.linspace(*SWEEP_YAWS)], dim=1)
    pitches = torch.stack(
        [torch.linspace(float(low[0]), float(high[0]), SWEEP_PITCHES), torch.full((SWEEP_PITCHES,), float(median[1]))],
        dim=1,
    )
    latents = seeded_latents(loaded, rows, seed, truncation)
    return (
        _sheet(
            loaded, model, size, latents, yaws, batch, f"yaw sweep at pitch {np.degrees(float(median[0])):+.1f} deg"
        ),
        _sheet(
            loaded, model, size, latents, pitches, batch, f"pitch sweep at yaw {np.degrees(float(median[1])):+.1f} deg"
        ),
    )


@torch.no_grad()
def _sheet(
    loaded: LoadedGenerator,
    model: torch.nn.Module,
    size: int,
    latents: torch.Tensor,
    columns: torch.Tensor,
    batch: int,
    title: str,
) -> np.ndarray:
    """One row per latent, one column per gaze in `columns` [C, 2]."""
    gazes = columns.repeat(len(latents), 1)  # identity r, column c at r * C + c
    device = loaded.generator.grid.device
    cells = []
    for first, out in zip(
        range(0, len(gazes), batch),
        render(loaded.generator, latents.repeat_interleave(len(columns), dim=0), gazes.to(device), batch),
    ):
        images = to_uint8(out.image)
        for image, mask, reading, gaze in zip(
            images, class_ids(out.seg), _readings(model, size, images), gazes[first : first + batch].tolist()
        ):
            cells.append(sweep_cell(image, mask, gaze, reading.tolist()))
    return sweep_sheet(cells, columns.tolist(), title)
