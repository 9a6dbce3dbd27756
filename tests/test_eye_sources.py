"""Eye mode of the gaze sources: the 36 x 60 gray patch of each kind (gray conversion, equalisation,
resizing with landmarks), the UnityEyes crop jitter and head-pose filter, the translated set's writer
and reader, the order in which kinds are detected, and clear errors."""

import json

import cv2
import h5py
import numpy as np
import pytest
import torch

from gcgan_cli.core.gaze.sources import EyeOptions, open_source
from gcgan_cli.data import eye_patch
from gcgan_cli.data.synthetic_eye import render_eye, write_set
from gcgan_cli.data.translated_set import HEADER, MANIFEST, TranslatedWriter
from gcgan_cli.errors import DatasetError, UsageError


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("eye_sources")
    write_set(root / "s", "s", "unity", 40, seed=1)
    write_set(root / "rp", "r", "unity", 6, seed=1, persons=2)
    write_set(root / "r.h5", "r", "mpii", 8, seed=1, persons=2)
    return root


def test_items_and_shapes_in_both_modes(sets):
    for name in ("s", "r.h5"):
        eye, face = open_source(sets / name, 32, EyeOptions()), open_source(sets / name, 32)
        assert eye.shape == (1, 36, 60) and face.shape == (3, 32, 32)
        item = eye[1]
        assert item["image"].shape == (1, 36, 60) and item["image"].dtype == torch.float32
        assert item["image"].min() == -1 and item["image"].max() == 1  # equalised: the full range
        assert item["landmarks"].shape == (18, 2) and item["head"].shape == (2,) and item["index"] == 1
        assert torch.equal(item["image"][0], torch.from_numpy(eye_patch.to_unit(eye_patch.equalise(eye.patch(1)))))
        assert face[1]["image"].shape == (3, 32, 32)
        plain = open_source(sets / name, 32, EyeOptions(equalise=False))[1]["image"][0]
        assert torch.equal(plain, torch.from_numpy(eye_patch.to_unit(eye.patch(1))))


def test_gray_conversions_follow_the_kind(sets):
    mpii = open_source(sets / "r.h5", 32, EyeOptions())
    with h5py.File(sets / "r.h5") as handle:
        bgr = handle["p00/image"][0]
    assert np.array_equal(
        mpii.patch(0), (bgr.astype(np.int32).sum(axis=2) // 3).astype(np.uint8)
    )  # channel mean, truncated
    assert np.array_equal(
        open_source(sets / "r.h5", 32, EyeOptions(gray="luma")).patch(0), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    )
    unity = open_source(sets / "s", 32, EyeOptions())
    raw = cv2.imread(str(sets / "s" / "1.jpg"))
    render = render_eye(1, 0, "s")
    assert np.array_equal(unity.patch(0), eye_patch.crop(cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY), render.crop))  # luma
    mean = open_source(sets / "s", 32, EyeOptions(gray="mean")).patch(0)
    assert np.array_equal(mean, eye_patch.crop(eye_patch.to_gray(raw, "mean"), render.crop))
    with pytest.raises(UsageError, match="--gray green"):
        open_source(sets / "s", 32, EyeOptions(gray="green"))


def test_mpii_of_another_size_is_resized_with_its_landmarks(sets, tmp_path):
    with h5py.File(sets / "r.h5") as handle:
        image, marks = handle["p01/image"][:], handle["p01/landmarks"][:]
        gaze = handle["p01/gaze"][:]
    big = np.stack([cv2.resize(im, (120, 72), interpolation=cv2.INTER_LINEAR) for im in image])
    with h5py.File(tmp_path / "big.h5", "w") as handle:
        handle["p01/image"], handle["p01/gaze"], handle["p01/landmarks"] = big, gaze, (marks + 0.5) * 2 - 0.5
    source = open_source(tmp_path / "big.h5", 32, EyeOptions())
    assert source.patch(0).shape == (36, 60) and np.isnan(source.heads).all()
    assert np.allclose(source[0]["landmarks"].numpy(), marks[0], atol=1e-4)
    assert np.abs(source.patch(0).astype(int) - eye_patch.to_gray(image[0], "mean")).mean() < 4

    with h5py.File(tmp_path / "bare.h5", "w") as handle:
        handle["p00/image"], handle["p00/gaze"] = image, gaze
    assert torch.isnan(open_source(tmp_path / "bare.h5", 32, EyeOptions())[0]["landmarks"]).all()


def test_unity_subjects_come_from_gcgan_person(sets):
    source = open_source(sets / "rp", 32, EyeOptions())
    assert source.subjects == ["p00", "p01"] * 3 and source.ids == [str(i) for i in range(1, 7)]


def test_jitter_off_is_deterministic_and_jitter_on_moves_the_crop_repeatably(sets):
    plain = open_source(sets / "s", 32, EyeOptions())
    first, second = plain[3], plain[3]
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["landmarks"], second["landmarks"])

    runs = [open_source(sets / "s", 32, EyeOptions(jitter=True, seed=4)) for _ in range(2)]
    draws = [[run[3] for _ in range(3)] for run in runs]
    for a, b in zip(*draws):  # a fresh source repeats the same sequence
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["landmarks"], b["landmarks"])
    fetches = draws[0]
    assert not torch.equal(fetches[0]["landmarks"], fetches[1]["landmarks"])  # each fetch draws anew
    assert not torch.equal(fetches[0]["landmarks"], first["landmarks"])
    assert np.array_equal(runs[0].patch(3), plain.patch(3))  # patch() is the jitter-free crop
    # the jittered landmarks are the plain ones under one scale + shift (the crop moved, the eye did not)
    a, b = first["landmarks"].numpy().astype(np.float64), fetches[0]["landmarks"].numpy().astype(np.float64)
    design = np.concatenate([a.reshape(-1, 1), np.tile(np.eye(2), (18, 1))], axis=1)
    fit, residual, *_ = np.linalg.lstsq(design, b.reshape(-1), rcond=None)
    assert abs(fit[0] - 1) > 1e-3 and np.abs(design @ fit - b.reshape(-1)).max() < 1e-3
    assert not torch.equal(
        open_source(sets / "s", 32, EyeOptions(jitter=True, seed=5))[3]["image"], fetches[0]["image"]
    )


def test_head_pose_filter(sets):
    heads = np.degrees(np.array([render_eye(1, i, "s").head for i in range(40)]))
    keep = (np.abs(heads) <= 20).all(axis=1)
    assert 0 < keep.sum() < 40
    filtered = open_source(sets / "s", 32, EyeOptions(max_head_pose=20))
    assert filtered.ids == [str(i + 1) for i in np.flatnonzero(keep)]
    assert (np.abs(np.degrees(filtered.heads)) <= 20).all()
    assert len(open_source(sets / "s", 32)) == 40  # face mode keeps every sample
    with pytest.raises(DatasetError, match="max-head-pose"):
        open_source(sets / "s", 32, EyeOptions(max_head_pose=0.001))


def translate(source, out, header):
    """A stand-in translator: the inverted patch, with the source's labels."""
    with TranslatedWriter(out, header) as writer:
        for i in range(len(source)):
            clean = eye_patch.equalise(source.patch(i))
            writer.add(
                source.ids[i],
                255 - clean,
                clean,
                {
                    "source_id": source.ids[i],
                    "person": source.subjects[i],
                    "gaze": source.gazes[i],
                    "head": source.heads[i],
                    "landmarks": source[i]["landmarks"].numpy(),
                    "direction": "r2s",
                },
            )


def test_translated_round_trip_and_detection_order(sets, tmp_path):
    mpii = open_source(sets / "r.h5", 32, EyeOptions())
    out = tmp_path / "translated"
    translate(mpii, out, {"direction": "r2s", "checkpoint": "none"})
    assert json.loads((out / HEADER).read_text()) == {"direction": "r2s", "checkpoint": "none"}
    row = json.loads((out / MANIFEST).read_text().splitlines()[0])
    assert row["file"] == "p00_0.png" and row["source_id"] == "p00_0" and row["direction"] == "r2s"

    source = open_source(out, 32, EyeOptions())  # its folder holds a .json, yet it is not read as UnityEyes
    assert source.kind == "translated" and source.ids == mpii.ids and source.subjects == mpii.subjects
    assert np.allclose(source.gazes, mpii.gazes) and np.allclose(source.heads, mpii.heads)
    stored = cv2.imread(str(out / "p00_1.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(stored, 255 - eye_patch.equalise(mpii.patch(1)))  # lossless
    item = source[1]
    assert torch.equal(
        item["image"][0], torch.from_numpy(eye_patch.to_unit(eye_patch.equalise(stored)))
    )  # re-equalised
    assert torch.allclose(item["landmarks"], mpii[1]["landmarks"])
    face = open_source(out, 16)
    assert face.shape == (3, 16, 16) and face[1]["image"].shape == (3, 16, 16)
    assert torch.equal(face[1]["image"][0], face[1]["image"][2])  # gray in three channels

    unity = open_source(sets / "s", 32, EyeOptions())
    translate(unity, tmp_path / "s2r", {})
    assert torch.isfinite(open_source(tmp_path / "s2r", 32, EyeOptions())[0]["landmarks"]).all()
    with pytest.raises(UsageError, match="already holds"):
        translate(mpii, out, {})


def test_an_interrupted_translation_leaves_no_set(sets, tmp_path):
    mpii = open_source(sets / "r.h5", 32, EyeOptions())
    with pytest.raises(RuntimeError):
        with TranslatedWriter(tmp_path / "cut", {}) as writer:
            clean = mpii.patch(0)
            writer.add("a", clean, clean, {"gaze": [0.0, 0.0]})
            raise RuntimeError("stopped")
    assert not (tmp_path / "cut" / MANIFEST).exists() and not (tmp_path / "cut" / HEADER).exists()
    with pytest.raises(DatasetError, match="not a gaze source"):
        open_source(tmp_path / "cut", 32, EyeOptions())


def test_a_bad_manifest_line_names_its_line(sets, tmp_path):
    translate(open_source(sets / "r.h5", 32, EyeOptions()), tmp_path / "t", {})
    lines = (tmp_path / "t" / MANIFEST).read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "gaze": [0.1]})
    (tmp_path / "t" / MANIFEST).write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"manifest\.jsonl:3:"):
        open_source(tmp_path / "t", 32, EyeOptions())


def test_eye_mode_refuses_face_kinds(tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    (db / "data.mdb").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"db: a `gcgan pack` DB holds face images.*MPIIFaceGaze \.h5"):
        open_source(db, 32, EyeOptions())
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "samples.jsonl").write_text("")
    with pytest.raises(DatasetError, match="samples: a `gcgan sample` folder holds face images"):
        open_source(samples, 32, EyeOptions())
