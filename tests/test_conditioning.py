"""Gaze conditioning beyond the reference: wrong gazes far from the true one, the augmentation D
sees, the frozen-estimator loss, the projection D and its gaze head, gaze standardisation, the
`small` preset and its validation, R1 scaled to the image size, and a stage-1 run with every
option on."""

import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.checkpoint import load_checkpoint
from gcgan_cli.core.gaze.angles import angular_error
from gcgan_cli.core.gaze.estimator import LAYOUT, build, save_estimator
from gcgan_cli.core.model import Discriminator, Generator, ModelConfig, preset
from gcgan_cli.core.synthesis import file_sha256
from gcgan_cli.core.training import conditioning, losses
from gcgan_cli.core.training.config import TrainConfig
from gcgan_cli.errors import UsageError


def test_wrong_gazes_are_far_from_the_true_ones():
    torch.manual_seed(0)
    labels = torch.stack([torch.randn(500) * 0.24 - 0.14, torch.randn(500) * 0.57], 1)
    true = labels[:200]
    wrong = conditioning.wrong_gazes(labels, true, 15.0)
    distance = angular_error(wrong.numpy(), true.numpy())
    assert distance.min() >= 15.0 - 1e-3
    assert all(any(torch.equal(w, label) for label in labels) for w in wrong[:20])  # drawn from the label set
    # With a threshold no candidate meets, the farthest candidate.
    wrong = conditioning.wrong_gazes(labels[:3], labels[:1].expand(4, 2), 179.0)
    assert torch.equal(wrong, labels[:3][angular_error(labels[:3].numpy(), labels[:1].numpy()).argmax()].expand(4, 2))


def test_unit_vectors_match_the_numpy_convention():
    from gcgan_cli.core.gaze.angles import to_vector

    gaze = torch.tensor([[0.3, -0.7], [-0.5, 1.2]])
    np.testing.assert_allclose(conditioning.unit_vectors(gaze).numpy(), to_vector(gaze.numpy()), atol=1e-6)


def test_augment_moves_image_and_mask_together_and_is_differentiable():
    torch.manual_seed(1)
    size = 32
    ids = torch.randint(0, 4, (3, size, size))
    seg = torch.nn.functional.one_hot(ids, 4).permute(0, 3, 1, 2).float() * 2 - 1
    image = (ids[:, None].float() / 3).expand(-1, 3, -1, -1).clone().requires_grad_(True)  # the mask, as an image
    out_image, out_seg = conditioning.augment(image, seg, torch.Generator().manual_seed(3))
    assert out_image.shape == image.shape and out_seg.shape == seg.shape
    kept = out_seg.abs().sum(1) > 0  # outside the cutout
    assert (~kept).any() and kept.float().mean() > 0.85
    # Where pixels are kept, the image still shows the class its mask says.
    np.testing.assert_allclose(
        out_image[:, 0][kept].detach().numpy(), (out_seg.argmax(1)[kept].float() / 3).numpy(), atol=1e-6
    )
    assert not torch.equal(out_seg, seg)  # it moved
    out_image.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_frozen_estimator_loss_reaches_the_image_not_the_estimator(tmp_path):
    torch.manual_seed(2)
    path = tmp_path / "est.pt"
    save_estimator(
        path, build("small", 32), {"arch": "small", "size": 32, "layout": LAYOUT, "mean_gaze": [0.0, 0.0]}, {}
    )
    estimator = conditioning.FrozenEstimator(path, torch.device("cpu"))
    assert estimator.record() == {"path": str(path), "sha256": file_sha256(path)}
    image = torch.randn(2, 3, 64, 64, requires_grad=True)  # resized to the estimator's 32 px
    loss = losses.scaled_gaze_error(estimator.read(image), torch.zeros(2, 2), torch.tensor([0.5, 1.0]))
    loss.backward()
    assert image.grad.abs().sum() > 0
    assert all(p.grad is None for p in estimator.network.parameters()) and not estimator.network.training


def test_projection_discriminator_score_depends_on_the_gaze_and_the_head_does_not():
    torch.manual_seed(3)
    config = preset("tiny", d_conditioning="projection", d_gaze_head=8)
    d = Discriminator(config, gaze=True)
    image, seg = torch.randn(2, 3, 32, 32), torch.randn(2, 6, 32, 32)
    a, head_a = d(image, seg, torch.tensor([[0.0, 0.5], [0.1, -0.4]]), estimate_gaze=True)
    b, head_b = d(image, seg, torch.tensor([[0.3, -0.5], [-0.2, 0.4]]), estimate_gaze=True)
    assert not torch.allclose(a, b) and torch.equal(head_a, head_b) and head_a.shape == (2, 2)
    assert d.embed is None and d.project is not None
    with pytest.raises(ValueError, match="no gaze head"):
        Discriminator(preset("tiny"), gaze=True)(image, seg, torch.zeros(2, 2), estimate_gaze=True)


def test_gaze_is_standardised_before_the_embeddings():
    """A model with stats (m, s) at gaze g equals the raw-radian model at (g - m) / s."""
    torch.manual_seed(4)
    mean, std = (-0.14, -0.05), (0.24, 0.57)
    plain, normed = preset("tiny"), preset("tiny", gaze_mean=mean, gaze_std=std)
    g_plain, g_normed = Generator(plain), Generator(normed)
    g_normed.load_state_dict(g_plain.state_dict())
    z, gaze = torch.randn(2, plain.style_dim), torch.tensor([[0.1, 0.4], [-0.3, -0.6]])
    standard = (gaze - torch.tensor(mean)) / torch.tensor(std)
    noise = g_plain.render_net.fixed_noise()
    torch.testing.assert_close(g_normed(z, gaze, noise=noise).image, g_plain(z, standard, noise=noise).image)
    d_plain, d_normed = Discriminator(plain, gaze=True), Discriminator(normed, gaze=True)
    d_normed.load_state_dict(d_plain.state_dict())
    image, seg = torch.randn(2, 3, 32, 32), torch.randn(2, 6, 32, 32)
    torch.testing.assert_close(d_normed(image, seg, gaze), d_plain(image, seg, standard))
    assert ModelConfig.from_dict(normed.to_dict()) == normed  # survives the checkpoint's JSON


def test_model_config_validation_names_the_problem():
    # The first render level is sized by coarse_channels, as in the reference.
    config = preset("tiny", size=64, coarse_channels=32)
    out = Generator(config)(torch.randn(1, config.style_dim), torch.zeros(1, 2))
    assert out.image.shape == (1, 3, 64, 64)
    for overrides, expected in [
        ({"min_feat_size": 16}, "min_feat_size < coarse_size"),
        ({"local_channels": 0}, "local_channels 0"),
        ({"size": 64, "channel_base": 32}, "no channels at 64 px"),
        ({"gaze_std": (0.2, 0.0)}, "std > 0"),
        ({"d_conditioning": "film"}, "d_conditioning 'film'"),
    ]:
        with pytest.raises(UsageError, match=expected):
            preset("tiny", **overrides)


def test_small_preset_is_a_64px_model_with_a_gaze_head():
    config = preset("small")
    assert config.size == 64 and config.d_gaze_head > 0
    assert 300_000 < sum(p.numel() for p in Generator(config).parameters()) < 3_000_000
    assert min(config.channels(r) for r in (8, 16, 32, 64)) >= 32  # no 4-channel layers at 64 px


def test_r1_defaults_scale_with_the_image_size():
    config = TrainConfig(dataset="x", checkpoint_dir="y")
    assert config.r1(256) == (10.0, 1000.0)
    assert config.r1(64) == pytest.approx((0.625, 62.5))
    assert TrainConfig(dataset="x", checkpoint_dir="y", r1_img=3.0).r1(64) == pytest.approx((3.0, 62.5))


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond")
    assert (
        cli.run(["segment", "synthetic", "--n", "40", "--size", "32", "--outdir", str(root / "prep"), "-j", "1"]) == 0
    )
    assert cli.run(["pack", "--data", str(root / "prep"), "--outdir", str(root / "db"), "-j", "1"]) == 0
    return root / "db"


@pytest.mark.slow
def test_stage1_with_every_conditioning_option(db, tmp_path, run_cli):
    torch.manual_seed(5)
    estimator = tmp_path / "est.pt"
    save_estimator(
        estimator, build("small", 32), {"arch": "small", "size": 32, "layout": LAYOUT, "mean_gaze": [0.0, 0.0]}, {}
    )
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        db,
        "--outdir",
        run,
        "--preset",
        "tiny",
        "--batch",
        "4",
        "--workers",
        "0",
        "--iters",
        "6",
        "--log-every",
        "3",
        "--viz-every",
        "0",
        "--save-every",
        "3",
        "--d-conditioning",
        "projection",
        "--gaze-model",
        estimator,
        "--lambda-gaze",
        "1",
        "--gaze-warmup",
        "2",
        "--gaze-ramp",
        "2",
        "--mirror",
        "--augment",
        "--d-gaze-mismatch",
        "1",
        "--device",
        "cpu",
    ]
    code, _, err = run_cli(*args)
    assert code == 0, err
    record = load_checkpoint(run / "checkpoints" / "0000006.pt")
    assert record["gaze_loss_model"] == {"path": str(estimator.resolve()), "sha256": file_sha256(estimator)}
    model = ModelConfig.from_dict(record["config"]["model"])
    labels = record["gaze_labels"]
    assert len(labels) == 80  # the label set and its mirror image
    assert model.d_conditioning == "projection" and model.d_gaze_head == model.channels(4)
    np.testing.assert_allclose(model.gaze_mean, labels.double().mean(0).numpy(), atol=1e-6)
    assert model.gaze_mean[1] == pytest.approx(0.0, abs=1e-6)  # mirrored yaws average to 0
    rows = [r for r in map(__import__("json").loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert "g_gaze_est" in rows[-1] and "d_gaze_head" in rows[-1] and "d_mismatch" in rows[-1]
    # A resumed run must keep its estimator.
    torch.manual_seed(6)
    save_estimator(
        estimator, build("small", 32), {"arch": "small", "size": 32, "layout": LAYOUT, "mean_gaze": [0.0, 0.0]}, {}
    )
    (run / "checkpoints" / "0000006.pt").unlink()
    code, _, err = run_cli("train", "--outdir", run, "--resume")
    assert code == 2 and "not the estimator this run was trained with" in err
