"""The registered operators (`cuda_ops.library`) on the CPU, where their kernels are the reference
twins' forwards.

The CUDA kernels only compute forwards; every derivative of the CUDA path comes from the formulas
registered with the operators (adjoint pads for upfirdn2d, the output-sign mask for the
activation). Here they must agree with native autograd of the reference ops and pass gradcheck /
gradgradcheck, and `torch.library.opcheck` checks the schema, the fake kernels, the autograd
registration and AOT dispatch, so the registration is verified without a GPU.
"""

import pytest
import torch

from cuda_ops import library
from cuda_ops.reference import fused_leaky_relu_ref, upfirdn2d_ref

UPFIRDN_CASES = [
    ((2, 2, 5, 6), (4, 4), (2, 2), (1, 1), (2, 1, 2, 1)),
    ((1, 3, 8, 7), (4, 4), (1, 1), (2, 2), (1, 1, 1, 1)),
    ((2, 1, 6, 6), (4, 4), (1, 1), (1, 1), (2, 2, 2, 2)),
    ((1, 2, 7, 5), (3, 5), (3, 2), (2, 3), (1, 4, 0, 2)),
    ((2, 1, 9, 6), (2, 6), (1, 2), (1, 1), (-1, 3, 2, -2)),
    ((1, 1, 10, 9), (5, 3), (2, 3), (3, 2), (6, 0, -1, 4)),  # pad beyond the kernel
]


def away_from_the_kink(shape, gen):
    x = torch.randn(shape, dtype=torch.float64, generator=gen)
    return x + 0.2 * x.sign()


@pytest.mark.parametrize("shape,ksize,up,down,pad", UPFIRDN_CASES)
def test_upfirdn2d_op_derivatives(shape, ksize, up, down, pad):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, dtype=torch.float64, generator=gen, requires_grad=True)
    k = torch.randn(ksize, dtype=torch.float64, generator=gen)

    def custom(t):
        return torch.ops.gcgan.upfirdn2d(t, k, up, down, pad)

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
def test_fused_bias_act_op_derivatives(shape, with_bias):
    gen = torch.Generator().manual_seed(len(shape))
    x = away_from_the_kink(shape, gen).requires_grad_(True)
    b = (0.05 * torch.randn(shape[1], dtype=torch.float64, generator=gen)).requires_grad_(True)
    bias = b if with_bias else None
    inputs = (x, b) if with_bias else (x,)

    def custom(t, *rest):
        return torch.ops.gcgan.fused_bias_act(t, rest[0] if rest else None, 0.2, 1.5)

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


def opcheck_cases():
    """(operator, args) with float32 and float64 inputs, contiguous or not, with and without bias."""
    gen = torch.Generator().manual_seed(0)
    cases = []
    for dtype in (torch.float32, torch.float64):
        for shape, ksize, up, down, pad in UPFIRDN_CASES[:4]:
            x = torch.randn(shape, dtype=dtype, generator=gen).requires_grad_(True)
            k = torch.randn(ksize, dtype=dtype, generator=gen)
            cases.append((torch.ops.gcgan.upfirdn2d.default, (x, k, up, down, pad)))
        x = away_from_the_kink((2, 3, 5, 4), gen).to(dtype).transpose(2, 3).requires_grad_(True)
        b = torch.randn(3, dtype=dtype, generator=gen).requires_grad_(True)
        cases.append((torch.ops.gcgan.fused_bias_act.default, (x, b, 0.2, 2**0.5)))
        cases.append((torch.ops.gcgan.fused_bias_act.default, (x, None, 0.1, 1.5)))
        out = library.fused_bias_act(x.detach(), None, 0.2, 2**0.5)
        grad = torch.randn(out.shape, dtype=dtype, generator=gen).requires_grad_(True)
        cases.append((torch.ops.gcgan.fused_bias_act_grad.default, (grad, out, 0.2, 2**0.5)))
    return cases


@pytest.mark.parametrize("op,args", opcheck_cases(), ids=lambda v: getattr(v, "_opname", ""))
def test_opcheck(op, args):
    """Schema, fake kernel (its shapes, dtypes and strides against the CPU kernel's), the autograd
    registration, and AOT dispatch with dynamic shapes."""
    torch.library.opcheck(op, args)


def test_fake_kernels_give_the_shapes_on_the_meta_device():
    x = torch.empty(2, 3, 17, 9, device="meta")
    k = torch.empty(4, 4, device="meta")
    y = torch.ops.gcgan.upfirdn2d(x, k, (2, 1), (1, 2), (2, 1, 0, 3))
    assert y.shape == (2, 3, (17 + 0 + 3 - 4) // 2 + 1, 9 * 2 + 2 + 1 - 4 + 1) and y.device.type == "meta"
    assert torch.ops.gcgan.fused_bias_act(x, torch.empty(3, device="meta"), 0.2, 1.0).shape == x.shape
    assert torch.ops.gcgan.fused_bias_act_grad(x, x, 0.2, 1.0).shape == x.shape
