"""Pure-PyTorch twins of the custom ops: the definition the CUDA kernels and ``native.py`` are tested against, and
the CPU path wherever ``native.py`` does not apply.

Both functions take fully normalised arguments (see ``cuda_ops.upfirdn2d`` and
``cuda_ops.fused_leaky_relu`` for the public, argument-checking forms). Every
argument is honoured; first and second derivatives come from native autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upfirdn2d_ref(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: tuple[int, int],
    down: tuple[int, int],
    pad: tuple[int, int, int, int],
) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter (true convolution), downsample.

    x: [N, C, H, W]; kernel: [kh, kw]; up/down: (x, y) factors;
    pad: (x0, x1, y0, y1), negative values crop. Returns [N, C, H_out, W_out] with
    H_out = (H * up_y + y0 + y1 - kh) // down_y + 1 (and the same for W).
    """
    n, c, h, w = x.shape
    up_x, up_y = up
    down_x, down_y = down
    pad_x0, pad_x1, pad_y0, pad_y1 = pad
    # Zero insertion: every sample is followed by (factor - 1) zeros on each axis.
    y = x.reshape(n, c, h, 1, w, 1)
    y = F.pad(y, [0, up_x - 1, 0, 0, 0, up_y - 1])
    y = y.reshape(n, c, h * up_y, w * up_x)
    y = F.pad(y, [pad_x0, pad_x1, pad_y0, pad_y1])
    # conv2d is a correlation: flip the kernel to get a true convolution. A strided
    # "valid" convolution keeps every down-th sample starting at 0. Depthwise
    # (groups=C) is several times faster on CPU than folding C into the batch.
    weight = kernel.flip([0, 1]).to(device=x.device, dtype=x.dtype)
    weight = weight[None, None].expand(c, 1, *weight.shape)
    return F.conv2d(y, weight, stride=(down_y, down_x), groups=c)


def fused_leaky_relu_ref(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    negative_slope: float,
    scale: float,
) -> torch.Tensor:
    """scale * leaky_relu(x + bias, negative_slope), bias broadcast along dim 1."""
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale
