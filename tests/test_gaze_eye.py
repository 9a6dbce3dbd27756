"""Gaze estimators on 36 x 60 grayscale eye patches: GazeNet's parameter parity with the reference
and its TensorFlow padding, every eye arch at the eye shape, estimator files that keep their input
shape and units (and old face files that still load), eye augmentation without flips, a fit on
procedural eyes that beats the mean-gaze baseline, validation on the unjittered view, and
`gcgan gaze fit|eval|predict --input eye` on an MPIIFaceGaze-style .h5 with one-line refusals."""

import dataclasses
import json

import cv2
import h5py
import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.core.gaze.estimator import TfSame, build, load_estimator, network_config, save_estimator
from gcgan_cli.core.gaze.fit import FitConfig, augment, fit
from gcgan_cli.data.eye_patch import EYE_SHAPE
from gcgan_cli.errors import UsageError

GAZENET_PARAMETERS = 83_542_995  # the reference GazeNet at 36 x 60 x 1
CPU = torch.device("cpu")
NO_PHOTOMETRY = FitConfig(brightness=0.0, contrast=0.0, colour=0.0, noise=0.0, shift=0.0)


class ProceduralEyes(torch.utils.data.Dataset):
    """A dark disc on a bright background, 1 x 36 x 60: the disc moves image-left with yaw and up
    with pitch, so gaze is readable from its position; the background's brightness is the subject."""

    def __init__(self, count: int, subjects: int = 10, seed: int = 0, shape=EYE_SHAPE):
        rng = np.random.default_rng(seed)
        self.shape = shape
        self.gazes = np.stack([rng.uniform(-0.4, 0.4, count), rng.uniform(-0.5, 0.5, count)], axis=1).astype(np.float32)
        self.subjects = [f"p{i % subjects:02d}" for i in range(count)]
        self.brightness = {s: rng.uniform(0.4, 0.9) for s in sorted(set(self.subjects))}
        self.path = "procedural"

    def __len__(self):
        return len(self.gazes)

    def __getitem__(self, index):
        _, height, width = self.shape
        pitch, yaw = self.gazes[index]
        cx, cy = width / 2 - 30 * yaw, height / 2 - 20 * pitch
        y, x = np.mgrid[:height, :width]
        inside = np.clip(6.5 - np.hypot(x - cx, y - cy), 0, 1)  # anti-aliased edge
        image = self.brightness[self.subjects[index]] * (1 - inside) - 0.8 * inside
        return {
            "image": torch.from_numpy(image[None].astype(np.float32)),
            "gaze": torch.from_numpy(self.gazes[index]),
            "head": torch.zeros(2),
            "landmarks": torch.zeros(18, 2),
            "index": index,
        }


def parameters(model):
    return sum(p.numel() for p in model.parameters())


def test_gazenet_has_the_reference_parameter_count_and_reads_eye_patches():
    model = build("gazenet", 0, shape=EYE_SHAPE).eval()
    assert parameters(model) == GAZENET_PARAMETERS
    assert model(torch.randn(3, *EYE_SHAPE)).shape == (3, 2)
    shared = [m.bias for m in model.head if hasattr(m, "bias")]
    assert [b.shape for b in shared] == [(1,)] * 3  # one bias per dense layer, shared by its units


def test_gazenet_pads_as_tensorflow_same_does():
    """The odd pixel of a stride-2 layer's padding goes bottom/right: output (0, 0) starts at input (0, 0)."""
    conv = torch.nn.Conv2d(1, 1, 3, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()[0, 0, 0, 0] = 1.0
    x = torch.randn(1, 1, 36, 60)
    out = TfSame(conv, 3, 2)(x)
    assert out.shape == (1, 1, 18, 30) and torch.equal(out[0, 0], x[0, 0, ::2, ::2])
    pooled = TfSame(torch.nn.MaxPool2d(2, 2), 2, 2, -float("inf"))(-torch.ones(1, 1, 9, 15))
    assert pooled.shape == (1, 1, 5, 8) and torch.equal(pooled, -torch.ones(1, 1, 5, 8))  # the padding never wins


@pytest.mark.parametrize("arch", ["gazenet-slim", "small"])
def test_cpu_sized_archs_read_eye_patches(arch):
    model = build(arch, 0, shape=EYE_SHAPE).eval()
    assert model(torch.randn(2, *EYE_SHAPE)).shape == (2, 2)
    assert parameters(model) < 5_000_000


def test_archs_refuse_the_other_input():
    with pytest.raises(UsageError, match="--arch resnet18") as info:
        build("resnet18", 0, shape=EYE_SHAPE)
    assert "small, gazenet, gazenet-slim" in str(info.value)
    with pytest.raises(UsageError, match="--arch gazenet "):
        build("gazenet", 64)


def test_an_estimator_file_keeps_its_shape_input_and_units(tmp_path):
    model = build("gazenet-slim", 0, shape=EYE_SHAPE).eval()
    path = tmp_path / "eye.pt"
    save_estimator(path, model, {**network_config("gazenet-slim", EYE_SHAPE), "mean_gaze": [0.0, 0.0]}, {})
    loaded, config = load_estimator(path, CPU)
    assert (config["input"], config["shape"], config["units"], config["size"]) == ("eye", [1, 36, 60], "rad", 0)
    x = torch.randn(2, *EYE_SHAPE)
    torch.testing.assert_close(loaded(x), model(x))


def test_an_estimator_file_without_a_shape_loads_as_a_face_estimator(tmp_path):
    path = tmp_path / "old.pt"
    save_estimator(path, build("small", 32), {"arch": "small", "size": 32, "layout": 2, "mean_gaze": [0.0, 0.0]}, {})
    model, config = load_estimator(path, CPU)
    assert (config["input"], config["shape"], config["units"]) == ("face", [3, 32, 32], "rad")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2)


def test_eye_patches_are_never_flipped_and_keep_one_channel():
    rng = np.random.default_rng(0)
    gazes = torch.from_numpy(rng.uniform(-0.5, 0.5, (16, 2)).astype(np.float32))
    always = dataclasses.replace(NO_PHOTOMETRY, flip=1.0)
    eyes = torch.from_numpy(rng.uniform(-1, 1, (16, 1, 36, 60)).astype(np.float32))
    out, out_gazes = augment(eyes, gazes, always, torch.Generator().manual_seed(0))
    assert torch.equal(out, eyes) and torch.equal(out_gazes, gazes)
    faces = torch.from_numpy(rng.uniform(-1, 1, (16, 3, 16, 16)).astype(np.float32))
    out, out_gazes = augment(faces, gazes, always, torch.Generator().manual_seed(0))
    assert torch.equal(out, faces.flip(-1)) and torch.equal(out_gazes[:, 1], -gazes[:, 1])
    jittered, _ = augment(eyes, gazes, FitConfig(), torch.Generator().manual_seed(0))  # colour gain included
    assert jittered.shape == eyes.shape and not torch.equal(jittered, eyes)


@pytest.mark.slow
def test_a_fit_on_procedural_eyes_beats_the_mean_gaze_baseline(tmp_path):
    config = FitConfig(epochs=6, batch=32, seed=0)
    result = fit([ProceduralEyes(480)], [1.0], None, config, tmp_path / "eye.pt", CPU, {"sources": ["procedural"]})
    assert result.val_count == 48  # one of ten subjects held out
    assert result.baseline_error > 15 and result.best_error < 0.5 * result.baseline_error, (
        result.best_error,
        result.baseline_error,
    )
    _, saved = load_estimator(tmp_path / "eye.pt", CPU)
    assert (saved["input"], saved["shape"], saved["arch"]) == ("eye", [1, 36, 60], "small")


class Reads(ProceduralEyes):
    """Procedural eyes that record which samples were read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = set()

    def __getitem__(self, index):
        self.read.add(index)
        return super().__getitem__(index)


def test_the_split_is_validated_on_the_held_out_view(tmp_path):
    """With crop jitter the training view is jittered; the held-out subjects are read from the plain view only."""
    train, plain = Reads(120, seed=2), Reads(120, seed=2)
    fit([train], [1.0], None, FitConfig(epochs=1, batch=32), tmp_path / "e.pt", CPU, {}, held_out=plain)
    held = {plain.subjects[i] for i in plain.read}
    assert len(held) == 1 and plain.read == {i for i, s in enumerate(plain.subjects) if s in held}  # one whole subject
    assert train.read and not train.read & plain.read


def test_a_fit_refuses_sources_of_different_shapes(tmp_path):
    with pytest.raises(UsageError, match="different shapes"):
        fit(
            [ProceduralEyes(20), ProceduralEyes(20, shape=(3, 32, 32))],
            [1.0, 1.0],
            None,
            FitConfig(epochs=1),
            tmp_path / "x.pt",
            CPU,
            {},
        )


# --- the CLI on an MPIIFaceGaze-style .h5 of eye patches ---


@pytest.fixture(scope="module")
def mpii_eyes(tmp_path_factory):
    """Four people of procedural eye patches in MPIIFaceGaze's layout: /pXX/image BGR uint8, gaze, head."""
    path = tmp_path_factory.mktemp("eyes") / "eyes.h5"
    eyes = ProceduralEyes(48, subjects=4, seed=1)
    with h5py.File(path, "w") as handle:
        for person in sorted(set(eyes.subjects)):
            rows = [i for i, s in enumerate(eyes.subjects) if s == person]
            gray = np.stack([((eyes[i]["image"][0].numpy() + 1) * 127.5).round().astype(np.uint8) for i in rows])
            group = handle.create_group(person)
            group["image"] = np.repeat(gray[..., None], 3, axis=-1)
            group["gaze"] = eyes.gazes[rows]
            group["head"] = np.zeros((len(rows), 2), np.float32)
    return path


@pytest.fixture(scope="module")
def eye_estimator(mpii_eyes):
    out = mpii_eyes.with_name("eye.pt")
    assert (
        cli.run(
            [
                "gaze",
                "fit",
                "--data",
                str(mpii_eyes),
                "--input",
                "eye",
                "--arch",
                "gazenet-slim",
                "--epochs",
                "2",
                "--batch",
                "16",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return out


def test_gaze_fit_and_eval_on_eye_patches(eye_estimator, mpii_eyes, run_cli):
    _, config = load_estimator(eye_estimator, CPU)
    assert (config["input"], config["shape"], config["units"], config["arch"]) == (
        "eye",
        [1, 36, 60],
        "rad",
        "gazenet-slim",
    )
    code, out, _ = run_cli("gaze", "eval", "--model", eye_estimator, "--data", mpii_eyes, "--json", "--device", "cpu")
    assert code == 0
    result = json.loads(out)
    assert result["error_deg"]["count"] == 48 and 0 <= result["error_deg"]["mean"] <= 180
    assert set(result["per_subject_mean_deg"]) == {"p00", "p01", "p02", "p03"} and "mean_gaze_baseline_deg" in result


def test_eye_and_face_options_do_not_mix(eye_estimator, mpii_eyes, tmp_path, run_cli):
    code, out, err = run_cli(
        "gaze", "eval", "--model", eye_estimator, "--data", mpii_eyes, "--input", "face", "--device", "cpu"
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--input face" in err and "eye" in err
    for args, message in (
        (("--input", "eye", "--size", "32"), "--size 32"),
        (("--input", "eye", "--arch", "resnet18"), "--arch resnet18"),
        (("--jitter",), "--jitter"),
        (("--input", "iris"), "--input iris"),
    ):
        code, _, err = run_cli("gaze", "fit", "--data", mpii_eyes, "--out", tmp_path / "x.pt", *args, "--device", "cpu")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(
        "gaze", "consistency", "--network", tmp_path / "any.pt", "--model", eye_estimator, "--device", "cpu"
    )
    assert code == 2 and "face estimator" in err


@pytest.mark.slow
def test_gaze_fit_with_crop_jitter_runs(mpii_eyes, tmp_path, run_cli):
    code, out, _ = run_cli(
        "gaze",
        "fit",
        "--data",
        mpii_eyes,
        "--input",
        "eye",
        "--jitter",
        "--epochs",
        "1",
        "--batch",
        "16",
        "--out",
        tmp_path / "j.pt",
        "--device",
        "cpu",
    )
    assert code == 0 and "12 validation" in out


def test_gaze_predict_reads_an_eye_image(eye_estimator, tmp_path, run_cli):
    image = tmp_path / "eye.png"
    cv2.imwrite(str(image), ((ProceduralEyes(1)[0]["image"][0].numpy() + 1) * 127.5).astype(np.uint8))
    code, out, _ = run_cli("gaze", "predict", "--model", eye_estimator, image, "--device", "cpu")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == "image,pitch,yaw" and len(lines) == 2
