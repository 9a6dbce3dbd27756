"""upfirdn2d: upsample, pad, FIR filter, downsample (StyleGAN2 resampling)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import library
from .dispatch import kernels_for
from .library import output_size
from .native import upfirdn2d_native
from .reference import upfirdn2d_ref

IntPair = int | Sequence[int]


def make_kernel(taps: Sequence[float]) -> torch.Tensor:
    """A normalised 2-D FIR kernel (float32, sums to 1) from 1-D taps, e.g. [1, 3, 3, 1]."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    if k.ndim != 2 or k.numel() == 0:
        raise ValueError(f"kernel taps must be 1-D or 2-D and non-empty, got shape {tuple(k.shape)}")
    return k / k.sum()


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or an (x, y) pair, got {value!r}")
    return pair  # type: ignore[return-value]


def _pad4(pad: Sequence[int]) -> tuple[int, int, int, int]:
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        return (pad[0], pad[1], pad[0], pad[1])
    if len(pad) == 4:
        return pad  # type: ignore[return-value]
    raise ValueError(f"pad must be (p0, p1) or (x0, x1, y0, y1), got {pad!r}")


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: IntPair = 1,
    down: IntPair = 1,
    pad: Sequence[int] = (0, 0),
    impl: str = "auto",
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with ``kernel``, keep every down-th sample.

    Args:
        x: [N, C, H, W] floating tensor.
        kernel: [kh, kw] FIR kernel (a constant: no gradient flows into it).
        up, down: int or (x, y) factors, >= 1.
        pad: (p0, p1) for both axes or (x0, x1, y0, y1); negative values crop.
        impl: "auto" (``GCGAN_CUDA_OPS`` policy; without the kernels, native convolutions
            that skip the reference's copies: `cuda_ops.native`), "ref" (the reference twin) or "cuda".

    Returns [N, C, H_out, W_out], H_out = (H * up_y + y0 + y1 - kh) // down_y + 1.
    The filter is a true convolution; for the symmetric kernels of StyleGAN2 the
    flip makes no difference. First and second derivatives w.r.t. x work on both paths.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects x of shape [N, C, H, W], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"upfirdn2d expects a floating tensor, got {x.dtype}")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D kernel, got shape {tuple(kernel.shape)}")
    up2, down2, pad4 = _pair(up, "up"), _pair(down, "down"), _pad4(pad)
    kh, kw = kernel.shape
    out_w = output_size(x.shape[3], up2[0], down2[0], pad4[0], pad4[1], kw)
    out_h = output_size(x.shape[2], up2[1], down2[1], pad4[2], pad4[3], kh)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"upfirdn2d output would be {out_h}x{out_w} for input {tuple(x.shape)}, "
            f"kernel {kh}x{kw}, up {up2}, down {down2}, pad {pad4}"
        )
    kernel = kernel.detach()
    if kernels_for(x, impl) is None:
        return (upfirdn2d_ref if impl == "ref" else upfirdn2d_native)(x, kernel, up2, down2, pad4)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    kernel = kernel.to(device=x.device, dtype=acc).contiguous()
    return library.upfirdn2d(x, kernel, up2, down2, pad4)
