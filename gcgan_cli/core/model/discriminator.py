"""Dual-branch StyleGAN2 discriminator: an image branch and a segmentation branch of residual
blocks down to 4x4, summed; minibatch standard deviation; a final conv and two linear layers.

With `gaze=True` (stage 1) D is conditioned on the normalised (pitch, yaw), as the model config
says: "concat" (the reference) appends a 2 -> gaze_dim embedding to the flattened features before
the first linear layer, which lets the gaze act only as a bias that real and fake share;
"projection" adds the inner product of an embedding with the hidden features to the logit, so
the score depends on whether image and gaze agree. Stage 2 uses the unconditional variant.
A `d_gaze_head` regresses the normalised gaze from the flattened features (which never see the
conditioning gaze), the AC-GAN way of making D read the gaze from the pixels.
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
        concat = gaze and config.d_conditioning == "concat"
        self.embed = FullyConnectedLayer(2, config.gaze_dim) if concat else None
        self.final_linear = nn.Sequential(
            EqualLinear(width * 16 + (config.gaze_dim if concat else 0), width, activate=True),
            EqualLinear(width, 1),
        )
        self.project = (
            nn.Sequential(EqualLinear(2, config.gaze_dim, activate=True), EqualLinear(config.gaze_dim, width))
            if gaze and config.d_conditioning == "projection"
            else None
        )
        self.gaze_head = (
            nn.Sequential(
                EqualLinear(width * 16, config.d_gaze_head, activate=True), EqualLinear(config.d_gaze_head, 2)
            )
            if gaze and config.d_gaze_head
            else None
        )
        self.register_buffer("gaze_mean", torch.tensor(config.gaze_mean), persistent=False)
        self.register_buffer("gaze_std", torch.tensor(config.gaze_std), persistent=False)

    @property
    def gaze_conditioned(self) -> bool:
        return self.embed is not None or self.project is not None

    def normalise(self, gaze: torch.Tensor) -> torch.Tensor:
        return (gaze.to(self.gaze_mean.dtype) - self.gaze_mean) / self.gaze_std

    def forward(
        self,
        image: torch.Tensor,
        seg: torch.Tensor | None,
        gaze: torch.Tensor | None = None,
        estimate_gaze: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, 1] for images [B, 3, S, S] and segmentations [B, seg_dim, S, S] in [-1, 1];
        with estimate_gaze also the gaze head's normalised (pitch, yaw) estimate [B, 2].

        `gaze` [K, B, 2] scores the same images at K gazes each, logits [K, B, 1]: the convolutions never
        see the gaze, so they run once and only the final linear layers K times."""
        x = self.convs_img(image)
        if seg is not None:
            x = x + self.convs_seg(seg)
        x = self.final_conv(minibatch_stddev(x)).flatten(1)
        if self.gaze_conditioned and gaze is None:
            raise ValueError("this discriminator is gaze-conditioned: pass gaze [B, 2] (pitch, yaw)")
        features = x
        gazes = gaze.shape[0] if gaze is not None and gaze.ndim == 3 else None
        if gazes is not None:
            x, gaze = x.repeat(gazes, 1), gaze.flatten(0, 1)
        if self.embed is not None:
            x = torch.cat([x, self.embed(self.normalise(gaze))], dim=1)
        hidden = self.final_linear[0](x)
        logits = self.final_linear[1](hidden)
        if self.project is not None:
            logits = (
                logits + (self.project(self.normalise(gaze)) * hidden).sum(1, keepdim=True) / hidden.shape[1] ** 0.5
            )
        if gazes is not None:
            logits = logits.view(gazes, -1, 1)
        if not estimate_gaze:
            return logits
        if self.gaze_head is None:
            raise ValueError("this discriminator has no gaze head (d_gaze_head = 0)")
        return logits, self.gaze_head(features)
