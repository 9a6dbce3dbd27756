"""StyleGAN2 building blocks with equalized learning rate, in rosinality's conventions as the reference has them.

Weights are stored at unit scale and multiplied by 1/sqrt(fan_in) at run time, so Adam sees
every layer alike. Resampling goes through `cuda_ops.upfirdn2d` and activations through
`cuda_ops.fused_leaky_relu`: CUDA kernels on a GPU, their exact PyTorch twins on the CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cuda_ops import FusedLeakyReLU, fused_leaky_relu, make_kernel, upfirdn2d

BLUR_KERNEL = (1, 3, 3, 1)
RESIDUAL_GAIN = 1 / math.sqrt(2)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)

    def extra_repr(self) -> str:
        return "over channels (dim 1)"


class EqualLinear(nn.Module):
    """y = x (W * lr_mul / sqrt(in))^T + b * lr_mul, optionally through the fused leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_dim), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)

    def extra_repr(self) -> str:
        out_dim, in_dim = self.weight.shape
        return f"in={in_dim}, out={out_dim}, lr_mul={self.lr_mul:g}, activate={self.activate}"


class FullyConnectedLayer(nn.Module):
    """The gaze embedding (StyleGAN2-ADA style): linear, weight N(0, 1) scaled by 1/sqrt(in), bias 0."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.gain = 1 / math.sqrt(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight * self.gain, self.bias)

    def extra_repr(self) -> str:
        out_dim, in_dim = self.weight.shape
        return f"in={in_dim}, out={out_dim}"


class ModulatedConv1x1(nn.Module):
    """The local generators' per-sample modulated, demodulated 1x1 convolution.

    Computed as scale-inputs, shared matmul, scale-outputs, which equals the grouped
    convolution with per-sample weights (w'_{b,o,i} = W_{o,i} s_{b,i} / sqrt(in), normalised
    per (b, o)) without building B weight tensors.
    """

    def __init__(self, in_ch: int, out_ch: int, style_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style) * self.scale  # [B, in]
        w = self.weight  # [out, in]
        demod = torch.rsqrt((s.pow(2) @ w.pow(2).t()) + 1e-8)  # [B, out] = 1 / |w'_{b,o,:}|
        out = torch.einsum("oi,bihw->bohw", w, x * s[:, :, None, None])
        return out * demod[:, :, None, None]

    def extra_repr(self) -> str:
        out_ch, in_ch = self.weight.shape
        return f"in={in_ch}, out={out_ch}, kernel=1, style={self.modulation.weight.shape[1]}, demodulate=True"


class StyledConv1x1(nn.Module):
    """ModulatedConv1x1 then FusedLeakyReLU (the local generators inject no noise)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv1x1(in_ch, out_ch, style_dim)
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x, style))

    def extra_repr(self) -> str:
        out_ch, in_ch = self.conv.weight.shape
        return f"in={in_ch}, out={out_ch}, style={self.conv.modulation.weight.shape[1]}, noise=False"


class Blur(nn.Module):
    """The [1,3,3,1] filter; with `down` 2 only every other sample is computed (the blur before a
    strided 1x1 convolution, whose other samples would be dropped)."""

    def __init__(self, pad: tuple[int, int], up_factor: int = 1, down: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(BLUR_KERNEL) * up_factor**2, persistent=False)
        self.pad, self.down = pad, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, down=self.down, pad=self.pad)

    def extra_repr(self) -> str:
        return f"kernel={BLUR_KERNEL}, pad={self.pad}, down={self.down}"


class Upsample(nn.Module):
    """x2 with the [1,3,3,1] filter: the skip path of the rgb / seg outputs."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", make_kernel(BLUR_KERNEL) * 4, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=(2, 1))

    def extra_repr(self) -> str:
        return f"kernel={BLUR_KERNEL}, up=2, pad=(2, 1)"


class NoiseInjection(nn.Module):
    """The learned strength of per-pixel noise; FixedStyledConv adds weight * noise to its output."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    @staticmethod
    def draw(x: torch.Tensor) -> torch.Tensor:
        """Fresh noise [B, 1, H, W] for the output x."""
        return x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()

    def extra_repr(self) -> str:
        return "per-pixel noise [B, 1, H, W] times one learned weight"


def activation_gain(act: FusedLeakyReLU | None) -> float:
    """The factor an activation's scale folds into the weights before it: the leaky ReLU is
    positively homogeneous (scale * lrelu(v) = lrelu(scale * v) for scale > 0), so bias, gain and
    activation cost one pass over the output instead of three."""
    return act.scale if act is not None else 1.0


class FixedStyledConv(nn.Module):
    """The render net's convolution: no per-sample style (the reference ignores it), a learned
    per-input-channel modulation, optional demodulation, x2 upsampling by a transposed conv and
    the blur, noise, and the fused leaky ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        upsample: bool = False,
        demodulate: bool = True,
        noise: bool = True,
        activate: bool = True,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.modulation = nn.Parameter(torch.ones(1, in_ch, 1, 1))
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.upsample, self.demodulate, self.padding = upsample, demodulate, kernel // 2
        self.blur = Blur((1, 1), up_factor=2) if upsample else None
        self.noise = NoiseInjection() if noise else None
        self.activate = FusedLeakyReLU(out_ch) if activate else None

    def matrix(self) -> torch.Tensor:
        """A 1x1 layer without demodulation as its [out, in] matrix (the heads of the local generators)."""
        return (self.weight * self.modulation * self.scale).flatten(1)

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`bias` [out] (ToRGB's, when there is no activation) is added inside the convolution."""
        weight = self.weight * self.modulation * self.scale
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        gain = activation_gain(self.activate)
        if self.activate is not None:
            weight, bias = weight * gain, self.activate.bias * gain
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
            if bias is not None:
                out = out + bias[None, :, None, None]  # after the blur, which would blur it at the borders
        else:
            out = F.conv2d(x, weight, bias, padding=self.padding)
        if self.noise is not None:
            noise = self.noise.draw(out) if noise is None else noise
            out = out.addcmul_(noise, self.noise.weight * gain)
        return F.leaky_relu_(out, self.activate.negative_slope) if self.activate is not None else out

    def extra_repr(self) -> str:
        out_ch, in_ch, kernel, _ = self.weight.shape
        return (
            f"in={in_ch}, out={out_ch}, kernel={kernel}, up={2 if self.upsample else 1}, "
            f"demodulate={self.demodulate}, noise={self.noise is not None}, activate={self.activate is not None}"
        )


class ToRGB(nn.Module):
    """1x1 output head (rgb, segmentation, depth or features): no demodulation, noise or
    activation, plus a bias; with `skip`, adds the x2-upsampled previous output."""

    def __init__(self, in_ch: int, out_ch: int, upsample: bool = True):
        super().__init__()
        self.conv = FixedStyledConv(in_ch, out_ch, 1, demodulate=False, noise=False, activate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))
        self.upsample = Upsample() if upsample else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, bias=self.bias.view(-1))
        return out.add_(self.upsample(skip)) if skip is not None else out

    def extra_repr(self) -> str:
        out_ch, in_ch = self.conv.weight.shape[:2]
        return f"in={in_ch}, out={out_ch}, upsample_skip={self.upsample is not None}"


class PositionEmbedding(nn.Module):
    """Fourier features of the (x, y) grid, [x, y, then sin(2^k (x, y)), cos(2^k (x, y)) for
    k < n_freqs], then a bias-free 1x1 conv. The frequencies are a buffer (the reference
    rebuilt them per call)."""

    def __init__(self, out_ch: int, n_freqs: int):
        super().__init__()
        self.register_buffer("freqs", 2.0 ** torch.arange(n_freqs, dtype=torch.float32), persistent=False)
        in_ch = 2 * (1 + 2 * n_freqs)
        self.weights = nn.Parameter(torch.randn(out_ch, in_ch, 1, 1))
        self.scale = 1 / math.sqrt(in_ch)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        angles = self.freqs[None, :, None, None, None] * grid[:, None]  # [B, F, 2, H, W]
        waves = torch.stack([angles.sin(), angles.cos()], dim=2).flatten(
            1, 3
        )  # per frequency: sin x, sin y, cos x, cos y
        features = torch.cat([grid, waves], dim=1)
        return F.conv2d(features, self.weights * self.scale)

    def extra_repr(self) -> str:
        out_ch, in_ch = self.weights.shape[:2]
        return f"in={in_ch}, out={out_ch}, n_freqs={self.freqs.shape[0]}"


class EqualConv2d(nn.Module):
    """Bias-free: in the discriminator the bias lives in the following FusedLeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale, self.stride, self.padding = 1 / math.sqrt(in_ch * kernel * kernel), stride, padding

    def forward(self, x: torch.Tensor, act: FusedLeakyReLU | None = None, gain: float = 1.0) -> torch.Tensor:
        """With `act`, its bias and activation in the same pass; `gain` scales the result."""
        gain *= activation_gain(act)
        bias = act.bias * gain if act is not None else None
        out = F.conv2d(x, self.weight * (self.scale * gain), bias, stride=self.stride, padding=self.padding)
        return F.leaky_relu_(out, act.negative_slope) if act is not None else out

    def extra_repr(self) -> str:
        out_ch, in_ch, kernel, _ = self.weight.shape
        return f"in={in_ch}, out={out_ch}, kernel={kernel}, stride={self.stride}, padding={self.padding}"


class ConvLayer(nn.Sequential):
    """[Blur] -> EqualConv2d (stride 2 when downsampling) -> FusedLeakyReLU, which holds the
    bias; without the activation (the residual skip) there is no bias. A 1x1 convolution with
    stride 2 reads every other sample, so its blur computes only those (down 2) and it runs with
    stride 1; the convolution applies the activation itself (EqualConv2d.forward)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, downsample: bool = False, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = len(BLUR_KERNEL) - 2 + kernel - 1
            pointwise = kernel == 1
            layers.append(Blur(((p + 1) // 2, p // 2), down=2 if pointwise else 1))
            layers.append(EqualConv2d(in_ch, out_ch, kernel, stride=1 if pointwise else 2))
        else:
            layers.append(EqualConv2d(in_ch, out_ch, kernel, padding=kernel // 2))
        if activate:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)
        self.blurs, self.activates = downsample, activate

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        if self.blurs:
            x = self[0](x)
        return self[int(self.blurs)](x, self[-1] if self.activates else None, gain)

    def extra_repr(self) -> str:
        out_ch, in_ch, kernel, _ = self[int(self.blurs)].weight.shape
        return f"in={in_ch}, out={out_ch}, kernel={kernel}, down={2 if self.blurs else 1}, activate={self.activates}"


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(conv2(conv1(x)) + skip(x)) / sqrt(2), the division folded into both branches' weights."""
        return self.conv2(self.conv1(x), gain=RESIDUAL_GAIN) + self.skip(x, gain=RESIDUAL_GAIN)

    def extra_repr(self) -> str:
        return f"in={self.conv1[0].weight.shape[1]}, out={self.conv2[1].weight.shape[0]}, down=2"
