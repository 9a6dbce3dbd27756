"""The CUDA path's custom autograd Functions, driven by a reference backend on the CPU.

The kernels only compute forwards; every derivative of the CUDA path comes from
these Functions (adjoint pads for upfirdn2d, the output-sign mask for the
activation). Here they must agree with native autograd of the reference ops and
pass gradcheck / gradgradcheck, so their algebra is verified without a GPU.
"""

import pytest
import torch
from ops_backends import ReferenceBackend

from cuda_ops.fused_act import _FusedLeakyReLUKernel
from cuda_ops.reference import fused_leaky_relu_ref, upfirdn2d_ref
from cuda_ops.upfirdn2d import _UpFirDn2dKernel

UPFIRDN_CASES = [
    ((2, 2, 5, 6), (4, 4), (2, 2), (1, 1), (2, 1, 2, 1)),
    ((1, 3, 8, 7), (4, 4), (1, 1), (2, 2), (1, 1, 1, 1)),
    ((2, 1, 6, 6), (4, 4), (1, 1), (1, 1), (2, 2, 2, 2)),
    ((1, 2, 7, 5), (3, 5), (3, 2), (2, 3), (1, 4, 0, 2)),
    ((2, 1, 9, 6), (2, 6), (1, 2), (1, 1), (-1, 3, 2, -2)),
    ((1, 1, 10, 9), (5, 3), (2, 3), (3, 2), (6, 0, -1, 4)),  # pad beyond the kernel
]


@pytest.mark.parametrize("shape,ksize,up,down,pad", UPFIRDN_CASES)
def test_upfirdn2d_function_derivatives(shape, ksize, up, down, pad):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, dtype=torch.float64, generator=gen, requires_grad=True)
    k = torch.randn(ksize, dtype=torch.float64, generator=gen)

    def custom(t):
        return _UpFirDn2dKernel.apply(t, k, up, down, pad, ReferenceBackend)

    def native(t):
        return upfirdn2d_ref(t, k, up, down, pad)

    y_custom, y_native = custom(x), native(x)
    torch.testing.assert_close(y_custom, y_native)
    g = torch.randn_like(y_native)
    (gc,) = torch.autograd.grad(y_custom, x, g, create_graph=True)
    (gn,) = torch.autograd.grad(y_native, x, g, create_graph=True)
    torch.testing.assert_close(gc, gn)
    # Second order: the derivative of <grad_x, w> w.r.t. the upstream gradient g.
    g.requires_grad_(True)
    w = torch.randn_like(x)
    (ggc,) = torch.autograd.grad(torch.autograd.grad(custom(x), x, g, create_graph=True)[0], g, w)
    (ggn,) = torch.autograd.grad(torch.autograd.grad(native(x), x, g, create_graph=True)[0], g, w)
    torch.testing.assert_close(ggc, ggn)
    assert torch.autograd.gradcheck(custom, (x,))
    assert torch.autograd.gradgradcheck(custom, (x,))


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 4), (2, 3, 7)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_leaky_relu_function_derivatives(shape, with_bias):
    gen = torch.Generator().manual_seed(len(shape))
    x = torch.randn(shape, dtype=torch.float64, generator=gen)
    x = (x + 0.2 * x.sign()).requires_grad_(True)  # away from the kink
    b = (0.05 * torch.randn(shape[1], dtype=torch.float64, generator=gen)).requires_grad_(True)
    bias = b if with_bias else None
    inputs = (x, b) if with_bias else (x,)

    def custom(t, *rest):
        return _FusedLeakyReLUKernel.apply(t, rest[0] if rest else None, 0.2, 1.5, ReferenceBackend)

    def native(t, *rest):
        return fused_leaky_relu_ref(t, rest[0] if rest else None, 0.2, 1.5)

    torch.testing.assert_close(custom(*inputs), native(*inputs))
    w = torch.randn(shape, dtype=torch.float64, generator=gen)
    grads_c = torch.autograd.grad((custom(*inputs) * w).sum(), inputs)
    grads_n = torch.autograd.grad((native(*inputs) * w).sum(), inputs)
    for a, b_ in zip(grads_c, grads_n):
        torch.testing.assert_close(a, b_)
    assert bias is None or grads_c[1].shape == (shape[1],)
    assert torch.autograd.gradcheck(custom, inputs)
    assert torch.autograd.gradgradcheck(custom, inputs)
