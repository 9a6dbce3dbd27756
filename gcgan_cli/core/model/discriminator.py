"""Dual-branch StyleGAN2 discriminator (spec §4.10): an image branch and a segmentation branch
of residual blocks down to 4x4, summed; minibatch standard deviation; a final conv and two
linear layers. With `gaze=True` (stage 1) a 2 -> gaze_dim embedding of (pitch, yaw) joins the
flattened features before the first linear layer; stage 2 uses the unconditional variant.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gcgan_cli.core.model.config import ModelConfig
from gcgan_cli.core.model.layers import ConvLayer, EqualLinear, FullyConnectedLayer, ResBlock

STDDEV_GROUP = 4


def _branch(config: ModelConfig, in_ch: int) -> nn.Sequential:
    layers = [ConvLayer(in_ch, config.channels(config.size), 1)]
    for level in range(int(math.log2(config.size)), 2, -1):
        layers.append(ResBlock(config.channels(2**level), config.channels(2 ** (level - 1))))
    return nn.Sequential(*layers)


def minibatch_stddev(x: torch.Tensor, group: int = STDDEV_GROUP) -> torch.Tensor:
    """x [B, C, H, W] -> [B, C + 1, H, W]: the std over groups of samples i, i + B/G, ...

    The group is the largest size <= `group` that divides the batch (the reference required
    B % min(B, 4) == 0 and failed otherwise).
    """
    batch, channels, height, width = x.shape
    size = next(g for g in range(min(group, batch), 0, -1) if batch % g == 0)
    y = x.view(size, batch // size, 1, channels, height, width)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [B/G, 1]
    y = y.view(batch // size, 1, 1, 1).repeat(size, 1, height, width)
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig, gaze: bool):
        super().__init__()
        self.config = config.validate()
        self.convs_img = _branch(config, 3)
        self.convs_seg = _branch(config, config.seg_dim)
        width = config.channels(4)
        self.final_conv = ConvLayer(width + 1, width, 3)
        self.embed = FullyConnectedLayer(2, config.gaze_dim) if gaze else None
        self.final_linear = nn.Sequential(
            EqualLinear(width * 16 + (config.gaze_dim if gaze else 0), width, activate=True),
            EqualLinear(width, 1),
        )

    @property
    def gaze_conditioned(self) -> bool:
        return self.embed is not None

    def forward(self, image: torch.Tensor, seg: torch.Tensor | None, gaze: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, 1] for images [B, 3, S, S] and segmentations [B, seg_dim, S, S] in [-1, 1]."""
        x = self.convs_img(image)
        if seg is not None:
            x = x + self.convs_seg(seg)
        x = self.final_conv(minibatch_stddev(x)).flatten(1)
        if self.embed is not None:
            if gaze is None:
                raise ValueError("this discriminator is gaze-conditioned: pass gaze [B, 2] (pitch, yaw)")
            x = torch.cat([x, self.embed(gaze)], dim=1)
        return self.final_linear(x)
