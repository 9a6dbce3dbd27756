"""FP-GAN translation networks and image pool: the reference's exact sizes and parameter counts,
TF "SAME" arithmetic checked against its definition, receptive fields measured by gradients,
and the pool rules checked draw by draw against what they promise."""

from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gcgan_cli.checkpoint import load_checkpoint, save_checkpoint
from gcgan_cli.core.transfer.networks import (
    PRESETS,
    LocalDiscriminator,
    NetConfig,
    PatchDiscriminator,
    SameConv2d,
    Upsample,
    build_discriminator,
    build_generator,
    same_padding,
)
from gcgan_cli.core.transfer.pool import ImagePool
from gcgan_cli.errors import UsageError

REFERENCE, TINY = PRESETS["reference"], PRESETS["tiny"]
PATCH = (36, 60)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def patches(n: int = 2, size=PATCH) -> torch.Tensor:
    return torch.rand(n, 1, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def shapes_after(model: nn.Module, kind: type, x: torch.Tensor) -> list[tuple[int, int]]:
    """Spatial sizes of the outputs of every `kind` submodule, in call order."""
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
        for m in model.modules()
        if isinstance(m, kind)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_reference_parameter_counts_match_the_original():
    assert count(build_generator(REFERENCE)) == 7_828_864
    assert count(build_discriminator(REFERENCE)) == 2_763_521


@pytest.mark.slow
def test_reference_shapes_at_36x60():
    x = patches()
    g, d = build_generator(REFERENCE), build_discriminator(REFERENCE)
    assert shapes_after(g, SameConv2d, x) == [(18, 30), (9, 15)]
    assert g(x).shape == x.shape and g(x).abs().max() < 1
    assert shapes_after(d, SameConv2d, x) == [(18, 30), (9, 15), (5, 8), (3, 4), (3, 4)]
    assert d(x).shape == (2, 1, 3, 4)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (36, 3, 2, (0, 1)),  # even input: the extra pixel goes bottom / right
        (9, 3, 2, (1, 1)),
        (36, 4, 2, (1, 1)),
        (9, 4, 2, (1, 2)),
        (3, 4, 1, (1, 2)),
        (60, 7, 1, (3, 3)),
    ],
)
def test_same_padding_is_tf_arithmetic(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    out = (size + sum(expected) - kernel) // stride + 1
    assert out == -(-size // stride)


@pytest.mark.parametrize("target", [(18, 30), (35, 61)])
def test_deconv_is_the_adjoint_of_the_same_conv(target):
    """TF's conv2d_transpose is the gradient of conv2d: build it that way and compare."""
    torch.manual_seed(0)
    up = Upsample("deconv", 6, 4, "instance")
    up.post = nn.Identity()
    low = (-(-target[0] // 2), -(-target[1] // 2))
    y = torch.randn(2, 6, *low, dtype=torch.float64)
    weight = up.conv.weight.detach().double()  # [in 6, out 4, 3, 3], the shape of the adjoint conv 4 -> 6
    x = torch.zeros(2, 4, *target, dtype=torch.float64, requires_grad=True)
    top, bottom = same_padding(target[0], 3, 2)
    left, right = same_padding(target[1], 3, 2)
    conv = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, stride=2)
    assert conv.shape[-2:] == low
    (expected,) = torch.autograd.grad(conv, x, grad_outputs=y)
    got = up.double()(y, target)
    assert got.shape[-2:] == target
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("size", [PATCH, (35, 61), (17, 23)])
@pytest.mark.parametrize("upsample", ["deconv", "resize"])
def test_generator_keeps_any_input_size(size, upsample):
    g = build_generator(replace(TINY, upsample=upsample, blocks=1))
    assert g(patches(1, size)).shape == (1, 1, *size)


def test_resize_upsampling_has_no_checkerboard():
    """A constant input stays constant through nearest-resize + conv; the stride-2 transposed
    conv stamps its kernel on every other pixel and so does not."""
    torch.manual_seed(0)
    flat = torch.ones(1, 4, 5, 7)
    outputs = {}
    for mode in ("resize", "deconv"):
        up = Upsample(mode, 4, 3, "instance")
        up.post = nn.Identity()
        with torch.no_grad():
            outputs[mode] = up(flat, (10, 14))
        assert outputs[mode].shape == (1, 3, 10, 14)
    resize, deconv = outputs["resize"], outputs["deconv"]
    assert torch.allclose(resize, resize[..., :1, :1].expand_as(resize))
    inner = deconv[..., 1:-1, 1:-1]
    assert (inner[..., 0::2, :] - inner[..., 1::2, :]).abs().max() > 1e-3


def test_batch_norm_option_spares_residual_blocks_and_output():
    g = build_generator(replace(TINY, norm="batch"))
    kinds = [type(m) for m in g.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
    assert kinds.count(nn.BatchNorm2d) == 5  # first layer, two downs, two ups
    assert kinds.count(nn.InstanceNorm2d) == 2 * TINY.blocks
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in g.tail)
    assert count(g) == count(build_generator(TINY))
    d = build_discriminator(replace(TINY, norm="batch"))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == TINY.d_layers - 1


def receptive_field(d: nn.Module, size: int = 128) -> tuple[int, int]:
    """Rows and columns of the input one central score depends on. Norms (which couple every
    position) are dropped and max-pools averaged: the field is a property of the geometry."""
    for _name, child in list(d.named_modules()):
        for key, sub in list(child.named_children()):
            if isinstance(sub, (nn.InstanceNorm2d, nn.BatchNorm2d)):
                setattr(child, key, nn.Identity())
            elif isinstance(sub, nn.MaxPool2d):
                setattr(child, key, nn.AvgPool2d(sub.kernel_size, sub.stride, sub.padding))
    d = d.double()
    x = torch.randn(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    support = x.grad[0, 0] != 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_receptive_fields():
    assert receptive_field(build_discriminator(REFERENCE), 160) == (94, 94)  # the whole 36x60 patch
    assert receptive_field(build_discriminator(TINY)) == (34, 34)  # less than the patch's height
    assert receptive_field(build_discriminator(replace(REFERENCE, netD="local"))) == (23, 23)


def test_tiny_and_local_discriminator_maps():
    x = patches()
    assert build_discriminator(TINY)(x).shape == (2, 1, 9, 15)
    local = build_discriminator(replace(TINY, netD="local"))
    assert isinstance(local, LocalDiscriminator) and local(x).shape == (2, 1, 9, 15)
    assert isinstance(build_discriminator(TINY), PatchDiscriminator)
    standard = build_discriminator(replace(REFERENCE, d_last_stride=1))  # CycleGAN's PatchGAN
    assert standard(x).shape == (2, 1, 5, 8)


def test_tiny_is_a_fraction_of_the_reference():
    ratio = count(build_generator(REFERENCE)) / count(build_generator(TINY))
    assert 20 < ratio < 40
    assert count(build_discriminator(TINY)) < count(build_discriminator(REFERENCE)) / 30


def test_init_statistics():
    torch.manual_seed(0)
    g, d = build_generator(REFERENCE), build_discriminator(REFERENCE)
    convs = torch.cat(
        [m.weight.flatten() for net in (g, d) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    )
    assert abs(convs.mean()) < 1e-4 and abs(convs.std() - 0.02) < 2e-4
    scales = torch.cat([m.weight for net in (g, d) for m in net.modules() if isinstance(m, nn.InstanceNorm2d)])
    assert abs(scales.mean() - 1) < 2e-3 and abs(scales.std() - 0.02) < 2e-3
    assert all(m.bias.abs().max() == 0 for net in (g, d) for m in net.modules() if isinstance(m, nn.InstanceNorm2d))
    biased = [
        m
        for net in (g, d)
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None
    ]
    assert len(biased) == 1 and biased[0].bias.abs().max() == 0  # only D's last conv


@pytest.mark.parametrize(
    "bad",
    [
        {"ngf": 0},
        {"blocks": -1},
        {"upsample": "bilinear"},
        {"norm": "group"},
        {"netD": "pixel"},
        {"d_last_stride": 3},
    ],
)
def test_bad_configs_are_one_line_usage_errors(bad):
    with pytest.raises(UsageError) as caught:
        replace(REFERENCE, **bad).validate()
    assert "\n" not in str(caught.value) and next(iter(bad)) in str(caught.value)


def test_builders_validate():
    with pytest.raises(UsageError, match="ngf"):
        build_generator(replace(REFERENCE, ngf=0))
    with pytest.raises(UsageError, match="netD"):
        build_discriminator(replace(REFERENCE, netD="pixel"))


def test_config_round_trip():
    assert NetConfig.from_dict(asdict(TINY)) == TINY
    with pytest.raises(UsageError, match="unknown"):
        NetConfig.from_dict({**asdict(TINY), "dropout": 0.5})


# --- image pool -------------------------------------------------------------------------------


def labelled(ids) -> torch.Tensor:
    """Images [B, 1, 2, 2] whose every pixel is the image's id, so a draw says where it came from."""
    return torch.tensor(ids, dtype=torch.float32)[:, None, None, None].expand(-1, 1, 2, 2).clone()


def ids_of(images: torch.Tensor) -> list[int]:
    return [int(v) for v in images[:, 0, 0, 0]]


def stored_ids(pool: ImagePool) -> list[int]:
    return [int(image[0, 0, 0]) for image in pool.images]


def test_standard_fill_phase_returns_the_inputs_and_stores_clones():
    pool, gen = ImagePool(5), torch.Generator().manual_seed(0)
    fake = labelled([0, 1]).requires_grad_()
    out = pool.query(fake, gen)
    assert ids_of(out) == [0, 1] and out.requires_grad  # the new images themselves
    fake.data += 100
    assert stored_ids(pool) == [0, 1] and not any(image.requires_grad for image in pool.images)
    assert ids_of(pool.query(labelled([2, 3, 4]), gen)) == [2, 3, 4]
    assert stored_ids(pool) == [0, 1, 2, 3, 4]


def test_standard_full_pool_swaps_half_the_time():
    size, gen = 10, torch.Generator().manual_seed(1)
    pool = ImagePool(size)
    pool.query(labelled(range(size)), gen)
    swaps, returned_old = 0, []
    for new in range(100, 2100, 4):
        batch = list(range(new, new + 4))
        expected = stored_ids(pool)  # replayed image by image, as the rule is stated
        out = ids_of(pool.query(labelled(batch), gen))
        for image, got in zip(batch, out):
            if got == image:
                continue
            swaps += 1
            returned_old.append(got)
            expected[expected.index(got)] = image  # a stored image, replaced by the new one
        assert stored_ids(pool) == expected
    rate = swaps / 2000
    assert abs(rate - 0.5) < 0.035, rate
    assert len(set(returned_old)) > 100  # drawn from the whole history, not a few slots


def test_standard_pool_at_batch_one_uses_the_history():
    pool, gen = ImagePool(3), torch.Generator().manual_seed(2)
    outs = [ids_of(pool.query(labelled([i]), gen))[0] for i in range(200)]
    assert outs[:3] == [0, 1, 2]
    assert sum(o != i for i, o in enumerate(outs)) > 60


def test_size_zero_returns_the_batch():
    pool = ImagePool(0)
    fake = labelled([7, 8])
    assert pool.query(fake, torch.Generator()) is fake and len(pool) == 0


def test_legacy_fill_phase_samples_the_grown_pool():
    pool, gen = ImagePool(4, "legacy"), torch.Generator().manual_seed(3)
    assert sorted(ids_of(pool.query(labelled([0, 1, 2]), gen))) == [0, 1, 2]
    out = ids_of(pool.query(labelled([3, 4, 5]), gen))
    assert len(set(out)) == 3 and set(out) <= set(range(6))
    assert len(pool) == 6  # it grows past its size in the fill phase


def test_legacy_full_pool_mixes_halves_and_refreshes_half():
    pool, gen = ImagePool(4, "legacy"), torch.Generator().manual_seed(4)
    pool.query(labelled([0, 1, 2, 3]), gen)
    before = stored_ids(pool)
    out = ids_of(pool.query(labelled([10, 11, 12, 13]), gen))
    assert len([i for i in out if i in before]) == 2 and len([i for i in out if i >= 10]) == 2
    after = stored_ids(pool)
    assert sum(a != b for a, b in zip(after, before)) == 2 and all(a >= 10 for a, b in zip(after, before) if a != b)


def test_legacy_batch_one_when_full_returns_only_the_current_image():
    pool, gen = ImagePool(3, "legacy"), torch.Generator().manual_seed(5)
    for i in range(3):
        pool.query(labelled([i]), gen)
    frozen = stored_ids(pool)
    for i in range(100, 150):
        assert ids_of(pool.query(labelled([i]), gen)) == [i]
    assert stored_ids(pool) == frozen  # never refreshed


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_pool_state_round_trip_repeats_future_draws(mode, tmp_path):
    pool, gen = ImagePool(6, mode), torch.Generator().manual_seed(6)
    for i in range(0, 24, 3):
        pool.query(labelled([i, i + 1, i + 2]), gen)
    path = save_checkpoint(tmp_path / "pool.pt", {"pool": pool.state_dict(), "generator": gen.get_state()})
    future = [labelled([100 + i, 200 + i]) for i in range(20)]
    expected = [ids_of(pool.query(batch, gen)) for batch in future]
    record = load_checkpoint(path)
    resumed, gen2 = ImagePool(6, mode), torch.Generator()
    resumed.load_state_dict(record["pool"])
    gen2.set_state(record["generator"])
    torch.manual_seed(123)  # the global generator plays no part
    assert [ids_of(resumed.query(batch, gen2)) for batch in future] == expected
    with pytest.raises(UsageError, match="pool"):
        ImagePool(7, mode).load_state_dict(record["pool"])


def test_empty_pool_state_round_trip():
    pool = ImagePool(4)
    pool.load_state_dict(ImagePool(4).state_dict())
    assert len(pool) == 0
