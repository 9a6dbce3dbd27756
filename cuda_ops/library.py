"""The CUDA kernels as PyTorch operators: ``gcgan::upfirdn2d``, ``gcgan::fused_bias_act`` and
``gcgan::fused_bias_act_grad``, registered with ``torch.library``.

As operators they are opaque to ``torch.compile``, which traces through them without a graph break
(each has a fake kernel giving its output's shape, dtype and layout), and autograd differentiates
them to any order: each backward is one of these operators again, so R1 and the path-length
penalty (double backward) work. The CUDA kernels come from the JIT extension (``build.extension``);
the CPU kernels compute the same forwards with the reference twins, so the registration (schema,
fake kernels, derivative formulas) is tested without a GPU. The public ops send only CUDA tensors
here, and only where the policy chose the kernels: their CPU path stays native PyTorch.

Arguments are normalised as ``cuda_ops.upfirdn2d`` and ``cuda_ops.fused_leaky_relu`` leave them:
up, down as (x, y); pad as (x0, x1, y0, y1); on CUDA the kernel in float32 (float64 for a float64
x) and the bias in x's dtype, on x's device. Outputs are contiguous, as the CUDA kernels write them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import build
from .reference import fused_leaky_relu_ref, upfirdn2d_ref


def output_size(in_size: int, up: int, down: int, pad0: int, pad1: int, taps: int) -> int:
    """Length of one output axis: (in * up + pad0 + pad1 - taps) // down + 1."""
    return (in_size * up + pad0 + pad1 - taps) // down + 1


# --- upfirdn2d ---

# SymInt pads: under dynamic shapes the backward's adjoint pads depend on the input's size.
UPFIRDN2D_SCHEMA = "(Tensor x, Tensor kernel, int[2] up, int[2] down, SymInt[4] pad) -> Tensor"


@torch.library.custom_op("gcgan::upfirdn2d", mutates_args=(), device_types="cpu", schema=UPFIRDN2D_SCHEMA)
def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: Sequence[int], down: Sequence[int], pad: Sequence[int]
) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H_out, W_out]: upsample, pad, FIR-filter, downsample."""
    return upfirdn2d_ref(x, kernel, tuple(up), tuple(down), tuple(pad)).contiguous()


@upfirdn2d.register_kernel("cuda")
def _upfirdn2d_cuda(x, kernel, up, down, pad):
    return build.extension(strict=True).upfirdn2d(x, kernel, *up, *down, *pad)


@upfirdn2d.register_fake
def _upfirdn2d_fake(x, kernel, up, down, pad):
    kh, kw = kernel.shape
    out_w = output_size(x.shape[3], up[0], down[0], pad[0], pad[1], kw)
    out_h = output_size(x.shape[2], up[1], down[1], pad[2], pad[3], kh)
    return x.new_empty(x.shape[0], x.shape[1], out_h, out_w)


def _upfirdn2d_setup(ctx, inputs, output):
    x, kernel, up, down, pad = inputs
    ctx.save_for_backward(kernel)
    ctx.meta = (x.shape[2], x.shape[3], tuple(up), tuple(down), tuple(pad))


def _upfirdn2d_backward(ctx, grad):
    """The adjoint of upfirdn2d is upfirdn2d: the flipped kernel, up and down swapped, and the pads
    that put each gradient sample back where its input sample was. No gradient for the kernel."""
    (kernel,) = ctx.saved_tensors
    in_h, in_w, up, down, pad = ctx.meta
    if not ctx.needs_input_grad[0]:
        return None, None, None, None, None
    (up_x, up_y), (down_x, down_y) = up, down
    pad_x0, _, pad_y0, _ = pad
    kh, kw = kernel.shape
    out_h, out_w = grad.shape[2], grad.shape[3]
    grad_pad = (
        kw - pad_x0 - 1,
        in_w * up_x - out_w * down_x + pad_x0 - up_x + 1,
        kh - pad_y0 - 1,
        in_h * up_y - out_h * down_y + pad_y0 - up_y + 1,
    )
    grad_x = upfirdn2d(grad, kernel.flip([0, 1]), down, up, grad_pad)
    return grad_x, None, None, None, None


upfirdn2d.register_autograd(_upfirdn2d_backward, setup_context=_upfirdn2d_setup)


# --- fused bias + leaky ReLU ---


@torch.library.custom_op("gcgan::fused_bias_act_grad", mutates_args=(), device_types="cpu")
def fused_bias_act_grad(grad: torch.Tensor, out: torch.Tensor, slope: float, scale: float) -> torch.Tensor:
    """grad * scale * (1 where out > 0, else slope): the activation's gradient, read from its output."""
    return torch.where(out > 0, grad * scale, grad * (scale * slope)).contiguous()


@fused_bias_act_grad.register_kernel("cuda")
def _fused_bias_act_grad_cuda(grad, out, slope, scale):
    return build.extension(strict=True).fused_bias_act_grad(grad, out, slope, scale)


@fused_bias_act_grad.register_fake
def _fused_bias_act_grad_fake(grad, out, slope, scale):
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


def _fused_bias_act_grad_setup(ctx, inputs, output):
    _, out, slope, scale = inputs
    ctx.save_for_backward(out)
    ctx.meta = (slope, scale)


def _fused_bias_act_grad_backward(ctx, grad_grad):
    """Linear in grad, so its derivative is the same masked product; the mask's derivative with
    respect to out is zero almost everywhere."""
    (out,) = ctx.saved_tensors
    slope, scale = ctx.meta
    return fused_bias_act_grad(grad_grad, out, slope, scale), None, None, None


fused_bias_act_grad.register_autograd(_fused_bias_act_grad_backward, setup_context=_fused_bias_act_grad_setup)


@torch.library.custom_op("gcgan::fused_bias_act", mutates_args=(), device_types="cpu")
def fused_bias_act(x: torch.Tensor, bias: torch.Tensor | None, slope: float, scale: float) -> torch.Tensor:
    """scale * leaky_relu(x + bias, slope), x [N, C, ...], bias [C] or None."""
    return fused_leaky_relu_ref(x, bias, slope, scale).contiguous()


@fused_bias_act.register_kernel("cuda")
def _fused_bias_act_cuda(x, bias, slope, scale):
    return build.extension(strict=True).fused_bias_act(x, bias, slope, scale)


@fused_bias_act.register_fake
def _fused_bias_act_fake(x, bias, slope, scale):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _fused_bias_act_setup(ctx, inputs, output):
    _, bias, slope, scale = inputs
    ctx.save_for_backward(output)
    ctx.meta = (slope, scale, bias is not None)


def _fused_bias_act_backward(ctx, grad):
    """The mask comes from the output's sign, which is the input's for scale > 0 and slope >= 0
    (the public op checks both)."""
    (out,) = ctx.saved_tensors
    slope, scale, has_bias = ctx.meta
    grad_x = fused_bias_act_grad(grad, out, slope, scale)
    grad_bias = grad_x.sum([0, *range(2, grad_x.ndim)]) if has_bias and ctx.needs_input_grad[1] else None
    return grad_x, grad_bias, None, None


fused_bias_act.register_autograd(_fused_bias_act_backward, setup_context=_fused_bias_act_setup)
