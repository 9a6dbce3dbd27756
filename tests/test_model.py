"""The GC-GAN generator and discriminators: parity with the reference's parameter counts,
the latent layout, where gaze enters, composition, truncation, mixing, determinism, double
backward for the regularisers, checkpoint round trip, and CUDA ops vs the reference (GPU)."""

import json

import numpy as np
import pytest
import torch

from gcgan_cli.checkpoint import load_checkpoint, save_checkpoint
from gcgan_cli.core.model import Discriminator, Generator, ModelConfig, preset
from gcgan_cli.core.model.discriminator import minibatch_stddev
from gcgan_cli.core.model.generator import expansion_rows
from gcgan_cli.errors import UsageError

TINY = preset("tiny")


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def tiny_g():
    torch.manual_seed(0)
    return Generator(TINY).eval()


def inputs(batch=4, seed=1, config=TINY):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, config.style_dim, generator=generator)
    gaze = (torch.rand(batch, 2, generator=generator) - 0.5) * torch.tensor([1.0, 2.0])
    return z, gaze


@pytest.mark.slow
def test_parameter_counts_match_the_reference_at_ref256():
    config = preset("ref256")
    torch.manual_seed(0)
    g, d_gaze, d_plain = Generator(config), Discriminator(config, gaze=True), Discriminator(config, gaze=False)
    assert count(g) == 17_456_689 and count(d_gaze) == 51_201_857 and count(d_plain) == 51_168_897
    assert (count(g.style), count(g.pos_embed), count(g.render_net)) == (2_101_248, 2_176, 12_850_732)
    assert [count(net) for net in g.local_nets] == [403_264, 403_393, 444_545, 403_393, 403_393, 444_545]
    assert config.gaze_ids == (2, 5) and config.n_latent == 14 and config.n_latent_expand == 60
    # The count at the reference class's own default min_feat_size (its CLI's, and ref256's, is 16).
    assert count(Generator(preset("ref256", min_feat_size=8))) == 22_182_972


def test_latent_expansion_follows_the_reference_table():
    rows = expansion_rows(preset("ref256"))
    assert rows[:10] == [2, 2, 2, 2, 2, 2, 3, 3, 3, 3]  # background: shape for the depth layers, then texture
    for c in range(1, 6):
        assert rows[10 * c : 10 * c + 10] == [0, 1] + [2 + 2 * c] * 4 + [3 + 2 * c] * 4


def test_shapes_ranges_and_segmentation_probabilities(tiny_g):
    z, gaze = inputs()
    out = tiny_g(z, gaze)
    size, coarse, seg_dim = TINY.size, TINY.coarse_size, TINY.seg_dim
    assert out.image.shape == (4, 3, size, size) and out.seg.shape == (4, seg_dim, size, size)
    assert out.seg_coarse.shape == out.depths.shape == (4, seg_dim, coarse, coarse)
    assert out.latent.shape == (4, TINY.n_latent_expand, TINY.style_dim)
    assert torch.isfinite(out.image).all() and torch.isfinite(out.seg).all()
    assert out.seg_coarse.min() >= -1 and out.seg_coarse.max() <= 1
    probabilities = (out.seg_coarse + 1) / 2
    assert torch.allclose(probabilities.sum(1), torch.ones(4, coarse, coarse), atol=1e-5)
    assert torch.equal(out.depths[:, 0], torch.zeros(4, coarse, coarse))  # the background has no depth head


def test_gaze_moves_only_the_gaze_classes(tiny_g):
    z, gaze = inputs()
    latent = tiny_g.latent_of(z)
    with torch.no_grad():
        before = tiny_g.local_outputs(latent, gaze)
        after = tiny_g.local_outputs(latent, gaze + torch.tensor([0.3, -0.4]))
    for c, ((d0, f0), (d1, f1)) in enumerate(zip(before, after)):
        if c in TINY.gaze_ids:
            assert not torch.allclose(f0, f1) and not torch.allclose(d0, d1), TINY.class_names[c]
        else:
            assert torch.equal(f0, f1) and torch.equal(d0, d1), TINY.class_names[c]
    with pytest.raises(ValueError, match="gaze-conditioned"):
        tiny_g(z, None)


def test_a_class_latent_moves_only_its_own_local_generator(tiny_g):
    z, gaze = inputs()
    compact = tiny_g.compact(tiny_g.mapping(z)).clone()
    nose = TINY.class_names.index("nose")
    changed = compact.clone()
    changed[:, TINY.base_layers + 2 * nose : TINY.base_layers + 2 * nose + 2] += 1.0
    with torch.no_grad():
        before, after = tiny_g.local_outputs(compact, gaze), tiny_g.local_outputs(changed, gaze)
    for c, ((d0, f0), (d1, f1)) in enumerate(zip(before, after)):
        assert torch.equal(f0, f1) == (c != nose) and torch.equal(d0, d1) == (c != nose)


def test_truncation_zero_gives_the_mean_latent_image(tiny_g):
    z, gaze = inputs()
    mean = tiny_g.mean_latent(256, generator=torch.Generator().manual_seed(3))
    noise = tiny_g.render_net.fixed_noise()
    with torch.no_grad():
        truncated = tiny_g(z, gaze, truncation=0.0, truncation_latent=mean, noise=noise).image
        centre = tiny_g.synthesize(tiny_g.expand(mean.expand(4, -1)), gaze, noise).image
    assert torch.allclose(truncated, centre, atol=1e-6)
    with pytest.raises(ValueError, match="truncation_latent"):
        tiny_g(z, gaze, truncation=0.5)


def test_same_seed_same_output():
    def build_and_run():
        torch.manual_seed(7)
        g = Generator(TINY)
        z, gaze = inputs(seed=2)
        with torch.no_grad():
            return g(z, gaze, randomize_noise=False).image

    assert torch.equal(build_and_run(), build_and_run())


def test_style_mixing_takes_rows_from_both_codes(tiny_g):
    a, b = torch.zeros(64, TINY.n_latent, 1), torch.ones(64, TINY.n_latent, 1)
    mixed = tiny_g.mix(a, b, torch.Generator().manual_seed(0))[..., 0]
    base = TINY.base_layers
    assert torch.equal(mixed[:, :base], torch.zeros(64, base))
    shape, texture = mixed[:, base::2], mixed[:, base + 1 :: 2]
    assert (shape <= texture).all()  # shape from b implies texture from b: (0,0), (0,1), (1,1) only
    assert {(int(s), int(t)) for s, t in zip(shape.flatten(), texture.flatten())} == {(0, 0), (0, 1), (1, 1)}
    z1, z2 = torch.randn(2, TINY.style_dim), torch.randn(2, TINY.style_dim)
    assert tiny_g.latent_of([z1, z2]).shape == (2, TINY.n_latent_expand, TINY.style_dim)


def test_class_images_render_each_part_alone(tiny_g):
    z, gaze = inputs(batch=2)
    with torch.no_grad():
        parts = tiny_g.class_images(tiny_g.latent_of(z), gaze)
    assert parts.shape == (2, TINY.seg_dim, 3, TINY.size, TINY.size)
    assert not torch.allclose(parts[:, 1], parts[:, 2])


@pytest.mark.slow
def test_double_backward_for_path_length_and_r1(tiny_g):
    g = Generator(TINY)
    z, gaze = inputs()
    latent = g.latent_of(z).detach().requires_grad_(True)
    image = g.synthesize(latent, gaze).image
    noise = torch.randn_like(image) / TINY.size
    (grad,) = torch.autograd.grad((image * noise).sum(), latent, create_graph=True)
    path_lengths = grad.pow(2).sum(2).mean(1).sqrt()
    path_lengths.mean().backward()
    assert all(p.grad is not None for p in g.local_nets[1].parameters())
    assert g.render_net.convs[0].weight.grad.abs().sum() > 0

    d = Discriminator(TINY, gaze=True)
    real = torch.rand(4, 3, TINY.size, TINY.size, requires_grad=True)
    mask = torch.rand(4, TINY.seg_dim, TINY.size, TINY.size, requires_grad=True)
    logits = d(real, mask, gaze)
    grad_img, grad_seg = torch.autograd.grad(logits.sum(), [real, mask], create_graph=True)
    penalty = 10 / 2 * grad_img.pow(2).flatten(1).sum(1).mean() + 1000 / 2 * grad_seg.pow(2).flatten(1).sum(1).mean()
    penalty.backward()
    assert d.convs_seg[0][0].weight.grad.abs().sum() > 0 and d.final_linear[0].weight.grad.abs().sum() > 0


def test_discriminators_with_and_without_gaze():
    z, gaze = inputs(batch=6)  # 6: the minibatch-stddev group becomes 3 (the reference failed here)
    image = torch.rand(6, 3, TINY.size, TINY.size) * 2 - 1
    seg = torch.rand(6, TINY.seg_dim, TINY.size, TINY.size) * 2 - 1
    conditioned, plain = Discriminator(TINY, gaze=True), Discriminator(TINY, gaze=False)
    assert conditioned(image, seg, gaze).shape == plain(image, seg).shape == (6, 1)
    assert not torch.allclose(conditioned(image, seg, gaze), conditioned(image, seg, -gaze))
    with pytest.raises(ValueError, match="gaze-conditioned"):
        conditioned(image, seg)
    assert plain(image, None).shape == (6, 1)


@pytest.mark.parametrize("conditioning", ["concat", "projection"])
def test_several_gazes_of_the_same_images_score_as_separate_calls(conditioning):
    """D(x, gaze [K, B, 2]) shares the convolutions: logits and every gradient equal K separate calls."""
    config = preset("tiny", d_conditioning=conditioning, d_gaze_head=8)
    torch.manual_seed(0)
    d = Discriminator(config, gaze=True).double()
    image = torch.rand(4, 3, config.size, config.size, dtype=torch.float64) * 2 - 1
    seg = torch.rand(4, config.seg_dim, config.size, config.size, dtype=torch.float64) * 2 - 1
    gazes = torch.randn(2, 4, 2, dtype=torch.float64) * 0.3

    def scores(joint: bool):
        d.zero_grad()
        x = image.clone().requires_grad_(True)
        if joint:
            logits, estimate = d(x, seg, gazes, estimate_gaze=True)
        else:
            logits = torch.stack([d(x, seg, g) for g in gazes])
            estimate = d(x, seg, gazes[0], estimate_gaze=True)[1]
        (logits * torch.tensor([1.0, -2.0], dtype=torch.float64)[:, None, None]).sum().backward()
        return (
            logits.detach(),
            estimate.detach(),
            x.grad,
            [p.grad.clone() for p in d.parameters() if p.grad is not None],
        )

    joint, separate = scores(True), scores(False)
    assert joint[0].shape == (2, 4, 1) and not torch.allclose(joint[0][0], joint[0][1])
    for a, b in zip(joint[:3], separate[:3]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert len(joint[3]) == len(separate[3])
    for a, b in zip(joint[3], separate[3]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_minibatch_stddev_against_numpy():
    x = torch.randn(6, 5, 4, 4)
    out = minibatch_stddev(x).numpy()
    groups = x.numpy().reshape(3, 2, 5, 4, 4)  # group size 3: samples i and i + 2 together
    expected = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))  # per column of the group
    assert out.shape == (6, 6, 4, 4)
    for i in range(6):
        assert np.allclose(out[i, 5], expected[i % 2], atol=1e-6)


def test_config_round_trips_through_a_checkpoint(tmp_path, tiny_g):
    save_checkpoint(tmp_path / "g.pt", {"config": {"model": TINY.to_dict()}, "g": tiny_g.state_dict()})
    record = load_checkpoint(tmp_path / "g.pt")
    config = ModelConfig.from_dict(json.loads(json.dumps(record["config"]["model"])))
    assert config == TINY
    rebuilt = Generator(config)
    rebuilt.load_state_dict(record["g"])
    z, gaze = inputs()
    with torch.no_grad():
        assert torch.equal(rebuilt(z, gaze, randomize_noise=False).image, tiny_g(z, gaze, randomize_noise=False).image)


def test_config_errors_are_clear():
    with pytest.raises(UsageError, match="gaze_classes"):
        preset("tiny", gaze_classes=("pupil",))
    with pytest.raises(UsageError, match="power of two"):
        preset("tiny", size=48)
    with pytest.raises(UsageError, match="unknown field"):
        ModelConfig.from_dict({**TINY.to_dict(), "gaze_regression": True})
    with pytest.raises(UsageError, match="--preset"):
        preset("huge")
    with pytest.raises(UsageError, match="both have 6 rows"):
        preset(
            "tiny",
            class_names=("background", "eye"),
            gaze_classes=("eye",),
            local_layers=3,
            base_layers=2,
            depth_layers=3,
        )


def test_gaze_classes_are_configuration():
    config = preset("tiny", gaze_classes=("nose",))
    g = Generator(config)
    assert [net.embed is not None for net in g.local_nets] == [
        c == config.class_names.index("nose") for c in range(config.seg_dim)
    ]


@pytest.mark.cuda
def test_cuda_ops_and_reference_give_the_same_model(monkeypatch):
    torch.manual_seed(0)
    g = Generator(TINY).cuda()
    d = Discriminator(TINY, gaze=True).cuda()
    z, gaze = (t.cuda() for t in inputs())

    def run(policy):
        monkeypatch.setenv("GCGAN_CUDA_OPS", policy)
        g.zero_grad()
        out = g(z, gaze, randomize_noise=False)
        logits = d(out.image, out.seg, gaze)
        logits.sum().backward()
        return (
            out.image.detach().clone(),
            out.seg.detach().clone(),
            logits.detach().clone(),
            g.render_net.convs[0].weight.grad.clone(),
        )

    reference, kernels = run("off"), run("force")
    for a, b in zip(reference, kernels):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_detach_texture_stops_feature_gradients_at_the_depth_layer():
    z, gaze = inputs(batch=2)
    for detach in (False, True):
        g = Generator(preset("tiny", detach_texture=detach))
        _, features = g.local_outputs(g.latent_of(z), gaze)[1]
        features.sum().backward()
        first = g.local_nets[1].linears[0].conv.weight.grad
        assert (first is None or not first.abs().sum() > 0) == detach


def test_printed_modules_show_their_sizes():
    """print(G) and print(D) name every layer's widths, kernel, resampling and style width."""
    g, d = repr(Generator(TINY)), repr(Discriminator(TINY, gaze=True))
    width, style = TINY.local_channels, TINY.style_dim
    assert f"StyledConv1x1(\n          in={width}, out={width}, style={style}, noise=False" in g
    assert f"ModulatedConv1x1(\n            in={width}, out={width}, kernel=1, style={style + TINY.gaze_dim}" in g
    assert f"EqualLinear(in={style}, out={style}, lr_mul={TINY.lr_mlp:g}, activate=True)" in g
    assert "kernel=3, up=2, demodulate=True, noise=True, activate=True" in g
    assert "Blur(kernel=(1, 3, 3, 1), pad=(1, 1), down=1)" in g
    assert f"ToRGB(\n        in={width}, out={TINY.coarse_channels}, upsample_skip=False" in g
    assert f"FullyConnectedLayer(in=2, out={TINY.gaze_dim})" in g
    assert "ResBlock(\n      in=8, out=16, down=2" in d
    assert "Blur(kernel=(1, 3, 3, 1), pad=(1, 1), down=2)" in d  # the strided 1x1 skip's
    assert "EqualConv2d(in=8, out=16, kernel=3, stride=2, padding=0)" in d
    assert "()" not in g + d  # no layer prints without its sizes


def test_parameter_summary_counts_every_parameter_once_and_marks_frozen_blocks():
    from gcgan_cli.core.model.summary import format_summary, parameter_summary

    g = Generator(preset("tiny"))
    rows = parameter_summary(g)
    assert sum(total for _, total, _ in rows) == sum(p.numel() for p in g.parameters())
    assert [name for name, _, _ in rows if name.startswith("local_nets.")] == [
        f"local_nets.{i}" for i in range(len(g.local_nets))
    ]
    for p in g.local_nets.parameters():
        p.requires_grad_(False)
    next(g.render_net.parameters()).requires_grad_(False)
    text = format_summary(parameter_summary(g))
    assert "local_nets.0 " in text and text.count("(frozen)") == len(g.local_nets) and " trained)" in text
