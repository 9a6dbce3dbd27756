"""Self-checks of the custom ops, run by ``gcgan doctor``.

- ``reference_vectors()``: the pure-PyTorch ops against hand-checked input/output
  vectors, computed with the original StyleGAN2 ops that GC-GAN uses (if these fail, nothing downstream can be trusted).
- ``cuda_parity(device)``: builds the CUDA kernels on demand and compares their
  forward and backward with the reference on random StyleGAN-like inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

import cuda_ops
from cuda_ops import build as ops_build

_K = cuda_ops.make_kernel([1, 3, 3, 1])


def _vector_cases():
    """Hand-checked vectors (upsample, blur, downsample, bias + leaky ReLU of small inputs): (name, function giving
    the output, {row: expected values})."""
    x9 = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    x16 = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    act_x = torch.tensor([[-1.0, 0.5], [2.0, -3.0]])
    act_b = torch.tensor([0.5, -1.0])
    return [
        (
            "fused_leaky_relu",
            lambda: cuda_ops.fused_leaky_relu(act_x, act_b, impl="ref"),
            {0: [-0.1414, -0.1414], 1: [3.5355, -1.1314]},
        ),
        (
            "upfirdn2d upsample",
            lambda: cuda_ops.upfirdn2d(x9, _K * 4, up=2, pad=(2, 1), impl="ref")[0, 0],
            {
                0: [0.0, 0.1875, 0.5625, 0.9375, 1.3125, 1.125],
                2: [1.6875, 2.5, 3.0, 3.5, 4.0, 3.1875],
                5: [3.375, 4.6875, 5.0625, 5.4375, 5.8125, 4.5],
            },
        ),
        (
            "upfirdn2d blur",
            lambda: cuda_ops.upfirdn2d(x16, _K, pad=(2, 2), impl="ref")[0, 0],
            {0: [0.3125, 0.75, 1.25, 1.4375, 0.9375], 2: [None, None, 7.5, None, None]},
        ),
        (
            "upfirdn2d downsample",
            lambda: cuda_ops.upfirdn2d(x16, _K, down=2, pad=(1, 1), impl="ref")[0, 0],
            {0: [2.7344, 3.9375], 1: [7.5469, 8.75]},
        ),
    ]


def reference_vectors(tolerance: float = 1e-4) -> list[str]:
    """Names of the hand-checked vectors the reference ops fail (empty when all pass)."""
    failures = []
    for name, run, rows in _vector_cases():
        out = run()
        for row, expected in rows.items():
            for col, value in enumerate(expected):
                if value is not None and abs(float(out[row, col]) - value) > tolerance:
                    failures.append(f"{name}[{row},{col}]={float(out[row, col]):.4f}≠{value}")
    return failures


@dataclass
class ParityResult:
    built: bool
    seconds: float | None  # build (or cache load) time
    max_error: float | None  # worst relative error over the compared outputs
    error: str | None  # why the kernels are unavailable


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def cuda_parity(device: torch.device) -> ParityResult:
    """Build (or load) the kernels and compare them with the reference on ``device``."""
    start = time.perf_counter()
    try:
        ops_build.extension(strict=True)
    except cuda_ops.OpsBuildError as exc:
        return ParityResult(False, None, None, str(exc))
    seconds = time.perf_counter() - start
    gen = torch.Generator(device="cpu").manual_seed(0)
    worst = 0.0
    cases = [
        ((2, 8, 9, 7), dict(up=2, pad=(2, 1)), 4.0),
        ((2, 8, 16, 16), dict(pad=(2, 2)), 1.0),
        ((2, 8, 16, 15), dict(down=2, pad=(1, 1)), 1.0),
    ]
    for shape, kwargs, gain in cases:
        x = torch.randn(shape, generator=gen).to(device)
        grad = torch.randn_like(cuda_ops.upfirdn2d(x, _K, impl="ref", **kwargs))
        outs = []
        for impl in ("ref", "cuda"):
            xi = x.clone().requires_grad_(True)
            y = cuda_ops.upfirdn2d(xi, _K * gain, impl=impl, **kwargs)
            (gx,) = torch.autograd.grad(y, xi, grad)
            outs.append((y, gx))
        worst = max(worst, *(_relative_error(c, r) for r, c in zip(outs[0], outs[1])))
    x = torch.randn(4, 16, 8, 8, generator=gen).to(device)
    b = torch.randn(16, generator=gen).to(device)
    outs = []
    for impl in ("ref", "cuda"):
        xi, bi = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        y = cuda_ops.fused_leaky_relu(xi, bi, impl=impl)
        gx, gb = torch.autograd.grad(y.square().sum(), (xi, bi))
        outs.append((y, gx, gb))
    worst = max(worst, *(_relative_error(c, r) for r, c in zip(outs[0], outs[1])))
    return ParityResult(True, seconds, worst, None)
