"""The gaze fit's training recipe: augmentation keeps labels true (checked against numpy), is
never applied when evaluating, and a seeded fit repeats exactly."""

import dataclasses

import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.checkpoint import load_checkpoint
from gcgan_cli.core.gaze import fit as fit_module
from gcgan_cli.core.gaze.angles import angular_error
from gcgan_cli.core.gaze.estimator import build, load_estimator, save_estimator
from gcgan_cli.core.gaze.fit import FitConfig, augment, evaluate, split
from gcgan_cli.core.gaze.sources import open_source

GEOMETRY_ONLY = FitConfig(brightness=0.0, contrast=0.0, colour=0.0, noise=0.0)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaze_fit")
    assert (
        cli.run(
            [
                "segment",
                "synthetic",
                "--n",
                "40",
                "--size",
                "32",
                "--seed",
                "3",
                "--outdir",
                str(root / "prep"),
                "-j",
                "1",
            ]
        )
        == 0
    )
    assert cli.run(["pack", "--data", str(root / "prep"), "--outdir", str(root / "db"), "--size", "32", "-j", "1"]) == 0
    return root / "db"


def batch(count=64, size=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (count, 3, size, size)).astype(np.float32)
    gazes = rng.uniform(-0.6, 0.6, (count, 2)).astype(np.float32)
    return images, gazes


def test_a_flip_mirrors_the_image_and_negates_the_yaw_exactly():
    images, gazes = batch()
    out, out_gazes = (
        t.numpy()
        for t in augment(
            torch.from_numpy(images),
            torch.from_numpy(gazes),
            dataclasses.replace(GEOMETRY_ONLY, shift=0.0),
            torch.Generator().manual_seed(1),
        )
    )
    flipped = out_gazes[:, 1] != gazes[:, 1]
    assert 10 < flipped.sum() < 54  # p = 0.5 of 64
    assert np.array_equal(out_gazes[:, 0], gazes[:, 0])
    assert np.array_equal(out_gazes[flipped, 1], -gazes[flipped, 1])
    assert np.array_equal(out[flipped], np.flip(images[flipped], axis=-1))
    assert np.array_equal(out[~flipped], images[~flipped])


def test_a_shift_is_a_whole_pixel_translation_with_repeated_edges():
    images, gazes = batch(count=16)
    config = dataclasses.replace(GEOMETRY_ONLY, flip=0.0, shift=0.25)  # 3 px at 12 px
    out, out_gazes = augment(
        torch.from_numpy(images), torch.from_numpy(gazes), config, torch.Generator().manual_seed(2)
    )
    assert np.array_equal(out_gazes.numpy(), gazes)
    padded = np.pad(images, ((0, 0), (0, 0), (3, 3), (3, 3)), mode="edge")
    for image, pad in zip(out.numpy(), padded):
        crops = [
            (dy, dx) for dy in range(7) for dx in range(7) if np.array_equal(pad[:, dy : dy + 12, dx : dx + 12], image)
        ]
        assert crops


def test_the_default_augmentation_stays_in_range_and_repeats_for_a_seed():
    images, gazes = (torch.from_numpy(a) for a in batch())
    first = augment(images, gazes, FitConfig(), torch.Generator().manual_seed(5))
    again = augment(images, gazes, FitConfig(), torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], images) and first[0].min() >= -1 and first[0].max() <= 1


@pytest.mark.slow
def test_a_seeded_fit_repeats_exactly_and_evaluates_unaugmented_images(db, tmp_path, monkeypatch):
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path in paths:
        assert (
            cli.run(
                [
                    "gaze",
                    "fit",
                    "--data",
                    str(db),
                    "--out",
                    str(path),
                    "--epochs",
                    "2",
                    "--size",
                    "32",
                    "--seed",
                    "4",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    first, second = (load_checkpoint(p, required=("model",))["model"] for p in paths)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)

    calls = []
    monkeypatch.setattr(fit_module, "augment", lambda *args: calls.append(args))
    model, config = load_estimator(paths[0], torch.device("cpu"))
    source = open_source(db, 32)
    _, val_idx, _ = split(source, FitConfig().val_fraction, 4)
    predicted, true = evaluate(model, torch.utils.data.Subset(source, val_idx.tolist()), torch.device("cpu"))
    assert not calls
    assert float(angular_error(predicted, true).mean()) == pytest.approx(config["report"]["val_error"], rel=1e-5)


def test_an_estimator_file_without_a_layout_loads_as_the_four_block_net(tmp_path):
    """Files written before the stride-1 blocks keep loading, with their own weights."""
    old = build("small", 32, layout=1)
    path = tmp_path / "old.pt"
    save_estimator(path, old, {"arch": "small", "size": 32, "mean_gaze": [0.0, 0.0]}, {})
    model, _ = load_estimator(path, torch.device("cpu"))
    assert len(model.features) == 4
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), old.eval()(x))
