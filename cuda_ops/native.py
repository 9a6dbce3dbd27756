"""upfirdn2d from native convolutions, without the reference's zero-insertion and padding copies:
the PyTorch path where no CUDA kernel runs.

- up > 1: the reference inserts zeros and then filters them, so (up_x * up_y - 1) / (up_x * up_y)
  of its multiplications meet a zero. A transposed convolution with stride `up` and the
  (unflipped) kernel computes only the products with input samples; cropping its output by the
  pads gives the same samples.
- up == 1 with equal non-negative pads on each side of an axis: the convolution pads by itself.
Anything else takes the reference. First and second derivatives are native autograd's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .library import output_size
from .reference import upfirdn2d_ref


def upfirdn2d_native(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: tuple[int, int],
    down: tuple[int, int],
    pad: tuple[int, int, int, int],
) -> torch.Tensor:
    """The same arguments and result as `reference.upfirdn2d_ref`."""
    if max(up) > 1:
        return _upsampled(x, kernel, up, down, pad)
    pad_x0, pad_x1, pad_y0, pad_y1 = pad
    if pad_x0 == pad_x1 >= 0 and pad_y0 == pad_y1 >= 0:
        c = x.shape[1]
        weight = kernel.flip([0, 1]).to(device=x.device, dtype=x.dtype)[None, None].expand(c, 1, *kernel.shape)
        return F.conv2d(x, weight, stride=(down[1], down[0]), padding=(pad_y0, pad_x0), groups=c)
    return upfirdn2d_ref(x, kernel, up, down, pad)


def _upsampled(x, kernel, up, down, pad) -> torch.Tensor:
    """With the transposed convolution's output t[n] = sum_h x[h] k[n - up * h], the reference's
    output sample m is t[m + taps - 1 - pad0] on each axis; samples outside t are zero."""
    n, c, h, w = x.shape
    (up_x, up_y), (down_x, down_y) = up, down
    pad_x0, pad_x1, pad_y0, pad_y1 = pad
    kh, kw = kernel.shape
    weight = kernel.to(device=x.device, dtype=x.dtype)[None, None].expand(c, 1, kh, kw)
    out_h, out_w = output_size(h, up_y, 1, pad_y0, pad_y1, kh), output_size(w, up_x, 1, pad_x0, pad_x1, kw)
    start_y, start_x = kh - 1 - pad_y0, kw - 1 - pad_x0
    full_h, full_w = (h - 1) * up_y + kh, (w - 1) * up_x + kw
    if full_h - out_h == 2 * start_y >= 0 and full_w - out_w == 2 * start_x >= 0:  # the same crop on both sides
        y = F.conv_transpose2d(x, weight, stride=(up_y, up_x), padding=(start_y, start_x), groups=c)
    else:
        y = F.conv_transpose2d(x, weight, stride=(up_y, up_x), groups=c)
        y = _window(_window(y, 2, start_y, out_h), 3, start_x, out_w)
    if down_x > 1 or down_y > 1:
        y = y[:, :, ::down_y, ::down_x]
    return y


def _window(t: torch.Tensor, dim: int, start: int, length: int) -> torch.Tensor:
    """t[start : start + length] along `dim`, zeros where that range leaves t."""
    size = t.shape[dim]
    before, after = max(0, -start), max(0, start + length - size)
    if before or after:
        t = F.pad(t, [0, 0] * (t.ndim - 1 - dim) + [before, after])
        start += before
    return t.narrow(dim, start, length)
