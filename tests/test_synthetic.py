"""The procedural renderer: determinism, gaze encoding, mask/image agreement, layout, recorded digests."""

import hashlib

import numpy as np
import pytest

from gcgan_cli.data import masks, synthetic
from gcgan_cli.data.eye_crop import band_rows


def iris_centroids(mask):
    """(x, y) centroid of the iris pixels in the left and right half of the strip."""
    ys, xs = np.nonzero(mask == masks.IRIS)
    half = mask.shape[1] / 2
    return [np.array([xs[side].mean(), ys[side].mean()]) for side in (xs < half, xs >= half)]


def test_same_seed_same_bytes_and_seeds_differ():
    a, b = synthetic.render(3, 17), synthetic.render(3, 17)
    assert a.rgb.tobytes() == b.rgb.tobytes() and a.mask.tobytes() == b.mask.tobytes()
    assert (a.pitch, a.yaw) == (b.pitch, b.yaw) == synthetic.gaze_of(3, 17)
    c = synthetic.render(4, 17)
    assert c.rgb.tobytes() != a.rgb.tobytes()


@pytest.mark.parametrize("style", sorted(synthetic.STYLES))
@pytest.mark.parametrize("size", [32, 64, 256])
def test_layout_and_classes(style, size):
    strip = synthetic.render(0, 5, size, style)
    assert strip.rgb.shape == (size, size, 3) and strip.rgb.dtype == np.uint8
    assert strip.mask.shape == (size, size) and strip.mask.dtype == np.uint8
    top, bottom = band_rows(size)
    assert not strip.rgb[:top].any() and not strip.rgb[bottom:].any()
    assert not strip.mask[:top].any() and not strip.mask[bottom:].any()
    present = set(np.unique(strip.mask))
    assert present == {masks.BACKGROUND, masks.SKIN, masks.EYE, masks.EYEBROW, masks.NOSE, masks.IRIS}
    rows = {c: np.nonzero(strip.mask == c)[0].mean() for c in (masks.EYEBROW, masks.EYE, masks.NOSE)}
    assert rows[masks.EYEBROW] < rows[masks.EYE] < rows[masks.NOSE]


def test_iris_moves_monotonically_with_yaw_and_pitch():
    yaws = np.linspace(-1.2, 1.2, 9)
    xs = np.array([[c[0] for c in iris_centroids(synthetic.render(1, 40, gaze=(0.0, y)).mask)] for y in yaws])
    # Positive yaw moves the iris toward image-left, as ETH-XGaze's gaze arrow (dx = -sin(yaw)).
    assert np.all(np.diff(xs, axis=0) < 0), xs
    pitches = np.linspace(-0.6, 0.35, 7)
    ys = np.array([[c[1] for c in iris_centroids(synthetic.render(1, 40, gaze=(p, 0.0)).mask)] for p in pitches])
    assert np.all(np.diff(ys, axis=0) < 0), ys  # looking up moves the iris up
    # Both eyes move together.
    assert np.allclose(xs[:, 0] - xs[0, 0], xs[:, 1] - xs[0, 1], atol=1.5)


@pytest.mark.parametrize("size", [64, 256])
def test_lids_and_iris_follow_the_pitch(size):
    """Looking up opens the eye (the upper lid rises) and moves the visible iris up; looking down
    closes it over the iris. Means over subjects, at the training size too."""
    pitches = np.linspace(-0.6, 0.35, 6)
    area, iris_y = [], []
    for p in pitches:
        strips = [synthetic.render(5, 20 * s, size, gaze=(p, 0.1)) for s in range(8)]
        area.append(np.mean([np.isin(t.mask, (masks.EYE, masks.IRIS)).sum() for t in strips]))
        iris_y.append(np.mean([np.mean([c[1] for c in iris_centroids(t.mask)]) for t in strips]))
    assert np.all(np.diff(area) > 0), area
    assert np.all(np.diff(iris_y) < 0), iris_y
    # The change is visible at 64 px: the eye opening grows by about half over the pitch range.
    assert area[-1] > 1.4 * area[0]


def test_iris_is_foreshortened_away_from_the_camera():
    """The iris is a disk seen at the gaze angle: narrower along its displacement."""

    def iris_extent(gaze):
        mask = synthetic.render(3, 60, 256, gaze=gaze).mask
        ys, xs = np.nonzero(mask == masks.IRIS)
        left = xs < 128
        return xs[left].max() - xs[left].min() + 1

    assert iris_extent((0.0, 0.7)) < 0.85 * iris_extent((0.0, 0.0))


def test_gaze_only_changes_the_eyes():
    a = synthetic.render(2, 7, gaze=(0.0, -0.8))
    b = synthetic.render(2, 7, gaze=(0.0, 0.8))
    changed = np.any(a.rgb != b.rgb, axis=2) | (a.mask != b.mask)
    eyes = np.isin(a.mask, (masks.EYE, masks.IRIS)) | np.isin(b.mask, (masks.EYE, masks.IRIS))
    assert changed.any()
    assert not changed[~_dilate(eyes, 3)].any()


def _dilate(region, radius):
    out = region.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out |= np.roll(np.roll(region, dy, 0), dx, 1)
    return out


def test_mask_classes_match_the_rendered_parts(monkeypatch):
    """With lighting, noise and blur off, each class's pixels carry exactly that part's colour:
    background and brow pixels are flat, and no pixel of another class has their colour."""
    flat = synthetic.Style(
        "flat",
        synthetic.ETHX_GAZE,
        ((200, 160, 140), (190, 150, 130)),
        ((30, 90, 30),),
        light=(0.0, 0.0),
        blur=(0.0, 0.0),
        noise=(0.0, 0.0),
        contrast=1.0,
        saturation=1.0,
    )
    monkeypatch.setitem(synthetic.STYLES, "flat", flat)
    monkeypatch.setattr(synthetic, "_image_rng", _no_exposure_jitter(synthetic._image_rng))
    for index in (0, 21, 42):
        strip = synthetic.render(9, index, 128, "flat")
        top, bottom = band_rows(128)
        rgb, mask = strip.rgb[top:bottom].reshape(-1, 3), strip.mask[top:bottom].ravel()
        for part in (masks.BACKGROUND, masks.EYEBROW):
            colours = np.unique(rgb[mask == part], axis=0)
            assert len(colours) == 1, (part, colours[:5])
            assert not np.all(rgb[mask != part] == colours[0], axis=1).any()
        # The iris (with its dark pupil) is darker than the sclera around it.
        assert rgb[mask == masks.IRIS].mean() < rgb[mask == masks.EYE].mean() - 40


def _no_exposure_jitter(image_rng):
    def wrapped(seed, index, look):
        rng, gaze = image_rng(seed, index, look)
        return _ZeroNormal(rng), gaze

    return wrapped


class _ZeroNormal:
    """A generator whose normal() draws are 0 (no framing or exposure jitter), all else as given."""

    def __init__(self, rng):
        self._rng = rng

    def normal(self, loc=0.0, scale=1.0, size=None):
        return np.zeros(size) + loc if size is not None else float(loc)

    def __getattr__(self, name):
        return getattr(self._rng, name)


def test_styles_differ_in_look():
    studio = np.stack([synthetic.render(0, i, 64, "studio").rgb for i in range(0, 200, 20)]).astype(float)
    wild = np.stack([synthetic.render(0, i, 64, "wild").rgb for i in range(0, 200, 20)]).astype(float)
    saturation = lambda x: (x.max(axis=3) - x.min(axis=3)).mean()
    assert saturation(wild) > saturation(studio) * 1.2


def test_gaze_prior_is_like_ethx():
    rng = np.random.default_rng(0)
    gaze = np.array([synthetic.sample_gaze(rng, synthetic.ETHX_GAZE) for _ in range(4000)])
    assert -0.7026 <= gaze[:, 0].min() and gaze[:, 0].max() <= 0.3953
    assert -1.5062 <= gaze[:, 1].min() and gaze[:, 1].max() <= 1.4829
    assert abs(gaze[:, 0].mean() - (-0.141)) < 0.05 and abs(gaze[:, 1].mean() - (-0.049)) < 0.05
    assert 0.17 < gaze[:, 0].std() < 0.26 and 0.45 < gaze[:, 1].std() < 0.6


# sha256 of (rgb bytes, mask bytes) of a few strips, recorded with numpy 1.26.4 and OpenCV 4.11.0.
GOLDEN_DIGESTS = {
    (0, 5, 64, "studio", None): (
        "69a8251b3cfb130a2fce008d76049a592730b759a856835a7f7b6660847de9ac",
        "f22283a07239e44a9ce8224175780c4efdbb617405b99b936c1512b09fc805bc",
    ),
    (7, 133, 256, "wild", None): (
        "ab2ed165ab9aac09aa674e0ac0ef59797cb8fb48be6077ac008bbca509caf09f",
        "b2a748262a1587ef340a5c72674f8215e45ba5f7b88694c9212ddee434caa500",
    ),
    (3, 60, 128, "studio", (0.3, -0.9)): (
        "459e3fd63deea8b001ed2acf4ae587388b312c000f0c9888a3aa436640947d02",
        "4b60aed3fd1547c0d67c505cb3b8e78fd88df4c19a1f7bbbba1b3d7c7e68f479",
    ),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_DIGESTS, key=str))
def test_rendered_bytes_match_the_recorded_digests(case):
    """Any change to the renderer's output fails here: a segmented synthetic set, and every number
    measured on one, depends on these bytes. An intended change records new digests (a numpy or
    OpenCV upgrade that changes a blur or a rounding can too)."""
    seed, index, size, style_name, gaze = case
    strip = synthetic.render(seed, index, size, style_name, gaze=gaze)
    digests = hashlib.sha256(strip.rgb.tobytes()).hexdigest(), hashlib.sha256(strip.mask.tobytes()).hexdigest()
    assert digests == GOLDEN_DIGESTS[case]
