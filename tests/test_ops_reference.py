"""The pure-PyTorch ops against independent oracles (scipy, numpy, hand-checked vectors)."""

import numpy as np
import pytest
import scipy.signal
import torch

import cuda_ops
from gcgan_cli.core import ops_check


def scipy_upfirdn2d(x, ky, kx, up, down, pad):
    """upfirdn2d for a separable kernel outer(ky, kx), one axis at a time with scipy.

    scipy.signal.upfirdn(h, x, up) is the full convolution of the zero-inserted signal
    with h; our op's output sample i is that convolution at i * down + taps - 1 - pad0
    (zero outside it), which gives the padding and downsampling.
    """
    (up_x, up_y), (down_x, down_y) = up, down
    pad_x0, pad_x1, pad_y0, pad_y1 = pad

    def one_axis(a, taps, u, d, p0, p1, axis):
        full = scipy.signal.upfirdn(taps, a, up=u, down=1, axis=axis)
        n_in = a.shape[axis]
        n_out = (n_in * u + p0 + p1 - len(taps)) // d + 1
        index = np.arange(n_out) * d + len(taps) - 1 - p0
        valid = (index >= 0) & (index < full.shape[axis])
        out = np.zeros(a.shape[:axis] + (n_out,) + a.shape[axis + 1 :])
        src = np.take(full, index[valid], axis=axis)
        slicer = [slice(None)] * a.ndim
        slicer[axis] = np.flatnonzero(valid)
        out[tuple(slicer)] = src
        return out

    y = one_axis(x, kx, up_x, down_x, pad_x0, pad_x1, axis=3)
    return one_axis(y, ky, up_y, down_y, pad_y0, pad_y1, axis=2)


CASES = [
    # shape, taps_y, taps_x, up, down, pad (x0, x1, y0, y1)
    ((2, 3, 5, 7), 4, 4, (2, 2), (1, 1), (2, 1, 2, 1)),  # StyleGAN upsample
    ((2, 3, 8, 9), 4, 4, (1, 1), (2, 2), (1, 1, 1, 1)),  # downsample
    ((1, 2, 6, 6), 4, 4, (1, 1), (1, 1), (2, 2, 2, 2)),  # blur before a strided conv
    ((3, 2, 7, 5), 3, 5, (3, 2), (2, 3), (1, 4, 0, 2)),  # odd, asymmetric everything
    ((2, 1, 9, 4), 2, 6, (1, 2), (1, 1), (-1, 3, 2, -2)),  # negative pads crop
    ((1, 4, 5, 5), 1, 1, (2, 2), (2, 2), (0, 0, 0, 0)),  # identity round trip
    ((2, 2, 11, 10), 5, 3, (2, 3), (3, 2), (3, 0, -1, 4)),
]


@pytest.mark.parametrize("shape,taps_y,taps_x,up,down,pad", CASES)
def test_upfirdn2d_matches_scipy(shape, taps_y, taps_x, up, down, pad):
    rng = np.random.default_rng(sum(shape) + taps_x * 7 + taps_y)
    x = rng.standard_normal(shape)
    ky, kx = rng.standard_normal(taps_y), rng.standard_normal(taps_x)  # asymmetric: tests the flip
    kernel = torch.from_numpy(np.outer(ky, kx))
    ours = cuda_ops.upfirdn2d(torch.from_numpy(x), kernel, up=up, down=down, pad=pad, impl="ref")
    expected = scipy_upfirdn2d(x, ky, kx, up, down, pad)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_upfirdn2d_argument_forms_agree():
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    k = cuda_ops.make_kernel([1, 3, 3, 1]).double()
    a = cuda_ops.upfirdn2d(x, k, up=2, down=1, pad=(2, 1), impl="ref")
    b = cuda_ops.upfirdn2d(x, k, up=(2, 2), down=(1, 1), pad=(2, 1, 2, 1), impl="ref")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_make_kernel_is_normalised_outer_product():
    k = cuda_ops.make_kernel([1, 3, 3, 1])
    assert k.shape == (4, 4) and abs(float(k.sum()) - 1) < 1e-7
    assert float(k[1, 2]) == pytest.approx(9 / 64)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(x=torch.zeros(2, 3, 4), kernel=torch.ones(2, 2)), "N, C, H, W"),
        (dict(x=torch.zeros(1, 1, 4, 4), kernel=torch.ones(4)), "2-D kernel"),
        (dict(x=torch.zeros(1, 1, 4, 4), kernel=torch.ones(2, 2), up=0), "up must be"),
        (dict(x=torch.zeros(1, 1, 4, 4), kernel=torch.ones(2, 2), pad=(1, 2, 3)), "pad must be"),
        (dict(x=torch.zeros(1, 1, 2, 2), kernel=torch.ones(4, 4)), "output would be"),
        (dict(x=torch.zeros(1, 1, 4, 4, dtype=torch.int64), kernel=torch.ones(2, 2)), "floating"),
        (dict(x=torch.zeros(1, 1, 4, 4), kernel=torch.ones(2, 2), impl="fast"), "impl must be"),
    ],
)
def test_upfirdn2d_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cuda_ops.upfirdn2d(**kwargs)


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5), (2, 4, 3, 5)])
@pytest.mark.parametrize("slope,scale,with_bias", [(0.2, 2**0.5, True), (0.0, 1.0, True), (0.5, 3.0, False)])
def test_fused_leaky_relu_matches_numpy(shape, slope, scale, with_bias):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    b = rng.standard_normal(shape[1])
    v = x + b.reshape(1, -1, *([1] * (len(shape) - 2))) if with_bias else x
    expected = np.where(v > 0, v, v * slope) * scale
    bias = torch.from_numpy(b) if with_bias else None
    ours = cuda_ops.fused_leaky_relu(torch.from_numpy(x), bias, slope, scale, impl="ref")
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_fused_leaky_relu_rejects_bad_arguments():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="bias must have shape"):
        cuda_ops.fused_leaky_relu(x, torch.zeros(4))
    with pytest.raises(ValueError, match="negative_slope >= 0"):
        cuda_ops.fused_leaky_relu(x, None, negative_slope=-0.1)
    with pytest.raises(ValueError, match="scale > 0"):
        cuda_ops.fused_leaky_relu(x, None, scale=0.0)
    with pytest.raises(ValueError, match="N, C"):
        cuda_ops.fused_leaky_relu(torch.zeros(3))


def test_fused_leaky_relu_module_learns_its_bias():
    layer = cuda_ops.FusedLeakyReLU(3, bias_init=0.1)
    x = torch.randn(2, 3, 4, 4)
    out = layer(x)
    torch.testing.assert_close(out, cuda_ops.fused_leaky_relu(x, torch.full((3,), 0.1)))
    out.sum().backward()
    assert layer.bias.grad is not None and layer.bias.grad.shape == (3,)
    assert "channels=3" in repr(layer)


def test_spec_vectors_pass_and_the_check_can_fail(monkeypatch):
    assert ops_check.reference_vectors() == []
    monkeypatch.setattr(cuda_ops, "fused_leaky_relu", lambda *a, **k: torch.zeros(2, 2))
    failures = ops_check.reference_vectors()
    assert failures and failures[0].startswith("fused_leaky_relu")


def test_gradcheck_reference_ops():
    x = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 4, dtype=torch.float64)
    fn = lambda t: cuda_ops.upfirdn2d(t, k, up=(2, 1), down=(1, 2), pad=(2, 1, 1, 2), impl="ref")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    # Keep inputs away from the kink at 0, where finite differences are meaningless.
    v = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    v = (v + 0.2 * v.sign()).requires_grad_(True)
    b = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    act = lambda t, bias: cuda_ops.fused_leaky_relu(t, bias, 0.2, 2**0.5, impl="ref")  # noqa: E731
    assert torch.autograd.gradcheck(act, (v, b))
    assert torch.autograd.gradgradcheck(act, (v, b))
