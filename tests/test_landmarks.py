"""The ELG landmark network: shapes for GazeML's 36x60 recipe and FP-GAN's reference, the
soft-argmax's coordinates against hand-placed peaks, the frozen loss network, augmentation that
keeps labels true, and a small fit on drawn blobs whose landmarks are known exactly."""

import math
from dataclasses import asdict, replace

import pytest
import torch

from gcgan_cli.checkpoint import save_checkpoint
from gcgan_cli.core.transfer.landmarks import (
    ELG_PRESETS,
    ElgConfig,
    Hourglass,
    LandmarkFitConfig,
    augment,
    build_elg,
    evaluate_landmarks,
    fit_landmarks,
    heatmap_targets,
    load_landmarks,
    soft_argmax,
)
from gcgan_cli.errors import CheckpointError, UsageError

PATCH = (36, 60)
SMALL = ElgConfig(stride=2, maps=8, modules=2, depth=2)
STILL = LandmarkFitConfig(shift=0, brightness=0.0, contrast=0.0, noise=0.0)


def patches(n: int = 2, size=PATCH) -> torch.Tensor:
    return torch.rand(n, 1, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize(
    ("config", "maps", "heat"),
    [
        (ELG_PRESETS["gazeml"], 2, (36, 60)),
        (ELG_PRESETS["reference"], 3, (18, 30)),
    ],
)
def test_shapes_at_36x60(config, maps, heat):
    heatmaps, landmarks = build_elg(config).eval()(patches())
    assert [h.shape for h in heatmaps] == [(2, 18, *heat)] * maps
    assert landmarks.shape == (2, 18, 2)


def test_hourglass_returns_odd_sizes_exactly():
    assert Hourglass(8, 2)(torch.randn(1, 8, 9, 15)).shape == (1, 8, 9, 15)  # 9 -> 4 -> 2 and back
    assert build_elg(SMALL)(patches(1, (35, 61)))[0][0].shape == (1, 18, 18, 31)


@pytest.mark.parametrize("stride", [1, 2])
def test_soft_argmax_reads_peaks_at_pixel_centres(stride):
    """A unit Gaussian placed by hand at heatmap pixel (row, col) stands for input position
    stride * (col + 0.5, row + 0.5); between two pixels, for the point midway."""
    gen = torch.Generator().manual_seed(stride)
    height, width = 18, 30
    rows = torch.randint(2, height - 2, (3, 18), generator=gen).double()
    cols = torch.randint(2, width - 2, (3, 18), generator=gen).double()
    cols[:, ::2] += 0.5  # ties between neighbours
    r = torch.arange(height, dtype=torch.float64)[:, None]
    c = torch.arange(width, dtype=torch.float64)[None, :]
    heat = torch.exp(-((r - rows[..., None, None]) ** 2 + (c - cols[..., None, None]) ** 2) / (2 * 2.5**2))
    expected = stride * torch.stack([cols + 0.5, rows + 0.5], dim=-1)
    assert (soft_argmax(heat.float(), stride) - expected).abs().max() < 0.05
    assert (soft_argmax(heatmap_targets(expected, (height, width), stride, 2.5), stride) - expected).abs().max() < 0.05


def test_heatmap_targets_are_unit_gaussians():
    landmarks = torch.tensor([[[10.5, 6.5], [3.0, 4.0]]])
    target = heatmap_targets(landmarks, (12, 20), 1, 2.0)
    assert target.shape == (1, 2, 12, 20)
    assert target[0, 0, 6, 10] == 1.0 and target[0, 0].max() == 1.0
    assert math.isclose(float(target[0, 0, 6, 12]), math.exp(-4 / 8), rel_tol=1e-6)


def test_frozen_model_passes_gradients_to_its_input_only():
    model = build_elg(SMALL)
    model(patches(4))  # some BN statistics to keep
    model.freeze()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()  # a trainer switching its modules to training mode
    assert not model.training
    x = patches(3).requires_grad_()
    _, landmarks = model(x)
    landmarks.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())


def test_augment_moves_landmarks_with_the_image():
    gen = torch.Generator().manual_seed(0)
    images = -torch.ones(16, 1, *PATCH)
    rows, cols = torch.randint(5, 30, (16,), generator=gen), torch.randint(5, 55, (16,), generator=gen)
    images[torch.arange(16), 0, rows, cols] = 1.0
    landmarks = torch.stack([cols + 0.5, rows + 0.5], dim=-1).float()[:, None, :].repeat(1, 18, 1)
    moved, labels = augment(images, landmarks, replace(STILL, shift=3), gen)
    peak = moved.flatten(1).argmax(1)
    found = torch.stack([peak % PATCH[1] + 0.5, peak // PATCH[1] + 0.5], dim=-1).float()
    assert torch.equal(found[:, None, :].expand_as(labels), labels)
    assert (labels - landmarks).abs().max() == 3  # it did move them, by up to 3 px
    assert torch.equal(augment(images, landmarks, STILL, gen)[0], images)


class Blobs(torch.utils.data.Dataset):
    """A bright Gaussian blob per image; its 18 landmarks are fixed offsets from its centre
    (an eyelid ellipse, an iris ring, the iris centre at the blob's centre, an eyeball centre)."""

    def __init__(self, count: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.centres = torch.stack(
            [torch.rand(count, generator=gen) * 24 + 18, torch.rand(count, generator=gen) * 12 + 12], 1
        )
        angles = torch.arange(8) * (2 * math.pi / 8)
        ring = lambda rx, ry: torch.stack([rx * torch.cos(angles), ry * torch.sin(angles)], 1)
        self.offsets = torch.cat([ring(10, 6), ring(3, 3), torch.zeros(1, 2), torch.tensor([[2.0, -2.0]])])
        rows, cols = torch.meshgrid(torch.arange(PATCH[0]) + 0.5, torch.arange(PATCH[1]) + 0.5, indexing="ij")
        distance = (cols - self.centres[:, 0, None, None]) ** 2 + (rows - self.centres[:, 1, None, None]) ** 2
        self.images = (2 * torch.exp(-distance / (2 * 3.0**2)) - 1)[:, None]

    def __len__(self):
        return len(self.centres)

    def __getitem__(self, i):
        return {"image": self.images[i], "landmarks": self.centres[i] + self.offsets}


@pytest.mark.slow
def test_fit_lowers_the_error_and_round_trips(tmp_path):
    config = LandmarkFitConfig(model=SMALL, epochs=8, batch=16, lr=5e-3, shift=2, noise=0.02)
    rows = []
    val = Blobs(32, 1)
    report = fit_landmarks(Blobs(128, 0), val, config, tmp_path / "lm.pt", torch.device("cpu"), on_epoch=rows.append)
    assert len(rows) == 8 and rows[-1]["sigma"] == pytest.approx(2.5) and rows[0]["sigma"] < 7.5
    assert report["error"] < 0.6 * report["start_error"], report
    assert report["iris_error"] < report["start_iris_error"]
    assert report["error"] == min(row["error"] for row in rows)
    model, saved = load_landmarks(tmp_path / "lm.pt", "cpu")
    assert saved == {**asdict(SMALL), "input": [1, *PATCH]}
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert evaluate_landmarks(model, val, torch.device("cpu"))["error"] == pytest.approx(report["error"], abs=1e-4)


def test_missing_landmarks_are_refused(tmp_path):
    data = Blobs(4, 0)
    data.offsets = data.offsets.clone()
    data.offsets[3] = float("nan")
    with pytest.raises(UsageError, match="sample 0 has missing"):
        fit_landmarks(data, None, replace(STILL, model=SMALL, epochs=1), tmp_path / "lm.pt", torch.device("cpu"))
    assert not (tmp_path / "lm.pt").exists()


def test_another_kind_of_file_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "other.pt", {"kind": "gcgan-gaze-estimator", "model": {}})
    with pytest.raises(CheckpointError, match="other.pt"):
        load_landmarks(path)


@pytest.mark.parametrize("bad", [{"maps": 0}, {"maps": 7}, {"modules": 0}])
def test_bad_configs_are_usage_errors(bad):
    with pytest.raises(UsageError, match=next(iter(bad))):
        build_elg(replace(SMALL, **bad))
