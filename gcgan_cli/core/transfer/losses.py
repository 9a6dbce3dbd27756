"""FP-GAN's loss terms as pure functions, and the frozen feature networks they look through.

Images are [B, 1, 36, 60] in [-1, 1]. Each term is a mean over every element, as the original's.
The feature networks (core/frozen.py) stay unchanged while the generators learn through them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gcgan_cli.core.frozen import FrozenNet
from gcgan_cli.core.gaze.estimator import load_estimator
from gcgan_cli.core.transfer.landmarks import load_landmarks
from gcgan_cli.errors import CheckpointError

LEGACY_MAX_SIDE = 60.0  # the reference's landmark normaliser before it swapped the axes


def lsgan_generator(fake_score: torch.Tensor, real_label: float) -> torch.Tensor:
    return (fake_score - real_label).square().mean()


def lsgan_discriminator(real_score: torch.Tensor, fake_score: torch.Tensor, real_label: float) -> torch.Tensor:
    return 0.5 * ((real_score - real_label).square().mean() + fake_score.square().mean())


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cycle, self-regularisation and identity terms: mean |a - b| (one channel, so the
    original's channel-mean gray is the image itself)."""
    return (a - b).abs().mean()


def landmark_scale(norm: str, height: int, width: int) -> torch.Tensor:
    """What (x, y) landmarks are divided by: (W, H); the reference's swapped (H, W); or 60 for both."""
    if norm == "wh":
        return torch.tensor([width, height], dtype=torch.float32)
    if norm == "legacy-hw":
        return torch.tensor([height, width], dtype=torch.float32)
    return torch.tensor([LEGACY_MAX_SIDE, LEGACY_MAX_SIDE])


def frozen_gaze(path: Path, device: torch.device) -> FrozenNet:
    network, config = load_estimator(Path(path), device)
    if config.get("input") != "eye":
        raise CheckpointError(
            f"--gaze-model {path} reads face strips; the transfer loss needs an eye-patch estimator "
            "(`gcgan gaze fit --input eye`)"
        )
    if config.get("units") != "rad":
        raise CheckpointError(
            f"--gaze-model {path} outputs {config.get('units')}; lambda_gaze is in rad^-2, so the loss needs radians"
        )
    return FrozenNet(path, network, config)


def frozen_landmarks(path: Path, device: torch.device) -> FrozenNet:
    network, config = load_landmarks(Path(path), device)
    return FrozenNet(path, _LandmarksOnly(network), config)


class _LandmarksOnly(torch.nn.Module):
    """The landmark network's (x, y) output alone."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)[1]


def gaze_consistency(
    net: FrozenNet, source: torch.Tensor, translated: torch.Tensor, target: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared (pitch, yaw) difference in rad^2 between the reading of the translation and
    the reading of its source (or `target`, the source's true gaze)."""
    reference = net(source) if target is None else target
    return (net(translated) - reference.detach()).square().mean()


def landmark_consistency(
    net: FrozenNet, source: torch.Tensor, translated: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Mean squared difference of the normalised landmarks of the translation and of its source."""
    scale = scale.to(source.device)
    return (net(translated) / scale - (net(source) / scale).detach()).square().mean()
