"""How gaze-aware a generator is: sample it at known gazes and estimate them back."""

from __future__ import annotations

import numpy as np
import torch

from gcgan_cli.core.gaze.sources import prepare
from gcgan_cli.core.synthesis import LoadedGenerator, render, truncated_latents, truncation_centre
from gcgan_cli.core.visualize import to_uint8


@torch.no_grad()
def generator_consistency(loaded: LoadedGenerator, model: torch.nn.Module, size: int, n: int, batch: int, seed: int,
                          truncation: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(conditioning gazes, estimated gazes) [n, 2] for n samples of a loaded generator
    at gazes drawn from its training label set. Images go through
    the same uint8 + resize path as saved samples, so the estimate sees what a file would hold."""
    generator, device = loaded.generator, loaded.generator.grid.device
    draws = torch.Generator().manual_seed(seed)
    gazes = loaded.gaze_labels[torch.randint(len(loaded.gaze_labels), (n,), generator=draws)]
    z = torch.randn(n, loaded.config.style_dim, generator=draws).to(device)
    latents = truncated_latents(generator, z, truncation, truncation_centre(generator, seed))
    estimates = []
    for out in render(generator, latents, gazes.to(device), batch):
        images = torch.stack([prepare(image, size) for image in to_uint8(out.image)])
        estimates.append(model(images.to(next(model.parameters()).device)).float().cpu().numpy())
    return gazes.numpy(), np.concatenate(estimates)
