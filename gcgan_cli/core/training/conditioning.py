"""Gaze-conditioning signals beyond the reference's conditional D: wrong gazes for the
matching-aware D term, a frozen estimator's reading of G's images, and the augmentation that D
sees real and fake data through.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from gcgan_cli.core.augment import random_translate
from gcgan_cli.core.frozen import FrozenNet
from gcgan_cli.core.gaze.estimator import load_estimator
from gcgan_cli.errors import CheckpointError

CANDIDATES = 16  # label-set draws per wrong gaze; the first far enough away is taken


def unit_vectors(gaze: torch.Tensor) -> torch.Tensor:
    """[..., 2] (pitch, yaw) -> [..., 3], the convention of core.gaze.angles."""
    pitch, yaw = gaze[..., 0], gaze[..., 1]
    return torch.stack([pitch.cos() * yaw.sin(), pitch.sin(), pitch.cos() * yaw.cos()], dim=-1)


def wrong_gazes(labels: torch.Tensor, true: torch.Tensor, min_deg: float) -> torch.Tensor:
    """For each true gaze [B, 2], a label-set gaze at least `min_deg` from it: labels are
    continuous, so a random one is often nearly right and would teach D to reject a true match.
    Where no candidate is far enough, the farthest candidate."""
    picks = labels[torch.randint(len(labels), (true.shape[0], CANDIDATES), device=labels.device)]  # [B, K, 2]
    cosine = (unit_vectors(picks) * unit_vectors(true)[:, None]).sum(-1)  # [B, K]
    far = cosine <= torch.cos(torch.deg2rad(torch.tensor(min_deg, device=true.device)))
    # The first far candidate; argmax of the far flags, or of the distance where none is far.
    choice = torch.where(far.any(1), far.float().argmax(1), cosine.argmin(1))
    return picks[torch.arange(true.shape[0], device=true.device), choice]


class FrozenEstimator(FrozenNet):
    """A `gcgan gaze fit` estimator, frozen: G's images pass through it differentiably (clamped
    to [-1, 1] and resized to its input, as a saved sample would be) and its reading is compared
    with the conditioning gaze."""

    def __init__(self, path: Path, device: torch.device):
        network, config = load_estimator(Path(path), device)
        if config["input"] != "face":
            raise CheckpointError(
                f"--gaze-model {path} reads eye patches; GC-GAN's gaze loss needs a face-strip estimator "
                "(`gcgan gaze fit --input face`)"
            )
        super().__init__(path, network, config)
        self.size = int(config["size"])

    def read(self, image: torch.Tensor) -> torch.Tensor:
        """The estimator's (pitch, yaw) [B, 2] of images in [-1, 1], resized to its input size; differentiable
        with respect to the image."""
        x = image.clamp(-1, 1)
        if x.shape[-1] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > self.size
            )
        return self.network(x)


def augment(
    image: torch.Tensor, seg: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random translation (up to 1/8 of the side, edges replicated) and cutout (a
    zeroed square of 1/4 of the side) for an image [B, 3, S, S] and its mask [B, C, S, S]:
    differentiable, so D's gradients reach G through it. Translation keeps the iris where it is
    in its eye, so the gaze label stays true."""
    batch, size, device = image.shape[0], image.shape[-1], image.device
    both = random_translate(torch.cat([image, seg], 1), max(1, size // 8), generator)
    steps = torch.arange(size, device=device)
    hole = max(1, size // 4)
    corner = torch.randint(0, size - hole + 1, (2, batch, 1), device=device, generator=generator)
    inside_y = (steps >= corner[0]) & (steps < corner[0] + hole)  # [B, S]
    inside_x = (steps >= corner[1]) & (steps < corner[1] + hole)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    both = both * keep[:, None].to(both.dtype)
    return both[:, : image.shape[1]], both[:, image.shape[1] :]
