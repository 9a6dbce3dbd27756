"""Label-preserving batch augmentation shared by the GAN's D and the gaze estimator."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_translate(x: torch.Tensor, reach: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each sample of x [B, C, H, W] shifted by its own whole-pixel offset in [-reach, reach] per
    axis, the edge pixels repeated into the uncovered border; differentiable (a gather)."""
    batch, _, height, width = x.shape
    device = x.device
    padded = F.pad(x, (reach,) * 4, mode="replicate")
    offset = torch.randint(0, 2 * reach + 1, (2, batch, 1), device=device, generator=generator)
    rows = offset[0] + torch.arange(height, device=device)  # [B, H]
    cols = offset[1] + torch.arange(width, device=device)  # [B, W]
    picked = padded[torch.arange(batch, device=device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return picked.permute(0, 3, 1, 2)
