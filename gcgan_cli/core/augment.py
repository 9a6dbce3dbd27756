"""Label-preserving batch augmentation shared by the GAN's D, the gaze estimator and the
landmark network."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shift(x: torch.Tensor, offset: torch.Tensor, reach: int) -> torch.Tensor:
    """x [B, C, H, W] with sample b moved right by offset[b, 0] and down by offset[b, 1] whole
    pixels (each within [-reach, reach]), the edge pixels repeated into the uncovered border;
    differentiable (a gather)."""
    batch, _, height, width = x.shape
    device = x.device
    padded = F.pad(x, (reach,) * 4, mode="replicate")
    rows = reach - offset[:, 1:2] + torch.arange(height, device=device)  # output row r shows input row r - dy
    cols = reach - offset[:, 0:1] + torch.arange(width, device=device)
    picked = padded[
        torch.arange(batch, device=device)[:, None, None], :, rows[:, :, None], cols[:, None, :]
    ]  # [B, H, W, C]
    return picked.permute(0, 3, 1, 2)


def random_translate(x: torch.Tensor, reach: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each sample of x [B, C, H, W] shifted by its own whole-pixel offset in [-reach, reach] per axis."""
    drawn = torch.randint(
        0, 2 * reach + 1, (2, x.shape[0]), device=x.device, generator=generator
    )  # (rows, cols) into the padding
    return shift(x, torch.stack([reach - drawn[1], reach - drawn[0]], dim=1), reach)


def photometric(
    images: torch.Tensor, contrast: float, colour: float, brightness: float, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """Contrast about each image's mean (1 +- contrast), a per-channel gain (1 +- colour, colour
    images only), an added brightness (+- brightness) and Gaussian noise of a random std up to
    `noise`, all on the [-1, 1] scale and clamped to it; exact at zero ranges."""
    count, channels = images.shape[:2]
    device = images.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device)

    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    gain = 1 + contrast * (2 * uniform(count, 1, 1, 1) - 1)
    if channels > 1:
        gain = gain * (1 + colour * (2 * uniform(count, channels, 1, 1) - 1))
    images = images * gain + mean * (1 - gain) + brightness * (2 * uniform(count, 1, 1, 1) - 1)
    jitter = noise * uniform(count, 1, 1, 1) * torch.randn(images.shape, generator=generator, device=device)
    return (images + jitter).clamp_(-1.0, 1.0)
