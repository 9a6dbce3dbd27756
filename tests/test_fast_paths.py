"""The faster CPU paths against their definitions: values, first and second derivatives.

The networks run their layers in a folded form (activation gain and bias inside the convolution,
the residual 1/sqrt(2) in the weights, the skip path's blur only where the strided 1x1 reads,
upsampling as a transposed convolution, all local generators as one batched product). Here each
layer is also written literally from the reference ops in `cuda_ops.reference`, the networks are
run both ways on the same weights, and everything must agree: 1e-12 in float64, 1e-5 in float32,
for the outputs, the gradients, and the gradients of gradients that R1 and the path-length
regulariser take.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
import torch.nn.functional as F

import cuda_ops
from cuda_ops.native import upfirdn2d_native
from cuda_ops.reference import fused_leaky_relu_ref, upfirdn2d_ref
from gcgan_cli.core.model import Discriminator, Generator, layers, preset
from gcgan_cli.core.model.generator import LocalGenerator
from tests.test_ops_reference import CASES

SQRT2 = math.sqrt(2)


def _pad4(pad):
    return (pad[0], pad[1], pad[0], pad[1])


def literal_fixed_styled_conv(self, x, noise=None, bias=None):
    weight = self.weight * self.modulation * self.scale
    if self.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
    if self.upsample:
        x = upfirdn2d_ref(
            F.conv_transpose2d(x, weight.transpose(0, 1), stride=2),
            self.blur.kernel,
            (1, 1),
            (1, 1),
            _pad4(self.blur.pad),
        )
    else:
        x = F.conv2d(x, weight, padding=self.padding)
    if self.noise is not None:
        x = x + self.noise.weight * (self.noise.draw(x) if noise is None else noise)
    if bias is not None:
        x = x + bias[None, :, None, None]
    return fused_leaky_relu_ref(x, self.activate.bias, 0.2, SQRT2) if self.activate is not None else x


def literal_to_rgb(self, x, skip=None):
    out = literal_fixed_styled_conv(self.conv, x) + self.bias
    if skip is None:
        return out
    return out + upfirdn2d_ref(skip, self.upsample.kernel, (2, 2), (1, 1), (2, 1, 2, 1))


def literal_conv_layer(self, x, gain=1.0):
    """Blur (every sample), EqualConv2d (stride 2 when downsampling), fused leaky ReLU."""
    assert gain == 1.0  # the literal ResBlock divides by sqrt(2) itself
    stride = 1
    for module in self:
        if isinstance(module, layers.Blur):
            x = upfirdn2d_ref(x, module.kernel, (1, 1), (1, 1), _pad4(module.pad))
            stride = 2
        elif isinstance(module, layers.EqualConv2d):
            x = F.conv2d(x, module.weight * module.scale, stride=stride, padding=module.padding)
        else:
            x = fused_leaky_relu_ref(x, module.bias, 0.2, SQRT2)
    return x


def literal_res_block(self, x):
    return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


def literal_local_fields(self, latent, gaze):
    """Class by class through LocalGenerator.forward."""
    latent, rows = self.expand(latent), self.config.local_layers
    if gaze is not None:
        gaze = (gaze.to(self.gaze_mean.dtype) - self.gaze_mean) / self.gaze_std
    embedding = self.pos_embed(self.grid)
    outputs = [net(embedding, latent[:, c * rows : (c + 1) * rows], gaze) for c, net in enumerate(self.local_nets)]
    depths = torch.cat([depth.expand(latent.shape[0], -1, -1, -1) for depth, _ in outputs], dim=1)
    return depths, torch.stack([features for _, features in outputs])


def literal_composed_fields(self, latent, gaze, composition_mask=None):
    """Each class's features times its mask, summed over the classes."""
    depths, features = literal_local_fields(self, latent, gaze)
    seg = depths.softmax(dim=1)
    if composition_mask is not None:
        seg = seg * composition_mask[:, :, None, None]
        seg = seg / (seg.sum(dim=1, keepdim=True) + 1e-8)
    return depths, seg, (features * seg.transpose(0, 1)[:, :, None]).sum(dim=0)


def literal(monkeypatch):
    """Every folded layer replaced by its literal form."""
    monkeypatch.setattr(layers.FixedStyledConv, "forward", literal_fixed_styled_conv)
    monkeypatch.setattr(layers.ToRGB, "forward", literal_to_rgb)
    monkeypatch.setattr(layers.ConvLayer, "forward", literal_conv_layer)
    monkeypatch.setattr(layers.ResBlock, "forward", literal_res_block)
    monkeypatch.setattr(Generator, "local_fields", literal_local_fields)
    monkeypatch.setattr(Generator, "composed_fields", literal_composed_fields)


def networks(dtype):
    torch.manual_seed(0)
    config = preset("tiny", d_gaze_head=8)
    g, d = Generator(config).to(dtype), Discriminator(config, gaze=True).to(dtype)
    for module in (g, d):  # non-zero noise strengths and biases, so that every term is exercised
        for name, p in module.named_parameters():
            if name.endswith(("noise.weight", "bias")):
                p.data.normal_(0, 0.3)
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(3, config.style_dim, generator=generator, dtype=dtype)
    gaze = (torch.rand(3, 2, generator=generator, dtype=dtype) - 0.5) * 0.6
    return g, d, z, gaze


def run(g, d, z, gaze):
    """Outputs, then parameter gradients of a G + D loss with an R1 term and a path-length term:
    the second derivatives the regularisers take through both networks."""
    for p in (*g.parameters(), *d.parameters()):
        p.grad = None
    noise = g.render_net.fixed_noise()
    latent = g.latent_of(z).detach().requires_grad_(True)
    out = g(latent, gaze, noise=[n.to(z.dtype) for n in noise], input_is_latent=True)
    logits, gaze_estimate = d(out.image, out.seg, gaze, estimate_gaze=True)
    (path,) = torch.autograd.grad(
        (out.image * torch.linspace(-1, 1, out.image.numel(), dtype=z.dtype).view_as(out.image)).sum(),
        latent,
        create_graph=True,
    )
    real = out.image.detach().requires_grad_(True)
    seg = out.seg.detach().requires_grad_(True)
    (r1_image, r1_seg) = torch.autograd.grad(d(real, seg, gaze).sum(), (real, seg), create_graph=True)
    loss = (
        logits.sum()
        + gaze_estimate.square().sum()
        + path.square().sum()
        + r1_image.square().sum()
        + r1_seg.square().sum()
    )
    loss.backward()
    values = {"image": out.image, "seg": out.seg, "depths": out.depths, "logits": logits, "path": path, "r1": r1_image}
    grads = {f"g.{n}": p.grad for n, p in g.named_parameters() if p.grad is not None}
    grads |= {f"d.{n}": p.grad for n, p in d.named_parameters() if p.grad is not None}
    return {k: v.detach().clone() for k, v in values.items()}, {k: v.clone() for k, v in grads.items()}


@pytest.mark.parametrize(
    "dtype,tolerance", [pytest.param(torch.float64, 1e-12, marks=pytest.mark.slow), (torch.float32, 1e-5)]
)
def test_networks_equal_their_literal_form(monkeypatch, dtype, tolerance):
    fast_values, fast_grads = run(*networks(dtype))
    with monkeypatch.context() as patch:
        literal(patch)
        values, grads = run(*networks(dtype))
    assert set(fast_grads) == set(grads) and len(grads) > 50
    for name in values:
        scale = values[name].abs().max().item()
        torch.testing.assert_close(fast_values[name], values[name], rtol=tolerance, atol=tolerance * scale, msg=name)
    for name in grads:
        scale = grads[name].abs().max().item()
        torch.testing.assert_close(
            fast_grads[name], grads[name], rtol=tolerance, atol=tolerance * max(scale, 1e-3), msg=name
        )


def test_local_fields_are_the_local_generators_class_by_class():
    torch.manual_seed(0)
    g = Generator(preset("tiny")).double()
    latent = g.latent_of(torch.randn(4, g.config.style_dim, dtype=torch.float64))
    gaze = torch.rand(4, 2, dtype=torch.float64) * 0.4 - 0.2
    depths, features = g.local_fields(latent, gaze)
    expected_depths, expected_features = literal_local_fields(g, latent, gaze)
    torch.testing.assert_close(depths, expected_depths, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(features, expected_features, rtol=1e-12, atol=1e-12)
    assert isinstance(g.local_nets[0], LocalGenerator) and torch.equal(depths[:, 0], torch.zeros_like(depths[:, 0]))


@pytest.mark.parametrize("composed", [False, True])
def test_composed_fields_are_the_mask_weighted_sum_of_the_class_features(composed):
    """The one product over the hidden layers against features * masks summed, values and gradients (fp64)."""
    torch.manual_seed(0)
    g = Generator(preset("tiny")).double()
    for head in (net.to_feat for net in g.local_nets):
        head.bias.data.normal_(0, 0.3)  # the bias term is exercised too
    latent = g.latent_of(torch.randn(4, g.config.style_dim, dtype=torch.float64)).detach().requires_grad_(True)
    gaze = torch.rand(4, 2, dtype=torch.float64) * 0.4 - 0.2
    mask = torch.tensor([[1, 0, 1, 1, 0, 1]] * 4, dtype=torch.float64) if composed else None
    results = []
    for fields in (Generator.composed_fields, literal_composed_fields):
        g.zero_grad()
        latent.grad = None
        depths, seg, feat = fields(g, latent, gaze, mask)
        (feat * torch.linspace(-1, 1, feat.numel(), dtype=torch.float64).view_as(feat)).sum().backward()
        results.append([depths, seg, feat, latent.grad, *(p.grad for p in g.parameters() if p.grad is not None)])
    assert len(results[0]) == len(results[1]) > 20
    for fast, reference in zip(*results):
        torch.testing.assert_close(fast, reference, rtol=1e-10, atol=1e-12)


NATIVE_CASES = CASES + [
    ((2, 3, 6, 5), 4, 4, (1, 1), (1, 1), (1, 1, 2, 2)),  # the blur of a transposed convolution
    ((2, 3, 8, 8), 4, 4, (1, 1), (2, 2), (1, 1, 1, 1)),  # the blur of a strided 1x1 convolution
    ((1, 2, 5, 6), 3, 2, (2, 3), (1, 1), (1, 1, 2, 2)),  # an upsampling cropped equally on both sides
]


@pytest.mark.parametrize("shape,taps_y,taps_x,up,down,pad", NATIVE_CASES)
def test_native_upfirdn2d_equals_the_reference(shape, taps_y, taps_x, up, down, pad):
    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, dtype=torch.float64, generator=generator, requires_grad=True)
    kernel = torch.randn(taps_y, taps_x, dtype=torch.float64, generator=generator)  # asymmetric: tests the flip
    native, ref = upfirdn2d_native(x, kernel, up, down, pad), upfirdn2d_ref(x, kernel, up, down, pad)
    torch.testing.assert_close(native, ref, rtol=1e-12, atol=1e-12)
    weight = torch.randn_like(ref)
    (grad_native,) = torch.autograd.grad((native * weight).sum(), x, create_graph=True)
    (grad_ref,) = torch.autograd.grad((ref * weight).sum(), x, create_graph=True)
    torch.testing.assert_close(grad_native, grad_ref, rtol=1e-12, atol=1e-12)
    fn = lambda t: upfirdn2d_native(t, kernel, up, down, pad)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,)) and torch.autograd.gradgradcheck(fn, (x,))


def test_the_public_op_takes_the_native_path_on_the_cpu_and_ref_on_request(monkeypatch):
    calls = []
    module = importlib.import_module("cuda_ops.upfirdn2d")  # the package's `upfirdn2d` is the function
    monkeypatch.setattr(module, "upfirdn2d_native", lambda *a: calls.append("native") or a[0])
    x, kernel = torch.randn(1, 2, 4, 4), cuda_ops.make_kernel([1, 3, 3, 1])
    cuda_ops.upfirdn2d(x, kernel, up=2, pad=(2, 1))
    assert calls == ["native"]
    cuda_ops.upfirdn2d(x, kernel, up=2, pad=(2, 1), impl="ref")
    assert calls == ["native"]
