"""The single-eye renderer: its labels survive both writers and the readers exactly, its pixels agree
with its labels (iris centroid, gaze directions, lids following pitch), R differs from S in ways
equalisation keeps, and sets are reproducible and can be rendered in person ranges."""

import json

import cv2
import h5py
import numpy as np
import pytest

from gcgan_cli.core.gaze.sources import EyeOptions, open_source
from gcgan_cli.data import eye_patch
from gcgan_cli.data.synthetic_eye import render_eye, write_set
from gcgan_cli.errors import UsageError


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("eyes")
    write_set(root / "s", "s", "unity", 120, seed=0, twin=True)
    write_set(root / "r.h5", "r", "mpii", 45, seed=0)
    write_set(root / "rp", "r", "unity", 30, seed=0, persons=3, first_person=12)
    write_set(root / "sm.h5", "s", "mpii", 60, seed=0, persons=4, twin=True)  # the twin: R's look, S's wide gazes
    return root


def unoccluded(render) -> bool:
    """Every limbus point lies inside the 16-point lid margin (a polygon inside the drawn opening)."""
    polygon = render.margin.astype(np.float32)
    return all(cv2.pointPolygonTest(polygon, (float(x), float(y)), True) > 2 for x, y in render.iris)


def eye_opening(gray, marks):
    """Pixels inside the lid polygon of the 8 margin landmarks, eroded by a pixel."""
    inside = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(marks[:8] * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0


def iris_centroid(gray, marks):
    """Centroid of the largest dark blob in the eye opening (Otsu split of iris and sclera), its holes
    (the glint) filled."""
    inside = eye_opening(gray, marks)
    threshold, _ = cv2.threshold(gray[inside].reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(((gray < threshold) & inside).astype(np.uint8))
    blob = (labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])).astype(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, -1)
    ys, xs = np.nonzero(filled)
    return np.array([xs.mean(), ys.mean()])


def darkness_centroid(gray, marks):
    """Darkness-weighted centroid of the eye opening: where the iris is, without any threshold."""
    inside = eye_opening(gray, marks)
    weight = (255.0 - gray) * inside
    ys, xs = np.mgrid[: gray.shape[0], : gray.shape[1]]
    return np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()


@pytest.mark.slow
def test_unity_round_trip_returns_the_renderers_labels(sets):
    source = open_source(sets / "s", 64, EyeOptions())
    assert (
        source.kind == "unityeyes"
        and len(source) == 120
        and source.ids[:2] == ["1", "2"]
        and source.subjects[0] is None
    )
    for i in range(0, 120, 7):
        render = render_eye(0, i, "s")
        item = source[i]
        assert np.abs(item["landmarks"].numpy() - render.landmarks).max() < 1e-3
        assert np.allclose(item["gaze"].numpy(), render.gaze, atol=1e-6) and np.allclose(
            item["head"].numpy(), render.head, atol=1e-6
        )
    record = json.loads((sets / "s" / "1.json").read_text())
    assert "gcgan_person" not in record and record["eye_details"]["look_vec"].endswith(", 0.0)")


@pytest.mark.slow
def test_mpii_round_trip_and_persons(sets):
    source = open_source(sets / "r.h5", 64, EyeOptions())
    assert source.kind == "mpii" and len(source) == 45 and source.ids[:2] == ["p00_0", "p00_1"]
    assert sorted(set(source.subjects)) == [f"p{p:02d}" for p in range(15)]
    for index in (0, 4, 44):
        person, k = source.ids[index].split("_")
        render = render_eye(0, int(k), "r", person=person)
        item = source[index]
        assert np.abs(item["landmarks"].numpy() - render.landmarks).max() < 1e-5
        assert np.allclose(item["gaze"].numpy(), render.gaze, atol=1e-6) and np.allclose(
            item["head"].numpy(), render.head, atol=1e-6
        )
        assert np.array_equal(source.patch(index), eye_patch.to_gray(render.patch(), "mean"))


def test_persons_and_first_person_render_the_same_people(sets, tmp_path):
    part = open_source(sets / "rp", 64, EyeOptions())
    assert sorted(set(part.subjects)) == ["p12", "p13", "p14"]
    whole = open_source(sets / "r.h5", 64, EyeOptions())
    for index in range(len(part)):
        person = part.subjects[index]
        k = sum(1 for s in part.subjects[:index] if s == person)
        if k < 3:  # the 45-sample whole set holds 3 per person
            assert np.allclose(part.gazes[index], whole.gazes[whole.ids.index(f"{person}_{k}")])
    write_set(tmp_path / "p12.h5", "r", "mpii", 3, seed=0, persons=1, first_person=12)
    with h5py.File(tmp_path / "p12.h5") as small, h5py.File(sets / "r.h5") as big:
        assert list(small) == ["p12"] and np.array_equal(small["p12/image"][:], big["p12/image"][:])


def test_iris_centroid_of_unoccluded_renders_is_the_iris_landmark(sets):
    source = open_source(sets / "s", 64, EyeOptions())
    checked = 0
    for i in range(len(source)):
        if unoccluded(render_eye(0, i, "s")):
            marks = source[i]["landmarks"].numpy()
            assert np.linalg.norm(iris_centroid(source.patch(i), marks) - marks[eye_patch.IRIS_CENTRE]) < 0.5
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name", ["s", "sm-twin.h5"])
def test_positive_yaw_moves_the_iris_left_and_positive_pitch_moves_it_up(sets, name):
    source = open_source(sets / name, 64, EyeOptions())
    centres = np.array([darkness_centroid(source.patch(i), source[i]["landmarks"].numpy()) for i in range(len(source))])
    eye_centre = np.array([source[i]["landmarks"].numpy()[eye_patch.EYEBALL_CENTRE] for i in range(len(source))])
    offset = centres - eye_centre
    assert np.corrcoef(source.gazes[:, 1], offset[:, 0])[0, 1] < -0.7  # yaw up -> iris x down (image-left)
    assert np.corrcoef(source.gazes[:, 0], offset[:, 1])[0, 1] < -0.7  # pitch up -> iris y down (image-up)


def test_the_upper_lid_rises_with_pitch():
    renders = [render_eye(0, k, "r", person="p03") for k in range(40)]
    pitch = np.array([r.gaze[0] for r in renders])
    # opening of the upper lid: corner line minus the mean height of margin points 2..6, raw pixels
    opening = np.array([(r.margin[0, 1] + r.margin[8, 1]) / 2 - r.margin[2:7, 1].mean() for r in renders])
    assert np.corrcoef(pitch, opening)[0, 1] > 0.9


def test_r_differs_from_s_after_equalisation_beyond_tone(sets):
    s, twin = open_source(sets / "s", 64, EyeOptions()), open_source(sets / "s-twin", 64, EyeOptions())
    assert twin.ids == s.ids and np.allclose(twin.gazes, s.gazes) and np.allclose(twin.heads, s.heads)
    eq = lambda gray: eye_patch.to_unit(eye_patch.equalise(gray))  # noqa: E731
    gap = np.mean([np.abs(eq(twin.patch(i)) - eq(s.patch(i))).mean() for i in range(0, 120, 4)])
    gamma_of = lambda gray: np.rint(255 * (gray / 255.0) ** 0.6).astype(np.uint8)  # noqa: E731
    gamma = np.mean([np.abs(eq(gamma_of(s.patch(i))) - eq(s.patch(i))).mean() for i in range(0, 120, 4)])
    assert gap > 0.3 and gap > 10 * gamma
    for i in (0, 5):  # the twin is the same eye: same landmarks
        assert np.allclose(twin[i]["landmarks"], s[i]["landmarks"], atol=1e-4)


def contents(path):
    return {p.name: p.read_bytes() for p in (sorted(path.iterdir()) if path.is_dir() else [path])}


def test_same_seed_same_bytes(tmp_path):
    for name, fmt, style in (("a", "unity", "r"), ("a.h5", "mpii", "s")):
        first, second, other = tmp_path / "1" / name, tmp_path / "2" / name, tmp_path / "3" / name
        write_set(first, style, fmt, 6, seed=5, persons=2)
        write_set(second, style, fmt, 6, seed=5, persons=2)
        write_set(other, style, fmt, 6, seed=6, persons=2)
        assert contents(first) == contents(second) and contents(first) != contents(other)
    assert not list(tmp_path.rglob(".*tmp*"))  # temp names are gone


def test_write_set_errors_and_overwrite(tmp_path):
    calls = []
    write_set(tmp_path / "s", "s", "unity", 2, twin=True, on_item=lambda: calls.append(1))
    assert len(calls) == 4  # once per image, twins included
    with pytest.raises(UsageError, match="already exists"):
        write_set(tmp_path / "s", "s", "unity", 2)
    write_set(tmp_path / "s", "s", "unity", 3, seed=2, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "1.jpg",
        "1.json",
        "2.jpg",
        "2.json",
        "3.jpg",
        "3.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "s-twin"]  # no temp or old folders left
    with pytest.raises(UsageError, match="--persons"):
        write_set(tmp_path / "s.h5", "s", "mpii", 2)
    with pytest.raises(UsageError, match="--style"):
        write_set(tmp_path / "x", "q", "unity", 2)
    with pytest.raises(UsageError, match="--format"):
        write_set(tmp_path / "x", "s", "png", 2)
