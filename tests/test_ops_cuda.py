"""CUDA kernels against the reference: forward, backward and double backward.

GPU-only (marked ``cuda``, skipped without one). fp32 must agree within 1e-5
(relative, over the whole tensor); half types within their rounding.
"""

import pytest
import torch

import cuda_ops
from cuda_ops import build

pytestmark = pytest.mark.cuda

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def rel_err(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def random_case(gen):
    """A random upfirdn2d configuration, pads sometimes negative, factors uneven; sizes
    span both kernels (direct below 16x16 outputs, shared-memory tiles above)."""
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (), generator=gen))  # noqa: E731
    kh, kw = r(1, 6), r(1, 6)
    up, down = (r(1, 3), r(1, 3)), (r(1, 3), r(1, 3))
    pad = (r(-1, kw), r(-1, kw), r(-1, kh), r(-1, kh))
    shape = (r(1, 3), r(1, 5), r(kh + 2, 40), r(kw + 2, 40))
    return shape, (kh, kw), up, down, pad


def noncontiguous(t):
    """The same values in a transposed-storage tensor."""
    return t.transpose(-1, -2).contiguous().transpose(-1, -2)


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_upfirdn2d_random_configs(seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    shape, ksize, up, down, pad = random_case(gen)
    x = torch.randn(shape, generator=gen, dtype=dtype).cuda()
    if seed % 2:
        x = noncontiguous(x)
        assert not x.is_contiguous()
    k = torch.randn(ksize, generator=gen, dtype=dtype).cuda()
    results = {}
    for impl in ("ref", "cuda"):
        xi = x.detach().clone().requires_grad_(True)
        y = cuda_ops.upfirdn2d(xi, k, up=up, down=down, pad=pad, impl=impl)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).cuda()
        g.requires_grad_(True)
        (gx,) = torch.autograd.grad(y, xi, g, create_graph=True)
        w = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 99), dtype=dtype).cuda()
        (ggx,) = torch.autograd.grad((gx * w).sum(), g)
        results[impl] = (y, gx, ggx)
    tol = TOLERANCE[dtype]
    for name, ref, got in zip(("forward", "backward", "double backward"), results["ref"], results["cuda"]):
        assert got.shape == ref.shape, name
        assert rel_err(got, ref) < tol, f"{name}: {rel_err(got, ref):.2e} for {shape, ksize, up, down, pad}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_upfirdn2d_half_types(dtype):
    k = cuda_ops.make_kernel([1, 3, 3, 1]).cuda()
    x = torch.randn(4, 32, 16, 16, device="cuda")
    for kwargs in (dict(up=2, pad=(2, 1)), dict(down=2, pad=(1, 1)), dict(pad=(2, 2))):
        ref = cuda_ops.upfirdn2d(x, k, impl="ref", **kwargs)  # fp32 truth
        got = cuda_ops.upfirdn2d(x.to(dtype), k, impl="cuda", **kwargs)
        assert got.dtype == dtype
        assert rel_err(got, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("shape", [(8, 512), (4, 64, 16, 16), (3, 7, 5), (2, 3, 4, 5, 6)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_leaky_relu_parity(shape, dtype, with_bias):
    gen = torch.Generator().manual_seed(len(shape))
    x = torch.randn(shape, generator=gen, dtype=dtype).cuda()
    if len(shape) >= 3:
        x = noncontiguous(x)
    b = torch.randn(shape[1], generator=gen, dtype=dtype).cuda()
    results = {}
    for impl in ("ref", "cuda"):
        xi = x.detach().clone().requires_grad_(True)
        bi = b.detach().clone().requires_grad_(True) if with_bias else None
        y = cuda_ops.fused_leaky_relu(xi, bi, 0.2, 2**0.5, impl=impl)
        inputs = (xi, bi) if with_bias else (xi,)
        w = torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=dtype).cuda()
        grads = torch.autograd.grad((y * w).sum(), inputs, create_graph=True)
        # Double backward: d/dx of <grad_x, v> is zero a.e., d/dw is the mask; take d/dw.
        w.requires_grad_(True)
        (gw,) = torch.autograd.grad(torch.autograd.grad((y * w).sum(), xi, create_graph=True)[0].sum(), w)
        results[impl] = (y, *grads, gw)
    for ref, got in zip(results["ref"], results["cuda"]):
        assert rel_err(got, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_leaky_relu_half_types(dtype):
    x = torch.randn(8, 256, 8, 8, device="cuda")
    b = torch.randn(256, device="cuda")
    ref = cuda_ops.fused_leaky_relu(x, b, impl="ref")
    got = cuda_ops.fused_leaky_relu(x.to(dtype), b.to(dtype), impl="cuda")
    assert got.dtype == dtype and rel_err(got, ref) < TOLERANCE[dtype]


def test_gradcheck_through_kernels():
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    k = torch.randn(4, 3, dtype=torch.float64, device="cuda")
    fn = lambda t: cuda_ops.upfirdn2d(t, k, up=2, down=(1, 2), pad=(1, 2, 2, 1), impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    v = torch.randn(4, 5, 3, dtype=torch.float64, device="cuda")
    v = (v + 0.2 * v.sign()).requires_grad_(True)
    b = torch.zeros(5, dtype=torch.float64, device="cuda", requires_grad=True)
    act = lambda t, bias: cuda_ops.fused_leaky_relu(t, bias, impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(act, (v, b))
    assert torch.autograd.gradgradcheck(act, (v, b))


def test_auto_policy_takes_the_kernels(monkeypatch):
    monkeypatch.setenv("GCGAN_CUDA_OPS", "auto")
    x = torch.randn(2, 4, 8, 8, device="cuda", requires_grad=True)
    y = cuda_ops.upfirdn2d(x, cuda_ops.make_kernel([1, 3, 3, 1]).cuda(), up=2, pad=(2, 1))
    assert "gcgan_upfirdn2d" in type(y.grad_fn).__name__  # the registered operator's backward
    z = cuda_ops.fused_leaky_relu(x, torch.zeros(4, device="cuda"))
    assert "gcgan_fused_bias_act" in type(z.grad_fn).__name__
    assert build.status()["built"] is True
    monkeypatch.setenv("GCGAN_CUDA_OPS", "off")
    y = cuda_ops.upfirdn2d(x, cuda_ops.make_kernel([1, 3, 3, 1]).cuda(), up=2, pad=(2, 1))
    assert "gcgan_upfirdn2d" not in type(y.grad_fn).__name__


def test_upfirdn2d_more_planes_than_one_grid():
    """N * C above the grid's z limit (65535): the tiled kernel loops over planes."""
    x = torch.randn(2, 35000, 16, 16, device="cuda")
    k = cuda_ops.make_kernel([1, 3, 3, 1]).cuda()
    ref = cuda_ops.upfirdn2d(x, k, pad=(2, 2), impl="ref")
    got = cuda_ops.upfirdn2d(x, k, pad=(2, 2), impl="cuda")
    assert rel_err(got, ref) < TOLERANCE[torch.float32]
