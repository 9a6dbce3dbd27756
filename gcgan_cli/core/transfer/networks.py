"""The FP-GAN translation networks: a ResNet generator and a PatchGAN or local discriminator.

Sizes follow TensorFlow "SAME" padding (output = ceil(input / stride), the odd padding pixel at
the bottom / right) so a 36x60 patch gives the reference's shapes: G runs 36x60 -> 18x30 -> 9x15
and back; the reference D maps 36x60 -> 18x30 -> 9x15 -> 5x8 -> 3x4. Every module works for any
input size. Convolutions carry no bias where a norm follows them (the norm's offset does that job).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gcgan_cli.core.transfer.config import NET_PRESETS, NetConfig

INSTANCE_EPS = 1e-5
BATCH_EPS = 1e-3  # TF batch_normalization's default
BATCH_MOMENTUM = 0.1  # PyTorch's convention for TF's decay 0.9
LEAK = 0.2
INIT_STD = 0.02
# The networks' sizes (NetConfig, the presets) are torch-free data beside the options in transfer.config, so
# `gcgan transfer fit --help` shows them without torch; the presets keep their name here.
PRESETS = NET_PRESETS


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" (before, after) padding of one axis: output ceil(size / stride)."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with TF "SAME" zero padding, computed for each input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, eps=BATCH_EPS, momentum=BATCH_MOMENTUM)
    return nn.InstanceNorm2d(channels, eps=INSTANCE_EPS, affine=True)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            norm_layer("instance", channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            norm_layer("instance", channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """x2 upsampling to an exact size (the matching down layer's input), then norm and ReLU.

    "deconv" is TF's conv2d_transpose k3 s2 SAME: the full transposed output (2n + 1 rows)
    cropped to the target as TF does, the odd row off the bottom / right. "resize" is nearest
    neighbour to the target, reflect pad 1, conv 3x3.
    """

    def __init__(self, mode: str, cin: int, cout: int, norm: str):
        super().__init__()
        self.mode = mode
        if mode == "deconv":
            self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, bias=False)
        else:
            self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, bias=False))
        self.post = nn.Sequential(norm_layer(norm, cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.mode == "deconv":
            y = self.conv(x)
            top = max(y.shape[-2] - size[0], 0) // 2  # TF's padding before, which a transpose crops
            left = max(y.shape[-1] - size[1], 0) // 2
            y = y[..., top : top + size[0], left : left + size[1]]
        else:
            y = self.conv(F.interpolate(x, size=size, mode="nearest"))
        return self.post(y)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downs, residual blocks at 1/4 size, two ups, c7s1-channels tanh.

    Maps [B, C, H, W] in [-1, 1] to the same shape in (-1, 1) for any H, W (the ups return to
    the exact sizes the downs started from, odd ones included).
    """

    def __init__(self, config: NetConfig):
        super().__init__()
        config.validate()
        c, n, norm = config.channels, config.ngf, config.norm
        self.head = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(c, n, 7, bias=False), norm_layer(norm, n), nn.ReLU(inplace=True)
        )
        self.down1 = nn.Sequential(
            SameConv2d(n, 2 * n, 3, stride=2, bias=False), norm_layer(norm, 2 * n), nn.ReLU(inplace=True)
        )
        self.down2 = nn.Sequential(
            SameConv2d(2 * n, 4 * n, 3, stride=2, bias=False), norm_layer(norm, 4 * n), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(*(ResidualBlock(4 * n) for _ in range(config.blocks)))
        self.up2 = Upsample(config.upsample, 4 * n, 2 * n, norm)
        self.up1 = Upsample(config.upsample, 2 * n, n, norm)
        self.tail = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(n, c, 7, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.head(x)
        half = self.down1(full)
        y = self.blocks(self.down2(half))
        y = self.up1(self.up2(y, half.shape[-2:]), full.shape[-2:])
        return self.tail(y)


class PatchDiscriminator(nn.Module):
    """k4 convolutions (ndf, 2 ndf, ... up to 8 ndf), LeakyReLU 0.2, then a k4 s1 conv with bias
    to one channel: a map of raw scores for the least-squares GAN loss (no sigmoid)."""

    def __init__(self, config: NetConfig):
        super().__init__()
        config.validate()
        layers: list[nn.Module] = []
        cin = config.channels
        for i in range(config.d_layers):
            cout = config.ndf * 2 ** min(i, 3)
            stride = config.d_last_stride if i == config.d_layers - 1 else 2
            layers.append(SameConv2d(cin, cout, 4, stride=stride, bias=False))
            if i > 0:
                layers.append(norm_layer(config.norm, cout))
            layers.append(nn.LeakyReLU(LEAK, inplace=True))
            cin = cout
        layers.append(SameConv2d(cin, 1, 4, stride=1, bias=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LocalDiscriminator(nn.Module):
    """SimGAN's local discriminator: conv3 s2, conv3 s2, maxpool3 s1, conv3, conv1, conv1.

    Each score sees 23 px, so D judges texture and not where the iris is; at 36x60 the map is
    9x15. One output channel of raw scores (least squares) instead of SimGAN's 2-class softmax.
    No norm, so every conv has a bias.
    """

    def __init__(self, config: NetConfig):
        super().__init__()
        config.validate()
        wide, mid, narrow = 3 * config.ndf // 2, config.ndf, config.ndf // 2
        act = nn.LeakyReLU(LEAK, inplace=True)
        self.net = nn.Sequential(
            SameConv2d(config.channels, wide, 3, stride=2),
            act,
            SameConv2d(wide, mid, 3, stride=2),
            act,
            nn.MaxPool2d(3, stride=1, padding=1),
            SameConv2d(mid, narrow, 3),
            act,
            nn.Conv2d(narrow, narrow, 1),
            act,
            nn.Conv2d(narrow, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(module: nn.Module) -> None:
    """The reference's initialisation of one layer, for `net.apply(init_weights)`: convolutions
    N(0, 0.02) with zero bias, norm scales N(1, 0.02) and offsets 0. Draws from torch's global
    generator; other layers are left alone."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.InstanceNorm2d, nn.BatchNorm2d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def build_generator(config: NetConfig) -> ResnetGenerator:
    return ResnetGenerator(config).apply(init_weights)


def build_discriminator(config: NetConfig) -> nn.Module:
    kind = PatchDiscriminator if config.validate().netD == "patch" else LocalDiscriminator
    return kind(config).apply(init_weights)
