"""fused_leaky_relu: bias add + leaky ReLU + gain in one pass (StyleGAN2 activation)."""

from __future__ import annotations

import torch
from torch import nn

from . import library
from .dispatch import kernels_for
from .reference import fused_leaky_relu_ref


def fused_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = 2**0.5,
    impl: str = "auto",
) -> torch.Tensor:
    """scale * leaky_relu(x + bias, negative_slope), bias broadcast along dim 1.

    Args:
        x: [N, C, ...] floating tensor (e.g. [N, C] or [N, C, H, W]).
        bias: [C] or None.
        negative_slope: slope for negative inputs, >= 0.
        scale: output gain, > 0 (sqrt(2) keeps the variance of a leaky ReLU).
        impl: "auto" (``GCGAN_CUDA_OPS`` policy), "ref" or "cuda".

    The kernel path derives the backward mask from the output's sign, which equals
    the input's sign only for scale > 0 and slope >= 0: hence those bounds (on both
    paths, so they agree). Differentiable twice w.r.t. x and bias.
    """
    if x.ndim < 2:
        raise ValueError(f"fused_leaky_relu expects x of shape [N, C, ...], got {tuple(x.shape)}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != x.shape[1]):
        raise ValueError(
            f"bias must have shape [{x.shape[1]}] for x of shape {tuple(x.shape)}, got {tuple(bias.shape)}"
        )
    if not negative_slope >= 0 or not scale > 0:
        raise ValueError(f"fused_leaky_relu needs negative_slope >= 0 and scale > 0, got {negative_slope} and {scale}")
    if kernels_for(x, impl) is None:
        return fused_leaky_relu_ref(x, bias, negative_slope, scale)
    if bias is not None:
        bias = bias.to(x.dtype)
    return library.fused_bias_act(x, bias, float(negative_slope), float(scale))


class FusedLeakyReLU(nn.Module):
    """A learned per-channel bias followed by ``fused_leaky_relu``.

    channels: C of the [N, C, ...] input; bias_init: initial bias value.
    """

    def __init__(
        self,
        channels: int,
        negative_slope: float = 0.2,
        scale: float = 2**0.5,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.bias = nn.Parameter(torch.full((channels,), float(bias_init)))
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)

    def extra_repr(self) -> str:
        return f"channels={self.bias.shape[0]}, negative_slope={self.negative_slope}, scale={self.scale:.4f}"
